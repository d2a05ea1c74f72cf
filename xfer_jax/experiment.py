"""The story of a run: pretrain a source model, adapt a target from it, score both.

  pretrain(config, workdir)          config.source: supervised, pooled, or
                                     self-supervised (xfer_jax/pretext/)
  adapt(config, workdir, source_dir) config.target from the source's blocks by
                                     config.transfer (xfer_jax/transfer.py)
  train_and_evaluate(...)            what both do: fit every seed, resumable, and
                                     score each seed's best parameters on the test split
Workdir: config.json, metrics.jsonl, checkpoints/, result.json (xfer_jax/engine/workdirs.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from xfer_jax import evaluation, transfer
from xfer_jax.checks import FIXED, INNER, ORACLE, check_config, check_trainable
from xfer_jax.data import (
  Prepared,
  adaptation_rows,
  inner_validation,
  prepare,
)
from xfer_jax.engine import checkpoints, programs, workdirs
from xfer_jax.engine.loop import (
  LAST,
  Checkpointer,
  Diverged,
  FitState,
  MetricsWriter,
  ProgressBar,
  fit,
  save_fit_state,
)
from xfer_jax.engine.runner import Batches, Runner
from xfer_jax.engine.runtime import is_primary
from xfer_jax.engine.step import SUPERVISED, TrainState, seed_keys, seed_numbers
from xfer_jax.engine.tensorboard import TensorBoardWriter
from xfer_jax.pretext import sources


def pretrain(config, workdir: str | Path, progress: bool = True) -> dict:
  """Trains the source model of config.source: one dataset or several pooled
  ("a+b": xfer_jax/data/pool.py), supervised, or self-supervised on their unlabelled
  train windows ("multitask:a+b", "simclr:a": xfer_jax/pretext/sources.py). Its
  checkpoint records the objective, the datasets, and which of them each class came from."""
  prepared, objective, extra = sources.training_data(config, config.source)
  return train_and_evaluate(config, workdir, prepared, phase="pretrain", extra_meta=extra,
                            progress=progress, objective=objective)


def adapt(config, workdir: str | Path | None, source_dir: str | Path | None = None, *,
          size: int | None = None, capacity: int | None = None, progress: bool = True,
          prepared: Prepared | None = None, source: tuple | None = None) -> dict:
  """Adapts a target model (config.target) on an adaptation subset of its train
  split, starting from the source checkpoint's blocks by config.transfer; without
  a source, trains the baseline. Seed s of the target starts from source seed
  s mod (source seeds). capacity: pad the subset to this many rows, so that every
  size of a sweep shares one compilation (sizes under one batch: see Batches.create)."""
  tc, ac = config.train, config.adapt
  check_config(config)
  prepared = prepared or prepare(config.target, config.data)
  size = size or ac.size
  budget, selection = ac.get("budget", "windows"), ac.get("selection", ORACLE)
  train_y = prepared.splits["train"].y_N
  rows = adaptation_rows(train_y, size, ac.subset_seed, tc.num_seeds, budget,
                         prepared.class_names, prepared.name, ac.get("short_classes", "error"))
  labelled = rows.shape[1]  # every label the cell reads: its training and its selection
  val_rows = None
  if selection == INNER:  # the budget's own windows select the epoch; they do not train
    rows, val_rows = inner_validation(train_y, rows, ac.inner_fraction, ac.subset_seed)
  abstract = programs.abstract_variables(config, prepared.num_classes)
  plan = transfer.plan(config, abstract, prepared.name, source, source_dir)
  budget_meta = {"budget": budget, "size": size, "labelled_windows": labelled,
                 "selection": selection}
  workdir = None if workdir is None else Path(workdir)
  state, summaries = None, []
  for phase in plan.phases:
    init_state, meta = plan.initial_state(phase, state), plan.meta(phase, size)
    runner = programs.build_runner(config, prepared.num_classes, phase.param_labels,
                                   phase.frozen_bn)
    summary, state = _train(config, workdir and workdir / phase.folder, prepared,
                            phase=phase.name, train_index_Sxn=rows, capacity=capacity,
                            runner=runner, init_state=init_state,
                            extra_meta={"budget": budget_meta, "transfer": meta},
                            progress=progress, selection=selection, val_rows_Sxv=val_rows)
    summaries.append(summary)
  if len(summaries) > 1:
    # lp_ft: the final phase's record also says how long the probe trained (it too
    # can stop at the epoch cap, and how long it ran shapes what is fine-tuned)
    for mine, probed in zip(summary["per_seed"], summaries[0]["per_seed"]):
      mine.update(probe_epochs=probed["epochs"], probe_best_epoch=probed["best_epoch"])
    if workdir is not None and is_primary():
      workdirs.write_result(workdir, summary)
  return summary


def train_and_evaluate(config, workdir: str | Path | None, prepared: Prepared, *, phase: str,
                       **kwargs) -> dict:
  """Trains config.train.num_seeds seeds on prepared's train split, resuming from
  workdir/checkpoints when present, and returns per-seed test scores of each seed's
  best parameters (result.json). Options as `_train`'s."""
  return _train(config, workdir, prepared, phase=phase, **kwargs)[0]


