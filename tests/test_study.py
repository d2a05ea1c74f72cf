"""The strategy study's summary (xfer_jax/study/) on a small fixture of records
whose answers are known by construction."""

import json
import re

import numpy as np
import pytest

from xfer_jax import config_fields, study
from xfer_jax.grid import results
from xfer_jax.grid.records import Record, source_label
from xfer_jax.study import report, stats

SEEDS = range(5)
NOISE = np.array([0.010, -0.004, 0.007, -0.012, 0.002])  # per seed, shared by every cell
TIE = np.array([0.010, -0.012, 0.004, -0.006, 0.002])


def _grid(root, strategy, pairs, blocks, baseline, **changes):
  fields = {"train.num_seeds": 5, "train.max_epochs": 30, "train.patience": 5,
            "model.bn_momentum": 0.9, "sweep.sizes": [20, 50], "sweep.pairs": pairs,
            "sweep.blocks": blocks, "sweep.baseline": baseline,
            "transfer.mode": strategy, **changes}
  folder = root / strategy
  folder.mkdir(parents=True)
  return folder, results.claim_grid(folder, fields)


def _record(**fields) -> Record:
  base = dict(config_key="k", target="t", source=None, size=20, blocks=0, mode="baseline",
              seed=0, micro_f1=0.5, macro_f1=0.5, majority_micro_f1=0.2, majority_macro_f1=0.1,
              epochs=9, best_epoch=4, num_classes=4)
  return Record(**{**base, **fields})


def _records(folder, key, cells):
  """cells: {(source, size, blocks): micro-F1 per seed}"""
  rows = []
  for (source, size, blocks), values in cells.items():
    rows += [Record(config_key=key, target="t", source=source, size=size, blocks=blocks,
                    mode="baseline" if source is None else "freeze_k_copy_rest", seed=s,
                    micro_f1=float(v), macro_f1=float(v) / 2, majority_micro_f1=0.25,
                    majority_macro_f1=0.1, epochs=30 if source == "a" else 12, best_epoch=5,
                    num_classes=4)
             for s, v in zip(SEEDS, values)]
  results.append(folder / "results.jsonl", rows)


@pytest.fixture
def root(tmp_path):
  base = 0.5 + NOISE
  pairs = ["a->t", "a+b->t"]
  folder, key = _grid(tmp_path, "baseline", pairs, [], True)
  _records(folder, key, {(None, 20, 0): base, (None, 50, 0): base + 0.1})
  folder, key = _grid(tmp_path, "freeze", pairs, [1], False)
  # from "a": +10 points at n = 20 on every seed, give or take 1; the pooled source: a
  # tie with the baseline (TIE: -0.04 points on average, and a spread of 1)
  jitter = np.array([0.01, -0.01, 0.0, 0.005, -0.005])
  _records(folder, key, {("a", 20, 1): base + 0.10 + jitter, ("a+b", 20, 1): base + TIE,
                         ("a", 50, 1): base + 0.1 - 0.2 + jitter})
  folder, key = _grid(tmp_path, "spectral", pairs, [1], False, **{"transfer.branch": "spectral"})
  _records(folder, key, {("a", 20, 1): base + 0.02 + jitter[::-1]})
  folder, key = _grid(tmp_path, "temporal", pairs, [1], False, **{"transfer.branch": "temporal"})
  _records(folder, key, {("a", 20, 1): base + 0.05 + jitter})
  source = tmp_path / study.SOURCES / "a"
  source.mkdir(parents=True)
  (source / "result.json").write_text(json.dumps({
      "train_windows": 900, "num_classes": 6,
      "per_seed": [{"seed": s, "epochs": 10 + s, "micro_f1": 0.7 + s / 100} for s in SEEDS]}))
  (source / "checkpoint.bin").write_bytes(b"weights")  # not a record: publish leaves it
  return tmp_path


