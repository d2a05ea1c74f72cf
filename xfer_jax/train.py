"""The training engine: pure, jit-compiled epochs with seeds as a vmapped axis.

State is params + batch stats + optimiser state, every leaf with a leading seed
axis S. One epoch is one compiled call: the data sit on the device, a loop over
batches runs inside the program, and only per-seed scalars come back. Rows past
`n_valid` are padding, masked out of the loss and of batch norm's statistics, so
training sets of different sizes (the adaptation sizes of a sweep) share one
compilation: their arrays are padded to one capacity and n_valid is an argument.
The trip count of the batch loop is n_valid's batch count, so a 20-window subset
costs one batch per epoch however large the capacity. A set smaller than one batch
is its own batch, padded to a power of two (Batches.create): the same numbers as
a padded full batch, at a fraction of its cost.

Randomness: seed s owns key(seed + s); its initialisation uses fold_in(key, 0),
epoch e uses fold_in(fold_in(key, 1), e) for the shuffle (one key per row, so the
order of the real rows does not depend on the padding) and for dropout (one key
per step). A vmapped seed therefore trains exactly as it would alone.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from xfer_jax import devices
from xfer_jax.console import Progress
from xfer_jax.optim import l2_penalty
from xfer_jax.runtime import is_primary


@flax.struct.dataclass
class TrainState:
  params: Any
  batch_stats: Any
  opt_state: Any


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
  """Keys of seeds seed .. seed + num_seeds - 1, stacked on a leading axis.

  threefry, the default: unlike "rbg" its draws under vmap equal the unbatched ones."""
  return jnp.stack([jax.random.key(seed + s) for s in range(num_seeds)])


SMALLEST_BATCH = 8  # rows of the smallest batch: it still splits over 2, 4 or 8 batch_devices


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


@flax.struct.dataclass
class Batches:
  """Rows of a dataset on the device: x[index[s, :n_valid]] are seed s's rows."""

  x_NxWx3: jax.Array
  y_N: jax.Array
  index_SxC: jax.Array  # per-seed row indices, padded to the capacity C
  n_valid: int = flax.struct.field(pytree_node=False)

  @classmethod
  def create(cls, x, y, num_seeds: int, batch_size: int, index_Sxn=None, capacity=None):
    """index_Sxn: per-seed rows (default: all rows for every seed); capacity: the
    padded length shared by every training set that should reuse a compilation.

    A set that fits a power of two (at least 8) smaller than batch_size is trained
    as one batch of that many rows instead (capacity does not apply): a step costs
    in proportion to its rows, padding included, and the masked rows change no
    number, so a 20-window cell steps on 32 rows rather than 256. Sets of one
    power of two share a compilation."""
    if index_Sxn is None:
      index_Sxn = np.broadcast_to(np.arange(len(y)), (num_seeds, len(y)))
    index_Sxn = np.asarray(index_Sxn)
    n = index_Sxn.shape[1]
    small = max(SMALLEST_BATCH, 1 << (n - 1).bit_length())
    if small < batch_size:
      capacity = small
    else:
      capacity = _round_up(max(capacity or n, n, batch_size), batch_size)
    padded = np.zeros((index_Sxn.shape[0], capacity), np.int32)
    padded[:, :n] = index_Sxn
    return cls(jnp.asarray(x), jnp.asarray(y, jnp.int32), jnp.asarray(padded), n)


@flax.struct.dataclass
class EvalSet:
  """A split on the device in chunks of the evaluation batch, the last one padded;
  masks mark real rows. Cut on the host once, so that evaluating it every epoch
  needs no slicing programs (each slice start would be one more compilation)."""

  chunks: tuple  # ((x_BxWx3, y_B, mask_B), ...)
  n: int = flax.struct.field(pytree_node=False)

  @classmethod
  def create(cls, x, y, batch_size: int):
    n = len(y)
    size = _round_up(max(n, 1), batch_size)
    xp = np.zeros((size, *x.shape[1:]), np.float32)
    xp[:n] = x
    yp = np.zeros(size, np.int32)
    yp[:n] = y
    mask = np.arange(size) < n
    return cls(tuple((jnp.asarray(xp[a:a + batch_size]), jnp.asarray(yp[a:a + batch_size]),
                      jnp.asarray(mask[a:a + batch_size])) for a in range(0, size, batch_size)), n)


