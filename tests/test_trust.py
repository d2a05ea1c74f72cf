"""Workdirs and checkpoints that verify themselves; real causes told in one line.

Each test works on a copy of the session's smoke source (`pretrained`, 12 epochs,
checkpoints at steps 5 and 11) or on a small file system of its own."""

import contextlib
import errno
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from tests.conftest import REPO
from xfer_jax import config_fields, experiment
from xfer_jax.engine import checkpoints, workdirs
from xfer_jax.errors import explain
from xfer_jax.grid import results, sweep
from xfer_jax.grid.records import Record
from xfer_jax.study import report


@pytest.fixture
def workdir(pretrained, tmp_path):
  copy = tmp_path / "source"
  shutil.copytree(pretrained, copy)
  return copy


def _launch(module, *flags, env=None):
  """python -m launch.<module> in a child process: (exit code, stdout, stderr)."""
  done = subprocess.run([sys.executable, "-m", f"launch.{module}", *flags], cwd=REPO,
                        capture_output=True, text=True, timeout=600,
                        env={**os.environ, **(env or {})})
  return done.returncode, done.stdout, done.stderr


def _one_line_error(stderr: str) -> str:
  """The launcher's error line; no traceback came with it."""
  assert "Traceback" not in stderr, stderr[-3000:]
  [line] = [line for line in stderr.splitlines() if line.startswith("error: ")]
  return line


def _per_seed(path: Path):
  return json.loads((path / "result.json").read_text())["per_seed"]


def test_a_rerun_that_would_change_results_is_refused_and_names_the_field(
    smoke_config, workdir, adapted):
  saved = (workdir / "config.json").read_bytes()
  config = smoke_config.copy_and_resolve_references()
  config.optim.learning_rate = 0.5
  with pytest.raises(workdirs.WorkdirError, match=r"optim.learning_rate: saved 0.001 vs given 0.5"):
    experiment.pretrain(config, workdir, progress=False)
  assert (workdir / "config.json").read_bytes() == saved  # it still tells the truth
  code, _, stderr = _launch("pretrain", "--config=configs/smoke.py", f"--workdir={workdir}",
                            f"--config.data.cache_dir={smoke_config.data.cache_dir}",
                            "--config.model.filters=(8,8)")
  assert code == 1 and "model.filters: saved [8, 16] vs given [8, 8]" in _one_line_error(stderr)
  # adapt pins its own workdir the same way
  adapt_config, adapt_dir, _ = adapted
  other = adapt_config.copy_and_resolve_references()
  other.transfer.blocks = 2
  with pytest.raises(workdirs.WorkdirError, match=r"transfer.blocks: saved 1 vs given 2"):
    experiment.adapt(other, adapt_dir, None, progress=False)


def test_a_workdir_without_its_config_json_is_checked_against_its_checkpoint(
    smoke_config, workdir, adapted, tmp_path):
  """The checkpoint carries its run's config: with config.json gone, a rerun under
  another learning rate is refused by field (it used to print the old scores, rc 0,
  and write a config.json claiming the new rate); the same config resumes and
  config.json is written again; checkpoints copied into a fresh adapt workdir with
  another adaptation size are refused (they used to report under the new size)."""
  (workdir / "config.json").unlink()
  config = smoke_config.copy_and_resolve_references()
  config.optim.learning_rate = 0.5
  with pytest.raises(workdirs.WorkdirError, match=r"checkpoints: its latest step was trained "
                     r"with another config \(optim.learning_rate: saved 0.001 vs given 0.5\)"):
    experiment.pretrain(config, workdir, progress=False)
  assert not (workdir / "config.json").exists()
  experiment.pretrain(smoke_config, workdir, progress=False)
  assert json.loads((workdir / "config.json").read_text())["optim"]["learning_rate"] == 0.001
  adapt_config, adapt_dir, _ = adapted
  fresh = tmp_path / "fresh_adapt"
  shutil.copytree(adapt_dir / "checkpoints", fresh / "checkpoints")
  other = adapt_config.copy_and_resolve_references()
  other.adapt.size = 20
  with pytest.raises(workdirs.WorkdirError, match=r"adapt.size: saved \d+ vs given 20"):
    experiment.adapt(other, fresh, None, progress=False)


