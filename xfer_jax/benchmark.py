"""Training and evaluation speed of a config's model against the machine's matmul rate.

  python -m launch.benchmark [--config=configs/paper.py] [--seeds=8[,64...]] [--steps=8]
      [--repeats=3] [--json]
      [--profile_dir=DIR]   # also profile each training row (jax.profiler traces)
      [--cell_size=1600 --cell_epochs=70]   # also time one adaptation cell
      [--objectives]   # also one seed's pretraining rate under each self-supervised objective

All in one process, so ratios hold on a noisy machine:
- the float32 matmul rate of a large jnp.dot (the machine's practical peak);
- FLOPs per training window, from XLA's cost analysis of the compiled batch step;
- train windows/s (seed-windows: S seeds x windows per second; the best of
  --repeats timed epochs, as the matmul rate is the best of its repeats, with
  the median beside it) for 1 seed and for
  each S of --seeds, through Runner.epoch with the runner's seed chunks (on CPU
  one seed per call), and for S seeds in one vmapped call; each against one seed
  (vs_1_seed >= 1: S seeds together cost no more per seed-window); achieved
  GFLOP/s and the ratio to the matmul rate;
- time to the first epoch (compilation), programs compiled in the timed epoch
  (must be 0), and whether the timed epoch passes jax.transfer_guard("disallow")
  (no implicit host<->device copies: data stay on the device);
- evaluation windows/s per seed (Runner.predict of the first seed count), and optionally one adaptation cell:
  cell_size windows, seeds together, early stopping or cell_epochs, against the
  same cell run as single-seed runs one after another, and the cell as
  launch.adapt runs it (user_cell_*: a workdir with metrics and checkpoints, the
  test pass; seed-epochs per second);
- with --objectives, one seed's training windows/s under each self-supervised
  objective (xfer_jax/pretext/objectives.py) beside the supervised step (simclr
  runs two views of every window: twice the rows);
- with --profile_dir, one more epoch of each training row under jax.profiler
  (outside the timing): the trace in profile_dir, and its op families' shares
  in the row's "profile" (xfer_jax/profiling.py).
Also whether freed host memory is reused (xfer_jax.runtime.reuse_freed_host_memory,
which the launchers apply). Data are random windows; the numbers measure cost,
not accuracy.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from xfer_jax import console, experiment
from xfer_jax.data import Prepared, Split, window_samples
from xfer_jax.engine import programs
from xfer_jax.engine.loop import FitState, fit
from xfer_jax.engine.runner import Batches, EvalSet
from xfer_jax.engine.runtime import CompileCounter
from xfer_jax.engine.step import seed_keys
from xfer_jax.pretext import objectives, sources
from xfer_jax.profiling import op_family_times

NUM_CLASSES = 10


def matmul_gflops(n: int | None = None, repeats: int = 5) -> float:
  """float32 GFLOP/s of an n x n jnp.dot at JAX's default precision (what the model's
  convolutions use: TF32 on recent NVIDIA GPUs), best of `repeats`. n = 2048 on
  CPU; 8192 elsewhere, where a smaller product does not fill the chip."""
  n = n or (2048 if jax.default_backend() == "cpu" else 8192)
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  dot = jax.jit(jnp.dot)
  jax.block_until_ready(dot(a, a))
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(dot(a, a))
    best = min(best, time.perf_counter() - start)
  return 2 * n ** 3 / best / 1e9


def _runner(config, num_seeds: int, seed_chunk: int, objective: str = sources.SUPERVISED):
  config = config.copy_and_resolve_references()
  config.train.num_seeds = num_seeds
  config.runtime.seed_chunk = seed_chunk
  if objective == sources.SUPERVISED:
    return programs.build_runner(config, NUM_CLASSES), config
  built = objectives.build(objective, config.pretext, window_samples(config.data),
                           config.data.rate_hz)
  return programs.build_runner(config, built.num_outputs, objective=built), config


def _random_windows(config, n: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, window_samples(config.data), 3)).astype(np.float32)
  return x, rng.integers(0, NUM_CLASSES, n)


def flops_per_window(config) -> float:
  """XLA's FLOP count of one seed's batch step, per window, from the lowered
  (unoptimised, backend-independent) program: on GPU the compiled program's
  convolutions are cuDNN calls that XLA's cost analysis counts as 0 FLOPs."""
  runner, config = _runner(config, 1, 1)
  lowered = runner.lowered_train_step()
  cost = lowered.cost_analysis() or lowered.compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost["flops"]) / config.train.batch_size