def test_summary_answers_each_question_from_the_records(root):
  paths = study.write(root, root / "out")
  text = (root / "out" / "summary.md").read_text()
  records, grids = study.load(root)
  assert sorted(grids) == ["baseline", "freeze", "spectral", "temporal"]
  assert len(records) == 5 * 7
  rows = {(r["strategy"], r["source"], r["size"]): r
          for r in report.aggregate(records)}
  win, loss = rows[("freeze", "a", 20)], rows[("freeze", "a", 50)]
  assert win["micro_f1_gain"] == pytest.approx(0.10)
  assert (win["micro_f1_verdict"], loss["micro_f1_verdict"]) == ("win", "loss")
  assert rows[("freeze", "a+b", 20)]["micro_f1_verdict"] == ""
  # the table's numbers are those of the records
  assert "| t | 20 | 50.1 | freeze, a, k=1 | 60.1 | +10.0 ± 1.0 | " in text
  assert "| win | +5.0 ± 0.5 |" in text  # macro-F1 is half the micro-F1 in the fixture
  assert "| t | 50 | 60.1 | freeze, a, k=1 | 40.1 | -20.0 ± 1.0 | " in text
  freeze = re.search(
      r"\| freeze \| 3 \| (\d) \| (\d) \| ([+-][\d.]+) \| 0 \| 1 \| 0/15 \| 30 \| (\d+)/15 \|", text)
  assert freeze.groups() == ("1", "1", "-3.3", "10")
  assert "at most 30 epochs" in text
  # what the family can detect: each tested cell's gain spread at Holm's first step
  tested = [r for r in rows.values() if r["source"] != "baseline" and r["micro_f1_p"] is not None]
  detectable = [100 * stats.smallest_detectable(r["micro_f1_gain_std"], 5, len(tested))
                for r in tested]
  assert (f"of its {len(tested)} cells at p < 0.05/{len(tested)}" in text
          and f"at least {np.median(detectable):.1f} points" in text)
  raw = [r["micro_f1_gain"] for r in tested if r["micro_f1_p"] < 0.05]
  assert (f"Uncorrected, {len(raw)} of the {len(tested)} cells have p < 0.05 "
          f"({sum(g > 0 for g in raw)} higher, {sum(g < 0 for g in raw)} lower)") in text
  # per size: at n = 20 the freeze cells gain +10 (from a) and -0.04 (pooled), at 50 -20
  assert "| 20 | freeze | 2 | 1 | 0 | +5.0 |" in text and "| 50 | freeze | 1 | 0 | 1 | -20.0 |" in text
  # pooled source vs single: 10 points lower
  (multi,) = study.multi_vs_single(study.seed_values(records))
  assert (multi["pooled"], multi["single"]) == ("a+b", "a")
  assert multi["diff"] == pytest.approx(np.mean(TIE - 0.1 - jitter_of(records)), abs=1e-12)
  assert multi["verdict"] == "loss"
  # each strategy averaged over its cells per seed: freeze from a gains +10 at n = 20
  # and -20 at n = 50 (each plus the seed's jitter), -5 on average
  arms = {r["arm"]: r for r in study.averaged_over_cells(study.seed_values(records), grids)}
  assert sorted(arms) == ["freeze, a, k=1", "freeze, pooled, k=1", "spectral, a",
                          "temporal, a, k=1"]
  assert (arms["freeze, a, k=1"]["cells"], arms["freeze, pooled, k=1"]["cells"]) == (2, 1)
  assert arms["freeze, a, k=1"]["diff"] == pytest.approx(-0.05 + np.mean(jitter_of(records)),
                                                         abs=1e-12)
  assert arms["freeze, pooled, k=1"]["diff"] == pytest.approx(TIE.mean(), abs=1e-12)
  assert arms["temporal, a, k=1"]["diff"] == pytest.approx(0.05, abs=1e-12)
  assert arms["temporal, a, k=1"]["verdict"] == "win"
  assert "| temporal, a, k=1 | 1 | +5.0 ± " in text
  (branch,) = study.spectral_vs_temporal(study.seed_values(records), grids)
  assert branch["diff"] == pytest.approx(-0.03) and branch["verdict"] == "loss"
  half = stats.mean_ci(TIE - 0.1 - np.array(jitter_of(records)))[1]
  assert f"| t | 20 | freeze | 1 | a+b | a | -10.0 ± {100 * half:.1f} | " in text
  assert "| baseline | 2 | 2 | 10 |" in text and "| freeze | 3 | 4 | 15 |" in text
  # k is shown where it decides what is transferred
  assert study.arm_name({"strategy": "spectral", "source": "a", "blocks": 1}, grids) == "spectral, a"
  assert study.arm_name({"strategy": "freeze", "source": "a", "blocks": 2}, grids) == "freeze, a, k=2"
  assert "| a | 900 | 6 | 5 | 10–14 | micro-F1 72.0 |" in text  # the source model, its result.json
  csv_header = (root / "out" / "results.csv").read_text().splitlines()[0]
  assert csv_header.startswith("target,strategy,source,size,blocks")
  assert set(paths) == {"summary", "csv", "gains"}
  assert (root / "out" / "gains.png").read_bytes().startswith(b"\x89PNG")


