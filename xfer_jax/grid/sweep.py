"""The experiment grid: source -> target pairs x adaptation sizes x transferred blocks x seeds.

config.sweep declares the grid (configs/paper.py):
  pairs     ("source->target", ...); () = every ordered pair of config.datasets
  sizes     adaptation sizes; 0 = the largest size: by size_cap, the smallest train
            split among the grid's datasets ("grid", the paper's: one largest size
            for every target) or each target's own train split ("target"); larger
            sizes are capped to it
  blocks    transferred (and, by config.transfer.mode, frozen) blocks per cell
  baseline  also train each target from scratch on each size (nothing transferred)
  sources_dir  where the source models live: "" = WORKDIR/sources; a relative path is
            taken from the workdir, so grids that differ only in transfer strategy
            can share their sources ("../sources": configs/real_v2.py)
Seeds are config.train.num_seeds, trained together (vmapped) in every cell.

A cell is (target, size, blocks, source); the baseline cell of a target and size
has source None and blocks 0. Cells are listed in one canonical order and task
i of n runs cells[i::n]: disjoint slices that together cover the grid, so n
processes or a scheduler's array job need no coordination beyond the workdir.

Workdir layout:
  sweep.json                   the grid's config fields (a restart must match)
  sources/<dataset>/           (config.sweep.sources_dir) each source model: trained once, all seeds vmapped,
                               checkpointed (resumable), under a file lock: the
                               first task to need it trains it, and the others
                               run their other cells meanwhile, then read it
  results.jsonl                one record per (cell, seed); a task of n > 1
                               writes results.task-<i>-of-<n>.jsonl instead
Cells whose records are all present (in any results file) are skipped.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import fcntl
import functools
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils

from xfer_jax import config_fields, console, experiment, transfer
from xfer_jax.data import DataError, cap_sizes, pool, prepare
from xfer_jax.engine import tensorboard, workdirs
from xfer_jax.engine.runtime import CompileCounter, is_primary
from xfer_jax.engine.step import seed_numbers
from xfer_jax.errors import UserError
from xfer_jax.grid import records, results
from xfer_jax.grid.records import Record
from xfer_jax.pretext import sources as pretext_sources
from xfer_jax.transfer import BASELINE


class SweepError(UserError, ValueError):
  """A grid or task slice that cannot be run; the message names the field or value."""


@dataclasses.dataclass(frozen=True)
class Cell:
  target: str
  size: int
  blocks: int  # 0 with source None: the baseline
  source: str | None

  @property
  def name(self) -> str:
    return f"{self.target} <- {self.source or BASELINE}, n={self.size}, k={self.blocks}"


def pairs(config) -> list[tuple[str, str]]:
  """(source, target) pairs of the grid, in declared order."""
  declared = list(config.sweep.pairs)
  if not declared:
    return [(s, t) for t in config.datasets for s in config.datasets if s != t]
  out = []
  for pair in declared:
    parts = [p.strip() for p in str(pair).split("->")]
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
      raise SweepError(f"config.sweep.pairs: {pair!r} is not 'source->target' with two "
                       "different datasets")
    # a self-supervised source reads its datasets' train splits only, unlabelled: its
    # own target may be one of them (pretext/sources.py)
    if parts[1] in pool.members(parts[0]) and not pretext_sources.is_self_supervised(parts[0]):
      raise SweepError(f"config.sweep.pairs: {pair!r}: the target is one of the pooled "
                       "sources")
    out.append((parts[0], parts[1]))
  return out


def datasets(config) -> list[str]:
  """The datasets of the grid's pairs (a pooled source's members), sorted."""
  return sorted({d for s, t in pairs(config) for d in (*pool.members(s), t)})


def train_sizes(config) -> dict[str, int]:
  """Windows in the train split of each dataset of the grid (prepared, or cached)."""
  return {d: len(prepare(d, config.data).splits["train"]) for d in datasets(config)}


def check_grid(config) -> None:
  sweep, num_blocks = config.sweep, len(config.model.filters)
  bad_blocks = [k for k in sweep.blocks if not 1 <= int(k) <= num_blocks]
  if bad_blocks:
    raise SweepError(f"config.sweep.blocks {tuple(sweep.blocks)}: {bad_blocks} outside "
                     f"1..{num_blocks} (the model's blocks: len(model.filters)); the baseline is "
                     "config.sweep.baseline")
  if not sweep.sizes or any(int(s) < 0 for s in sweep.sizes):
    raise SweepError(f"config.sweep.sizes {tuple(sweep.sizes)}: give positive sizes "
                     "(0 = the smallest train split)")
  if config.adapt.get("budget") == "per_class" and any(int(s) <= 0 for s in sweep.sizes):
    raise SweepError(f"config.sweep.sizes {tuple(sweep.sizes)}: with config.adapt.budget="
                     "'per_class' a size is shots per class, at least 1 (0 means the train "
                     "split only for budget='windows')")
  if sweep.get("size_cap", "grid") not in ("grid", "target"):
    raise SweepError(f"config.sweep.size_cap={sweep.size_cap!r}: expected 'grid' (every target "
                     "capped at the grid's smallest train split) or 'target' (its own)")
  if config.train.num_seeds < 1:
    raise SweepError(f"config.train.num_seeds={config.train.num_seeds}: need at least 1")


def expand(config, train_sizes: Mapping[str, int]) -> list[Cell]:
  """Every cell of the grid, in canonical order (target, size, baseline, source, k).

  train_sizes: windows in each dataset's train split (for the size cap)."""
  check_grid(config)
  grid_pairs = pairs(config)
  by_target = config.sweep.get("size_cap", "grid") == "target"
  grid_sizes = cap_sizes(config.sweep.sizes, [train_sizes[d] for d in datasets(config)])
  cells = []
  for target in dict.fromkeys(t for _, t in grid_pairs):
    sources = [s for s, t in grid_pairs if t == target]
    sizes = cap_sizes(config.sweep.sizes, [train_sizes[target]]) if by_target else grid_sizes
    for size in sizes:
      if config.sweep.baseline:
        cells.append(Cell(target, size, 0, None))
      cells.extend(Cell(target, size, int(k), s) for s in sources for k in config.sweep.blocks)
  return cells


