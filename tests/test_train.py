"""The training engine: vmapped seeds, padding, learning, resume, determinism."""

import json

import jax
import numpy as np
import pytest

from xfer_jax import checkpoints, experiment
from xfer_jax.data import prepare
from xfer_jax.train import Batches, EarlyStopping, EvalSet, fit, seed_keys


@pytest.fixture(scope="module")
def config(smoke_config):
  return smoke_config


@pytest.fixture(scope="module")
def prepared(config):
  return prepare(config.source, config.data)


def _train(config, prepared, keys, epochs, capacity=None, index=None, loop="host", seed_chunk=0,
           engine_out=None, batches=None):
  config = config.copy_and_resolve_references()
  config.train.epoch_loop = loop
  config.train.seed_chunk = seed_chunk
  engine = experiment.build_engine(config, prepared.num_classes)
  if engine_out is not None:
    engine_out.append(engine)
  train = prepared.splits["train"]
  if batches is None:
    batches = Batches.create(train.x_NxWx3, train.y_N, len(keys), config.train.batch_size,
                             index, capacity)
  state = engine.init(keys)
  for epoch in range(epochs):
    epoch_keys = jax.vmap(lambda k, e=epoch: jax.random.fold_in(jax.random.fold_in(k, 1), e))(keys)
    state, _ = engine.epoch(state, batches.x_NxWx3, batches.y_N, batches.index_SxC,
                            batches.n_valid, epoch_keys)
  return state


def _close(a, b, tol=1e-5):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=tol, atol=tol), a, b)


def test_vmapped_seeds_equal_each_seed_alone(config, prepared):
  """All seeds in one vmapped call (GPU/TPU's default) train, evaluate and predict
  as each seed alone (seed chunks of one: CPU's default)."""
  engines = []
  chunked = _train(config, prepared, seed_keys(0, 2), epochs=1, seed_chunk=1, engine_out=engines)
  vmapped = _train(config, prepared, seed_keys(0, 2), epochs=1, seed_chunk=2, engine_out=engines)
  assert [e.seed_slices(2) for e in engines] == [((0, 1), (1, 2)), ((0, 2),)]
  _close(chunked.params, vmapped.params)
  _close(chunked.batch_stats, vmapped.batch_stats)
  val = prepared.splits["val"]
  data = EvalSet.create(val.x_NxWx3, val.y_N, config.train.eval_batch_size)
  outs = [e.evaluate(chunked.params, chunked.batch_stats, data) for e in engines]
  _close(outs[0], outs[1])
  predictions = [e.predict(chunked.params, chunked.batch_stats, data) for e in engines]
  assert predictions[0].shape == (2, len(val.y_N))
  np.testing.assert_array_equal(predictions[0], predictions[1])


def test_padding_with_masked_rows_changes_nothing(config, prepared):
  n = len(prepared.splits["train"])
  plain = _train(config, prepared, seed_keys(0, 1), epochs=2)
  padded = _train(config, prepared, seed_keys(0, 1), epochs=2, capacity=n + 300)
  _close(plain.params, padded.params)
  _close(plain.batch_stats, padded.batch_stats)


@pytest.mark.parametrize("loop", ["host", "device"])
def test_a_set_smaller_than_a_batch_steps_on_its_own_rows(config, prepared, loop):
  """A 20-window set trains as one batch of 32 rows instead of a full batch of 64
  (Batches.create), with the numbers of the full, mostly masked batch."""
  rows = np.arange(20)[None]
  train = prepared.splits["train"]
  small = Batches.create(train.x_NxWx3, train.y_N, 1, config.train.batch_size, rows, capacity=300)
  assert small.index_SxC.shape == (1, 32)
  full_index = np.zeros((1, config.train.batch_size), np.int32)
  full_index[:, :20] = rows
  full = Batches(small.x_NxWx3, small.y_N, jax.numpy.asarray(full_index), 20)
  states = []
  for batches in (small, full):
    states.append(_train(config, prepared, seed_keys(0, 1), epochs=3, loop=loop, batches=batches))
  _close(states[0].params, states[1].params)
  _close(states[0].batch_stats, states[1].batch_stats)
  # and it learns: the trained parameters differ from the initial ones
  engine = experiment.build_engine(config, prepared.num_classes)
  initial = engine.init(seed_keys(0, 1))
  moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), states[0].params, initial.params)
  assert min(jax.tree.leaves(moved)) > 1e-4


def test_device_loop_matches_host_loop(config, prepared):
  """The one-call-per-epoch engine and the per-batch driver compute the same."""
  rows = np.arange(150)[None]  # a subset, so the device program stays small
  host = _train(config, prepared, seed_keys(0, 1), epochs=1, index=rows)
  device = _train(config, prepared, seed_keys(0, 1), epochs=1, index=rows, loop="device")
  _close(host.params, device.params)


