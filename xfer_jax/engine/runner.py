"""Seed-batched, compiled programs made from step.py's single-seed functions.

Every per-seed program is declared once, as a single-seed function and the role of
each argument and output: per seed (a leading seed axis) or shared by the seeds,
and donated or not. vmap's axes, shard_map's partition specs and jit's donation
all follow from that declaration (`Program`).

How the programs run is a strategy of `Settings` (config.runtime), never part of
the step, and never a change to the numbers:
- seed chunks: how many seeds one vmapped call trains (on one CPU device, one:
  XLA:CPU runs the seed-batched convolutions as grouped convolutions, several
  times slower per window; docs/performance.md#one-seed-per-call-on-cpu); a fit
  splits its state into the chunks once (`PerSeed`) rather than every epoch;
- the device mesh: a chunk's seeds spread over devices with shard_map (devices.py);
- the epoch loop: "host" calls the compiled batch step once per batch (CPU's
  default: XLA:CPU runs a loop body slower than the same step compiled alone,
  docs/performance.md#host-driven-epochs-on-cpu), "device" runs the whole epoch in
  one call (GPU/TPU).

Data: a training set sits on the device once (`Batches`), padded to a capacity so
that sets of different sizes (a sweep's adaptation sizes) share one compilation;
the batch loop's trip count is the real rows' batch count. A set smaller than a
batch is one batch padded to a power of two: the same numbers as a padded full
batch at a fraction of its cost.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping

import flax
import jax
import jax.numpy as jnp
import numpy as np

from xfer_jax.engine import devices, executables
from xfer_jax.engine.step import Step, TrainState, epoch_order

SMALLEST_BATCH = 8  # rows of the smallest batch: it still splits over 2, 4 or 8 batch_devices
# a dataset's rows on the device are padded to a multiple of this: the batch step
# gathers its rows by index, so the padding changes no number, and every dataset up
# to this many windows (every real dataset here, the largest source included) gives
# the batch step one shape and one program; the price is device memory alone (39 MB
# per dataset of 4 s windows at 25 Hz)
ROW_BUCKET = 32768
# a training set's capacity (the positions an epoch shuffles) is padded to a multiple
# of this: the epoch's order puts real rows first whatever follows them, so sets of
# different sizes share the epoch's shuffle program, and the shuffle (a sort of this
# many positions per seed and epoch) stays cheap
CAPACITY_BUCKET = 4096


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


@flax.struct.dataclass
class Batches:
  """Rows of a dataset on the device: x[index[s, :n_valid]] are seed s's rows."""

  x_NxWx3: jax.Array
  y_N: jax.Array
  # per-seed row indices, padded to the capacity C (fit keeps them in chunks: PerSeed)
  index_SxC: jax.Array
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
    else:  # in buckets of rows: training sets of every dataset share the step's shape
      capacity = _round_up(_round_up(max(capacity or n, n, batch_size), CAPACITY_BUCKET),
                           batch_size)
    padded = np.zeros((index_Sxn.shape[0], capacity), np.int32)
    padded[:, :n] = index_Sxn
    rows = _round_up(max(len(y), 1), ROW_BUCKET)
    x_pad = np.zeros((rows, *np.shape(x)[1:]), np.asarray(x).dtype)
    x_pad[:len(y)] = x
    y_pad = np.zeros(rows, np.int32)
    y_pad[:len(y)] = y
    return cls(jnp.asarray(x_pad), jnp.asarray(y_pad), jnp.asarray(padded), n)


TAIL_ROWS = 64  # an evaluation set's last chunk is padded to a multiple of this


def chunk_rows(n: int, batch_size: int) -> list[int]:
  """Rows of each chunk of an n-window EvalSet: whole batches, then the rest padded
  to a multiple of TAIL_ROWS (one chunk of padding when n is 0)."""
  full, rest = divmod(n, batch_size)
  tail = [min(batch_size, _round_up(max(rest, 1), TAIL_ROWS))] if rest or not n else []
  return [batch_size] * full + tail


