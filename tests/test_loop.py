"""fit's loop: hooks (metrics, checkpoints, progress), the FitState saved and
restored as a unit, a killed run resumed to the same numbers."""

import io
import json
import operator
import re

import jax
import numpy as np
import pytest

from xfer_jax import checks, experiment
from xfer_jax.data import prepare
from xfer_jax.engine import checkpoints, loop, programs
from xfer_jax.engine.loop import (
  Checkpointer,
  EarlyStopping,
  FitState,
  History,
  Hook,
  MetricsWriter,
  ProgressBar,
  fewest_epochs_left,
  fit,
)
from xfer_jax.engine.runner import Batches, EvalSet
from xfer_jax.engine.step import seed_keys


@pytest.fixture(scope="module")
def config(smoke_config):
  return smoke_config


@pytest.fixture(scope="module")
def prepared(config):
  return prepare(config.source, config.data)


@pytest.fixture(scope="module")
def run(config, prepared):
  """fit(state, max_epochs) on 100 windows of the smoke source, patience 2."""
  runner = programs.build_runner(config, prepared.num_classes)
  train, val = prepared.splits["train"], prepared.splits["val"]
  batches = Batches.create(train.x_NxWx3, train.y_N, 2, config.train.batch_size,
                           np.stack([np.arange(100)] * 2))
  val_set = EvalSet.create(val.x_NxWx3, val.y_N, config.runtime.eval_batch_size)
  keys = seed_keys(0, 2)

  def run(state=None, max_epochs=4, hooks=(), patience=0, stop_on="val_loss"):
    state = state or FitState.create(runner.init(keys), patience, stop_on)
    return fit(runner, state, batches, val_set, keys, max_epochs=max_epochs, hooks=hooks,
               label="t", seeds=[0, 1])
  run.runner = runner
  return run


class Saves(Hook):
  """A Checkpointer whose saves only record the epoch."""

  def __init__(self, every=0, **kwargs):
    self.epochs = []
    self.checkpointer = Checkpointer(lambda state: self.epochs.append(state.epoch), every,
                                     **kwargs)

  def start(self, state):
    self.checkpointer.start(state)

  def epoch_end(self, state, rows):
    self.checkpointer.epoch_end(state, rows)

  def end(self, state):
    self.checkpointer.end(state)


def test_checkpoints_every_n_epochs_and_after_the_last(run):
  saves = Saves(every=3)
  state = run(max_epochs=7, hooks=[saves])
  assert state.epoch == 7 and saves.epochs == [3, 6, 7]
  saves = Saves(every=2)
  run(max_epochs=4, hooks=[saves])
  assert saves.epochs == [2, 4]  # the last epoch was saved by the cadence: not twice
  saves = Saves(every=2)
  run(state=state, max_epochs=7, hooks=[saves])  # nothing left to train: nothing to save
  assert saves.epochs == []


def test_checkpoints_when_a_kill_would_lose_more_than_the_time_bound(run):
  """every_s: a save as soon as the training since the last one reaches it (a fake
  clock advancing 10 s per epoch: saves after epochs 3 and 6, at 30 s apart)."""
  ticks = iter(range(0, 1000, 10))
  saves = Saves(every_s=25.0, clock=lambda: next(ticks))
  run(max_epochs=7, hooks=[saves])
  assert saves.epochs == [3, 6, 7]
  saves = Saves(every_s=1e9)  # a short run: only the final save
  run(max_epochs=3, hooks=[saves])
  assert saves.epochs == [3]