class Engine:
  """Compiled init / epoch / evaluate / predict for one model and optimiser.

  Build one per (model, optimiser, batch size); every training set and seed count
  that matches shapes reuses its compilations. Within an epoch only the per-seed
  losses are new on the host side: data, shuffles, the batch counter and n_valid
  live on the device (checked under jax.transfer_guard in the tests).
  """

  def __init__(self, model, tx: optax.GradientTransformation, *, l2: float, batch_size: int,
               eval_batch_size: int, window_shape=(100, 3), epoch_loop: str = "auto",
               seed_chunk: int = 0, batch_devices: int = 1, device_list=None):
    self.model, self.tx, self.l2 = model, tx, l2
    self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
    self.window_shape = tuple(window_shape)
    self.devices = tuple(device_list or jax.devices())
    devices.mesh_for(1, self.devices, batch_devices)  # checks batch_devices against the devices
    for name, size in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
      if size % batch_devices:
        raise ValueError(f"{name}={size} does not split over batch_devices={batch_devices}: "
                         "expected a multiple of it")
    self.batch_devices = batch_devices
    cpu = self.devices[0].platform == "cpu"
    if epoch_loop == "auto":
      # XLA:CPU runs a loop body several times slower than the same step compiled
      # alone (docs/performance.md), so on CPU the host drives the batches
      epoch_loop = "host" if cpu else "device"
    if epoch_loop not in ("host", "device"):
      raise ValueError(f"epoch_loop {epoch_loop!r}: expected 'auto', 'host' or 'device'")
    self.epoch_loop = epoch_loop
    if seed_chunk < 0:
      raise ValueError(f"seed_chunk={seed_chunk}: expected 0 (auto) or a positive chunk size")
    # Seeds per vmapped call. XLA:CPU runs seed-batched convolutions as grouped
    # convolutions several times slower per window than one seed's, so on one CPU
    # device the same vmapped programs take one seed at a time (docs/performance.md);
    # with several devices (or on GPU/TPU) all seeds go together over the mesh.
    self.seed_chunk = seed_chunk or (1 if cpu and len(self.devices) == batch_devices else 0)
    # Programs run once per run or per epoch compile without LLVM optimisation on
    # CPU: XLA:CPU spends most of a compile there (init: 70 s -> 19 s for the demo
    # network) and these programs are cheap to run either way. The hot programs
    # (batch step, evaluation) keep the default.
    once = {"xla_backend_optimization_level": 0} if cpu else None
    # init holds the model only (no optimiser), so engines that differ only in
    # what they freeze share its compilation through the persistent cache
    self._init_variables = jax.jit(jax.vmap(self._variables_one), compiler_options=once)
    self.init_opt_state = jax.jit(jax.vmap(tx.init), compiler_options=once)
    self._split = jax.jit(_split_seeds, static_argnums=1, compiler_options=once)
    self._join = jax.jit(_join_seeds, compiler_options=once)
    self._mean = jax.jit(jnp.divide, compiler_options=once)
    self._keep_best = jax.jit(_keep_best, compiler_options=once)
    # The per-seed programs: (function over a seed chunk, which arguments and
    # outputs are per seed ("S") or shared ("R"), jit options). On a mesh each is
    # shard_mapped over the seed axis, every seed group running it on its own seeds
    # (and XLA splitting each seed's batch over the group's devices).
    self._program_specs = {
        "device_epoch": (jax.vmap(self._epoch_one, in_axes=(0, None, None, 0, None, 0)),
                         "SRRSRS", "SS", {"donate_argnums": 0}),
        "epoch_start": (self._epoch_start_S, "SRS", "SSR", {"compiler_options": once}),
        "host_step": (self._host_step_S, "SRRSRRSS", "SSR", {"donate_argnums": (0, 4, 7)}),
        # one program for any evaluation set: fixed-size chunks driven from the host
        "eval_chunk": (jax.vmap(self._eval_chunk, in_axes=(0, 0, None, None, None)),
                       "SSRRR", "SSS", {}),
    }
    self._programs = {}
    self._placed = {}  # (id(array), mesh) -> (array, its replicated copy)
    self._nan_losses = {}  # (mesh, seeds) -> NaN per seed, on the mesh

  def _program(self, name: str, mesh=None):
    """The compiled per-seed program `name` for a mesh (None: one device)."""
    if (name, mesh) not in self._programs:
      fn, ins, outs, options = self._program_specs[name]
      if mesh is not None:
        spec = {"S": devices.SEEDED, "R": devices.REPLICATED}
        # check_vma=False: the programs use no collective over seeds, and the check
        # rejects the one-call epoch's loop, whose carried loss sum starts as a
        # constant (the same on every device) and becomes per seed
        fn = jax.shard_map(fn, mesh=mesh, in_specs=tuple(spec[c] for c in ins),
                           out_specs=tuple(spec[c] for c in outs), axis_names={devices.SEED},
                           check_vma=False)
        logging.info("%s: seeds over %d device(s), each seed's batch over %d", name,
                     mesh.shape[devices.SEED], mesh.shape[devices.BATCH])
      self._programs[name, mesh] = jax.jit(fn, **options)
    return self._programs[name, mesh]

  @property
  def _host_step(self):  # the single-device batch step (benchmark's cost analysis)
    return self._program("host_step")

  # -- single-seed functions, vmapped above ---------------------------------------------

  def _variables_one(self, key):
    x = jnp.zeros((1, *self.window_shape), jnp.float32)
    variables = self.model.init({"params": key, "dropout": key}, x, train=False)
    return variables["params"], variables.get("batch_stats", {})

  def init(self, keys_S) -> TrainState:
    """Fresh parameters of every seed: seed s's from fold_in(keys_S[s], 0)."""
    params, batch_stats = self._init_variables(fold_in_S(keys_S, 0))
    return TrainState(params, batch_stats, self.init_opt_state(params))

  def abstract_state(self, num_seeds: int) -> TrainState:
    def init(keys_S):  # self.init's computation, unjitted (eval_shape traces it)
      params, batch_stats = jax.vmap(self._variables_one)(keys_S)
      return TrainState(params, batch_stats, jax.vmap(self.tx.init)(params))
    return jax.eval_shape(init, seed_keys(0, num_seeds))

  def _loss(self, params, batch_stats, x, y, mask, dropout_key):
    logits, updates = self.model.apply(
        {"params": params, "batch_stats": batch_stats}, x, train=True, mask_B=mask,
        rngs={"dropout": dropout_key}, mutable=["batch_stats"])
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    weights = mask.astype(ce.dtype)
    loss = jnp.sum(ce * weights) / jnp.maximum(jnp.sum(weights), 1.0)
    return loss + l2_penalty(params, self.l2), (loss, updates.get("batch_stats", batch_stats))

  def _step(self, state: TrainState, x, y, mask, dropout_key):
    grads, (loss, batch_stats) = jax.grad(self._loss, has_aux=True)(
        state.params, state.batch_stats, x, y, mask, dropout_key)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return TrainState(params, batch_stats, opt_state), loss

  def batch_rows(self, capacity: int) -> int:
    """Rows per batch of a training set padded to capacity: the batch size, or the
    whole set where Batches.create made it one smaller batch."""
    return min(self.batch_size, capacity)

  def _order_one(self, index_C, n_valid, key):
    """Seed's rows for every batch of an epoch, (C // B, B), real rows first.

    A fresh order from one uniform per position, drawn with fold_in(key, position),
    so the real rows' order does not depend on how much padding follows them."""
    capacity = index_C.shape[0]
    shuffle_key = jax.random.fold_in(key, 0)
    row_keys = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(shuffle_key, i)))(
        jnp.arange(capacity))
    order = jnp.argsort(jnp.where(jnp.arange(capacity) < n_valid, row_keys, 2.0))
    rows = self.batch_rows(capacity)
    return index_C[order].reshape(capacity // rows, rows)

  def _batch_step(self, state: TrainState, x_NxWx3, y_N, rows_B, i, n_valid, key, loss_sum):
    """Batch i of an epoch on rows_B of x; rows past n_valid in the epoch are padding."""
    rows = rows_B.shape[0]
    mask = (i * rows + jnp.arange(rows)) < n_valid
    x, y, mask = devices.split_batch((x_NxWx3[rows_B], y_N[rows_B], mask))
    state, loss = self._step(state, x, y, mask, jax.random.fold_in(jax.random.fold_in(key, 1), i))
    return state, loss_sum + loss * jnp.sum(mask)

  def _epoch_one(self, state: TrainState, x_NxWx3, y_N, index_C, n_valid, key):
    """One pass over seed's rows index_C[:n_valid] in a fresh order; mean train loss."""
    rows_KxB = self._order_one(index_C, n_valid, key)
    rows = rows_KxB.shape[1]
    num_batches = (n_valid + rows - 1) // rows
    body = lambda i, carry: self._batch_step(carry[0], x_NxWx3, y_N, rows_KxB[i], i, n_valid,
                                             key, carry[1])
    state, loss_sum = jax.lax.fori_loop(0, num_batches, body, (state, jnp.zeros(())))
    return state, loss_sum / n_valid

  # -- the host-driven epoch: everything it carries from batch to batch stays on the device

  def _epoch_start_S(self, index_SxC, n_valid, keys_S):
    """(rows (S, C // B, B) of every batch, zero loss sums, batch counter 0)."""
    rows = jax.vmap(self._order_one, in_axes=(0, None, 0))(index_SxC, n_valid, keys_S)
    return rows, jnp.zeros(index_SxC.shape[0]), jnp.zeros((), jnp.int32)

  def _host_step_S(self, state, x_NxWx3, y_N, rows_SxKxB, i, n_valid, keys_S, loss_sum_S):
    step = jax.vmap(self._batch_step, in_axes=(0, None, None, 0, None, None, 0, 0))
    state, loss_sum_S = step(state, x_NxWx3, y_N, rows_SxKxB[:, i], i, n_valid, keys_S,
                             loss_sum_S)
    return state, loss_sum_S, i + 1

  # -- seeds in chunks, each chunk on its mesh ------------------------------------------

  def seed_slices(self, num_seeds: int) -> tuple[tuple[int, int], ...]:
    """(start, stop) of each chunk of seeds that one vmapped call trains: equal
    chunks of the largest size up to seed_chunk that divides num_seeds."""
    chunk = max(c for c in range(1, min(self.seed_chunk or num_seeds, num_seeds) + 1)
                if num_seeds % c == 0)
    return tuple((a, a + chunk) for a in range(0, num_seeds, chunk))

  def mesh(self, num_seeds: int):
    """The device mesh of a vmapped call of num_seeds seeds (None: one device)."""
    return devices.mesh_for(num_seeds, self.devices, self.batch_devices)

  def _replicated(self, mesh, tree):
    """tree's arrays on every device of mesh, copied once per array and mesh."""
    if mesh is None:
      return tree

    def place(a):
      key = (id(a), mesh)
      if key not in self._placed:
        if len(self._placed) >= 256:  # an evaluation set is 3 arrays per chunk
          self._placed.pop(next(iter(self._placed)))
        self._placed[key] = (a, devices.replicated(mesh, a))  # holding a keeps id(a) unique
      return self._placed[key][1]
    return jax.tree.map(place, tree)

  def _per_chunk(self, fn, num_seeds: int, seeded: tuple, *shared, active_S=None, idle=None):
    """fn(mesh, *seeded_chunk, *shared) per seed chunk, seeded on the chunk's mesh
    and shared replicated; per-seed outputs joined on axis 0.
    seeded: a tuple of arrays/pytrees with a leading seed axis. active_S: optional
    host bools per seed; a chunk with none active is not run, and idle(mesh,
    *seeded_chunk) stands for its outputs."""
    slices = self.seed_slices(num_seeds)
    parts = [seeded] if len(slices) == 1 else self._split(seeded, slices)
    mesh = self.mesh(slices[0][1] - slices[0][0])  # chunks are equal: one mesh
    outs = []
    for (a0, a1), part in zip(slices, parts):
      part = devices.seeded(mesh, part)
      if active_S is None or np.any(active_S[a0:a1]):
        outs.append(fn(mesh, *part, *self._replicated(mesh, shared)))
      else:
        outs.append(idle(mesh, *part))
    return outs[0] if len(outs) == 1 else self._join(outs)

  def _not_run(self, mesh, num_seeds: int):
    """NaN per seed on the device: the losses of seeds whose chunk did not run."""
    key = (mesh, num_seeds)
    if key not in self._nan_losses:
      nan = np.full(num_seeds, np.nan, np.float32)
      self._nan_losses[key] = devices.seeded(mesh, nan) if mesh else jax.device_put(nan)
    return self._nan_losses[key]

  def epoch(self, state: TrainState, x_NxWx3, y_N, index_SxC, n_valid: int, keys_S,
            active_S=None):
    """Trains every seed for one epoch; returns (state, mean train loss per seed).

    active_S (host bools per seed, optional): a chunk of seeds none of which is
    active (stopped early) is skipped: its state stays, its losses are NaN. With
    one seed per chunk (CPU) stopped seeds then cost nothing; vmapped seeds run on.

    "device": the batch loop runs inside one compiled call. "host": the same
    batch step, compiled once for any capacity, is called per batch from Python;
    identical numbers. Seeds go seed_chunk at a time (each chunk vmapped).
    """
    rows = self.batch_rows(index_SxC.shape[1])
    if rows % self.batch_devices:
      raise ValueError(f"a training set of {n_valid} windows trains in batches of {rows} rows, "
                       f"which do not split over batch_devices={self.batch_devices}: expected "
                       "a batch_devices that divides it")
    return self._per_chunk(
        lambda mesh, state, index_SxC, keys_S, x, y: self._epoch_chunk(
            mesh, state, x, y, index_SxC, n_valid, keys_S),
        len(keys_S), (state, index_SxC, keys_S), x_NxWx3, y_N, active_S=active_S,
        idle=lambda mesh, state, index_SxC, keys_S: (state, self._not_run(mesh, len(keys_S))))

  def _epoch_chunk(self, mesh, state, x_NxWx3, y_N, index_SxC, n_valid: int, keys_S):
    n_valid_dev = devices.replicated(mesh, np.int32(n_valid))  # once per epoch
    if self.epoch_loop == "device":
      return self._program("device_epoch", mesh)(state, x_NxWx3, y_N, index_SxC, n_valid_dev,
                                                 keys_S)
    rows_SxKxB, loss_sum_S, i = self._program("epoch_start", mesh)(index_SxC, n_valid_dev, keys_S)
    step = self._program("host_step", mesh)
    for _ in range(-(-n_valid // self.batch_rows(index_SxC.shape[1]))):
      state, loss_sum_S, i = step(state, x_NxWx3, y_N, rows_SxKxB, i, n_valid_dev, keys_S,
                                  loss_sum_S)
    return state, self._mean(loss_sum_S, n_valid_dev)

  def keep_best(self, best: tuple, state: TrainState, improved_S: np.ndarray) -> tuple:
    """(params, batch stats) per seed: state's where improved_S, else best's."""
    mesh = self.mesh(self.seed_slices(len(improved_S))[0][1])
    return self._keep_best(devices.seeded(mesh, best), state,
                           devices.replicated(mesh, improved_S))

  # -- evaluation -----------------------------------------------------------------------

  def _logits(self, params, batch_stats, x):
    return self.model.apply({"params": params, "batch_stats": batch_stats}, x, train=False)

  def _eval_chunk(self, params, batch_stats, x_BxWx3, y_B, mask_B):
    """(summed cross-entropy, correct count, predictions) of one chunk's real rows."""
    x_BxWx3, y_B, mask_B = devices.split_batch((x_BxWx3, y_B, mask_B))
    logits = self._logits(params, batch_stats, x_BxWx3)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y_B)
    predictions = jnp.argmax(logits, -1)
    w = mask_B.astype(jnp.float32)
    return jnp.sum(ce * w), jnp.sum((predictions == y_B) * w), predictions

  def _eval_rows(self, mesh, params_S, stats_S, data: EvalSet):
    """(summed cross-entropy, correct count, predictions (S, rows)) over an EvalSet of
    any size, by the one compiled program of eval_batch_size rows."""
    program = self._program("eval_chunk", mesh)
    chunks = [program(params_S, stats_S, *chunk) for chunk in data.chunks]
    ce, correct, predictions = zip(*chunks)
    return sum(ce[1:], ce[0]), sum(correct[1:], correct[0]), jnp.concatenate(predictions, 1)

  def evaluate(self, params_S, stats_S, data: EvalSet,
               active_S=None) -> tuple[np.ndarray, np.ndarray]:
    """Per seed: mean cross-entropy and accuracy over the real rows (numpy); NaN
    for seeds whose chunk active_S skips (see epoch)."""
    ce, correct = self._per_chunk(
        lambda *args: self._eval_rows(*args)[:2], num_seeds_of(params_S), (params_S, stats_S), data,
        active_S=active_S,
        idle=lambda mesh, params_S, _: (self._not_run(mesh, num_seeds_of(params_S)),) * 2)
    ce, correct = devices.to_host((ce, correct))
    return ce / data.n, correct / data.n

  def predict(self, params_S, stats_S, data: EvalSet) -> np.ndarray:
    """Predicted classes (S, n) of the real rows."""
    _, _, predictions = self._per_chunk(self._eval_rows, num_seeds_of(params_S),
                                        (params_S, stats_S), data)
    return devices.to_host(predictions)[:, :data.n]


def num_seeds_of(tree) -> int:
  """The length of the leading (seed) axis of a per-seed pytree."""
  return len(jax.tree.leaves(tree)[0])


_fold_in_S = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)))


