"""Checkpoint inspection: tree totals, transfer view, diff, JSON, bad input."""

import json
import logging
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from xfer_jax import inspection, transfer
from xfer_jax.engine import checkpoints


def _cli(*args):
  return subprocess.run([sys.executable, "-m", "launch.inspect", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300)


def test_tree_totals_equal_the_parameter_count(pretrained, caplog):
  report = inspection.tree_report(pretrained)
  with caplog.at_level(logging.WARNING):
    tree, _ = checkpoints.read(pretrained)
  # a sound checkpoint reads back without orbax's missing-metadata warnings
  assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
  count = inspection.param_count(tree["best_params"])
  assert report["total"] == count == sum(report["groups"].values()) == sum(
      report["top_level"].values())
  assert set(report["top_level"]) == {"tower_0", "tower_1", "tower_2", "dense_0", "dense_1", "head"}
  assert "tower_1/temporal/block_1" in report["groups"]
  assert report["batch_stats"] and all("bn" in r["path"] for r in report["batch_stats"])
  assert report["class_names"] and report["config"]["model"]["filters"] == [8, 16]


def test_transfer_view_and_diff_show_the_frozen_blocks(pretrained, adapted):
  _, workdir, _ = adapted
  view = inspection.transfer_report(workdir)
  frozen = {r["path"] for r in view["labels"] if r["action"] == transfer.COPY_FREEZE}
  assert frozen and view["source"] == str(pretrained)
  diff = inspection.diff_report(pretrained, workdir)
  identical = {r["path"] for r in diff["rows"] if r["tree"] == "params" and r["status"] == "identical"}
  assert identical == frozen
  changed = [r for r in diff["rows"] if r["status"] == "changed"]
  assert changed and all(r["max_abs_delta"] > 0 for r in changed)


def test_cli_json_round_trips_and_bad_input_fails(pretrained, tmp_path):
  result = _cli(f"--checkpoint={pretrained}", "--format=json")
  assert result.returncode == 0, result.stderr
  report = json.loads(result.stdout)
  direct = inspection.tree_report(pretrained)
  for a, b in zip(report["params"], direct["params"]):
    assert a["path"] == b["path"] and a["count"] == b["count"]
    np.testing.assert_allclose([a["mean"], a["std"], a["max_abs"]],
                               [b["mean"], b["std"], b["max_abs"]], rtol=1e-12)
  missing = _cli(f"--checkpoint={tmp_path / 'nothing'}")
  assert missing.returncode != 0 and "no such checkpoint folder" in missing.stderr
  with pytest.raises(inspection.InspectionError, match="has no transfer record"):
    inspection.transfer_report(pretrained)


def test_unknown_version_and_other_model_are_refused(pretrained, tmp_path):
  import shutil
  copy = tmp_path / "copy"
  shutil.copytree(pretrained, copy)
  step = max(int(p.name) for p in (copy / "checkpoints").iterdir() if p.name.isdigit())
  meta_files = list((copy / "checkpoints" / str(step) / "meta").glob("*"))
  for f in meta_files:
    if f.is_file() and f.suffix in ("", ".json") and "format" in f.read_text(errors="ignore"):
      f.write_text(f.read_text().replace(checkpoints.FORMAT, "someone_else/9"))
  with pytest.raises(checkpoints.CheckpointError, match="format 'someone_else/9'"):
    checkpoints.read_meta(copy)


def test_diff_of_different_models_is_refused(pretrained, tmp_path):
  tree, meta = checkpoints.read(pretrained)
  conv = tree["best_params"]["tower_0"]["temporal"]["block_1"]["conv_0"]
  conv["kernel"] = np.zeros((*conv["kernel"].shape[:-1], 24), np.float32)  # a wider block
  meta = {k: v for k, v in meta.items() if k != "format"}
  checkpoints.Checkpoints(tmp_path / "wider" / "checkpoints").save(0, tree, meta)
  with pytest.raises(inspection.InspectionError, match="hold different models"):
    inspection.diff_report(pretrained, tmp_path / "wider")


def test_cli_diff_lists_what_differs_unless_asked_for_all(pretrained, adapted):
  _, workdir, _ = adapted
  shown = _cli(f"--checkpoint={pretrained}", f"--diff={workdir}")
  assert shown.returncode == 0, shown.stderr
  identical = inspection.diff_report(pretrained, workdir)["counts"]["identical"]
  assert f"({identical} identical path(s) not listed: --all lists them)" in shown.stdout
  assert " identical " not in shown.stdout.replace("identical path(s)", "")
  everything = _cli(f"--checkpoint={pretrained}", f"--diff={workdir}", "--all")
  assert everything.stdout.count(" identical ") >= identical
