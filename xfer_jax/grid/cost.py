"""What a grid will cost before it runs: cells, seed-epochs and a projected wall time
on this machine, from a short calibration of the grid's own model.

Calibration (a few seconds, after compiling): one target's runner, with all the
grid's seeds run as a cell runs them (seed chunks, devices), times epochs of one
small batch and of two full batches, which fits a step's cost as fixed + per-row
(a step costs in proportion to its padded rows, plus the host's dispatch), and
one pass over the validation split, which gives the cost of an evaluated row
(padding included). A cell's epoch is then its steps plus its target's validation
rows as runner.EvalSet chunks them, and
a cell ends with one test pass. Epochs are unknown until early stopping decides,
so the projection is a range: every seed stopping as early as patience allows,
to every seed running max_epochs. Where a resumed workdir has run some of the
same kind of work already (recorded cells for the cells to run, trained source
models for the sources to train), an expected figure follows from it: that
work's mean epochs per seed, and its wall time over what the calibration
predicts for it (the overheads a short calibration misses: a cell's set-up, the
host's work per epoch, a machine shared with other jobs). Compilation is
estimated apart: the
calibration's own first calls (which compile, or load from the persistent cache)
times the model variants the grid builds (a source model, and per target the
baseline and each k: their optimiser partitions differ). Data preparation is not
included.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence

import numpy as np

from xfer_jax.data import Prepared
from xfer_jax.engine import programs
from xfer_jax.engine.runner import ROW_BUCKET, SMALLEST_BATCH, Batches, EvalSet, chunk_rows
from xfer_jax.engine.step import seed_keys

SMALL_ROWS = 32  # the calibration's small batch (a 20-window cell's)


CALIBRATION_REPEATS = 3


def calibrate(config, prepared: Prepared, repeats: int = CALIBRATION_REPEATS) -> dict:
  """Seconds per training step (fixed and per row) and per evaluated row, for
  all of config's seeds; each the fastest of `repeats` after a compiling run."""
  runner = programs.build_runner(config, prepared.num_classes)
  seeds, batch = config.train.num_seeds, config.train.batch_size
  train, val = prepared.splits["train"], prepared.splits["val"]
  keys = seed_keys(0, seeds)
  state, epoch_keys = None, runner.chunked(keys, seeds)  # in seed chunks, as fit keeps them

  def epoch_s(n: int) -> float:
    nonlocal state
    rows = np.stack([np.resize(np.arange(len(train)), n)] * seeds)
    batches = runner.place_batches(
        Batches.create(train.x_NxWx3, train.y_N, seeds, batch, rows), seeds)
    times = []
    for _ in range(repeats + 1):
      start = time.perf_counter()
      state, loss = runner.epoch(state, batches, epoch_keys)
      loss.numpy()
      times.append(time.perf_counter() - start)
    first_calls.append(times[0] - min(times[1:]))
    spreads.append(max(times[1:]) / min(times[1:]) - 1)
    return min(times[1:])

  # the compiling (or loading) share of each first call: the epochs' programs are
  # the variant's own (they follow what is frozen and the row bucket); init and
  # evaluation are shared by every variant of a head width
  first_calls = []
  spreads = []  # each timing's slowest repeat over its fastest, less one
  start = time.perf_counter()
  state = runner.chunked(runner.init(keys), seeds)
  shared_first_calls = [time.perf_counter() - start]
  small = min(SMALL_ROWS, batch // 2)
  small_s, full_s = epoch_s(small), epoch_s(2 * batch) / 2
  per_row = max(0.0, (full_s - small_s) / (batch - small))
  fixed = small_s - small * per_row
  if fixed < 0:  # noise larger than the fixed cost: the line through the origin instead
    fixed, per_row = 0.0, full_s / batch
  val_set = runner.place(EvalSet.create(val.x_NxWx3, val.y_N, runner.settings.eval_batch_size),
                         seeds)
  times = []
  for _ in range(repeats + 1):
    start = time.perf_counter()
    runner.evaluate(state.map(lambda s: s.params), state.map(lambda s: s.batch_stats), val_set)
    times.append(time.perf_counter() - start)
  shared_first_calls.append(times[0] - min(times[1:]))
  return {"step_s": fixed, "step_s_per_row": per_row, "spread": max(spreads),
          "eval_row_s": min(times[1:]) / sum(chunk_rows(val_set.n, runner.settings.eval_batch_size)),
          "first_calls_s": sum(first_calls) + sum(shared_first_calls),
          "first_calls_shared_s": sum(shared_first_calls),
          # a small set's one-batch step and a full batch's: each its own program
          "first_call_small_s": first_calls[0], "first_call_full_s": first_calls[1],
          "eval_batch_size": runner.settings.eval_batch_size,
          "calibrated_on": prepared.name, "seeds": seeds, "batch_size": batch}


def epoch_steps(size: int, batch_size: int) -> tuple[int, int]:
  """(steps, rows per step) of a training epoch of `size` windows (runner.Batches)."""
  small = max(SMALLEST_BATCH, 1 << (size - 1).bit_length())
  return (1, small) if small < batch_size else (-(-size // batch_size), batch_size)


@dataclasses.dataclass(frozen=True)
class PastRun:
  """A cell or source model that has run: its train windows, the dataset it
  trained on (a key of `prepared`), its seeds' epochs and its wall time."""
  size: int
  dataset: str
  epochs: Sequence[int]
  wall_s: float


def project(config, cells, prepared: Mapping[str, Prepared], sources: list[str],
            calibration: Mapping, past_cells: Sequence[PastRun] = (),
            past_sources: Sequence[PastRun] = ()) -> dict:
  """Seed-epochs and projected seconds of a grid's cells and source models;
  past_cells, past_sources: what has run, for the expected figure."""
  tc, c = config.train, calibration
  fewest = min(tc.max_epochs, tc.patience + 1) if tc.patience else tc.max_epochs
  eval_s = lambda n: sum(chunk_rows(n, c["eval_batch_size"])) * c["eval_row_s"]

  def run_s(size: int, dataset: Prepared, epochs: int) -> float:
    steps, rows = epoch_steps(size, tc.batch_size)
    per_epoch = (steps * (c["step_s"] + rows * c["step_s_per_row"])
                 + eval_s(len(dataset.splits["val"])))
    return epochs * per_epoch + eval_s(len(dataset.splits["test"]))

  cell_runs = [(cell.size, prepared[cell.target]) for cell in cells]
  source_runs = [(len(prepared[s].splits["train"]), prepared[s]) for s in sources]
  runs = cell_runs + source_runs
  # a batch step's program is fixed by the head's width, the dataset's row bucket,
  # what is frozen (runner.ROW_BUCKET, config.runtime.pad_classes: a model variant)
  # and its batch's rows (a small set steps on a power of two: epoch_steps); a
  # source's shares its width's baseline
  shape = lambda d: (programs.head_outputs(config, prepared[d].num_classes),
                     -(-len(prepared[d].splits["train"]) // ROW_BUCKET))
  rows = lambda size: epoch_steps(size, tc.batch_size)[1]
  steps = ({(*shape(cell.target), cell.blocks, rows(cell.size)) for cell in cells}
           | {(*shape(s), 0, rows(len(prepared[s].splits["train"]))) for s in sources})
  variants = {step[:3] for step in steps}
  # each step program compiles for itself, and once per head width what every variant
  # shares (init, evaluation); an older calibration without the split: per variant
  shared_s = c.get("first_calls_shared_s", 0.0)
  if "first_call_small_s" in c:
    compile_s = sum(c["first_call_small_s"] if r < tc.batch_size else c["first_call_full_s"]
                    for *_, r in steps)
  else:
    compile_s = len(variants) * (c["first_calls_s"] - shared_s)
  compile_s += len({width for width, _, _ in variants}) * shared_s
  expected = {}
  if (past_cells or not cells) and (past_sources or not sources):
    predict = lambda r: run_s(r.size, prepared[r.dataset], float(np.mean(r.epochs)))
    fits = {kind: _fit(past, predict) for kind, past in (("cells", past_cells),
                                                          ("sources", past_sources))}
    expected = {"expected_from": fits, "projected_s_expected": sum(
        fits[kind]["wall_over_calibration"] * run_s(n, d, fits[kind]["mean_epochs"])
        for kind, todo in (("cells", cell_runs), ("sources", source_runs)) for n, d in todo)}
  return {"cells": len(cells), "source_models": len(sources), "model_variants": len(variants),
          "step_programs": len(steps), "compile_s_estimate": compile_s,
          "seed_epochs_max": len(runs) * tc.num_seeds * tc.max_epochs,
          "seed_epochs_min": len(runs) * tc.num_seeds * fewest,
          "projected_s_min": sum(run_s(n, d, fewest) for n, d in runs),
          "projected_s_max": sum(run_s(n, d, tc.max_epochs) for n, d in runs), **expected,
          "calibration": dict(calibration),
          "not_included": "compilation and data preparation"}


def _fit(past: Sequence[PastRun], predict) -> dict:
  """Mean epochs per seed of past runs, and their wall time over what the
  calibration predicts for them (predict: PastRun -> seconds)."""
  if not past:
    return {"runs": 0, "mean_epochs": 0.0, "wall_over_calibration": 1.0}
  predicted = sum(predict(r) for r in past)
  return {"runs": len(past), "mean_epochs": float(np.mean([e for r in past for e in r.epochs])),
          "wall_over_calibration": sum(r.wall_s for r in past) / predicted}


def describe(projection: Mapping) -> str:
  c = projection["calibration"]
  hours = lambda s: f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min"
  expected = ""
  if "projected_s_expected" in projection:
    ran = []
    for kind, fit in projection["expected_from"].items():
      if fit["runs"]:
        what = "recorded cell" if kind == "cells" else "source model"
        ran.append(f"{fit['runs']} {what}{'s' if fit['runs'] > 1 else ''} ran "
                   f"{fit['mean_epochs']:.1f} epochs per seed at "
                   f"{fit['wall_over_calibration']:.2f} x the calibrated time")
    expected = (f" Expected {hours(projection['projected_s_expected'])}, as what has run "
                f"here: {'; '.join(ran)}.")
  return (f"{projection['cells']} cells to run + {projection['source_models']} source models: "
          f"{projection['seed_epochs_min']}–{projection['seed_epochs_max']} seed-epochs, "
          f"projected {hours(projection['projected_s_min'])} (every seed stopping as early as "
          f"patience allows) to {hours(projection['projected_s_max'])} (all epochs) of "
          f"training on this machine, plus about {hours(projection['compile_s_estimate'])} of "
          f"compiling {projection.get('step_programs', '?')} batch-step programs of "
          f"{projection['model_variants']} model variants. Calibrated on {c['calibrated_on']} with "
          f"{c['seeds']} seeds: a training step {1e3 * c['step_s']:.3g} ms + "
          f"{1e3 * c['step_s_per_row']:.3g} ms per row, evaluation "
          f"{1e6 * c['eval_row_s']:.3g} µs per row in chunks of {c['eval_batch_size']}; first calls "
          f"{c['first_calls_s']:.1f} s ({c.get('first_calls_shared_s', 0.0):.1f} s of them shared by "
          f"the variants of a head width); its timings spread by up to "
          f"{100 * c.get('spread', 0.0):.0f} % over {CALIBRATION_REPEATS} repeats (a busy "
          "machine: rerun it alone)." + expected)