def jitter_of(records):
  """The fixture's jitter: the freeze cell from 'a' at n = 20 minus 10 points and the baseline."""
  by = {(r.strategy, r.source, r.size, r.seed): r.micro_f1 for r in records}
  return [by[("freeze", "a", 20, s)] - by[("baseline", None, 20, s)] - 0.1 for s in SEEDS]


def test_grids_that_differ_beyond_the_strategy_are_refused(root):
  path = root / "spectral" / results.GRID_FILE
  saved = json.loads(path.read_text())
  saved["fields"]["model.bn_momentum"] = 0.99
  path.write_text(json.dumps(saved))
  with pytest.raises(study.StudyError, match=r"spectral.*model\.bn_momentum"):
    study.load(root)


def test_a_strategy_may_have_its_own_epoch_cap(root):
  # a slow strategy (copies at a fraction of the learning rate) gets a higher cap; the
  # records at the cap are counted against its own
  path = root / "freeze" / results.GRID_FILE
  saved = json.loads(path.read_text())
  saved["fields"]["train.max_epochs"] = 60
  path.write_text(json.dumps(saved))
  records, grids = study.load(root)
  text, _ = study.summary_markdown(records, grids)
  assert "at most 30 (baseline, spectral, temporal) / 60 (freeze) epochs" in text
  assert re.search(r"\| freeze \| 3 \| .* \| 60 \| 0/15 \|", text)


def test_publish_copies_the_records_and_not_the_checkpoints(root, tmp_path_factory):
  out = tmp_path_factory.mktemp("published")
  copied = study.publish(root, out)
  names = sorted(str(p.relative_to(out)) for p in copied)
  assert names == ["baseline/results.jsonl", "baseline/sweep.json", "freeze/results.jsonl",
                   "freeze/sweep.json", "sources/a/result.json", "spectral/results.jsonl",
                   "spectral/sweep.json", "temporal/results.jsonl", "temporal/sweep.json"]
  assert not (out / "sources" / "a" / "checkpoint.bin").exists()
  study.write(root, root / "out")
  study.write(out, out)
  assert (out / "summary.md").read_text() == (root / "out" / "summary.md").read_text()


def test_a_damaged_source_result_is_named(root):
  (root / "sources" / "a" / "result.json").write_text('{"per_seed": []}')
  with pytest.raises(study.StudyError, match=r"sources/a/result.json: expected a source model"):
    study.source_models(root)


def test_a_run_under_half_its_seeds_baseline_is_counted():
  def run(strategy, seed, value, size=20):
    return _record(strategy=strategy, size=size, seed=seed, micro_f1=value)
  records = [run("baseline", 0, 0.6), run("baseline", 1, 0.4),
             run("freeze", 0, 0.29), run("freeze", 1, 0.29),  # under 0.30, over 0.20
             run("freeze", 0, 0.01, size=50)]  # no baseline at n = 50: not counted
  assert study.below_half_the_baseline(records) == (1, 2)


def test_a_cells_cost_counts_its_wall_time_once_and_every_seeds_epochs():
  from xfer_jax.study.cost import cost_rows
  def run(strategy, seed, epochs, size=20, fold=0, wall_s=100.0):
    return _record(size=size, seed=seed, epochs=epochs, fold=fold, wall_s=wall_s,
                   strategy=strategy)
  records = [run("baseline", 0, 10), run("baseline", 1, 30),  # one cell: 40 seed-epochs, 100 s
             run("baseline", 0, 20, fold=1, wall_s=60.0),  # the same cell in another fold
             run("freeze", 0, 5, wall_s=None)]  # a record without its cell's time
  baseline, freeze, total = cost_rows(records)
  assert baseline == {"arm": "baseline", "cells": 2, "untimed cells": 0, "seed-epochs": 60,
                      "wall (h)": "0.04", "median cell (s)": "80",
                      "seed-epochs / s": f"{60 / 160:.2f}"}
  assert freeze["untimed cells"] == 1 and freeze["seed-epochs / s"] == "–"
  assert total["cells"] == 3 and total["seed-epochs"] == 60