@flax.struct.dataclass
class EvalSet:
  """A split on the device in chunks of the evaluation batch, the last one padded
  only to a multiple of TAIL_ROWS; masks mark real rows. Cut on the host once, so
  that evaluating it every epoch needs no slicing programs (each slice start would
  be one more compilation).

  Why a short last chunk: padded to a whole batch, HMP's 582 validation windows
  were 1 024 rows at the default 512 (a validation pass is most of a small cell);
  the price is one evaluation program per distinct tail, which the persistent
  compilation cache keeps (docs/performance.md#evaluation-chunks)."""

  chunks: tuple  # ((x_BxWx3, y_B, mask_B), ...)
  n: int = flax.struct.field(pytree_node=False)
  # per-seed rows (S, B) per chunk: seed s scores only its rows (a validation set
  # drawn from each seed's own labelled windows); None: every seed every row
  seed_masks: tuple | None = None
  rows_S: np.ndarray | None = flax.struct.field(pytree_node=False, default=None)

  @classmethod
  def create(cls, x, y, batch_size: int, mask_SxN=None):
    """mask_SxN (optional, host bools): which of the n rows each seed scores."""
    n = len(y)
    x, y = np.asarray(x), np.asarray(y, np.int32)
    chunks, masks, start = [], [], 0
    for size in chunk_rows(n, batch_size):
      real = min(size, n - start)
      xp = np.zeros((size, *x.shape[1:]), x.dtype)
      xp[:real] = x[start:start + real]
      yp = np.zeros(size, np.int32)
      yp[:real] = y[start:start + real]
      chunks.append((jnp.asarray(xp), jnp.asarray(yp), jnp.asarray(np.arange(size) < real)))
      if mask_SxN is not None:
        mp = np.zeros((len(mask_SxN), size), bool)
        mp[:, :real] = np.asarray(mask_SxN)[:, start:start + real]
        masks.append(jnp.asarray(mp))
      start += size
    if mask_SxN is None:
      return cls(tuple(chunks), n)
    return cls(tuple(chunks), n, tuple(masks), np.asarray(mask_SxN).sum(1))


# -- run settings (config.runtime), resolved once ----------------------------------------

EPOCH_LOOPS = ("host", "device")


CONVS = ("xla", "unfold")


@dataclasses.dataclass(frozen=True)
class Settings:
  """config.runtime with every "auto" resolved for this process's devices. Changes
  how a run executes, never what it computes (the equivalence tests hold each to
  that); conv and cpu_llvm_level can change how it rounds."""

  epoch_loop: str  # "host" or "device"
  seed_chunk: int  # seeds per vmapped call; 0 = all
  devices: tuple
  batch_devices: int
  eval_batch_size: int
  checkpoint_every: int  # epochs; 0 = no epoch bound
  checkpoint_every_s: float  # seconds of training a kill may lose; 0 = no time bound
  conv: str = "xla"  # how the model's convolutions run (models/multiresnet.py)
  tensorboard: bool = True  # training curves beside metrics.jsonl (engine/tensorboard.py)
  cpu_llvm_level: int = 1  # LLVM's level for the hot programs on CPU (_options)

  @classmethod
  def resolve(cls, runtime: Mapping, device_list=None) -> Settings:
    all_devices = tuple(device_list or jax.devices())
    chosen = all_devices[:runtime["num_devices"] or None]
    cpu = chosen[0].platform == "cpu"
    loop = runtime["epoch_loop"]
    if loop == "auto":
      loop = "host" if cpu else "device"
    if loop not in EPOCH_LOOPS:
      raise ValueError(f"config.runtime.epoch_loop={loop!r}: expected 'auto', 'host' or 'device'")
    batch_devices = runtime["batch_devices"]
    devices.mesh_for(1, chosen, batch_devices)  # checks batch_devices against the devices
    if runtime["eval_batch_size"] < 1:
      raise ValueError(f"config.runtime.eval_batch_size={runtime['eval_batch_size']}: expected "
                       "a positive number")
    for name in ("checkpoint_every", "checkpoint_every_s"):
      if runtime[name] < 0:
        raise ValueError(f"config.runtime.{name}={runtime[name]}: expected 0 (no bound) or a "
                         "positive number")
    if runtime["eval_batch_size"] % batch_devices:
      raise ValueError(f"config.runtime.eval_batch_size={runtime['eval_batch_size']} does not "
                       f"split over batch_devices={batch_devices}: expected a multiple of it")
    chunk = runtime["seed_chunk"]
    if chunk < 0:
      raise ValueError(f"config.runtime.seed_chunk={chunk}: expected 0 (auto) or a positive "
                       "chunk size")
    if chunk == 0 and cpu and len(chosen) == batch_devices:
      chunk = 1  # one CPU device: one seed per call (see the module docstring)
    conv = runtime.get("conv", "xla")
    if conv not in CONVS:
      raise ValueError(f"config.runtime.conv={conv!r}: expected one of {CONVS}")
    level = runtime.get("cpu_llvm_level", 1)
    if level not in (0, 1, 2, 3):
      raise ValueError(f"config.runtime.cpu_llvm_level={level!r}: expected 0, 1, 2 or 3")
    return cls(loop, chunk, chosen, batch_devices, runtime["eval_batch_size"],
               runtime["checkpoint_every"], float(runtime["checkpoint_every_s"]), conv,
               bool(runtime.get("tensorboard", True)), level)


