"""The runner's strategies compute what one seed alone computes.

Each test compares two differently compiled programs (seeds vmapped vs one per
call, padded vs not, a small batch vs a masked full one, host vs device epochs, a
stopped seed skipped vs run on). Compiled differently, they round differently,
and Adam's normalisation amplifies a rounding difference in a near-zero gradient
to a sizeable share of one update, by an amount that depends on the CPU. So they
run in float64 (config.model.dtype), where rounding stays near 1e-15, and compare
at TOL = 1e-9: far below that, far above it any real error (a wrong mask, batch
statistics over part of a batch, a seed given another's key) moves parameters by
~1e-3 or more.
"""

import copy
import dataclasses

import jax
import numpy as np
import pytest

from xfer_jax import checks
from xfer_jax.engine import programs
from xfer_jax.engine import runner as runner_module
from xfer_jax.engine.loop import EarlyStopping, FitState, History, fit
from xfer_jax.engine.runner import CAPACITY_BUCKET, Batches, EvalSet, _round_up, chunk_rows
from xfer_jax.engine.runtime import CompileCounter
from xfer_jax.engine.step import seed_keys
from xfer_jax.models.multiresnet import MASKED_LOGIT

TOL = 1e-9


@pytest.fixture(scope="module")
def config(smoke_config):
  config = smoke_config.copy_and_resolve_references()
  config.model.dtype = "float64"
  # one block of one layer: every kind of layer the runner's programs carry (a
  # temporal, a shortcut and a spectral convolution, batch norms, a dense head) at
  # about half the smoke network's compile time; more blocks repeat them
  config.model.filters, config.model.layers_per_block, config.model.dense_units = (8,), 1, (16,)
  return config


@pytest.fixture(scope="module")
def prepared(config):
  from xfer_jax.data import prepare
  return prepare(config.source, config.data)


@pytest.fixture(autouse=True)
def x64():
  with jax.enable_x64(True):
    yield


def _runner(config, prepared, **runtime):
  config = config.copy_and_resolve_references()
  config.runtime.update(runtime)
  return programs.build_runner(config, prepared.num_classes)


def _train(runner, prepared, keys, epochs, capacity=None, index=None, batches=None):
  train = prepared.splits["train"]
  if batches is None:
    batches = Batches.create(train.x_NxWx3, train.y_N, len(keys), runner.batch_size, index,
                             capacity)
  state = runner.init(keys)
  assert jax.tree.leaves(state.params)[0].dtype == np.float64  # the test means what it says
  for epoch in range(epochs):
    state, _ = runner.epoch(state, batches, runner.epoch_keys(keys, epoch))
  return state


def _close(a, b, tol=TOL):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=tol, atol=tol), a, b)


def _val_set(config, prepared):
  val = prepared.splits["val"]
  return EvalSet.create(val.x_NxWx3, val.y_N, config.runtime.eval_batch_size)


def test_vmapped_seeds_equal_each_seed_alone(config, prepared):
  """All seeds in one vmapped call (GPU/TPU's default) train, evaluate and predict
  as each seed alone (chunks of one seed: CPU's default)."""
  runners = [_runner(config, prepared, seed_chunk=1), _runner(config, prepared, seed_chunk=2)]
  assert [r.seed_slices(2) for r in runners] == [((0, 1), (1, 2)), ((0, 2),)]
  chunked, vmapped = (_train(r, prepared, seed_keys(0, 2), epochs=2) for r in runners)
  _close(chunked.params, vmapped.params)
  _close(chunked.batch_stats, vmapped.batch_stats)
  data = _val_set(config, prepared)
  outs = [r.evaluate(chunked.params, chunked.batch_stats, data) for r in runners]
  _close(outs[0], outs[1])
  predictions = [r.predict(chunked.params, chunked.batch_stats, data) for r in runners]
  assert predictions[0].shape == (2, len(prepared.splits["val"]))
  np.testing.assert_array_equal(predictions[0], predictions[1])


def test_an_evaluation_set_pads_only_its_last_chunk_to_64_rows(config, prepared):
  """Whole chunks, then the rest padded to a multiple of TAIL_ROWS: the same loss,
  accuracy and predictions as one chunk per window and as one chunk for the split."""
  assert chunk_rows(582, 512) == [512, 128] and chunk_rows(1024, 512) == [512, 512]
  assert chunk_rows(20, 512) == [64] and chunk_rows(0, 512) == [64]
  assert chunk_rows(600, 128) == [128] * 4 + [128] and chunk_rows(30, 16) == [16, 16]
  runner = _runner(config, prepared)
  state = _train(runner, prepared, seed_keys(0, 1), epochs=1)
  val = prepared.splits["val"]
  n = len(val.y_N)
  sets = [EvalSet.create(val.x_NxWx3, val.y_N, size) for size in (1, 96, n)]
  rows = [[chunk[0].shape[0] for chunk in s.chunks] for s in sets]
  assert rows[1] == chunk_rows(n, 96) and sum(rows[1]) < _round_up(n, 96)  # the test bites
  assert [sum(chunk[2]) for chunk in sets[1].chunks][-1] == n % 96
  outs = [runner.evaluate(state.params, state.batch_stats, s) for s in sets]
  predictions = [runner.predict(state.params, state.batch_stats, s) for s in sets]
  for out, predicted in zip(outs[1:], predictions[1:]):
    _close(out, outs[0])
    np.testing.assert_array_equal(predicted, predictions[0])