def test_a_record_is_at_the_cap_when_either_phase_is():
  assert study.at_epoch_cap(_record(epochs=30), 30) and not study.at_epoch_cap(_record(epochs=29), 30)
  assert study.at_epoch_cap(_record(epochs=12, probe_epochs=30), 30)  # lp_ft's probe ran to the cap


def test_a_study_without_its_baseline_is_refused(root):
  for path in (root / "baseline").iterdir():
    path.unlink()
  (root / "baseline").rmdir()
  with pytest.raises(study.StudyError, match="no baseline records"):
    study.load(root)


def test_a_rerun_of_part_of_a_study_is_compared_on_the_cells_both_ran(root, tmp_path_factory):
  """A rerun with train.stop_on changed, of the baseline and the freeze cells from "a":
  its baseline 2 points higher on every seed, freeze from "a" 5 points lower at n = 20,
  so that arm's gain over its own baseline is 7 points lower; the n = 50 freeze cell
  and the pooled one were not rerun."""
  rerun = tmp_path_factory.mktemp("rerun")
  records, _ = study.load(root)
  by = {(r.strategy, r.source, r.size, r.seed): r.micro_f1 for r in records}
  original = lambda strategy, source, size: np.array([by[strategy, source, size, s] for s in SEEDS])
  changed = {"train.stop_on": "val_accuracy", "sweep.pairs": ["a->t"]}
  folder, key = _grid(rerun, "baseline", ["a->t"], [], True, **changed)
  _records(folder, key, {(None, size, 0): original("baseline", None, size) + 0.02
                         for size in (20, 50)})
  folder, key = _grid(rerun, "freeze", ["a->t"], [1], False, **changed)
  # a seed under half its baseline here, none there
  low = original("freeze", "a", 20) - 0.05 - np.array([0.0, 0.0, 0.0, 0.0, 0.3])
  _records(folder, key, {("a", 20, 1): low})
  study.write(rerun, rerun / "out", reference_root=root)
  text = (rerun / "out" / "summary.md").read_text()
  assert "## Against the reference study `../../" in text
  # a grid saved before train.stop_on existed stopped on the loss (its default)
  assert "with: train.stop_on: here 'val_accuracy' vs there 'val_loss'. On" in text
  here_records, grids = study.load(rerun)
  scores, gains = study.against_reference(study.seed_values(here_records),
                                          study.seed_values(records), grids)
  assert [(r["arm"], r["cells"]) for r in scores] == [("baseline", 2), ("freeze, a, k=1", 1)]
  assert scores[0]["diff"] == pytest.approx(0.02, abs=1e-12)
  assert scores[1]["diff"] == pytest.approx(-0.05 - 0.3 / 5, abs=1e-12)
  (gain,) = gains
  assert gain["diff"] == pytest.approx(-0.07 - 0.3 / 5, abs=1e-12)
  assert gain["there"] == pytest.approx(0.1 + np.mean(jitter_of(records)), abs=1e-12)
  assert (gain["below_half_here"], gain["below_half_there"]) == ("1/5", "0/5")
  here, there = (f"{100 * gain[side]:+.1f}" for side in ("here", "there"))
  assert f"| freeze, a, k=1 | 1 | {here} | {there} | 1/5 | 0/5 | 30 | 30 |" in text


def test_self_supervised_sources_are_compared_with_supervised_ones_of_the_same_strategy(root):
  """An SSL grid with other pairs joins the study; its "own" source is one arm over
  targets and is paired with the supervised source of the grid with its strategy."""
  base = 0.5 + NOISE
  jitter = np.array([0.01, -0.01, 0.0, 0.005, -0.005])
  folder, key = _grid(root, "ssl_freeze", ["simclr:t->t"], [1], False,
                      **{"transfer.mode": "freeze"})
  _records(folder, key, {("simclr:t", 20, 1): base + 0.30 + jitter[::-1]})
  records, grids = study.load(root)
  rows = study.self_supervised_vs_supervised(study.seed_values(records), grids)
  # the freeze grid's "a" (+10 points) is the one supervised single source of its strategy;
  # spectral and temporal change config.transfer, so their "a" is another strategy
  assert [(r["self_supervised"], r["supervised"], r["strategies"]) for r in rows] == [
      ("simclr:own", "a", "ssl_freeze / freeze")]
  assert rows[0]["diff"] == pytest.approx(0.20) and rows[0]["verdict"] == "win"
  arms = {r["arm"] for r in study.averaged_over_cells(study.seed_values(records), grids)}
  assert any("simclr:own" in arm for arm in arms)
  assert source_label("simclr:a+b", "t") == "simclr:pooled"
  assert source_label("multitask:a+t", "t") == "multitask:own+"
  text, _ = study.summary_markdown(records, grids)
  assert "## Self-supervised against supervised sources" in text