# -- programs: a single-seed function and the role of each argument, declared once -------

@dataclasses.dataclass(frozen=True)
class Arg:
  seeded: bool  # a leading seed axis (vmapped, split over the mesh's seed axis)
  donated: bool = False  # its buffer is reused for the output


SEEDED, SHARED = Arg(True), Arg(False)
SEEDED_DONATED, SHARED_DONATED = Arg(True, True), Arg(False, True)


@dataclasses.dataclass(frozen=True)
class Program:
  """fn over one seed; args: the role of each argument; outs: of each output (one
  Arg where fn returns a single value)."""

  fn: Callable
  args: tuple[Arg, ...]
  outs: tuple[Arg, ...] | Arg
  run_once: bool = False  # compiled without LLVM optimisation on CPU (see compile)
  # trains: reads the optimiser or a training pass (else the same for every optimiser
  # and frozen batch norm: Runner.model_identity)
  trains: bool = False

  def compile(self, mesh, cpu: bool, level: int = 1):
    """jit(shard_map(vmap(fn))) for a mesh (None: one device, no shard_map)."""
    each = lambda f, args: f(args) if isinstance(args, Arg) else tuple(map(f, args))
    axis = lambda a: 0 if a.seeded else None
    fn = jax.vmap(self.fn, in_axes=each(axis, self.args), out_axes=each(axis, self.outs))
    if mesh is not None:
      spec = lambda a: devices.SEEDED if a.seeded else devices.REPLICATED
      # check_vma=False: the programs use no collective over seeds, and the check
      # rejects the one-call epoch's loop, whose carried loss sum starts as a
      # constant (the same on every device) and becomes per seed
      fn = jax.shard_map(fn, mesh=mesh, in_specs=each(spec, self.args),
                         out_specs=each(spec, self.outs), axis_names={devices.SEED},
                         check_vma=False)
    donate = tuple(i for i, a in enumerate(self.args) if a.donated)
    return jax.jit(fn, donate_argnums=donate, compiler_options=_options(cpu, self.run_once, level))


def _options(cpu: bool, run_once: bool, level: int = 1):
  """XLA:CPU spends most of a compile in LLVM (docs/performance.md#compile-time):
  programs run once per run or per epoch compile without its optimisation, cheap to
  run either way; the hot ones (batch step, evaluation) at `level`
  (config.runtime.cpu_llvm_level): the first runs them as fast as the default third
  and compiles in less time."""
  if not cpu:
    return None
  return {"xla_backend_optimization_level": 0 if run_once else level}