def measure_training(config, num_seeds: int, seed_chunk: int, steps: int,
                     profile_dir: Path | None = None, repeats: int = 1,
                     objective: str = sources.SUPERVISED) -> dict:
  """Windows/s of Runner.epoch: one warm-up epoch (compiles), `repeats` timed epochs
  (the first under transfer_guard; rates from the fastest), and with profile_dir
  one profiled epoch."""
  runner, config = _runner(config, num_seeds, seed_chunk, objective)
  batch = config.train.batch_size
  x, y = _random_windows(config, batch * steps)
  # the training set, keys and state in seed chunks, as fit keeps them
  data = runner.place_batches(Batches.create(x, y, num_seeds, batch), num_seeds)
  keys = seed_keys(0, num_seeds)
  start = time.perf_counter()
  state = runner.chunked(runner.init(keys), num_seeds)
  keys = runner.chunked(keys, num_seeds)
  state, loss = runner.epoch(state, data, keys)
  loss.numpy()  # waits for the epoch
  first_epoch_s = time.perf_counter() - start
  guard = "ok"

  def timed_epoch(state):
    start = time.perf_counter()
    state, loss = runner.epoch(state, data, keys)
    loss.numpy()  # waits for the epoch
    return state, time.perf_counter() - start

  epoch_s = []
  with CompileCounter() as compiles:
    try:
      with jax.transfer_guard("disallow"):
        state, elapsed = timed_epoch(state)
    except Exception as e:  # noqa: BLE001 - report what the guard caught, then time unguarded
      guard = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
      state, elapsed = timed_epoch(state)
    epoch_s.append(elapsed)
    for _ in range(repeats - 1):
      state, elapsed = timed_epoch(state)
      epoch_s.append(elapsed)
  windows_per_s = num_seeds * data.n_valid / min(epoch_s)
  chunks = len(runner.seed_slices(num_seeds))
  row = {"seeds": num_seeds, "seed_chunks": chunks, "first_epoch_s": first_epoch_s,
         "epoch_s": min(epoch_s), "epoch_s_median": float(np.median(epoch_s)),
         "windows_per_s": windows_per_s,
         "per_seed_windows_per_s": windows_per_s / num_seeds,
         "compiles_in_timed_epoch": compiles.count, "transfer_guard": guard}
  if profile_dir is not None:
    trace_dir = profile_dir / f"train_{num_seeds}_seeds_{chunks}_chunks"
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      runner.epoch(state, data, keys)[1].numpy()
    row["profile"] = op_family_times(trace_dir, top=8)
  return row


def measure_objectives(config, steps: int, repeats: int) -> list[dict]:
  """One seed's training windows/s under each objective, supervised first, each
  against it."""
  rows = []
  for objective in (sources.SUPERVISED, *objectives.OBJECTIVES):
    row = measure_training(config, 1, 0, steps, repeats=repeats, objective=objective)
    rows.append({"objective": objective, "windows_per_s": row["windows_per_s"],
                 "first_epoch_s": row["first_epoch_s"],
                 "vs_supervised": row["windows_per_s"] / rows[0]["windows_per_s"] if rows else 1.0})
    _progress(rows[-1])
  return rows


def measure_eval(config, num_seeds: int, windows: int, repeats: int = 1) -> dict:
  runner, config = _runner(config, num_seeds, 0)
  x, y = _random_windows(config, windows, seed=1)
  data = runner.place(EvalSet.create(x, y, config.runtime.eval_batch_size), num_seeds)
  state = runner.chunked(runner.init(seed_keys(0, num_seeds)), num_seeds)
  params, stats = state.map(lambda s: s.params), state.map(lambda s: s.batch_stats)
  runner.predict(params, stats, data)  # compile
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    runner.predict(params, stats, data)
    times.append(time.perf_counter() - start)
  elapsed = min(times)  # every seed's pass over the windows
  return {"eval_windows": windows, "eval_seeds": num_seeds, "eval_s": elapsed,
          "eval_windows_per_s_per_seed": windows * num_seeds / elapsed}