def check_task(task_index: int, num_tasks: int) -> None:
  if num_tasks < 1 or not 0 <= task_index < num_tasks:
    raise SweepError(f"task_index={task_index} with num_tasks={num_tasks}: expected "
                     f"0 <= task_index < num_tasks")


def task_slice(cells: list[Cell], task_index: int, num_tasks: int) -> list[Cell]:
  check_task(task_index, num_tasks)
  return cells[task_index::num_tasks]


def task_from_env(environ: Mapping[str, str]) -> tuple[int, int] | None:
  """(task_index, num_tasks) of a SLURM array job, or None outside one.

  Index = SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN (arrays may start at 1);
  count = SLURM_ARRAY_TASK_COUNT. Ask for a contiguous array (--array=0-15)."""
  if "SLURM_ARRAY_TASK_ID" not in environ:
    return None
  try:
    task = int(environ["SLURM_ARRAY_TASK_ID"]) - int(environ.get("SLURM_ARRAY_TASK_MIN", 0))
    count = int(environ["SLURM_ARRAY_TASK_COUNT"])
  except (KeyError, ValueError) as e:
    raise SweepError(f"SLURM array environment incomplete or not integers ({e}): need "
                     "SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT") from e
  return task, count


def results_path(workdir: Path, task_index: int, num_tasks: int) -> Path:
  if num_tasks == 1:
    return workdir / "results.jsonl"
  return workdir / f"results.task-{task_index:04d}-of-{num_tasks:04d}.jsonl"


@contextlib.contextmanager
def _file_lock(path: Path, wait: bool = True):
  """An exclusive lock that the OS releases if the holder dies. Yields False,
  holding nothing, when `wait` is off and another holder has it."""
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "a") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
      yield False
      return
    try:
      yield True
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _task_lock(workdir: Path, task_index: int, num_tasks: int):
  """Held while this process runs task task_index of num_tasks in workdir; another
  process asking for the same slice gets a SweepError at once (the processes of one
  multi-process task share it)."""
  if jax.process_count() > 1:
    yield
    return
  path = workdir / f".sweep.task-{task_index}-of-{num_tasks}.lock"
  if not os.access(workdir, os.W_OK) or _read_only(workdir):
    yield  # a read-only workdir: nothing to write, nothing to guard
    return
  with _file_lock(path, wait=False) as held:
    if not held:
      raise SweepError(f"{workdir}: another process is running task {task_index} of "
                       f"{num_tasks} of this sweep (it holds {path.name}); wait for it, or "
                       "run another slice (--task_index, --num_tasks)")
    yield