def test_a_rerun_with_other_run_settings_resumes(smoke_config, pretrained, workdir):
  config = smoke_config.copy_and_resolve_references()
  config.runtime.checkpoint_every = 2
  config.runtime.eval_batch_size = 64
  config.data.cache_dir = str(Path(config.data.cache_dir))  # a location: not the science
  config.target = "syn_smoke_a"  # not read by pretraining
  experiment.pretrain(config, workdir, progress=False)
  assert _per_seed(workdir) == _per_seed(pretrained)
  assert json.loads((workdir / "config.json").read_text())["runtime"]["checkpoint_every"] == 6


def _array_files(step_dir: Path) -> list[Path]:
  return sorted((p for p in (step_dir / "state").rglob("*") if p.is_file() and
                 p.parent.name == "d"), key=lambda p: p.stat().st_size)


def _flip(path: Path, offset_share=0.5, count=4):
  data = bytearray(path.read_bytes())
  at = int(len(data) * offset_share)
  data[at:at + count] = bytes(b ^ 0xFF for b in data[at:at + count])
  path.write_bytes(bytes(data))


def test_flipped_bytes_in_a_saved_array_are_found_on_restore_and_by_inspect(
    smoke_config, workdir, tmp_path):
  _flip(_array_files(workdir / "checkpoints" / "11")[-1])
  with pytest.raises(checkpoints.CheckpointError, match=r"checkpoints/11"):
    checkpoints.read(workdir)
  code, _, stderr = _launch("inspect", f"--checkpoint={workdir}")
  assert code == 1 and "checkpoints/11" in _one_line_error(stderr)
  # transfer from it: the same line, before any training
  code, _, stderr = _launch("adapt", "--config=configs/smoke.py", f"--source_checkpoint={workdir}",
                            f"--workdir={tmp_path / 'adapted'}",
                            f"--config.data.cache_dir={smoke_config.data.cache_dir}")
  assert code == 1 and "checkpoints/11" in _one_line_error(stderr)


def test_a_changed_value_is_named_by_its_checksum(workdir):
  tree, meta = checkpoints.read(workdir)
  checkpoints.verify(tree, meta, "here")  # intact
  tree = jax.tree.map(np.array, tree)  # writable copies
  tree["best_params"]["head"]["bias"][0, 1] += 1e-6
  with pytest.raises(checkpoints.CheckpointError,
                     match=r"here: 1 array\(s\) differ .*best_params/head/bias"):
    checkpoints.verify(tree, meta, "here")
  tree, meta = checkpoints.read(workdir)
  tree = jax.tree.map(np.array, tree)
  tree["batch_stats"]["tower_0"]["spectral"]["bn"]["var"][:] = np.nan
  meta["checksums"] = checkpoints.checksums(tree)  # checksums that agree: values still checked
  with pytest.raises(checkpoints.CheckpointError, match=r"non-finite .*batch_stats/tower_0"):
    checkpoints.verify(tree, meta, "here")
  # metadata without its checksums cannot vouch for the arrays (it used to pass them)
  del meta["checksums"]
  with pytest.raises(checkpoints.CheckpointError, match=r"here: its metadata holds no checksum "
                     r"for \d+ array\(s\)"):
    checkpoints.verify(tree, meta, "here")


def test_a_truncated_latest_step_falls_back_to_the_previous_one(
    smoke_config, pretrained, workdir, caplog):
  """The run resumes from step 5, says it skipped step 11 and why, keeps the
  damaged step aside, and ends with the uninterrupted run's numbers."""
  (workdir / "result.json").unlink()
  damaged = _array_files(workdir / "checkpoints" / "11")[-1]
  damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
  with pytest.raises(checkpoints.CheckpointError, match=r"checkpoints/11: a file of the step is "
                     r"shorter than its index says .* or use an older step \(\[5\]\)"):
    checkpoints.read(workdir)  # as launch.inspect reports it: truncation named, in one line
  with caplog.at_level(logging.WARNING):
    experiment.pretrain(smoke_config, workdir, progress=False)
  assert any("checkpoints/11: skipped" in r.getMessage() for r in caplog.records)
  assert (workdir / "checkpoints" / "11.damaged").is_dir()
  assert _per_seed(workdir) == _per_seed(pretrained)
  assert ((workdir / "metrics.jsonl").read_text() == (pretrained / "metrics.jsonl").read_text())
  tree_a, _ = checkpoints.read(pretrained)
  tree_b, _ = checkpoints.read(workdir)
  jax.tree.map(np.testing.assert_array_equal, tree_a, tree_b)