def measure_cell(config, num_seeds: int, size: int, max_epochs: int) -> dict:
  """One adaptation cell: `size` windows, seeds together, early stopping on a val set;
  then the same cell as num_seeds single-seed runs, one after another (programs
  compiled beforehand for both, so neither time includes compilation)."""
  x, y = _random_windows(config, size + 512, seed=2)
  val = EvalSet.create(x[size:], y[size:], config.runtime.eval_batch_size)

  def cell(seeds: list[int], epochs: int) -> tuple[float, int]:
    runner, cfg = _runner(config, len(seeds), 0)
    train = Batches.create(x[:size], y[:size], len(seeds), cfg.train.batch_size)
    keys = jnp.concatenate([seed_keys(s, 1) for s in seeds])
    start = time.perf_counter()
    state = FitState.create(runner.init(keys), cfg.train.patience)
    state = fit(runner, state, train, val, keys, max_epochs=epochs)
    return time.perf_counter() - start, state.stopping.epochs

  seeds = list(range(num_seeds))
  cell(seeds, 1), cell([0], 1)  # compile
  together_s, epochs = cell(seeds, max_epochs)
  alone_s = sum(cell([s], max_epochs)[0] for s in seeds)
  user_epochs = max(epochs)
  first_s, user_s = user_cell_s(config, random_prepared(config, size, 512), num_seeds,
                                user_epochs)
  return {"cell_windows": size, "cell_seeds": num_seeds, "cell_s": together_s,
          "cell_epochs": max(epochs), "cell_epochs_per_seed": epochs,
          "cell_single_seed_runs_s": alone_s,
          "cell_speedup_vs_single_runs": alone_s / together_s,
          # as a user meets it: workdir, metrics, checkpoints, test pass; all epochs
          "user_cell_s": user_s, "user_cell_first_s": first_s,
          "user_cell_seed_epochs_per_s": num_seeds * user_epochs / user_s}


def random_prepared(config, n_train: int, n_eval: int, seed: int = 3) -> Prepared:
  """Random windows as a prepared dataset: train, and val and test of n_eval each."""
  x, y = _random_windows(config, n_train + 2 * n_eval, seed=seed)
  y = y.astype(np.int32)
  parts = {"train": slice(0, n_train), "val": slice(n_train, n_train + n_eval),
           "test": slice(n_train + n_eval, None)}
  splits = {name: Split(x[part], y[part], np.zeros(len(y[part]), np.int32),
                        np.zeros(len(y[part]), np.int32)) for name, part in parts.items()}
  return Prepared("random", tuple(f"c{i}" for i in range(NUM_CLASSES)), splits, ("r",),
                  "subject", [], 0.0)


def user_cell_s(config, data: Prepared, num_seeds: int, epochs: int) -> tuple[float, float]:
  """(first, second) wall seconds of a cell as launch.adapt runs it: train_and_evaluate
  with a workdir (config.json, metrics, checkpoints by config.runtime, result.json),
  every epoch (no early stopping), validation each epoch, the test pass. The first
  call in a process compiles what it has not yet; the second is the warm figure."""
  config = config.copy_and_resolve_references()
  config.train.num_seeds, config.train.max_epochs, config.train.patience = num_seeds, epochs, 0
  rows = np.tile(np.arange(len(data.splits["train"])), (num_seeds, 1))
  times = []
  for _ in range(2):
    with tempfile.TemporaryDirectory() as workdir:
      start = time.perf_counter()
      experiment.train_and_evaluate(config, workdir, data, phase="adapt", progress=False,
                                    train_index_Sxn=rows)
      times.append(time.perf_counter() - start)
  return times[0], times[1]


def _progress(what) -> None:
  """Each measurement on stderr as it completes, so a run cut short keeps them."""
  print(f"benchmark: {what}", file=sys.stderr, flush=True)


