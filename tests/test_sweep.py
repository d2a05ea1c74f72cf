"""The grid: expansion, task slices, resumable records, refusing other grids, the report."""

import csv
import json
import logging
import re
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from configs import paper, real_v2, smoke
from tests.conftest import REPO
from xfer_jax import config_fields
from xfer_jax.data import prepare
from xfer_jax.grid import results, sweep
from xfer_jax.grid.records import Record
from xfer_jax.study import report

SMOKE_SIZES = {"syn_smoke_a": 129, "syn_smoke_b": 114}


def test_paper_grid_has_every_pair_size_and_block():
  config = paper.get_config()
  train_sizes = {"skoda": 5000, "opportunity": 2087, "pamap2": 9000, "jsi_fos": 4000}
  cells = sweep.expand(config, train_sizes)
  assert len(sweep.pairs(config)) == 12
  sizes = sorted({c.size for c in cells})
  assert sizes == [20, 50, 100, 200, 400, 800, 1600, 2087]  # 0 = the smallest train split
  # per target and size: one baseline + 3 sources x 3 block counts
  assert len(cells) == 4 * len(sizes) * (1 + 3 * 3)
  assert sum(c.source is None for c in cells) == 4 * len(sizes)
  assert len(set(cells)) == len(cells)


def test_task_slices_are_disjoint_and_cover_the_grid():
  cells = sweep.expand(paper.get_config(), {"skoda": 900, "opportunity": 900, "pamap2": 900,
                                            "jsi_fos": 900})
  slices = [sweep.task_slice(cells, i, 7) for i in range(7)]
  flat = [c for s in slices for c in s]
  assert sorted(flat, key=str) == sorted(cells, key=str) and len(flat) == len(set(flat))
  assert max(map(len, slices)) - min(map(len, slices)) <= 1
  assert sweep.task_slice(cells, 2, 7) == slices[2]  # deterministic
  for bad in [(7, 7), (-1, 3), (0, 0)]:
    with pytest.raises(sweep.SweepError, match="task_index"):
      sweep.task_slice(cells, *bad)


def test_bad_grids_name_the_field():
  config = smoke.get_config()
  config.sweep.blocks = (1, 3)
  with pytest.raises(sweep.SweepError, match=r"sweep.blocks.*\[3\].*len\(model.filters\)"):
    sweep.expand(config, SMOKE_SIZES)
  config = smoke.get_config()
  config.sweep.pairs = ("syn_smoke_a->syn_smoke_a",)
  with pytest.raises(sweep.SweepError, match="syn_smoke_a->syn_smoke_a"):
    sweep.pairs(config)


def _record(**kw):
  base = {"config_key": "k", "target": "t", "source": None, "size": 20, "blocks": 0, "seed": 0,
          "micro_f1": 0.5, "macro_f1": 0.4, "majority_micro_f1": 0.2, "majority_macro_f1": 0.05,
          "mode": "baseline", "task": "0/1", "best_epoch": 3, "epochs": 10}
  return Record(**{**base, **kw})


def test_truncated_last_line_is_skipped_then_repaired(tmp_path, caplog):
  path = tmp_path / "results.jsonl"
  results.append(path, [_record(seed=0), _record(seed=1)])
  with open(path, "a") as f:
    f.write(json.dumps(_record(seed=2).to_json())[:25])  # killed mid-write
  with caplog.at_level(logging.WARNING):
    assert [r.seed for r in results.read(path)] == [0, 1]
  assert "truncated" in caplog.text
  results.repair(path)
  results.append(path, [_record(seed=2)])
  assert [r.seed for r in results.read(path)] == [0, 1, 2]


def test_a_workdir_refuses_another_grid(tmp_path):
  config = smoke.get_config()
  results.claim_grid(tmp_path, config_fields.grid_fields(config))
  results.claim_grid(tmp_path, config_fields.grid_fields(config))  # the same grid: fine
  config.train.max_epochs = 99
  config.sweep.sizes = (20,)
  with pytest.raises(results.ResultsError, match=r"sweep.sizes.*train.max_epochs"):
    results.claim_grid(tmp_path, config_fields.grid_fields(config))
  config = smoke.get_config()
  for name, value in [("checkpoint_every", 1), ("seed_chunk", 2), ("epoch_loop", "device"),
                      ("eval_batch_size", 64), ("batch_devices", 2), ("num_devices", 1),
                      ("conv", "unfold")]:
    config.runtime[name] = value  # how it runs, not what it computes: the same grid
  config.data.cache_dir = "elsewhere"
  assert results.claim_grid(tmp_path, config_fields.grid_fields(config)) == results.config_key(
      config_fields.grid_fields(smoke.get_config()))