def test_os_errors_inside_wrapped_errors_are_told_in_one_line():
  try:
    try:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/ckpt/5/state")
    except OSError as e:
      raise RuntimeError("async save failed") from e
  except RuntimeError as wrapped:
    line = explain(wrapped)
  assert line.startswith("No space left on device: /data/ckpt/5/state; free space there")
  line = explain(ValueError('RESOURCE_EXHAUSTED: Error writing local file "/d/5/x": '
                            "Failed to write [os_error_code='28']"))
  assert line.startswith("No space left on device: /d/5/x;")
  # a message that only quotes the errno (a library re-raised it as text)
  assert explain(ValueError("write: [Errno 30] Read-only file system")).startswith(
      "Read-only file system")
  assert explain(KeyError("a bug")) is None  # keeps its traceback


@contextlib.contextmanager
def _small_file_system(path: Path, size: str):
  path.mkdir()
  done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                        capture_output=True, text=True)
  if done.returncode:
    pytest.skip(f"cannot mount a small file system here: {done.stderr.strip()}")
  try:
    yield path
  finally:
    subprocess.run(["umount", str(path)], check=True)


def test_a_full_disk_during_a_checkpoint_is_one_line_and_loses_nothing(smoke_config, tmp_path):
  with _small_file_system(tmp_path / "small", "160k") as small:
    workdir = small / "run"
    code, _, stderr = _launch("pretrain", "--config=configs/smoke.py", f"--workdir={workdir}",
                              f"--config.data.cache_dir={smoke_config.data.cache_dir}")
    line = _one_line_error(stderr)
    assert code == 1 and "No space left on device: " + str(workdir / "checkpoints") in line
    assert len(stderr.splitlines()) < 20, stderr  # the line, not thousands of them
    json.loads((workdir / "config.json").read_text())  # intact
    steps = [p for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()]
    assert all(checkpoints.read(workdir, int(p.name)) for p in steps)  # no half-written step


def _finished_sweep(smoke_config, pretrained, workdir):
  config = smoke_config.copy_and_resolve_references()
  config.train.max_epochs = 1
  config.sweep.blocks = (1,)
  config.sweep.sizes = (20,)
  shutil.copytree(pretrained, workdir / "sources" / config.sweep.pairs[0].split("->")[0])
  sweep.run(config, workdir, progress=False)
  report.write(workdir, [workdir])
  return config


def test_a_finished_sweep_reruns_and_reports_on_a_read_only_file_system(
    smoke_config, pretrained, tmp_path):
  with _small_file_system(tmp_path / "ro", "64m") as mount:
    config = _finished_sweep(smoke_config, pretrained, mount / "sweep")
    before = {p: p.read_bytes() for p in (mount / "sweep").rglob("*") if p.is_file()}
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    summary = sweep.run(config, mount / "sweep", progress=False)
    assert summary["cells_run"] == 0
    report.write(mount / "sweep", [mount / "sweep"])  # unchanged: nothing to write
    after = {p: p.read_bytes() for p in (mount / "sweep").rglob("*") if p.is_file()}
    assert after == before


def test_a_finished_pretrain_and_adapt_rerun_on_a_read_only_file_system(
    smoke_config, pretrained, adapted, tmp_path):
  """A finished run returns its result as written, rewriting nothing (it used to fail
  with EROFS rewriting result.json)."""
  adapt_config, adapt_dir, _ = adapted
  with _small_file_system(tmp_path / "ro", "64m") as mount:
    shutil.copytree(pretrained, mount / "source")
    shutil.copytree(adapt_dir, mount / "adapted")
    before = {p: p.read_bytes() for p in mount.rglob("*") if p.is_file()}
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    assert experiment.pretrain(smoke_config, mount / "source", progress=False)["per_seed"] == (
        _per_seed(pretrained))
    assert experiment.adapt(adapt_config, mount / "adapted", pretrained,
                            progress=False)["per_seed"] == _per_seed(adapt_dir)
    assert {p: p.read_bytes() for p in mount.rglob("*") if p.is_file()} == before