def run(config, seeds: list[int], steps: int, eval_windows: int, cell_size: int,
        cell_epochs: int, profile_dir: str | None = None, repeats: int = 1,
        host_memory_reused: bool | None = None, with_objectives: bool = False) -> dict:
  """Every measurement of the module docstring, as one dict (launch.benchmark --json).
  host_memory_reused: what xfer_jax.runtime.reuse_freed_host_memory returned."""
  peak = matmul_gflops()
  flops = flops_per_window(config)
  _progress(f"matmul {peak:.1f} GFLOP/s, {flops:.4g} FLOP per training window")
  profile_dir = Path(profile_dir) if profile_dir else None
  rows = [measure_training(config, 1, 0, steps, profile_dir, repeats)]
  _progress(rows[-1])
  for num_seeds in seeds:
    rows.append(measure_training(config, num_seeds, 0, steps, profile_dir, repeats))
    _progress(rows[-1])
    if rows[-1]["seed_chunks"] > 1:  # also S seeds in one vmapped call (the GPU/TPU default)
      rows.append(measure_training(config, num_seeds, num_seeds, steps, profile_dir, repeats))
      _progress(rows[-1])
  for r in rows:
    r["gflops"] = r["windows_per_s"] * flops / 1e9
    r["of_matmul_rate"] = r["gflops"] / peak
    # seed-windows/s against one seed's windows/s: >= 1 when training S seeds
    # together costs no more per seed-window than one seed alone
    r["vs_1_seed"] = r["windows_per_s"] / rows[0]["windows_per_s"]
  out = {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
         "model": config.model.to_dict(), "batch_size": config.train.batch_size,
         "host_memory_reused": host_memory_reused,
         "matmul_gflops": peak, "train_flops_per_window": flops, "training": rows,
         "S_seeds_vs_1_seed": rows[1]["vs_1_seed"],
         "timed_repeats": repeats, **measure_eval(config, seeds[0], eval_windows, repeats)}
  if cell_size:
    out.update(measure_cell(config, seeds[0], cell_size, cell_epochs))
  if with_objectives:
    out["objectives"] = measure_objectives(config, steps, repeats)
  return out


def format_report(out: dict) -> str:
  """run()'s measurements as a header line, the training table and summary lines."""
  lines = []
  add = lines.append
  add(f"{out['backend']} {out['devices']}: matmul {out['matmul_gflops']:.1f} GFLOP/s; "
        f"{out['train_flops_per_window'] / 1e6:.1f} MFLOP per training window; "
        f"batch {out['batch_size']}; freed host memory "
        f"{'reused' if out['host_memory_reused'] else 'returned to the system'}")
  add(console.format_table([{k: v for k, v in r.items() if k != "profile"}
                              for r in out["training"]], floatfmt=".3g"))
  for r in out["training"]:
    if "profile" in r:
      shares = ", ".join(f"{p['family']} {p['share']:.0%}" for p in r["profile"][:5])
      add(f"profile, {r['seeds']} seed(s) in {r['seed_chunks']} chunk(s): {shares}")
  add(f"evaluation {out['eval_windows_per_s_per_seed']:.0f} windows/s per seed "
      f"({out['eval_seeds']} seeds)")
  if "cell_s" in out:
    add(f"the cell as launch.adapt runs it (workdir, checkpoints, test pass; "
        f"{out['cell_epochs']} epochs): {out['user_cell_s']:.1f} s, "
        f"{out['user_cell_seed_epochs_per_s']:.2f} seed-epochs/s "
        f"(first call in the process {out['user_cell_first_s']:.1f} s)")
    add(f"adaptation cell: {out['cell_windows']} windows x {out['cell_seeds']} seeds, "
          f"{out['cell_epochs']} epochs (per seed {out['cell_epochs_per_seed']}) in "
          f"{out['cell_s']:.1f} s; as {out['cell_seeds']} "
          f"single-seed runs {out['cell_single_seed_runs_s']:.1f} s "
          f"({out['cell_speedup_vs_single_runs']:.2f}x)")
  if "objectives" in out:
    add("pretraining, one seed, by objective:")
    add(console.format_table(out["objectives"], floatfmt=".3g"))
  return "\n".join(lines)