def _read_only(path: Path) -> bool:
  return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def source_model(config, workdir: Path, source: str, progress: bool = False,
                 wait: bool = True, trained: list | None = None) -> tuple | None:
  """The source's (params, batch stats, meta), training it first if no task has.

  The first task to need a source trains it under a lock; others block on the
  lock, then read the finished checkpoint, or with `wait` off get None at once
  while another task trains it (`trained` gets the summary of a source trained
  here). A killed trainer leaves a resumable checkpoint and releases the lock.
  The processes of one multi-process task train it together, without the lock
  (each would wait for the others)."""
  source_dir = sources_dir(config, workdir) / source
  done = lambda: _agreed((source_dir / workdirs.RESULT).exists())

  def train():
    source_config = config.copy_and_resolve_references()
    source_config.source = source
    logging.info("training source model %s in %s", source, source_dir)
    summary = experiment.pretrain(source_config, source_dir, progress=progress)
    if trained is not None:
      trained.append(summary)

  if jax.process_count() > 1:
    if not done():
      train()
  elif not done():
    with _file_lock(source_dir.parent / f"{source}.lock", wait=wait) as held:
      if not held:
        return None
      if not done():
        train()
  return transfer.load_source(source_dir)


def sources_dir(config, workdir: Path) -> Path:
  """The folder of the grid's source models (config.sweep.sources_dir)."""
  return workdir / (config.sweep.get("sources_dir") or "sources")


def _agreed(value: bool) -> bool:
  """Process 0's value in every process (the processes of a task must take the
  same branch), the value itself in a single process."""
  if jax.process_count() == 1:
    return value
  return bool(multihost_utils.broadcast_one_to_all(np.bool_(value)))


def _cell_config(config, cell: Cell):
  cell_config = config.copy_and_resolve_references()
  cell_config.target = cell.target
  cell_config.transfer.blocks = cell.blocks
  return cell_config


def of_sources(config, cells: Sequence[Cell], sources: Sequence[str] | None) -> list[Cell]:
  """The cells from these sources, and the baselines (all cells without `sources`)."""
  if not sources:
    return list(cells)
  declared = {s for s, _ in pairs(config)}
  unknown = sorted(set(sources) - declared)
  if unknown:
    raise SweepError(f"--sources {unknown}: not sources of this grid's pairs ({sorted(declared)})")
  return [c for c in cells if c.source is None or c.source in sources]


def missing_seeds(seeds: Sequence[int], recorded: Mapping[tuple, Record], cell: Cell) -> list[int]:
  """The cell's seeds that have no record yet."""
  return [s for s in seeds if (cell.target, cell.source, cell.size, cell.blocks, s) not in recorded]