def _train(config, workdir: str | Path | None, prepared: Prepared, *, phase: str,
           train_index_Sxn: np.ndarray | None = None, capacity: int | None = None,
           runner: Runner | None = None,
           init_state: Callable[[Runner, Any], TrainState] | None = None,
           extra_meta: dict | None = None, progress: bool = True, objective=SUPERVISED,
           selection: str = ORACLE, val_rows_Sxv: np.ndarray | None = None
           ) -> tuple[dict, FitState]:
  """(result, final FitState). train_index_Sxn: per-seed rows of the train split
  (all of it without). init_state(runner, keys): the initial state (transfer).
  objective: what is learnt (step.py; a self-supervised one scores its pretext
  accuracy instead of F1). selection: what picks each seed's epoch: ORACLE the val
  split, INNER each seed's rows val_rows_Sxv of the train split, FIXED nothing
  (every epoch trained, the last kept). workdir None: in memory only (a sweep's
  cells, whose records are the output)."""
  tc = config.train
  check_config(config)
  supervised = objective is SUPERVISED
  check_trainable(prepared, tc.batch_size, None if train_index_Sxn is None else 1, supervised)
  runner = runner or programs.build_runner(
      config, prepared.num_classes if supervised else objective.num_outputs, objective=objective)
  run_seeds, keys = seed_numbers(tc.seed, tc.num_seeds), seed_keys(tc.seed, tc.num_seeds)
  val_set = evaluation.selection_set(prepared, selection, val_rows_Sxv,
                                     runner.settings.eval_batch_size)
  train = prepared.splits["train"]
  batches = Batches.create(train.x_NxWx3, train.y_N, tc.num_seeds, tc.batch_size,
                           train_index_Sxn, capacity)
  hooks = [ProgressBar(tc.max_epochs, phase)] if progress else []
  meta = {"phase": phase, "dataset": prepared.name, "class_names": list(prepared.class_names),
          "seeds": run_seeds, "config": json.loads(config.to_json_best_effort()),
          **(extra_meta or {})}
  state, ckpt = None, None
  if workdir is not None:
    workdir = Path(workdir)
    workdirs.pin_config(workdir, config, phase, write=is_primary())
    ckpt = checkpoints.Checkpoints(workdir / "checkpoints")
    state = workdirs.resume(ckpt, runner, meta)
    finished = state is not None and (state.done or state.epoch >= tc.max_epochs)
    result = workdirs.read_result(workdir) if finished else None
    if result is not None:
      # a finished run: its result as it was written (a read-only workdir reruns)
      ckpt.close()
      return result, state
    if runner.settings.tensorboard:
      hooks.append(TensorBoardWriter(workdir / "tensorboard", phase))
    hooks += [MetricsWriter(workdir / "metrics.jsonl", phase),
              Checkpointer(lambda state: save_fit_state(ckpt, state, meta),
                           runner.settings.checkpoint_every, runner.settings.checkpoint_every_s)]
  if state is None:
    state = FitState.create(init_state(runner, keys) if init_state else runner.init(keys),
                            tc.patience, LAST if selection == FIXED else tc.stop_on)
  t0 = time.monotonic()
  try:
    state = fit(runner, state, batches, val_set, keys, max_epochs=tc.max_epochs, hooks=hooks,
                label=phase, seeds=run_seeds)
  except Diverged as e:
    raise Diverged(f"dataset {prepared.name!r}, {e}: check its windows for extreme or "
                   "non-finite values (python -m launch.prepare; config.data.max_abs_g), or "
                   "lower config.optim.learning_rate") from None
  finally:  # no checkpoint thread outlives an error
    if ckpt is not None:
      ckpt.close()
  per_seed, headline = evaluation.test_scores(runner, state, prepared, objective, run_seeds)
  selection_windows = (len(prepared.splits["val"]) if selection == ORACLE else
                       int(val_rows_Sxv.shape[1]) if selection == INNER else 0)
  summary = {
      "phase": phase, "dataset": prepared.name,
      **({"num_classes": prepared.num_classes} if supervised else
         {"pretext_outputs": list(objective.score_names)}),
      "train_windows": int(batches.n_valid), "test_windows": int(len(prepared.splits["test"])),
      # what picked each seed's epoch, how many labelled windows per seed it read, and
      # the labelled windows per seed the cell's budget spent (training and selection)
      **({"selection": selection, "selection_windows": selection_windows,
          "labelled_windows": int(batches.n_valid) + (selection_windows if selection == INNER
                                                      else 0),
          "majority": prepared.majority()} if supervised else {}),
      "per_seed": per_seed, "wall_s": time.monotonic() - t0,
      **{f"{k}_mean": float(np.mean([r[k] for r in per_seed])) for k in headline},
      **{f"{k}_std": float(np.std([r[k] for r in per_seed])) for k in headline}}
  if workdir is not None and is_primary():
    workdirs.write_result(workdir, summary)
  return summary, state