def test_padding_with_masked_rows_changes_nothing(config, prepared):
  runner = _runner(config, prepared)
  n = len(prepared.splits["train"])
  plain = _train(runner, prepared, seed_keys(0, 1), epochs=2)
  # a capacity past the first bucket: another shuffle program, padding its epochs
  padded = _train(runner, prepared, seed_keys(0, 1), epochs=2, capacity=CAPACITY_BUCKET + n)
  _close(plain.params, padded.params)
  _close(plain.batch_stats, padded.batch_stats)


def test_a_padded_head_computes_the_unpadded_heads_numbers(config, prepared):
  """config.runtime.pad_classes: the extra outputs start masked and never move; every
  other number is the unpadded model's, and classes padded to one width compile one
  batch step."""
  plain_runner = _runner(config, prepared)
  padded_runner = _runner(config, prepared, pad_classes=16)
  plain = _train(plain_runner, prepared, seed_keys(0, 1), epochs=2)
  padded = _train(padded_runner, prepared, seed_keys(0, 1), epochs=2)
  k = prepared.num_classes
  head = padded.params.pop("head")
  kernel, bias = head["kernel"], head["bias"]
  assert kernel.shape[-1] == bias.shape[-1] == 16
  assert np.all(kernel[..., k:] == 0) and np.all(bias[..., k:] == MASKED_LOGIT)
  _close({**padded.params, "head": {"kernel": kernel[..., :k], "bias": bias[..., :k]}},
         plain.params)
  _close(plain.batch_stats, padded.batch_stats)
  val = _val_set(config, prepared)
  np.testing.assert_array_equal(
      plain_runner.predict(plain.params, plain.batch_stats, val),
      padded_runner.predict({**padded.params, "head": head}, padded.batch_stats, val))
  step_text = lambda runner: runner.lowered_train_step().as_text(debug_info=False)
  fewer = programs.build_runner(_padded(config, 16), k - 1)
  assert step_text(fewer) == step_text(padded_runner)
  assert step_text(programs.build_runner(config, k - 1)) != step_text(plain_runner)


def _padded(config, multiple):
  config = config.copy_and_resolve_references()
  config.runtime.pad_classes = multiple
  return config


@pytest.mark.parametrize("loop", ["host", "device"])
def test_a_set_smaller_than_a_batch_steps_on_its_own_rows(config, prepared, loop):
  """A 20-window set trains as one batch of 32 rows instead of a full batch of 64
  (Batches.create), with the numbers of the full, mostly masked batch."""
  runner = _runner(config, prepared, epoch_loop=loop)
  rows = np.arange(20)[None]
  train = prepared.splits["train"]
  small = Batches.create(train.x_NxWx3, train.y_N, 1, runner.batch_size, rows, capacity=300)
  assert small.index_SxC.shape == (1, 32)
  full_index = np.zeros((1, runner.batch_size), np.int32)
  full_index[:, :20] = rows
  full = Batches(small.x_NxWx3, small.y_N, jax.numpy.asarray(full_index), 20)
  states = [_train(runner, prepared, seed_keys(0, 1), 3, batches=b) for b in (small, full)]
  _close(states[0].params, states[1].params)
  _close(states[0].batch_stats, states[1].batch_stats)
  # and it learns: the trained parameters differ from the initial ones
  initial = runner.init(seed_keys(0, 1))
  moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), states[0].params, initial.params)
  assert min(jax.tree.leaves(moved)) > 1e-4


def test_device_loop_matches_host_loop(config, prepared):
  """The one-call epoch and the per-batch driver compute the same."""
  rows = np.arange(150)[None]  # a subset, so the device program stays small
  host, device = (_train(_runner(config, prepared, epoch_loop=loop), prepared, seed_keys(0, 1),
                         epochs=2, index=rows) for loop in ("host", "device"))
  _close(host.params, device.params)
  _close(host.batch_stats, device.batch_stats)