def test_declared_questions_lead_the_summary_and_size_the_next_study(root):
  (root / study.DESIGN_FILE).write_text(json.dumps({"margin": 2.0, "primary": [
      {"name": "freeze from a", "treated": {"strategy": "freeze", "source": "a"},
       "control": {"strategy": "baseline"}},
      {"name": "pooled vs a", "treated": {"strategy": "freeze", "source": "pooled"},
       "control": {"strategy": "freeze", "source": "a"}}]}))
  records, grids = study.load(root)
  text, _ = study.summary_markdown(records, grids, design=study.read_design(root))
  assert text.index("## The declared questions") < text.index("## What has run")
  assert re.search(r"\| freeze from a \| micro-f1 \| 2 \| 5 \|", text)
  assert re.search(r"\| pooled vs a \| macro-f1 \| 1 \| 5 \|", text)  # only n = 20 has both
  planned = study.questions_markdown(root, None, [5, 20], target=5.0)
  assert "| contrast | cells | sd cell | sd replicate | sd residual | MDE at 5 | MDE at 20 |" \
         in planned
  (root / study.DESIGN_FILE).write_text(json.dumps({"margin": 2.0, "primary": []}))
  with pytest.raises(study.contrasts.ContrastError, match="the primary family is empty"):
    study.read_design(root)
  with pytest.raises(study.StudyError, match="no such design file"):
    study.read_design(root, root / "absent.json")


def test_a_fold_set_is_one_grid_per_strategy_paired_by_fold_and_seed(tmp_path):
  """ROOT/<strategy>/<fold>/: the folds' seeds repeat, so a replicate is (fold, seed);
  a fold's gain is paired with the baseline of the same fold."""
  for strategy, blocks, baseline in (("baseline", [], True), ("freeze", [1], False)):
    for fold in (0, 1):
      fields = {"train.num_seeds": 5, "sweep.sizes": [20], "sweep.pairs": ["a->t"],
                "sweep.blocks": blocks, "sweep.baseline": baseline, "transfer.mode": strategy,
                "data.folds": 2, "data.fold": fold}
      folder = tmp_path / strategy / f"fold_{fold}"
      folder.mkdir(parents=True)
      key = results.claim_grid(folder, fields)
      base = 0.4 + 0.2 * fold + NOISE  # the folds differ a lot; the gain is +3 in each
      values = base + (0.03 + NOISE[::-1] / 10 if strategy == "freeze" else 0)
      results.append(folder / "results.jsonl", [
          _record(config_key=key, source=None if baseline else "a",
                  blocks=0 if baseline else 1, seed=s, fold=fold, micro_f1=float(v),
                  macro_f1=float(v)) for s, v in zip(SEEDS, values)])
  records, grids = study.load(tmp_path)
  assert len(records) == 20 and set(grids) == {"baseline", "freeze"}
  rows = report.aggregate(records)
  freeze = next(r for r in rows if r["source"] == "a")
  assert freeze["n"] == 10
  # paired within its fold, the gain is 3 points with a small spread; a pairing across
  # folds (seed alone) would mix folds 20 points apart
  assert freeze["micro_f1_gain"] == pytest.approx(0.03, abs=0.002)
  assert freeze["micro_f1_gain_std"] < 0.01
  design = study.contrasts.Design((study.contrasts.Contrast(
      "freeze", study.contrasts.Arm("freeze"), study.contrasts.Arm("baseline")),), margin=2.0)
  [micro, _] = study.contrasts.analyse(records, design)
  assert micro["replicates"] == 10 and micro["verdict"] == "better"


def test_the_findings_page_recomputes_from_the_committed_records():
  """docs/results/FINDINGS.md says only what the records below it give: regenerated
  from them, it is the committed page byte for byte."""
  from pathlib import Path

  from xfer_jax.study import findings
  results_dir = Path(__file__).resolve().parents[1] / "docs" / "results"
  assert findings.markdown(results_dir) == (results_dir / "FINDINGS.md").read_text()