def test_metrics_lines_per_epoch_and_seed_and_a_resumed_run_rewrites_its_own(run, tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text(json.dumps({"phase": "other", "epoch": 9}) + "\n")
  state = run(max_epochs=3, hooks=[MetricsWriter(path, "t")])
  rows = [json.loads(line) for line in path.read_text().splitlines()]
  assert [(r["phase"], r["epoch"], r.get("seed")) for r in rows] == [("other", 9, None)] + [
      ("t", e, s) for e in range(3) for s in (0, 1)]
  assert all(np.isfinite(r["train_loss"]) and 0 <= r["val_accuracy"] <= 1 for r in rows[1:])
  # a run resumed from epoch 2 drops the rows of epoch 2 on, then writes them again
  back = FitState(state.train, state.best_params, state.best_batch_stats, state.stopping, 2)
  run(state=back, max_epochs=3, hooks=[MetricsWriter(path, "t")])
  assert [json.loads(line)["epoch"] for line in path.read_text().splitlines()] == [
      9, 0, 0, 1, 1, 2, 2]


def test_progress_reaches_the_end_and_says_when_seeds_stopped_early(run):
  bar = ProgressBar(50, "t", stream=io.StringIO())
  state = run(max_epochs=50, hooks=[bar], patience=2)
  assert state.done and state.epoch < 50  # stopped early, every seed
  text = bar.bar.stream.getvalue()
  assert f" {state.epoch}/50 " in text and "val loss" in text
  assert text.rstrip().endswith(f"stopped early at epochs {state.stopping.epochs}")
  assert " 50/50 " in text
  # while seeds run, the ETA is a range: from the epochs patience still allows to the cap
  assert re.search(r" 1/50 \S+ elapsed, ETA \S+ to \S+ val loss", text)


def test_the_fewest_epochs_left_are_the_patience_of_the_slowest_running_seed():
  stopping = EarlyStopping.create(patience=5, num_seeds=3)
  stopping.bad_epochs, stopping.stopped = [1, 3, 5], [False, False, True]
  assert fewest_epochs_left(stopping) == 4  # seed 0 may wait 4 more; seed 2 has stopped
  stopping.stopped = [True] * 3
  assert fewest_epochs_left(stopping) == 0
  assert fewest_epochs_left(EarlyStopping.create(patience=0, num_seeds=2)) is None


class ParamsPerEpoch(History):
  """Each epoch's metric rows, and each seed's parameters after it."""

  def __init__(self):
    super().__init__()
    self.params = []

  def epoch_end(self, state, rows):
    super().epoch_end(state, rows)
    self.params.append(jax.tree.map(np.asarray, state.whole().train.params))


@pytest.mark.parametrize("stop_on", ["val_loss", "val_accuracy"])
def test_each_seed_keeps_the_parameters_of_its_best_epoch_by_the_chosen_metric(run, stop_on):
  seen = ParamsPerEpoch()
  state = run(max_epochs=6, hooks=[seen], stop_on=stop_on)
  for s in range(2):
    rows = [r for r in seen.rows if r["seed"] == s]
    best = (min(rows, key=lambda r: r["val_loss"]) if stop_on == "val_loss" else
            max(rows, key=lambda r: (r["val_accuracy"], -r["val_loss"])))
    assert state.stopping.best_epoch[s] == best["epoch"]
    assert state.stopping.best_accuracy[s] == best["val_accuracy"]
    seed_s = operator.itemgetter(s)
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(seed_s, state.best_params),
                 jax.tree.map(seed_s, seen.params[best["epoch"]]))


def test_the_fit_state_is_saved_and_restored_as_a_unit(run, tmp_path):
  state = run(max_epochs=3, patience=5)
  ckpt = checkpoints.Checkpoints(tmp_path / "checkpoints")
  loop.save_fit_state(ckpt, state, {"phase": "t"})
  ckpt.close()
  restored, meta, skipped = loop.restore_fit_state(tmp_path, run.runner.abstract_state(2))
  assert skipped == []
  assert meta["epoch"] == 2 and restored.epoch == state.epoch == 3
  assert restored.stopping == state.stopping
  for a, b in [(state.train, restored.train), (state.best_params, restored.best_params),
               (state.best_batch_stats, restored.best_batch_stats)]:
    jax.tree.map(np.testing.assert_array_equal, a, b)
  # and it continues as the uninterrupted run does
  jax.tree.map(np.testing.assert_array_equal, run(state=restored, max_epochs=5).train.params,
               run(max_epochs=5, patience=5).train.params)


def _records(workdir):
  return json.loads((workdir / "result.json").read_text())["per_seed"]


def test_smoke_run_learns_resumes_and_repeats(smoke_config, pretrained, tmp_path, monkeypatch):
  """`pretrained` is an uninterrupted smoke run; here the same config runs again,
  is killed right after its first checkpoint (half way) and resumed: every epoch's metrics and the
  final numbers equal the uninterrupted run's (so the same config and seed give
  the same numbers, too)."""
  config = smoke_config
  first = json.loads((pretrained / "result.json").read_text())
  assert first["majority"]["micro_f1"] < 0.35
  assert first["micro_f1_mean"] > first["majority"]["micro_f1"] + 0.2  # it learns
  lines = (pretrained / "metrics.jsonl").read_text().splitlines()
  assert len(lines) == config.train.max_epochs * config.train.num_seeds

  save = checkpoints.Checkpoints.save
  calls = []

  def save_then_die(self, step, tree, meta):  # the first checkpoint, then a kill
    save(self, step, tree, meta)
    calls.append(step)
    if len(calls) == 1:
      raise KeyboardInterrupt

  monkeypatch.setattr(checkpoints.Checkpoints, "save", save_then_die)
  with pytest.raises(KeyboardInterrupt):
    experiment.pretrain(config, tmp_path, progress=False)
  assert calls == [config.runtime.checkpoint_every - 1] < [config.train.max_epochs - 1]
  monkeypatch.setattr(checkpoints.Checkpoints, "save", save)
  assert not (tmp_path / "result.json").exists()
  resumed = experiment.pretrain(config, tmp_path, progress=False)
  assert _records(tmp_path) == _records(pretrained)
  assert resumed["micro_f1_mean"] == first["micro_f1_mean"]
  resumed_lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert resumed_lines == lines  # no duplicated or missing epochs, identical values
  tree_a, _ = checkpoints.read(pretrained)
  tree_b, _ = checkpoints.read(tmp_path)
  jax.tree.map(np.testing.assert_array_equal, tree_a["best_params"], tree_b["best_params"])