def fold_in_S(keys_S: jax.Array, data: int) -> jax.Array:
  """fold_in(key, data) for every seed's key; data goes to the device explicitly."""
  return _fold_in_S(keys_S, jax.device_put(np.int32(data)))


def _split_seeds(tree, slices):
  return [jax.tree.map(lambda a, a0=a0, a1=a1: a[a0:a1], tree) for a0, a1 in slices]


def _join_seeds(parts):
  return jax.tree.map(lambda *chunks: jnp.concatenate(chunks), *parts)


def _keep_best(best: tuple, state: TrainState, improved_S):
  """Per seed: the current params and batch stats where improved, else the kept ones."""
  pick = lambda b, c: jnp.where(improved_S.reshape((-1,) + (1,) * (c.ndim - 1)), c, b)
  return (jax.tree.map(pick, best[0], state.params), jax.tree.map(pick, best[1], state.batch_stats))


@dataclasses.dataclass
class EarlyStopping:
  """Per-seed early stopping on validation loss (host side, plain numbers)."""

  patience: int
  best_loss: list[float]
  best_epoch: list[int]
  bad_epochs: list[int]
  stopped: list[bool]
  epochs: list[int]  # epochs trained per seed

  @classmethod
  def create(cls, patience: int, num_seeds: int):
    return cls(patience, [float("inf")] * num_seeds, [-1] * num_seeds, [0] * num_seeds,
               [False] * num_seeds, [0] * num_seeds)

  def update(self, epoch: int, val_loss: np.ndarray) -> np.ndarray:
    improved = np.zeros(len(val_loss), bool)
    for s, loss in enumerate(val_loss):
      if self.stopped[s]:
        continue
      self.epochs[s] = epoch + 1
      if loss < self.best_loss[s]:
        self.best_loss[s], self.best_epoch[s], self.bad_epochs[s] = float(loss), epoch, 0
        improved[s] = True
      else:
        self.bad_epochs[s] += 1
        self.stopped[s] = self.patience > 0 and self.bad_epochs[s] >= self.patience
    return improved

  @property
  def all_stopped(self) -> bool:
    return all(self.stopped)