def test_a_published_record_of_the_third_study_recomputes_bit_for_bit(tmp_path):
  """Seed 0 of the third study's first baseline cell (HMP, fold 0, one window per
  class), run again by launch.sweep as the study runs it, is its committed record
  in every field that the run decides: the study's config keeps what its records
  were computed under (its LLVM level among them: level 1 rounds this seed
  otherwise, 0.25347 against 0.25276 micro-F1)."""
  import subprocess
  import sys

  from tests.conftest import REPO, SHARED_DATA, shared_file
  shared_file("hmp_wrist.npz")
  shared_file("wisdm2019_watch.npz")
  published = REPO / "docs" / "results" / "real_v3" / "baseline" / "0" / "results.jsonl"
  cell = lambda r: r["target"] == "hmp" and r["size"] == 1 and r["seed"] == 0
  expected = [r for r in map(json.loads, published.read_text().splitlines()) if cell(r)]
  done = subprocess.run(
      [sys.executable, "-m", "launch.sweep", "--config=configs/real_v3.py:baseline,fold=0",
       f"--config.data.data_dir={SHARED_DATA}", f"--config.data.cache_dir={tmp_path / 'cache'}",
       "--config.sweep.pairs=('wisdm2019->hmp',)", "--config.sweep.sizes=(1,)",
       "--config.train.num_seeds=1", f"--workdir={tmp_path / 'grid'}", "--report=false"],
      cwd=REPO, capture_output=True, text=True, timeout=900)
  assert done.returncode == 0, done.stderr[-3000:]
  got = [json.loads(line) for line in (tmp_path / "grid" / "results.jsonl").read_text().splitlines()]
  run_only = ("config_key", "task", "wall_s")  # the grid's key covers the seed count
  drop = lambda r: {k: v for k, v in r.items() if k not in run_only}
  assert [drop(r) for r in got] == [drop(r) for r in expected]


def test_the_third_studys_grids_differ_only_by_arm_and_fold_and_its_questions_name_its_arms():
  """configs/real_v3.py: every arm's grid in every fold shares all but the strategy
  fields and the fold with the baseline's (so launch.study pairs them), and every
  arm design.json names is one of the config's arms."""
  import json
  from pathlib import Path

  from configs import real_v3
  from xfer_jax.study import contrasts
  shared = lambda fields: {k: v for k, v in fields.items()
                           if not k.startswith(study.STRATEGY_FIELDS) and k != study.FOLD_FIELD}
  base = shared(config_fields.grid_fields(real_v3.get_config("baseline,fold=0")))
  for arm in real_v3.ARMS:
    for fold in range(real_v3.FOLDS):
      config = real_v3.get_config(f"{arm},fold={fold}")
      assert shared(config_fields.grid_fields(config)) == base, (arm, fold)
      assert config.data.fold == fold and config.adapt.short_classes == "all"
  design_path = Path(__file__).resolve().parents[1] / "docs/results/real_v3/design.json"
  design = contrasts.Design.from_dict(json.loads(design_path.read_text()))
  assert {arm.strategy for c in design.contrasts for arm in (c.treated, c.control)} <= set(
      real_v3.ARMS)
  with pytest.raises(ValueError, match="fold 7 outside 0..3"):
    real_v3.get_config("baseline,fold=7")


def test_a_cell_run_on_fewer_folds_than_its_baseline_gains_over_the_folds_both_ran():
  """A study still running has some folds of a transfer cell and all of its
  baseline's: the gain is the mean of the paired differences, not the cell's mean
  minus the baseline's over folds it has not run (here 20 points apart)."""
  baseline = [_record(fold=f, seed=s, micro_f1=0.4 + 0.2 * f + 0.01 * s, macro_f1=0.3)
              for f in (0, 1) for s in (0, 1, 2)]
  treated = [_record(fold=0, seed=s, source="a", blocks=1, mode="finetune_all",
                     micro_f1=0.43 + 0.01 * s + 0.001 * s * s, macro_f1=0.3)
             for s in (0, 1, 2)]
  cell = next(r for r in report.aggregate(baseline + treated) if r["source"] == "a")
  assert cell["micro_f1_gain"] == pytest.approx(np.mean([0.03, 0.031, 0.034]), abs=1e-12)
  assert cell["macro_f1_gain"] == 0.0