def run(config, workdir: str | Path, *, task_index: int = 0, num_tasks: int = 1,
        progress: bool = True, sources: Sequence[str] | None = None) -> dict:
  """Runs this task's slice of the grid, skipping recorded cells; returns a summary.
  sources: run only the cells from these sources, and the baselines (a call
  without it runs the rest: a grid's cells of one source first, before the next
  source model is trained). A grid or task that cannot run is refused before
  anything is written."""
  workdir = Path(workdir)
  check_task(task_index, num_tasks)
  prepared = {}

  def dataset(name):
    if name not in prepared:
      prepared[name] = prepare(name, config.data)
    return prepared[name]

  cells = expand(config, {d: len(dataset(d).splits["train"]) for d in datasets(config)})
  mine = of_sources(config, task_slice(cells, task_index, num_tasks), sources)
  fields = config_fields.grid_fields(config)
  results.grid_key(workdir, fields)  # another grid's workdir is refused before any write
  workdir.mkdir(parents=True, exist_ok=True)
  # one process per task slice: a second one is refused (the lock dies with its holder)
  with _task_lock(workdir, task_index, num_tasks):
    key = results.claim_grid(workdir, fields, write=is_primary())
    out_path = results_path(workdir, task_index, num_tasks)
    if is_primary():
      results.repair(out_path)
    recorded = results.recorded(workdir, key)
    run_seeds = seed_numbers(config.train.seed, config.train.num_seeds)
    missing = functools.partial(missing_seeds, run_seeds, recorded)
    todo = [c for c in mine if missing(c)]
    logging.info("task %d/%d: %d cells, %d recorded, %d to run", task_index, num_tasks, len(mine),
                 len(mine) - len(todo), len(todo))
    bar = console.Progress(len(todo), f"sweep task {task_index}/{num_tasks}") if progress else None
    if bar and todo:  # said at once: the first cell also prepares and compiles
      bar.update(0, f"{todo[0].name}: starting (the first cells compile)")
    sources: dict[str, tuple] = {}
    trained_sources: list[dict] = []
    seed_epochs = 0  # of the cells run and the sources trained here
    start = time.monotonic()
    pending = collections.deque(todo)
    deferred = 0  # cells put back in a row: all of them waiting on other tasks' sources
    done_cells = 0
    with CompileCounter() as compiles:
      while pending:
        cell = pending.popleft()
        if cell.source is not None and cell.source not in sources:
          # While another task trains this source, run the cells that do not need it.
          source = source_model(config, workdir, cell.source, wait=deferred > len(pending),
                                progress=bar is not None, trained=trained_sources)
          if source is None:
            pending.append(cell)
            deferred += 1
            continue
          sources[cell.source] = source
        deferred = 0
        target = dataset(cell.target)
        # capacity = the largest size: a target's sizes of a batch or more share one
        # compilation (smaller ones are one batch of a power of two: Batches.create)
        capacity = max(c.size for c in cells if c.target == cell.target) * (
            target.num_classes if config.adapt.get("budget") == "per_class" else 1)
        cell_start = time.monotonic()
        try:
          summary = experiment.adapt(_cell_config(config, cell), None, size=cell.size,
                                     capacity=capacity, prepared=target,
                                     source=sources.get(cell.source), progress=False)
        except DataError as e:
          raise SweepError(f"cell {cell.name}: {e}") from e
        wall_s = time.monotonic() - cell_start
        want = set(missing(cell))
        cell_records = [records.build(
            config_key=key, target=cell.target, source=cell.source, size=cell.size,
            blocks=cell.blocks, transfer=config.transfer, seed_result=r,
            majority=target.majority(), num_classes=target.num_classes,
            budget=budget_fields(config, summary),
            fold=config.data.fold if config.data.get("folds") else None, wall_s=wall_s,
            task=f"{task_index}/{num_tasks}") for r in summary["per_seed"] if r["seed"] in want]
        if is_primary():
          results.append(out_path, cell_records)
        seed_epochs += sum(r.epochs for r in cell_records)
        if config.runtime.get("tensorboard", True):
          tensorboard.write_cell(workdir / "tensorboard",
                                 f"{cell.target}/{cell.source or BASELINE}/n{cell.size}_k{cell.blocks}",
                                 {"target": cell.target, "source": cell.source or BASELINE,
                                  "size": cell.size, "blocks": cell.blocks,
                                  "mode": cell_records[0].mode if cell_records else ""},
                                 {f"{m}_mean": summary[f"{m}_mean"] for m in records.METRICS})
        done_cells += 1
        if bar:
          bar.update(done_cells, f"{cell.name}: micro-F1 {summary['micro_f1_mean']:.3f}")
    wall_s = time.monotonic() - start
    seed_epochs += sum(seed["epochs"] for s in trained_sources for seed in s["per_seed"])
    return {"workdir": str(workdir), "results": str(out_path), "cells_in_task": len(mine),
            "cells_run": len(todo), "cells_in_grid": len(cells), "compilations": compiles.count,
            "wall_s": wall_s, "mean_cell_s": wall_s / len(todo) if todo else 0.0,
            "seed_epochs": seed_epochs, "seed_epochs_per_s": seed_epochs / wall_s if wall_s else 0.0,
            "seeds": run_seeds, "config_key": key,
            "sizes": sorted({c.size for c in cells}), "pairs": len(pairs(config))}