def test_a_refused_sweep_leaves_no_new_files(smoke_config, tmp_path):
  workdir = tmp_path / "refused"
  with pytest.raises(sweep.SweepError, match="task_index=3 with num_tasks=2"):
    sweep.run(smoke_config, workdir, task_index=3, num_tasks=2, progress=False)
  assert not workdir.exists()
  results.claim_grid(tmp_path, config_fields.grid_fields(smoke_config))
  listing = sorted(tmp_path.rglob("*"))
  other = smoke_config.copy_and_resolve_references()
  other.train.max_epochs = 3
  with pytest.raises(results.ResultsError, match="train.max_epochs"):
    sweep.run(other, tmp_path, progress=False)
  assert sorted(tmp_path.rglob("*")) == listing


def test_files_written_atomically_get_the_mode_the_umask_gives(tmp_path):
  """Reports, sweep.json and results were 0600 (mkstemp's mode): a collaborator on a
  shared machine could not read them."""
  import os
  import stat

  from xfer_jax.data import atomic
  atomic.write_text(tmp_path / "summary.md", "ok")
  mode = stat.S_IMODE(os.stat(tmp_path / "summary.md").st_mode)
  assert mode == 0o666 & ~atomic._UMASK
  assert mode & 0o044 or atomic._UMASK & 0o044  # readable by others unless the umask forbids


def test_a_file_where_a_folder_belongs_is_one_line(tmp_path):
  blocker = tmp_path / "workdir"
  blocker.write_text("not a folder")
  done = subprocess.run([sys.executable, "-m", "launch.pretrain", "--config=configs/smoke.py",
                         f"--workdir={blocker}"], cwd=REPO, capture_output=True, text=True,
                        timeout=300)
  assert done.returncode == 1
  assert ("a file stands where a folder is needed: move it, or choose another path"
          in done.stderr)
  assert "Traceback" not in done.stderr


def test_a_misspelt_config_field_is_one_line_with_the_right_name(tmp_path):
  code, _, stderr = _launch("pretrain", "--config=configs/smoke.py", f"--workdir={tmp_path}",
                            "--config.optim.learnin_rate=0.1")
  assert code == 2 and "Traceback" not in stderr
  assert stderr.strip() == ("error: --config.optim.learnin_rate=0.1: no field 'learnin_rate'; "
                            "did you mean 'learning_rate'?")


def test_a_config_file_that_fails_is_one_line_with_where_and_why(tmp_path):
  bad = tmp_path / "bad_config.py"
  bad.write_text("from configs import smoke\n\n\ndef get_config(arg=None):\n"
                 "  config = smoke.get_config()\n"
                 "  config.target = {'reader': 'interchange', 'path': 'x.npz'}\n"
                 "  return config\n")
  code, _, stderr = _launch("pretrain", f"--config={bad}", f"--workdir={tmp_path / 'w'}",
                            env={"PYTHONPATH": str(REPO)})
  assert code == 2
  line = _one_line_error(stderr)
  assert f'File "{bad}", line 6: get_config() failed: TypeError: Could not override ' \
         "field 'target'" in line
  assert line.endswith("declare a dataset of your own in config.data.datasets "
                       "(configs/own.py) and name it there")


def test_two_sweeps_of_one_slice_and_orphaned_records_are_refused_before_compute(
    smoke_config, tmp_path):
  """A second process on the same task slice is refused at once (both used to exit 0
  having computed every cell twice); records whose sweep.json is gone are refused
  before a new grid starts beside them."""
  workdir = tmp_path / "sweep"
  workdir.mkdir()
  with sweep._task_lock(workdir, 0, 1):
    with pytest.raises(sweep.SweepError, match="another process is running task 0 of 1"):
      sweep.run(smoke_config, workdir, progress=False)
  with sweep._task_lock(workdir, 0, 1):  # released by its holder: free again
    pass
  orphan = Record(config_key="0123abcd", target="t", source=None, size=20, blocks=0,
                  mode="baseline", seed=0, micro_f1=0.5, macro_f1=0.5, majority_micro_f1=0.1,
                  majority_macro_f1=0.1, epochs=3, best_epoch=2)
  results.append(workdir / "results.jsonl", [orphan])
  with pytest.raises(results.ResultsError, match=r"records of another grid \(config key "
                     r"0123abcd\) and no sweep.json"):
    sweep.run(smoke_config, workdir, progress=False)
  assert sorted(p.name for p in workdir.iterdir() if not p.name.startswith(".")) == [
      "results.jsonl"]