def test_a_stopped_seed_costs_nothing_and_changes_nothing(config, prepared):
  """Seed 1 has stopped early (a resumed EarlyStopping says so). With one seed per
  call (CPU's default) its epochs and validation passes are skipped: its state is
  left as it was, moving no data (under jax.transfer_guard). Seed 0 trains, and is
  logged, as in one vmapped call, where seed 1 runs on unused."""
  train = prepared.splits["train"]
  batches = Batches.create(train.x_NxWx3, train.y_N, 2, config.train.batch_size,
                           np.stack([np.arange(100)] * 2))
  val_set = _val_set(config, prepared)
  keys = seed_keys(0, 2)
  outcomes = []
  for chunk in (1, 2):
    runner = _runner(config, prepared, seed_chunk=chunk)
    state = FitState.create(runner.init(keys), patience=5)
    state.stopping.stopped[1] = True
    history = History()
    with jax.transfer_guard("disallow"):
      state = fit(runner, state, batches, val_set, keys, max_epochs=3, hooks=[history])
    outcomes.append((state, history.rows))
  (per_seed, per_seed_rows), (vmapped, vmapped_rows) = outcomes
  assert [(r["epoch"], r["seed"]) for r in per_seed_rows] == [(0, 0), (1, 0), (2, 0)]
  np.testing.assert_allclose([r["val_loss"] for r in per_seed_rows],
                             [r["val_loss"] for r in vmapped_rows], rtol=TOL)
  assert per_seed.stopping.epochs == vmapped.stopping.epochs == [3, 0]
  seed = lambda i: lambda tree: jax.tree.map(lambda a: np.asarray(a[i]), tree)
  _close(seed(0)(per_seed.train.params), seed(0)(vmapped.train.params))
  _close(seed(0)(per_seed.best_params), seed(0)(vmapped.best_params))
  initial = _runner(config, prepared).init(keys)
  jax.tree.map(np.testing.assert_array_equal, seed(1)(per_seed.train.params),
               seed(1)(initial.params))
  moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), seed(1)(vmapped.train.params),
                       seed(1)(initial.params))
  assert max(jax.tree.leaves(moved)) > 1e-4  # the vmapped call did train it


def test_a_fit_splits_its_state_into_seed_chunks_once(config, prepared, monkeypatch):
  """With one seed per call, fit splits its per-seed trees into the seed chunks
  when it starts and joins them when it ends; between epochs they stay in chunks,
  so a fit of three epochs splits and joins exactly what a fit of one does."""
  moved = {"split": 0, "join": 0}

  def counted(name, fn):
    def wrapper(*args):
      moved[name] += 1
      return fn(*args)
    return wrapper

  monkeypatch.setattr(runner_module, "_split_leaf", counted("split", runner_module._split_leaf))
  monkeypatch.setattr(runner_module, "_join_leaf", counted("join", runner_module._join_leaf))
  runner = _runner(config, prepared, seed_chunk=1)
  train = prepared.splits["train"]
  batches = Batches.create(train.x_NxWx3, train.y_N, 2, config.train.batch_size,
                           np.stack([np.arange(100)] * 2))
  keys, val_set = seed_keys(0, 2), _val_set(config, prepared)
  counts = []
  for epochs in (1, 3):
    state = FitState.create(runner.init(keys), patience=0)
    moved.update(split=0, join=0)
    state = fit(runner, state, batches, val_set, keys, max_epochs=epochs)
    assert state.epoch == epochs
    counts.append(dict(moved))
  leaves = len(jax.tree.leaves((state.train, state.best_params, state.best_batch_stats)))
  assert counts[0] == counts[1] == {"split": leaves + 2, "join": leaves}  # + rows and keys


def test_a_grids_frozen_partitions_load_the_programs_that_do_not_train(config, prepared):
  """Runners that differ only in their optimiser and frozen batch norms (a grid's
  frozen partitions): the second loads the first one's initialisation and
  evaluation programs from the store instead of tracing and lowering them; only
  its optimiser's initialisation is new. What makes that right: outside training a
  frozen batch norm is any batch norm, so both models evaluate by one program."""
  runners = [_runner(config, prepared, eval_batch_size=48)]
  other = config.copy_and_resolve_references()
  other.optim.learning_rate *= 2
  other.runtime.eval_batch_size = 48
  runners.append(programs.build_runner(other, prepared.num_classes,
                                       frozen_bn=("temporal/block_0", "spectral")))
  val_set, keys = _val_set(config, prepared), seed_keys(0, 2)
  for runner in runners:
    with CompileCounter() as counter:
      state = runner.init(keys)
      runner.evaluate(state.params, state.batch_stats, val_set)
  assert {"init_variables", "eval_chunk"} <= set(counter.names)
  assert len(counter.names) == 3  # the two loaded, the optimiser's initialisation lowered
  params, stats = (jax.tree.map(lambda a: a[0], t) for t in (state.params, state.batch_stats))
  lowered = [jax.jit(r.step.logits).lower(params, stats, val_set.chunks[0][0]).as_text()
             for r in runners]
  assert lowered[0] == lowered[1]