def _batch(x_NxWx3, y_N, rows_B, i, n_valid):
  """Batch i of an epoch: rows_B of the data, rows past n_valid in the epoch masked,
  marked as split over the mesh's batch devices."""
  rows = rows_B.shape[0]
  mask = (i * rows + jnp.arange(rows)) < n_valid
  return devices.split_batch((x_NxWx3[rows_B], y_N[rows_B], mask))


class Runner:
  """Seed-batched init / epoch / evaluate / predict of one Step.

  Build one per (step, batch size, settings): every training set and seed count
  that matches shapes reuses its compilations. Within an epoch only the per-seed
  losses are new on the host side: data, shuffles, the batch counter and n_valid
  live on the device (checked under jax.transfer_guard in the tests)."""

  def __init__(self, step: Step, *, batch_size: int, settings: Settings,
               identity: str | None = None, model_identity: str | None = None):
    """identity: a description of everything that built `step` (programs.py's runner
    key); given, on one device, the programs' executables are stored on disk and a
    fresh process loads them instead of tracing (executables.py). model_identity:
    the same without the optimiser and the frozen batch norms, for the programs that
    do not train, so that runners that differ only there (a grid's frozen
    partitions) load them rather than trace them."""
    self.step, self.batch_size, self.settings = step, batch_size, settings
    one_device = len(settings.devices) == 1
    self.identity = identity if one_device else None
    self.model_identity = model_identity if one_device else None
    if batch_size % settings.batch_devices:
      raise ValueError(f"batch_size={batch_size} does not split over "
                       f"batch_devices={settings.batch_devices}: expected a multiple of it")
    self._cpu = settings.devices[0].platform == "cpu"
    self.programs = {
        # init holds the model only (no optimiser), so runners that differ only in
        # what they freeze share its compilation through the persistent cache
        "init_variables": Program(step.init_variables, (SEEDED,), (SEEDED, SEEDED), True),
        "init_opt_state": Program(step.tx.init, (SEEDED,), SEEDED, True, trains=True),
        "epoch_start": Program(self._epoch_start, (SEEDED, SHARED, SEEDED),
                               (SEEDED, SEEDED, SHARED), True),
        # the batch's rows are cut from the epoch's order in a program of their own,
        # so that the step's shape does not follow a training set's capacity
        "cut_batch": Program(lambda rows_KxB, i: rows_KxB[i], (SEEDED, SHARED), SEEDED),
        "host_step": Program(self._host_step, (SEEDED_DONATED, SHARED, SHARED, SEEDED,
                                               SHARED_DONATED, SHARED, SEEDED, SEEDED_DONATED),
                             (SEEDED, SEEDED, SHARED), trains=True),
        "device_epoch": Program(self._device_epoch, (SEEDED_DONATED, SHARED, SHARED, SEEDED,
                                                     SHARED, SEEDED), (SEEDED, SEEDED),
                                trains=True),
        # one program for any evaluation set: fixed-size chunks driven from the host
        "eval_chunk": Program(lambda p, s, *batch: step.eval_step(p, s, batch),
                              (SEEDED, SEEDED, SHARED, SHARED, SHARED), (SEEDED,) * 3),
        # the same with a row mask per seed (EvalSet.seed_masks)
        "eval_chunk_per_seed": Program(lambda p, s, *batch: step.eval_step(p, s, batch),
                                       (SEEDED, SEEDED, SHARED, SHARED, SEEDED), (SEEDED,) * 3),
    }
    self._compiled = {}
    once = _options(self._cpu, run_once=True)
    # what these compute follows from their arguments alone
    helper = None if self.identity is None else "runner helpers"
    self._mean = executables.stored(jax.jit(jnp.divide, compiler_options=once), "mean", helper)
    self._keep_best = executables.stored(jax.jit(_keep_best, compiler_options=once), "keep_best",
                                         helper)

  def program(self, name: str, mesh=None):
    """The compiled program `name` for a mesh (None: one device)."""
    if (name, mesh) not in self._compiled:
      if mesh is not None:
        logging.info("%s: seeds over %d device(s), each seed's batch over %d", name,
                     mesh.shape[devices.SEED], mesh.shape[devices.BATCH])
      program = self.programs[name]
      compiled = program.compile(mesh, self._cpu, self.settings.cpu_llvm_level)
      self._compiled[name, mesh] = compiled if mesh is not None else executables.stored(
          compiled, name, self.identity if program.trains else self.model_identity)
    return self._compiled[name, mesh]

  # -- single-seed epoch pieces (vmapped by their Program) ------------------------------

  def batch_rows(self, capacity: int) -> int:
    return min(self.batch_size, capacity)

  def _epoch_start(self, index_C, n_valid, key):
    """(rows of every batch, zero loss sum, batch counter 0) of a host-driven epoch."""
    rows = epoch_order(index_C, n_valid, key, self.batch_rows(index_C.shape[0]))
    return rows, jnp.zeros(()), jnp.zeros((), jnp.int32)

  def _host_step(self, state, x_NxWx3, y_N, rows_B, i, n_valid, key, loss_sum):
    batch = _batch(x_NxWx3, y_N, rows_B, i, n_valid)
    state, loss = self.step.train_step(state, batch, key, i)
    return state, loss_sum + loss * jnp.sum(batch[2]), i + 1

  def _device_epoch(self, state, x_NxWx3, y_N, index_C, n_valid, key):
    """One pass over the seed's rows index_C[:n_valid] in one call; mean train loss."""
    rows_KxB = epoch_order(index_C, n_valid, key, self.batch_rows(index_C.shape[0]))
    num_batches = (n_valid + rows_KxB.shape[1] - 1) // rows_KxB.shape[1]

    def body(i, carry):
      state, loss_sum, _ = self._host_step(carry[0], x_NxWx3, y_N, rows_KxB[i], i, n_valid,
                                           key, carry[1])
      return state, loss_sum

    state, loss_sum = jax.lax.fori_loop(0, num_batches, body, (state, jnp.zeros(())))
    return state, loss_sum / n_valid

  # -- seeds in chunks, each chunk on its mesh ------------------------------------------

  def seed_slices(self, num_seeds: int) -> tuple[tuple[int, int], ...]:
    """(start, stop) of each chunk of seeds that one vmapped call trains: equal
    chunks of the largest size up to seed_chunk that divides num_seeds."""
    limit = min(self.settings.seed_chunk or num_seeds, num_seeds)
    chunk = max(c for c in range(1, limit + 1) if num_seeds % c == 0)
    return tuple((a, a + chunk) for a in range(0, num_seeds, chunk))

  def mesh(self, num_seeds: int):
    """The device mesh of one call of num_seeds seeds (None: one device)."""
    return devices.mesh_for(num_seeds, self.settings.devices, self.settings.batch_devices)

  def chunk_mesh(self, num_seeds: int):
    return self.mesh(self.seed_slices(num_seeds)[0][1])

  def place(self, tree, num_seeds: int):
    """Shared data (a training set's windows, an EvalSet) on every device of the
    mesh that num_seeds seeds run on, copied once rather than every epoch."""
    return devices.replicated(self.chunk_mesh(num_seeds), tree)

  def chunked(self, tree, num_seeds: int) -> PerSeed:
    """A per-seed tree as one part per seed chunk (a PerSeed is returned as it is).

    Split on the host, without a program: the split runs once per fit (its state
    then stays in chunks from epoch to epoch), and a program would be one more
    compilation per state's tree, which differs with every optimiser partition of
    a grid (docs/performance.md#compile-time)."""
    if isinstance(tree, PerSeed):
      return tree
    slices = self.seed_slices(num_seeds)
    if len(slices) == 1:
      return PerSeed(slices, [tree])
    leaves, treedef = jax.tree.flatten(tree)
    columns = [_split_leaf(leaf, slices) for leaf in leaves]
    return PerSeed(slices, [treedef.unflatten([c[i] for c in columns])
                            for i in range(len(slices))])

  def place_batches(self, train: Batches, num_seeds: int) -> Batches:
    """A training set as fit trains on it: its windows placed on the mesh once, its
    per-seed rows in seed chunks."""
    return train.replace(x_NxWx3=self.place(train.x_NxWx3, num_seeds),
                         y_N=self.place(train.y_N, num_seeds),
                         index_SxC=self.chunked(train.index_SxC, num_seeds))

  def _per_chunk(self, fn, num_seeds: int, seeded: tuple, shared: tuple, active_S=None):
    """fn(mesh, *seeded_chunk, *shared) per seed chunk (each seeded value a per-seed
    tree or its PerSeed). active_S (host bools per seed): a chunk with no active
    seed is not run, and None stands for its outputs (see epoch). Returns (slices,
    the seeded parts as placed on the mesh, outputs)."""
    chunked = [self.chunked(tree, num_seeds) for tree in seeded]
    slices = chunked[0].slices
    parts = list(zip(*(c.parts for c in chunked)))
    mesh = self.mesh(slices[0][1] - slices[0][0])  # chunks are equal: one mesh
    shared = devices.replicated(mesh, shared)  # a no-op for data placed already
    placed, outs = [], []
    for (a0, a1), part in zip(slices, parts):
      part = devices.seeded(mesh, part)
      run = active_S is None or np.any(active_S[a0:a1])
      outs.append(fn(mesh, *part, *shared) if run else None)
      placed.append(part)
    return slices, placed, outs

  # -- the seed-batched operations ------------------------------------------------------

  def init(self, keys_S) -> TrainState:
    """Fresh parameters of every seed: seed s's from fold_in(keys_S[s], 0)."""
    params, batch_stats = self.program("init_variables")(_fold_in_S(keys_S, _int(0)))
    return TrainState(params, batch_stats, self.init_opt_state(params))

  def init_opt_state(self, params_S):
    return self.program("init_opt_state")(params_S)

  def abstract_state(self, num_seeds: int) -> TrainState:
    keys = jax.eval_shape(lambda: jax.random.split(jax.random.key(0), num_seeds))
    return jax.eval_shape(jax.vmap(self.step.init), keys)

  def epoch_keys(self, keys_S, epoch: int):
    """Every seed's epoch_key (step.py) of this epoch (in chunks where keys_S is)."""
    fold = lambda keys: _fold_in_S(_fold_in_S(keys, _int(1)), _int(epoch))
    return keys_S.map(fold) if isinstance(keys_S, PerSeed) else fold(keys_S)

  def epoch(self, state: TrainState | PerSeed, train: Batches, keys_S, active_S=None):
    """Trains every seed for one epoch on its rows of `train`, with its epoch key;
    returns (state, mean train loss per seed, still on the device: PerSeed). The
    state comes back as it was given: whole, or in chunks (PerSeed, as fit keeps it).

    active_S (host bools per seed, optional): a chunk of seeds none of which is
    active (stopped early) is skipped: its state stays, its losses are NaN. With
    one seed per chunk (CPU) stopped seeds then cost nothing; vmapped seeds run on."""
    num_seeds = num_seeds_of(keys_S)
    index = self.chunked(train.index_SxC, num_seeds)
    rows = self.batch_rows(index.parts[0].shape[1])
    if rows % self.settings.batch_devices:
      raise ValueError(f"a training set of {train.n_valid} windows trains in batches of {rows} "
                       f"rows, which do not split over batch_devices="
                       f"{self.settings.batch_devices}: expected a batch_devices that divides it")
    run = self._host_epoch if self.settings.epoch_loop == "host" else self._one_call_epoch
    slices, parts, outs = self._per_chunk(
        lambda mesh, state, index, keys, x, y: run(mesh, state, x, y, index, train.n_valid, keys),
        num_seeds, (state, index, keys_S), (train.x_NxWx3, train.y_N), active_S)
    # a skipped chunk keeps its state as it was
    outs = [(part[0], None) if out is None else out for part, out in zip(parts, outs)]
    trained = PerSeed(slices, [o[0] for o in outs])
    # the losses are fetched later: the host dispatches the validation pass while
    # the device trains
    return (trained if isinstance(state, PerSeed) else trained.whole(),
            PerSeed(slices, [o[1] for o in outs]))

  def _host_epoch(self, mesh, state, x_NxWx3, y_N, index_SxC, n_valid: int, keys_S):
    n_valid_dev = devices.replicated(mesh, np.int32(n_valid))  # once per epoch
    rows_SxKxB, loss_sum_S, i = self.program("epoch_start", mesh)(index_SxC, n_valid_dev, keys_S)
    step, cut = self.program("host_step", mesh), self.program("cut_batch", mesh)
    for _ in range(-(-n_valid // self.batch_rows(index_SxC.shape[1]))):
      state, loss_sum_S, i = step(state, x_NxWx3, y_N, cut(rows_SxKxB, i), i,
                                  n_valid_dev, keys_S, loss_sum_S)
    return state, self._mean(loss_sum_S, n_valid_dev)

  def _one_call_epoch(self, mesh, state, x_NxWx3, y_N, index_SxC, n_valid: int, keys_S):
    n_valid_dev = devices.replicated(mesh, np.int32(n_valid))
    return self.program("device_epoch", mesh)(state, x_NxWx3, y_N, index_SxC, n_valid_dev, keys_S)

  def keep_best(self, best: tuple, state: TrainState | PerSeed, improved_S: np.ndarray):
    """(params, batch stats) per seed: state's where improved_S, else best's; in
    chunks (a PerSeed of pairs) where state is."""
    num_seeds = len(improved_S)
    mesh = self.chunk_mesh(num_seeds)
    best, chunks = self.chunked(best, num_seeds), self.chunked(state, num_seeds)
    kept = PerSeed(best.slices, [
        self._keep_best(devices.seeded(mesh, b), s, devices.replicated(mesh, improved_S[a0:a1]))
        if improved_S[a0:a1].any() else b
        for (a0, a1), b, s in zip(best.slices, best.parts, chunks.parts)])
    return kept if isinstance(state, PerSeed) else kept.whole()

  def _eval_rows(self, mesh, params_S, stats_S, data: EvalSet, seed_masks=None):
    """(summed cross-entropy, correct count, predictions (S, rows)) over an EvalSet of
    any size, by the one compiled program of eval_batch_size rows (seed_masks: the
    part of data.seed_masks of these seeds)."""
    if seed_masks is None:
      program = self.program("eval_chunk", mesh)
      chunks = [program(params_S, stats_S, *chunk) for chunk in data.chunks]
    else:
      program = self.program("eval_chunk_per_seed", mesh)
      chunks = [program(params_S, stats_S, x, y, mask)
                for (x, y, _), mask in zip(data.chunks, seed_masks)]
    ce, correct, predictions = zip(*chunks)
    return sum(ce[1:], ce[0]), sum(correct[1:], correct[0]), jnp.concatenate(predictions, 1)

  def evaluate(self, params_S, stats_S, data: EvalSet, active_S=None):
    """Per seed: mean cross-entropy and accuracy over the real rows (numpy), or over
    each seed's own rows where data has seed masks; NaN for seeds whose chunk
    active_S skips (see epoch). params_S, stats_S and data.seed_masks: whole or in
    chunks (PerSeed)."""
    num_seeds = num_seeds_of(params_S)
    if data.seed_masks is None:
      slices, _, outs = self._per_chunk(
          lambda mesh, p, s, d: self._eval_rows(mesh, p, s, d)[:2], num_seeds,
          (params_S, stats_S), (data,), active_S)
    else:
      slices, _, outs = self._per_chunk(
          lambda mesh, p, s, masks, d: self._eval_rows(mesh, p, s, d, masks)[:2],
          # the masks go per seed chunk; the rest of the set is shared
          num_seeds, (params_S, stats_S, data.seed_masks), (data.replace(seed_masks=None),),
          active_S)
    ce = PerSeed(slices, [None if o is None else o[0] for o in outs]).numpy()
    correct = PerSeed(slices, [None if o is None else o[1] for o in outs]).numpy()
    rows = data.n if data.rows_S is None else data.rows_S
    return ce / rows, correct / rows

  def predict(self, params_S, stats_S, data: EvalSet) -> np.ndarray:
    """Predicted classes (S, n) of the real rows."""
    slices, _, outs = self._per_chunk(self._eval_rows, num_seeds_of(params_S),
                                      (params_S, stats_S), (data,))
    return devices.to_host(PerSeed(slices, [o[2] for o in outs]).whole())[:, :data.n]

  def lowered_train_step(self, num_seeds: int = 1):
    """The one-device batch step, lowered for abstract arguments (its FLOPs: benchmark)."""
    rows = self.batch_size
    shape = jax.ShapeDtypeStruct
    keys = jax.eval_shape(lambda: jax.random.split(jax.random.key(0), num_seeds))
    return self.program("host_step").lower(
        self.abstract_state(num_seeds), shape((rows, *self.step.window_shape), jnp.float32),
        shape((rows,), jnp.int32), shape((num_seeds, rows), jnp.int32),
        shape((), jnp.int32), shape((), jnp.int32), keys, shape((num_seeds,), jnp.float32))


_fold_in_S = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)))  # one for every runner