def test_epochs_move_only_their_metrics(config, prepared):
  """Data, shuffles, the batch counter and n_valid stay on the device: epochs of
  fit, with evaluation and keep-best, run under jax.transfer_guard("disallow"),
  which refuses every implicit host<->device copy; the per-seed losses and the
  improved-mask travel explicitly."""
  engine = experiment.build_engine(config, prepared.num_classes)
  train, val = prepared.splits["train"], prepared.splits["val"]
  batches = Batches.create(train.x_NxWx3, train.y_N, 2, config.train.batch_size,
                           np.stack([np.arange(100)] * 2), capacity=300)
  val_set = EvalSet.create(val.x_NxWx3, val.y_N, config.train.eval_batch_size)
  keys = seed_keys(0, 2)
  state = engine.init(keys)
  with jax.transfer_guard("disallow"):
    result = fit(engine, state, batches, val_set, keys, max_epochs=2, patience=0,
                 progress=False)
  assert result.stopping.epochs == [2, 2]
  with pytest.raises(Exception, match="host-to-device transfer"), \
      jax.transfer_guard("disallow"):
    engine._mean(result.state.params["head"]["bias"], 2)  # a Python number would be copied


def test_a_stopped_seed_costs_nothing_and_changes_nothing(config, prepared):
  """Seed 1 has stopped early (a resumed EarlyStopping says so). With one seed per
  call (CPU's default) its epochs and validation passes are skipped: its state is
  left as it was, moving no data (under jax.transfer_guard). Seed 0 trains, and is
  logged, exactly as in one vmapped call, where seed 1 runs on unused."""
  engine_per_seed = experiment.build_engine(config, prepared.num_classes)
  config_vmapped = config.copy_and_resolve_references()
  config_vmapped.train.seed_chunk = 2
  engine_vmapped = experiment.build_engine(config_vmapped, prepared.num_classes)
  train, val = prepared.splits["train"], prepared.splits["val"]
  batches = Batches.create(train.x_NxWx3, train.y_N, 2, config.train.batch_size,
                           np.stack([np.arange(100)] * 2))
  val_set = EvalSet.create(val.x_NxWx3, val.y_N, config.train.eval_batch_size)
  keys = seed_keys(0, 2)
  results = []
  for engine in (engine_per_seed, engine_vmapped):
    stopping = EarlyStopping.create(patience=5, num_seeds=2)
    stopping.stopped[1] = True
    initial = engine.init(keys)
    with jax.transfer_guard("disallow"):
      results.append(fit(engine, initial, batches, val_set, keys, max_epochs=3, patience=5,
                         stopping=stopping, progress=False))
  per_seed, vmapped = results
  assert [(r["epoch"], r["seed"]) for r in per_seed.history] == [(0, 0), (1, 0), (2, 0)]
  assert [r["val_loss"] for r in per_seed.history] == pytest.approx(
      [r["val_loss"] for r in vmapped.history], rel=1e-5)
  assert per_seed.stopping.epochs == vmapped.stopping.epochs == [3, 0]
  seed = lambda i: lambda tree: jax.tree.map(lambda a: np.asarray(a[i]), tree)
  _close(seed(0)(per_seed.state.params), seed(0)(vmapped.state.params))
  _close(seed(0)(per_seed.best_params), seed(0)(vmapped.best_params))
  initial = engine_per_seed.init(keys)
  jax.tree.map(np.testing.assert_array_equal, seed(1)(per_seed.state.params),
               seed(1)(initial.params))
  moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), seed(1)(vmapped.state.params),
                       seed(1)(initial.params))
  assert max(jax.tree.leaves(moved)) > 1e-4  # the vmapped call did train it


def test_nan_loss_names_seed_and_epoch(config, prepared):
  engine = experiment.build_engine(config, prepared.num_classes)
  train = prepared.splits["train"]
  x = train.x_NxWx3.copy()
  x[:] = np.nan
  batches = Batches.create(x, train.y_N, 2, config.train.batch_size)
  val = EvalSet.create(prepared.splits["val"].x_NxWx3, prepared.splits["val"].y_N, 1024)
  keys = seed_keys(0, 2)
  with pytest.raises(FloatingPointError, match=r"seed\(s\) \[0, 1\] at epoch 0"):
    fit(engine, engine.init(keys), batches, val, keys, max_epochs=2, patience=0, progress=False)


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

  def save_then_die(self, step, tree, meta):
    save(self, step, tree, meta)
    calls.append(step)
    if len(calls) == 1:
      raise KeyboardInterrupt

  monkeypatch.setattr(checkpoints.Checkpoints, "save", save_then_die)
  with pytest.raises(KeyboardInterrupt):
    experiment.pretrain(config, tmp_path, progress=False)
  assert calls == [config.train.checkpoint_every - 1] < [config.train.max_epochs - 1]
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
    experiment.check_trainable(prepared, 100000)
  import dataclasses
  one = dataclasses.replace(prepared, class_names=("walk",))
  with pytest.raises(DataError, match="has 1 class"):
    experiment.check_trainable(one, 8)


def test_locked_config_rejects_unknown_keys(config):
  with pytest.raises(AttributeError):
    config.train.epochz = 3