def test_bad_checkpoint_is_a_clear_error(config, tmp_path):
  (tmp_path / "checkpoints" / "3").mkdir(parents=True)
  with pytest.raises(checkpoints.CheckpointError, match="unreadable checkpoint metadata"):
    checkpoints.read(tmp_path)
  with pytest.raises(checkpoints.CheckpointError, match="no such checkpoint folder"):
    checkpoints.read(tmp_path / "absent")


def test_one_class_and_oversized_batch_are_errors(config, prepared):
  from xfer_jax.data import DataError
  with pytest.raises(DataError, match="fewer than batch_size=100000"):
    checks.check_trainable(prepared, 100000)
  import dataclasses
  one = dataclasses.replace(prepared, class_names=("walk",))
  with pytest.raises(DataError, match="has 1 class"):
    checks.check_trainable(one, 8)


def test_locked_config_rejects_unknown_keys(config):
  with pytest.raises(AttributeError):
    config.train.epochz = 3


def _events(directory):
  """(tag, step, value) of every scalar in the TensorBoard event files below directory
  (TFRecord framing: length, its CRC, the Event, its CRC)."""
  import struct

  from tensorboardX.proto import event_pb2
  out = []
  for path in sorted(directory.rglob("events.out.tfevents.*")):
    data, i = path.read_bytes(), 0
    while i < len(data):
      (length,) = struct.unpack("<Q", data[i:i + 8])
      event = event_pb2.Event.FromString(data[i + 12:i + 12 + length])
      i += 16 + length
      out += [(path.parent.name, v.tag, event.step, v.simple_value) for v in event.summary.value
              if v.HasField("simple_value")]
  return out


def test_training_curves_are_written_for_tensorboard_as_metrics_jsonl_says(pretrained):
  """Each seed's run holds every epoch's metrics of metrics.jsonl at the same values
  (as float32), so TensorBoard draws what the record says."""
  rows = [json.loads(line) for line in (pretrained / "metrics.jsonl").read_text().splitlines()]
  events = _events(pretrained / "tensorboard")
  expected = {(f"seed_{r['seed']}", f"{r['phase']}/{k}", r["epoch"]): v for r in rows
              for k, v in r.items() if k in ("train_loss", "val_loss", "val_accuracy")}
  got = {(run, tag, step): value for run, tag, step, value in events}
  assert got.keys() == expected.keys()
  assert all(np.float32(expected[k]) == np.float32(got[k]) for k in got)


def test_a_resumed_bar_paces_by_the_steps_it_took(monkeypatch):
  """A run resumed at epoch 4 of 10 that took 10 s for its fifth has 5 epochs of
  10 s left, not 5 x 2 s (the 10 s spread over all five)."""
  from xfer_jax import console
  clock = iter([0.0, 10.0])
  monkeypatch.setattr(console.time, "monotonic", lambda: next(clock))
  out = io.StringIO()
  console.Progress(10, "pretrain", stream=out, done=4).update(5)
  assert "5/10 00:10 elapsed, ETA 00:50" in out.getvalue()


def test_the_eta_ranges_from_the_fastest_step_to_the_mean_one(monkeypatch):
  """A sweep's first cells compile: its ETA is a range, from the fastest cell so far
  (what the rest will take once compiled) to the mean (it said 10:28 for a 2:10
  sweep after two compiling cells)."""
  from xfer_jax import console
  clock = iter([0.0, 60.0, 70.0, 80.0])  # start; then cells of 60 s (compiling), 10 s, 10 s
  monkeypatch.setattr(console.time, "monotonic", lambda: next(clock))
  out = io.StringIO()
  bar = console.Progress(10, "sweep", stream=out)
  bar.update(info="cell 1")
  assert "ETA 09:00 cell 1" in out.getvalue()  # one cell: no range yet
  bar.update(info="cell 2")
  bar.update(info="cell 3")
  assert out.getvalue().rstrip().endswith("ETA 01:10 to 03:06 cell 3")  # 7 x 10 s to 7 x 26.7 s