def test_a_workdir_of_the_first_format_keeps_its_key(tmp_path):
  """sweep.json before GRID_FORMAT 2 (as the demo wrote it): model.num_blocks
  (now len(filters)) and adapt.validation (read nowhere) among its fields,
  model.bn_momentum left out at 0.99, no model.dtype. The same grid today resumes
  it under its old key; another grid is still refused by field."""
  config = smoke.get_config()
  fields = config_fields.grid_fields(config)
  old = {k: v for k, v in fields.items() if k not in ("model.dtype", "model.bn_momentum")}
  old.update({"model.num_blocks": 2, "adapt.validation": "target_val"})
  (tmp_path / "sweep.json").write_text(json.dumps({"config_key": "0123456789abcdef",
                                                   "fields": old}))
  assert results.claim_grid(tmp_path, fields) == "0123456789abcdef"
  config.model.bn_momentum = 0.9
  with pytest.raises(results.ResultsError, match=r"model.bn_momentum: saved 0.99 vs given 0.9"):
    results.claim_grid(tmp_path, config_fields.grid_fields(config))


def test_a_workdir_saved_before_later_fields_keeps_its_key(tmp_path):
  """A sweep.json saved before fields were added (the second real-data study began
  so), and with fields that have since left the science (model.conv, now
  config.runtime.conv): the same grid resumes under its key, with no list of the
  added fields kept by hand; a value other than the one it computed with is refused
  by field, and a field added at its default leaves a new grid's key as it was."""
  config = smoke.get_config()
  fields = config_fields.grid_fields(config)
  later = [k for k in fields if k.startswith(("pretext.", "adapt.", "pool.")) or k in
           ("train.stop_on", "transfer.head_init", "data.folds", "data.fold")]
  old = {k: v for k, v in fields.items() if k not in later}
  old.update({"model.conv": "xla", "model.stack_towers": False})
  (tmp_path / "sweep.json").write_text(json.dumps({"format": 2, "config_key": "fedcba9876543210",
                                                   "fields": old}))
  assert results.claim_grid(tmp_path, fields) == "fedcba9876543210"
  config.train.stop_on = "val_accuracy"
  with pytest.raises(results.ResultsError,
                     match=r"train.stop_on: saved 'val_loss' vs given 'val_accuracy'"):
    results.claim_grid(tmp_path, config_fields.grid_fields(config))
  # the key covers the fields that differ from their defaults only
  assert results.config_key({k: v for k, v in fields.items() if k not in later}) == (
      results.config_key(fields))
  assert results.config_key({**fields, "train.stop_on": "val_accuracy"}) != results.config_key(
      fields)