def test_epochs_move_only_their_metrics(config, prepared):
  """Data, shuffles, the batch counter and n_valid stay on the device: epochs of
  fit, with evaluation and keep-best, run under jax.transfer_guard("disallow"),
  which refuses every implicit host<->device copy; the per-seed losses and the
  improved-mask travel explicitly."""
  runner = _runner(config, prepared)
  train = prepared.splits["train"]
  batches = Batches.create(train.x_NxWx3, train.y_N, 2, config.train.batch_size,
                           np.stack([np.arange(100)] * 2), capacity=300)
  keys, val_set = seed_keys(0, 2), _val_set(config, prepared)
  state = FitState.create(runner.init(keys), patience=0)
  with jax.transfer_guard("disallow"):
    state = fit(runner, state, batches, val_set, keys, max_epochs=2)
  assert state.stopping.epochs == [2, 2] and state.epoch == 2
  with pytest.raises(Exception, match="host-to-device transfer"), \
      jax.transfer_guard("disallow"):
    runner._mean(state.train.params["head"]["bias"], 2)  # a Python number would be copied


def test_nan_loss_names_seed_and_epoch(config, prepared):
  runner = _runner(config, prepared)
  train = prepared.splits["train"]
  x = np.full_like(train.x_NxWx3, np.nan)
  batches = Batches.create(x, train.y_N, 2, config.train.batch_size)
  keys = seed_keys(0, 2)
  with pytest.raises(FloatingPointError, match=r"the training loss is NaN/inf for seed\(s\) "
                     r"\[0, 1\] at epoch 0"):
    fit(runner, FitState.create(runner.init(keys), 0), batches, _val_set(config, prepared), keys,
        max_epochs=2)


def test_early_stopping_counts_epochs_without_improvement():
  stopping = EarlyStopping.create(patience=2, num_seeds=2)
  for epoch, losses in enumerate([[1.0, 1.0], [0.5, 1.2], [0.6, 1.1], [0.4, 0.9]]):
    improved = stopping.update(epoch, np.array(losses))
  # seed 1 stopped after epochs 1 and 2 brought nothing better than 1.0
  assert stopping.stopped == [False, True] and stopping.epochs == [4, 3]
  assert stopping.best_epoch == [3, 0] and improved.tolist() == [True, False]


def test_early_stopping_on_accuracy_keeps_the_most_accurate_epoch():
  losses = [[1.0, 1.0], [0.8, 0.9], [1.2, 0.9], [1.3, 0.8], [1.4, 1.5]]
  accuracies = [[0.2, 0.5], [0.3, 0.5], [0.6, 0.5], [0.6, 0.4], [0.5, 0.5]]
  by_loss = EarlyStopping.create(patience=2, num_seeds=2)
  by_accuracy = EarlyStopping.create(patience=2, num_seeds=2, stop_on="val_accuracy")
  for epoch, (loss, accuracy) in enumerate(zip(losses, accuracies)):
    by_loss.update(epoch, np.array(loss), np.array(accuracy))
    by_accuracy.update(epoch, np.array(loss), np.array(accuracy))
  # seed 0: its loss is lowest at epoch 1, its accuracy highest from epoch 2 (the tie
  # at epoch 3 has a higher loss); seed 1: its accuracy ties at 0.5 with a lower loss
  # at epoch 1, then never rises, so it stops after 2 epochs without a better one
  assert by_loss.best_epoch == [1, 3] and by_accuracy.best_epoch == [2, 1]
  assert by_accuracy.best_loss == [1.2, 0.9] and by_accuracy.best_accuracy == [0.6, 0.5]
  assert by_accuracy.stopped == [True, True] and by_accuracy.epochs == [5, 4]
  with pytest.raises(ValueError, match="needs the validation accuracy"):
    by_accuracy.update(5, np.array([1.0, 1.0]))
  # a checkpoint saved before stop_on existed restores as loss-based stopping
  old = {k: v for k, v in dataclasses.asdict(by_loss).items()
         if k not in ("stop_on", "best_accuracy")}
  restored = EarlyStopping(**old)
  assert restored.stop_on == "val_loss" and np.isnan(restored.best_accuracy).all()


def test_a_config_names_an_unknown_stopping_metric(config):
  config = copy.deepcopy(config)
  config.train.stop_on = "val_f1"
  with pytest.raises(checks.ConfigError, match=r"config.train.stop_on='val_f1'.*val_accuracy"):
    checks.check_config(config)


def test_float64_needs_64_bit_jax(config, prepared):
  with jax.enable_x64(False), pytest.raises(ValueError, match="JAX_ENABLE_X64=1"):
    programs.build_model(config.model, prepared.num_classes, 25.0)