def _int(value: int):
  """A host integer sent to the device explicitly (jax.transfer_guard allows it)."""
  return jax.device_put(np.int32(value))


@dataclasses.dataclass(frozen=True)
class PerSeed:
  """A value per seed (an array or a pytree with a leading seed axis) still on the
  device, one part per seed chunk (None: the chunk did not run)."""

  slices: tuple
  parts: list

  def map(self, fn) -> PerSeed:
    """fn of every part (e.g. a TrainState's params)."""
    return PerSeed(self.slices, [fn(p) for p in self.parts])

  def whole(self):
    """The parts joined on the seed axis, on the default device. Joined on the
    host, like Runner.chunked splits: a fit joins its state once, at its end."""
    if len(self.parts) == 1:
      return self.parts[0]
    leaves = [jax.tree.leaves(p) for p in self.parts]
    return jax.tree.unflatten(jax.tree.structure(self.parts[0]),
                              [_join_leaf(column) for column in zip(*leaves)])

  def numpy(self) -> np.ndarray:
    """The values on the host, NaN for seeds whose chunk did not run."""
    parts = [None if p is None else devices.to_host(p) for p in self.parts]
    dtype = next((p.dtype for p in parts if p is not None), np.float32)
    out = np.full(self.slices[-1][1], np.nan, dtype)
    for (a0, a1), part in zip(self.slices, parts):
      if part is not None:
        out[a0:a1] = part
    return out


def num_seeds_of(tree) -> int:
  """The length of the leading (seed) axis of a per-seed pytree or its PerSeed."""
  if isinstance(tree, PerSeed):
    return tree.slices[-1][1]
  return len(jax.tree.leaves(tree)[0])


def _is_key(leaf) -> bool:
  return jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _split_leaf(leaf, slices) -> list:
  if _is_key(leaf):  # a few keys, which have no host form: sliced on the device
    return [jax.lax.slice_in_dim(leaf, a0, a1) for a0, a1 in slices]
  host = devices.to_host(leaf)
  return [jax.device_put(host[a0:a1]) for a0, a1 in slices]


def _join_leaf(chunks) -> jax.Array:
  if _is_key(chunks[0]):
    return jnp.concatenate(chunks)
  return jax.device_put(np.concatenate([devices.to_host(c) for c in chunks]))


def _keep_best(best: tuple, state: TrainState, improved_S):
  """Per seed: the current params and batch stats where improved, else the kept ones."""
  pick = lambda b, c: jnp.where(improved_S.reshape((-1,) + (1,) * (c.ndim - 1)), c, b)
  return (jax.tree.map(pick, best[0], state.params), jax.tree.map(pick, best[1], state.batch_stats))