def test_report_aggregates_and_refuses_mixed_grids(tmp_path):
  records = []
  for seed, (base, transfer) in enumerate([(0.40, 0.55), (0.50, 0.60), (0.45, 0.50)]):
    records.append(_record(seed=seed, micro_f1=base))
    records.append(_record(seed=seed, source="s", blocks=1, micro_f1=transfer,
                           mode="freeze_k_copy_rest"))
  run = tmp_path / "run"
  run.mkdir()
  results.append(run / "results.jsonl", records)
  written = report.write(run, [run])
  rows = {(r["source"], r["blocks"]): r for r in report.aggregate(records)}
  assert rows[("baseline", 0)]["micro_f1_mean"] == pytest.approx(0.45)
  assert rows[("baseline", 0)]["micro_f1_std"] == pytest.approx(np.std([0.4, 0.5, 0.45], ddof=1))
  assert rows[("s", 1)]["micro_f1_gain"] == pytest.approx(0.55 - 0.45)
  # the gain's spread is over seeds paired with their baseline: 0.15, 0.10, 0.05
  assert rows[("s", 1)]["micro_f1_gain_std"] == pytest.approx(0.05)
  csv_lines = open(written["csv"]).read().splitlines()
  assert len(csv_lines) == 3 and csv_lines[0].startswith("target,source,size,blocks,n,")
  assert "| t | s | 0 | 0 | 1 | 10.0±5.0 |" in open(written["summary"]).read()
  assert open(written["heatmaps"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
  # one target: heatmaps.png is its row, not written twice
  assert not (run / "report" / "heatmaps_t.png").exists()
  # two workdirs of different grids are refused by field
  other = tmp_path / "other"
  config = smoke.get_config()
  (run / "results.jsonl").unlink()  # records with no sweep.json: refused; written again below
  results.claim_grid(run, config_fields.grid_fields(config))
  config.train.num_seeds = 5
  results.claim_grid(other, config_fields.grid_fields(config))
  results.append(other / "results.jsonl",
                 [_record(config_key=results.read_grid(other)["config_key"])])
  (run / "results.jsonl").write_text("".join(
      json.dumps({**r.to_json(), "config_key": results.read_grid(run)["config_key"]}) + "\n"
      for r in records))
  with pytest.raises(results.ResultsError, match="train.num_seeds"):
    report.write(tmp_path, [run, other])


def test_smoke_sweep_in_two_tasks_resumes_without_recompiling(smoke_config, pretrained, adapted,
                                                              tmp_path):
  """Two disjoint task slices cover the grid; a rerun skips every recorded cell;
  rerunning cells in a process that has run their shapes compiles nothing. Every
  output states one majority-class baseline."""
  config = smoke_config.copy_and_resolve_references()
  config.train.max_epochs = 2
  config.sweep.blocks = (1,)
  workdir = tmp_path / "sweep"
  # the session's smoke source stands in for the sweep's own (same model)
  shutil.copytree(pretrained, workdir / "sources" / config.sweep.pairs[0].split("->")[0])
  first = [sweep.run(config, workdir, task_index=i, num_tasks=2, progress=False)
           for i in range(2)]
  assert [s["cells_run"] for s in first] == [2, 2]
  records, _ = results.load([workdir])
  assert len(records) == 4 * config.train.num_seeds
  # the source was copied in, not trained: the work done is the cells' epochs
  assert sum(s["seed_epochs"] for s in first) == sum(r.epochs for r in records)
  assert not results.check_overlap(records)
  assert {r.task for r in records} == {"0/2", "1/2"}
  assert all(0.0 <= r.micro_f1 <= 1.0 and r.epochs >= 1 for r in records)
  # every cell is a run of TensorBoard's hyperparameter dashboard: target/source/n_k
  cell_runs = {p.relative_to(workdir / "tensorboard").parts[:3]
               for p in (workdir / "tensorboard").rglob("events.out.tfevents.*")}
  assert cell_runs == {(r.target, r.source or "baseline", f"n{r.size}_k{r.blocks}")
                       for r in records}
  assert sweep.run(config, workdir, task_index=0, num_tasks=2, progress=False)["cells_run"] == 0
  for path in results.results_files(workdir):
    path.unlink()
  again = sweep.run(config, workdir, progress=False)
  assert again["cells_run"] == 4
  assert again["compilations"] == 0
  rerun, _ = results.load([workdir / "results.jsonl"])
  assert {r.id: r.micro_f1 for r in rerun} == {r.id: r.micro_f1 for r in records}
  written = report.write(workdir, [workdir])
  assert len(open(written["csv"]).read().splitlines()) == 1 + 4
  # the majority-class baseline: the target's train-split majority on its test split,
  # the same number in results.jsonl, the report, result.json and launch.prepare
  target = config.sweep.pairs[0].split("->")[1]
  expected = prepare(target, config.data).majority()["micro_f1"]
  assert {r.majority_micro_f1 for r in records} == {expected}
  with open(written["csv"]) as f:
    written_values = {float(row["majority_micro_f1"]) for row in csv.DictReader(f)}
  assert len(written_values) == 1  # the CSV keeps 3 decimals
  assert written_values.pop() == pytest.approx(expected, abs=5e-4)
  _, adapted_dir, adapted_summary = adapted
  assert adapted_summary["dataset"] == target
  assert json.loads((adapted_dir / "result.json").read_text())["majority"]["micro_f1"] == expected
  printed = subprocess.run(
      [sys.executable, "-m", "launch.prepare", "--config=configs/smoke.py", f"--datasets={target}",
       f"--config.data.cache_dir={config.data.cache_dir}"],
      cwd=REPO, capture_output=True, text=True, timeout=300, check=True).stdout
  header = next(line for line in printed.splitlines() if line.startswith("dataset"))
  row = next(line for line in printed.splitlines() if line.startswith(target))
  start = header.index("majority_micro_f1")
  assert row[start:start + len("majority_micro_f1")].strip() == f"{expected:.3f}"


def test_cells_run_while_another_task_trains_their_source(smoke_config, pretrained, tmp_path):
  """A source locked by another task defers its cells, not the task: the baselines
  run first, then the task waits for the lock and reads the other task's model."""
  config = smoke_config.copy_and_resolve_references()
  config.train.max_epochs = 2
  config.sweep.blocks = (1,)
  workdir = tmp_path / "sweep"
  source = config.sweep.pairs[0].split("->")[0]
  baselines_recorded = threading.Event()

  def other_task():  # holds the source's lock until this task has run the rest
    with sweep._file_lock(workdir / "sources" / f"{source}.lock"):
      locked.set()
      deadline = time.monotonic() + 120
      while time.monotonic() < deadline:
        path = workdir / "results.jsonl"
        if path.exists() and len(results.read(path)) == 2 * config.train.num_seeds:
          baselines_recorded.set()
          break
        time.sleep(0.1)
      shutil.copytree(pretrained, workdir / "sources" / source)

  locked = threading.Event()
  holder = threading.Thread(target=other_task)
  holder.start()
  assert locked.wait(60)
  summary = sweep.run(config, workdir, progress=False)
  holder.join()
  assert baselines_recorded.is_set()
  assert summary["cells_run"] == 4
  order = [(r.size, r.source) for r in results.read(workdir / "results.jsonl")]
  assert [source for _, source in order[::2]] == [None, None, source, source]
  # read, not retrained: the source folder is the other task's copy, unchanged
  assert (sorted(p.name for p in (workdir / "sources" / source).iterdir())
          == sorted(p.name for p in pretrained.iterdir()))


def test_local_tasks_run_every_slice_and_the_report(smoke_config, pretrained, tmp_path):
  """--local_tasks=2: two task processes (one cell each) cover the grid once (slices equal one
  process's run: test_smoke_sweep_in_two_tasks_...), then the report."""
  workdir = tmp_path / "local"
  source = smoke_config.sweep.pairs[0].split("->")[0]
  shutil.copytree(pretrained, workdir / "sources" / source)
  done = subprocess.run(
      [sys.executable, "-m", "launch.sweep", "--config=configs/smoke.py", f"--workdir={workdir}",
       f"--config.data.cache_dir={smoke_config.data.cache_dir}", "--local_tasks", "2",
       "--config.train.max_epochs=1", "--config.sweep.blocks=(1,)", "--config.sweep.sizes=(20,)"],
      cwd=REPO, capture_output=True, text=True, timeout=900)
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
  assert "heatmaps:" in done.stdout and (workdir / "report" / "heatmaps.png").is_file()
  assert "gains:" in done.stdout and (workdir / "report" / "gain_heatmaps.png").is_file()
  assert sorted(p.name for p in results.results_files(workdir)) == [
      "results.task-0000-of-0002.jsonl", "results.task-0001-of-0002.jsonl"]
  records, _ = results.load([workdir])
  assert not results.check_overlap(records)
  assert len({r.id for r in records}) == len(records) == 2 * 2  # cells x seeds


def test_slurm_array_environment_selects_the_slice():
  assert sweep.task_from_env({}) is None
  env = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "8"}
  assert sweep.task_from_env(env) == (4, 8)  # --array=1-8: the fifth task is slice 4
  assert sweep.task_from_env({"SLURM_ARRAY_TASK_ID": "3",
                              "SLURM_ARRAY_TASK_COUNT": "4"}) == (3, 4)
  with pytest.raises(sweep.SweepError, match="SLURM_ARRAY_TASK_COUNT"):
    sweep.task_from_env({"SLURM_ARRAY_TASK_ID": "3"})


def test_a_dry_run_projects_the_cost_and_writes_nothing(smoke_config, tmp_path):
  config = smoke_config.copy_and_resolve_references()
  plan = sweep.plan(config)
  p = plan["projection"]
  seeds, epochs = config.train.num_seeds, config.train.max_epochs
  assert p["cells"] == plan["cells"] == 6 and p["source_models"] == 1
  assert p["seed_epochs_max"] == (6 + 1) * seeds * epochs
  assert 0 < p["projected_s_min"] <= p["projected_s_max"]
  # baseline, k = 1, k = 2 of the target; the source (as many classes, under one row
  # bucket) trains with the baseline's step
  assert p["model_variants"] == 3
  c = p["calibration"]
  # each variant steps on 32 rows (20 windows) and on whole batches of 64 (60
  # windows, and the source): 6 step programs, each compiled; init and evaluation
  # once, for the one head width the three variants share
  assert p["step_programs"] == 6
  assert p["compile_s_estimate"] == pytest.approx(
      3 * (c["first_call_small_s"] + c["first_call_full_s"]) + c["first_calls_shared_s"])
  assert c["step_s"] >= 0 and c["step_s_per_row"] >= 0 and c["eval_row_s"] > 0
  # a cell's epoch: its steps (one of 32 rows at 20 windows) plus the validation chunks
  from xfer_jax.grid import cost
  assert cost.epoch_steps(20, 64) == (1, 32) and cost.epoch_steps(130, 64) == (3, 64)
  assert "seed-epochs" in cost.describe(p) and c["spread"] >= 0
  assert re.search(r"its timings spread by up to \d+ % over 3 repeats", cost.describe(p))
  done = subprocess.run(
      [sys.executable, "-m", "launch.sweep", "--config=configs/smoke.py", "--dry_run",
       f"--workdir={tmp_path / 'dry'}", f"--config.data.cache_dir={config.data.cache_dir}",
       "--calibrate=false"], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  header, rule, values = done.stdout.splitlines()[-3:]  # a table, not raw JSON
  assert header.split()[:2] == ["cells", "seed_runs"] and values.split()[0] == "6"
  assert not (tmp_path / "dry").exists()


def test_a_run_limited_to_some_sources_leaves_the_rest_for_the_next(smoke_config, pretrained,
                                                                      tmp_path):
  from xfer_jax.grid import cost

  config = smoke_config.copy_and_resolve_references()
  config.sweep.pairs = ("syn_smoke_a->syn_smoke_b", "syn_smoke_c->syn_smoke_b")
  config.sweep.sizes, config.sweep.blocks = (20,), (1,)
  config.train.max_epochs = 2  # syn_smoke_c's source and every cell: what is run, not how well
  workdir = tmp_path / "grid"
  shutil.copytree(pretrained, workdir / "sources" / "syn_smoke_a")
  first = sweep.run(config, workdir, progress=False, sources=["syn_smoke_a"])
  assert first["cells_run"] == 2  # the baseline and the cell from syn_smoke_a
  assert not (workdir / "sources" / "syn_smoke_c").exists()
  records, _ = results.load([workdir])
  assert {r.source for r in records} == {None, "syn_smoke_a"}
  with pytest.raises(sweep.SweepError, match=r"--sources \['syn_smoke_x'\]"):
    sweep.run(config, workdir, progress=False, sources=["syn_smoke_x"])
  # a dry run of the resumed workdir plans what a run would do: the recorded cells
  # and the trained source are left out, and their epochs give the expected cost
  plan = sweep.plan(config, workdir=workdir)
  assert plan["cells_recorded"] == 2 and plan["to_run"] == ["syn_smoke_b <- syn_smoke_c, n=20, k=1"]
  p = plan["projection"]
  assert p["cells"] == 1 and p["source_models"] == 1  # syn_smoke_c, still to train
  cells, sources = p["expected_from"]["cells"], p["expected_from"]["sources"]
  assert cells["runs"] == 2 and sources["runs"] == 1  # syn_smoke_a's model
  assert cells["mean_epochs"] == pytest.approx(np.mean([r.epochs for r in records]))
  # the expected time: what the recorded cells' epochs cost at the calibrated rate,
  # scaled by the wall time they took over it
  assert cells["wall_over_calibration"] > 0 and p["projected_s_expected"] > 0
  assert "Expected" in cost.describe(p) and "2 recorded cells ran" in cost.describe(p)
  assert sweep.plan(config, workdir=workdir, sources=["syn_smoke_a"])["to_run"] == []
  rest = sweep.run(config, workdir, progress=False)
  assert rest["cells_run"] == 1
  records, _ = results.load([workdir])
  assert {r.source for r in records} == {None, "syn_smoke_a", "syn_smoke_c"}
  # the work done: syn_smoke_c's pretraining and the cell transferring from it
  pretrained_c = json.loads((workdir / "sources" / "syn_smoke_c" / "result.json").read_text())
  assert rest["seed_epochs"] == (sum(s["epochs"] for s in pretrained_c["per_seed"])
                                 + sum(r.epochs for r in records if r.source == "syn_smoke_c"))


def test_size_cap_by_target_lets_each_target_reach_its_own_train_split():
  config = smoke.get_config()
  config.sweep.pairs = ("syn_smoke_a->syn_smoke_b", "syn_smoke_b->syn_smoke_a")
  config.sweep.sizes, config.sweep.blocks, config.sweep.baseline = (20, 500, 0), (1,), False
  train = {"syn_smoke_a": 300, "syn_smoke_b": 800}
  sizes = lambda cells, target: sorted(c.size for c in cells if c.target == target)
  paper = sweep.expand(config, train)  # "grid": every target capped at 300
  assert sizes(paper, "syn_smoke_a") == sizes(paper, "syn_smoke_b") == [20, 300]
  config.sweep.size_cap = "target"
  own = sweep.expand(config, train)
  assert sizes(own, "syn_smoke_a") == [20, 300] and sizes(own, "syn_smoke_b") == [20, 500, 800]
  config.sweep.size_cap = "each"
  with pytest.raises(sweep.SweepError, match="size_cap='each'"):
    sweep.expand(config, train)


def test_the_expected_cost_is_what_the_same_work_took_before(smoke_config):
  """The expected figure scales the calibration by what has run: cells like those
  that ran (here the same ones, at the same mean epochs) cost their wall time."""
  from xfer_jax import benchmark
  from xfer_jax.grid import cost

  config = smoke_config.copy_and_resolve_references()
  prepared = {"t": benchmark.random_prepared(config, 100, 300), "s": benchmark.random_prepared(
      config, 1000, 200)}
  calibration = {"step_s": 0.01, "step_s_per_row": 0.001, "eval_row_s": 0.05 / 128,
                 "eval_batch_size": 128, "first_calls_s": 1.0}
  cells = [sweep.Cell("t", 20, 1, "s"), sweep.Cell("t", 100, 1, "s")]
  past = [cost.PastRun(20, "t", [14, 16], 30.0), cost.PastRun(100, "t", [16, 14], 90.0)]
  p = cost.project(config, cells, prepared, [], calibration, past_cells=past)
  assert p["projected_s_expected"] == pytest.approx(120.0, rel=1e-12)
  # without past cells there is no expected figure, nor with sources to train and no
  # trained source to say how long one takes
  assert "projected_s_expected" not in cost.project(config, cells, prepared, [], calibration)
  assert "projected_s_expected" not in cost.project(config, cells, prepared, ["s"], calibration,
                                                    past_cells=past)
  with_source = cost.project(config, cells, prepared, ["s"], calibration, past_cells=past,
                             past_sources=[cost.PastRun(1000, "s", [5, 7], 50.0)])
  assert with_source["projected_s_expected"] == pytest.approx(120.0 + 50.0, rel=1e-12)


def test_the_second_studys_variants_change_only_their_fields():
  fields = lambda arg: config_fields.grid_fields(real_v2.get_config(arg))
  base = fields("discriminative")
  assert config_fields.differing_fields(fields("discriminative,val_accuracy"), base) == ["train.stop_on"]
  assert fields("discriminative,val_accuracy")["train.stop_on"] == "val_accuracy"
  both = fields("discriminative,full,val_accuracy")
  assert set(config_fields.differing_fields(both, fields("discriminative,full"))) == {"train.stop_on"}
  assert config_fields.differing_fields(fields("discriminative,zero_head"), base) == [
      "transfer.head_init"]
  with pytest.raises(ValueError, match=r"variants of \('full', 'val_accuracy', 'zero_head'\)"):
    real_v2.get_config("discriminative,val_loss")
  with pytest.raises(ValueError, match="STRATEGY"):
    real_v2.get_config("discriminative,full,full")


@pytest.mark.parametrize("content", ["", "{garbage", "[1, 2]"])
def test_a_damaged_grid_file_is_one_line_naming_it(tmp_path, content):
  (tmp_path / results.GRID_FILE).write_text(content)
  with pytest.raises(results.ResultsError, match=r"sweep.json: not a sweep's grid file") as error:
    results.read_grid(tmp_path)
  assert "\n" not in str(error.value)


def test_a_short_append_names_the_full_disk(tmp_path, monkeypatch):
  """A disk that fills mid-record: the first write is short, the next fails with
  ENOSPC, and the error says so (it said "wrote 132 of 832 bytes" and named no cause)."""
  import errno
  import os

  from xfer_jax.errors import explain
  real_write, calls = os.write, []

  def filling(fd, data):
    calls.append(len(data))
    if len(calls) == 1:
      return real_write(fd, data[:10])
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(os, "write", filling)
  with pytest.raises(OSError) as error:
    results.append(tmp_path / "results.jsonl", [_record(seed=0)])
  assert error.value.errno == errno.ENOSPC and len(calls) == 2
  assert "free space there or choose another folder" in explain(error.value)