def budget_fields(config, summary: Mapping) -> dict:
  """A record's label budget where it is not the paper's (size windows in all, the
  target's val split selecting): the budget, the selection and every labelled
  window the cell read per seed (records of the default grid stay as they were)."""
  adapt = config.adapt
  if adapt.get("budget", "windows") == "windows" and adapt.get("selection", "oracle") == "oracle":
    return {}
  return {"budget": adapt.budget, "selection": adapt.selection,
          "labelled_windows": summary["labelled_windows"],
          "selection_windows": summary["selection_windows"]}


def plan(config, task_index: int = 0, num_tasks: int = 1, calibrate: bool = True,
         workdir: str | Path | None = None, sources: Sequence[str] | None = None) -> dict:
  """A grid's size and (calibrate) the projected cost on this machine of what a run
  of this task's slice would do (xfer_jax/grid/cost.py). With a workdir, as `run` would
  resume it: recorded cells and trained source models are left out, and the
  grid's own records give the expected epochs. Writes nothing."""
  from xfer_jax.grid import cost  # the calibration builds a runner: only when asked

  prepared = {d: prepare(d, config.data) for d in datasets(config)}
  sizes = {d: len(p.splits["train"]) for d, p in prepared.items()}
  cells = expand(config, sizes)
  mine = of_sources(config, task_slice(cells, task_index, num_tasks), sources)
  recorded, trained, past_sources = {}, set(), []
  if workdir is not None:
    workdir = Path(workdir)
    key = results.grid_key(workdir, config_fields.grid_fields(config))  # another grid's: refused
    recorded = results.recorded(workdir, key, quiet=True) if key else {}
    trained = {s for s in {c.source for c in mine} - {None}
               if (sources_dir(config, workdir) / s / workdirs.RESULT).exists()}
    past_sources = _trained_sources(sources_dir(config, workdir), {s for s, _ in pairs(config)})
  run_seeds = seed_numbers(config.train.seed, config.train.num_seeds)
  todo = [c for c in mine if missing_seeds(run_seeds, recorded, c)]
  out = {**grid_size(config, sizes), "task_cells": len(mine),
         "cells_recorded": len(mine) - len(todo), "to_run": [c.name for c in todo]}
  if calibrate and todo:
    to_train = sorted({c.source for c in todo} - {None} - trained)
    for name in to_train + [run.dataset for run in past_sources]:
      if name not in prepared:
        prepared[name] = pretext_sources.training_data(config, name)[0]
    past_cells = [cost.PastRun(size, target, [r.epochs for r in rs], rs[0].wall_s)
                  for (target, _, size, _), rs in _by_cell(recorded).items()
                  if target in prepared and rs[0].wall_s is not None]
    calibration = cost.calibrate(config, prepared[todo[0].target])
    out["projection"] = cost.project(config, todo, prepared, to_train, calibration,
                                     past_cells, past_sources)
  return out


def _by_cell(recorded: Mapping[tuple, Record]) -> dict[tuple, list[Record]]:
  """Records by cell (target, source, size, blocks)."""
  cells = collections.defaultdict(list)
  for record in recorded.values():
    cells[record.cell].append(record)
  return dict(cells)


def _trained_sources(folder: Path, names: set[str]) -> list:
  """The trained models of these sources in a sources folder: each tells how long
  a source model trains here."""
  from xfer_jax.grid import cost

  past = []
  for path in sorted(folder.glob(f"*/{workdirs.RESULT}")):
    result = workdirs.read_result(path.parent)
    if path.parent.name in names and "wall_s" in result:
      past.append(cost.PastRun(result["train_windows"], path.parent.name,
                               [seed["epochs"] for seed in result["per_seed"]], result["wall_s"]))
  return past


def grid_size(config, train_sizes: Mapping[str, int]) -> dict:
  """Cells and seed-runs of a grid (for planning: pairs x sizes x blocks x seeds)."""
  cells = expand(config, train_sizes)
  return {"cells": len(cells), "seed_runs": len(cells) * config.train.num_seeds,
          "baseline_cells": sum(c.source is None for c in cells),
          "mean_size": float(np.mean([c.size for c in cells])) if cells else 0.0}