@dataclasses.dataclass
class FitResult:
  state: TrainState
  best_params: Any
  best_batch_stats: Any
  stopping: EarlyStopping
  history: list[dict]


def fit(engine: Engine, state: TrainState, train: Batches, val: EvalSet, keys_S, *,
        max_epochs: int, patience: int, start_epoch: int = 0, best=None,
        stopping: EarlyStopping | None = None, history: list[dict] | None = None,
        metrics_path: Path | None = None, on_epoch_end: Callable | None = None,
        label: str = "train", seeds: list[int] | None = None, progress: bool = True) -> FitResult:
  """Trains every seed until it stops early or max_epochs; keeps each seed's best.

  start_epoch / best / stopping / history resume an interrupted run. on_epoch_end
  (epoch, state, best, stopping, history) is called after each epoch (checkpoints).
  """
  num_seeds = len(keys_S)
  seeds = seeds or list(range(num_seeds))
  stopping = stopping or EarlyStopping.create(patience, num_seeds)
  history = list(history or [])
  if best is None:
    best = jax.tree.map(jnp.copy, (state.params, state.batch_stats))
  epoch_keys = fold_in_S(keys_S, 1)
  bar = Progress(max_epochs, label) if progress else None
  start = time.monotonic()
  for epoch in range(start_epoch, max_epochs):
    if stopping.all_stopped:
      break
    keys = fold_in_S(epoch_keys, epoch)
    # seeds stopped early train no more (their best is kept); on CPU, one seed per
    # call, their epochs and validation passes are skipped altogether
    active = ~np.array(stopping.stopped)
    state, train_loss = engine.epoch(state, train.x_NxWx3, train.y_N, train.index_SxC,
                                     train.n_valid, keys, active)
    val_loss, val_acc = engine.evaluate(state.params, state.batch_stats, val, active)
    train_loss = devices.to_host(train_loss)
    bad = np.flatnonzero(active & (~np.isfinite(train_loss) | ~np.isfinite(val_loss)))
    if bad.size:
      raise FloatingPointError(f"{label}: loss is NaN/inf for seed(s) {[seeds[s] for s in bad]} "
                               f"at epoch {epoch}")
    improved = stopping.update(epoch, val_loss)
    if improved.any():
      best = engine.keep_best(best, state, improved)
    rows = [{"phase": label, "epoch": epoch, "seed": seeds[s], "train_loss": float(train_loss[s]),
             "val_loss": float(val_loss[s]), "val_accuracy": float(val_acc[s]),
             "best": bool(improved[s])} for s in range(num_seeds) if active[s]]
    history.extend(rows)
    if metrics_path is not None and is_primary():
      with open(metrics_path, "a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    if on_epoch_end is not None:
      on_epoch_end(epoch, state, best, stopping, history)
    if bar:
      bar.update(epoch + 1, f"val loss {np.mean(val_loss[active]):.3f} "
                            f"acc {np.mean(val_acc[active]):.3f}")
  if bar and bar.done < bar.total:
    bar.update(bar.total, f"stopped early at epochs {stopping.epochs}")
  logging.info("%s: %d epochs in %.1f s", label, max(stopping.epochs), time.monotonic() - start)
  return FitResult(state, best[0], best[1], stopping, history)

