"""fit: epochs of every seed until each stops early, carrying one FitState.

  state = FitState.create(runner.init(keys), patience)
  state = fit(runner, state, train, val, keys, max_epochs=70,
              hooks=[MetricsWriter(path, "pretrain"), Checkpointer(...), ProgressBar(70)])

A FitState is everything a run needs to continue: parameters, batch statistics
and optimiser state of every seed, each seed's best-validation parameters and
statistics, the early-stopping state and the epochs done. Checkpoints save and
restore it as a unit (save_fit_state, restore_fit_state), so a resumed run continues
exactly where the saved one was. Hooks see it after every epoch.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from xfer_jax.console import Progress
from xfer_jax.data.atomic import write_text
from xfer_jax.engine import checkpoints
from xfer_jax.engine.runner import Batches, EvalSet, PerSeed, Runner
from xfer_jax.engine.runtime import is_primary
from xfer_jax.engine.step import TrainState
from xfer_jax.errors import UserError

STOP_ON = ("val_loss", "val_accuracy")
LAST = "last"  # no validation: every epoch replaces the kept one (a fixed schedule)


@dataclasses.dataclass
class EarlyStopping:
  """Per-seed early stopping and choice of the best epoch (host side, plain numbers).

  stop_on="val_loss" keeps the epoch of the lowest validation loss. "val_accuracy"
  keeps the epoch of the highest validation accuracy, the lower loss deciding ties:
  a model whose copied features make it confidently wrong can grow more accurate
  while its loss still rises (the discriminative cells of docs/results/real_v2), so
  selecting on loss can keep an epoch far less accurate than a later one."""

  patience: int  # epochs without improvement before a seed stops; 0 = never stop
  best_loss: list[float]  # validation loss at each seed's best epoch
  best_epoch: list[int]
  bad_epochs: list[int]
  stopped: list[bool]
  epochs: list[int]  # epochs trained per seed
  stop_on: str = "val_loss"
  # validation accuracy at each seed's best epoch (NaN: resumed from a checkpoint
  # saved before it was kept)
  best_accuracy: list[float] | None = None

  def __post_init__(self):
    if self.stop_on not in (*STOP_ON, LAST):
      raise ValueError(f"early stopping on {self.stop_on!r}: expected one of {STOP_ON}")
    if self.best_accuracy is None:
      self.best_accuracy = [float("nan")] * len(self.best_loss)

  @classmethod
  def create(cls, patience: int, num_seeds: int, stop_on: str = "val_loss") -> EarlyStopping:
    return cls(patience, [float("inf")] * num_seeds, [-1] * num_seeds, [0] * num_seeds,
               [False] * num_seeds, [0] * num_seeds, stop_on, [-float("inf")] * num_seeds)

  def _better(self, s: int, loss: float, accuracy: float) -> bool:
    if self.stop_on == LAST:
      return True
    if self.stop_on == "val_loss":
      return loss < self.best_loss[s]
    return (accuracy > self.best_accuracy[s]
            or (accuracy == self.best_accuracy[s] and loss < self.best_loss[s]))

  def update(self, epoch: int, val_loss: np.ndarray, val_accuracy: np.ndarray | None = None
             ) -> np.ndarray:
    """Records epoch's validation losses (and accuracies); returns which seeds improved."""
    if val_accuracy is None:
      if self.stop_on not in ("val_loss", LAST):
        raise ValueError(f"early stopping on {self.stop_on!r} needs the validation accuracy")
      val_accuracy = np.full(len(val_loss), np.nan)
    improved = np.zeros(len(val_loss), bool)
    for s, (loss, accuracy) in enumerate(zip(val_loss, val_accuracy)):
      if self.stopped[s]:
        continue
      self.epochs[s] = epoch + 1
      if self._better(s, float(loss), float(accuracy)):
        self.best_loss[s], self.best_accuracy[s] = float(loss), float(accuracy)
        self.best_epoch[s], self.bad_epochs[s] = epoch, 0
        improved[s] = True
      else:
        self.bad_epochs[s] += 1
        self.stopped[s] = self.patience > 0 and self.bad_epochs[s] >= self.patience
    return improved

  @property
  def all_stopped(self) -> bool:
    return all(self.stopped)


def fewest_epochs_left(stopping: EarlyStopping) -> int | None:
  """Epochs until every seed has stopped if none improves again; None without early
  stopping."""
  if not stopping.patience:
    return None
  waiting = [stopping.patience - bad for bad, stopped in zip(stopping.bad_epochs,
                                                              stopping.stopped) if not stopped]
  return max(waiting, default=0)


@dataclasses.dataclass
class FitState:
  """A run between two epochs: every array with a leading seed axis. Inside fit the
  train state and the kept best are in seed chunks (PerSeed; `whole` joins them)."""

  train: TrainState  # params, batch stats, optimiser state
  best_params: Any
  best_batch_stats: Any
  stopping: EarlyStopping
  epoch: int  # epochs completed: the next epoch to train

  @classmethod
  def create(cls, train: TrainState, patience: int, stop_on: str = "val_loss") -> FitState:
    copy = lambda tree: jax.tree.map(jnp.copy, tree)  # the train state's buffers are donated
    num_seeds = len(jax.tree.leaves(train.params)[0])
    return cls(train, copy(train.params), copy(train.batch_stats),
               EarlyStopping.create(patience, num_seeds, stop_on), 0)

  @property
  def done(self) -> bool:
    return self.stopping.all_stopped

  def whole(self) -> FitState:
    """The state with its seed chunks joined (as fit returns it, and checkpoints save it)."""
    join = lambda tree: tree.whole() if isinstance(tree, PerSeed) else tree
    return FitState(join(self.train), join(self.best_params), join(self.best_batch_stats),
                    self.stopping, self.epoch)


def _state_tree(state: FitState | TrainState) -> dict:
  """A FitState's arrays as a checkpoint's "state" item (a TrainState: its shapes)."""
  if isinstance(state, FitState):
    state = state.whole()
  train = state.train if isinstance(state, FitState) else state
  best = (state.best_params, state.best_batch_stats) if isinstance(state, FitState) else (
      train.params, train.batch_stats)
  return {"params": train.params, "batch_stats": train.batch_stats,
          "opt_state": serialization.to_state_dict(train.opt_state),
          "best_params": best[0], "best_batch_stats": best[1]}


def save_fit_state(ckpt: checkpoints.Checkpoints, state: FitState, meta: dict) -> None:
  """Saves a FitState as one step: its arrays, and in the metadata its epoch (the
  last completed, which numbers the step) and early-stopping state."""
  last = state.epoch - 1
  ckpt.save(last, _state_tree(state),
            {**meta, "epoch": last, "stopping": dataclasses.asdict(state.stopping)})


def restore_fit_state(directory, abstract_train_state: TrainState):
  """(FitState, meta, skipped) of the newest intact step, for resuming a run;
  abstract_train_state gives the shapes (Runner.abstract_state). skipped: the
  (step, reason) of newer steps that could not be read or failed verification."""
  abstract = abstract_train_state
  tree, meta, skipped = checkpoints.read_newest_intact(directory, _state_tree(abstract))
  opt_state = serialization.from_state_dict(abstract.opt_state, tree["opt_state"])
  train = type(abstract)(tree["params"], tree["batch_stats"], opt_state)
  state = FitState(train, tree["best_params"], tree["best_batch_stats"],
                   EarlyStopping(**meta["stopping"]), meta["epoch"] + 1)
  return state, meta, skipped


class Hook:
  """Called by fit: start before the first epoch it trains, epoch_end after each
  (with the epoch's metric rows, one per seed that trained), end after the last.
  Before end, the state's per-seed trees may be in seed chunks: `state.whole()`
  joins them (through the host)."""

  def start(self, state: FitState) -> None:
    pass

  def epoch_end(self, state: FitState, rows: list[dict]) -> None:
    pass

  def end(self, state: FitState) -> None:
    pass


class Diverged(UserError, FloatingPointError):
  """A seed's loss became NaN or inf; the message names the phase, seeds and epoch."""


def fit(runner: Runner, state: FitState, train: Batches, val: EvalSet | None, keys_S, *,
        max_epochs: int, hooks: Sequence[Hook] = (), label: str = "train",
        seeds: Sequence[int] | None = None) -> FitState:
  """Trains every seed from state.epoch until it stops early or max_epochs; each
  seed keeps its best-validation parameters. Returns the final state. val=None:
  no validation (a fixed schedule, stop_on LAST): its metrics are NaN."""
  seeds = list(seeds or range(len(keys_S)))
  num_seeds = len(seeds)
  # what is per seed is split into the seed chunks once, here, not every epoch
  chunked = lambda tree: runner.chunked(tree, num_seeds)
  train = runner.place_batches(train, num_seeds)
  if val is not None:
    val = runner.place(val, num_seeds)
    if val.seed_masks is not None:
      val = val.replace(seed_masks=chunked(val.seed_masks))
  keys_S = chunked(keys_S)
  best = chunked((state.best_params, state.best_batch_stats))
  state = dataclasses.replace(state, train=chunked(state.train))
  for hook in hooks:
    hook.start(state)
  start, first = time.monotonic(), state.epoch
  while state.epoch < max_epochs and not state.done:
    epoch = state.epoch
    # seeds stopped early train no more (their best is kept); on CPU, one seed per
    # call, their epochs and validation passes are skipped altogether
    active = ~np.array(state.stopping.stopped)
    train_state, train_loss = runner.epoch(state.train, train, runner.epoch_keys(keys_S, epoch),
                                           active)
    if val is None:
      val_loss = val_acc = np.full(num_seeds, np.nan)
    else:
      val_loss, val_acc = runner.evaluate(train_state.map(lambda s: s.params),
                                          train_state.map(lambda s: s.batch_stats), val, active)
    train_loss = train_loss.numpy()
    bad_val = np.zeros(num_seeds, bool) if val is None else ~np.isfinite(val_loss)
    bad = np.flatnonzero(active & (~np.isfinite(train_loss) | bad_val))
    if bad.size:
      which = "training" if not np.isfinite(train_loss[bad]).all() else "validation"
      raise Diverged(f"{label}: the {which} loss is NaN/inf for seed(s) "
                     f"{[seeds[s] for s in bad]} at epoch {epoch}")
    improved = state.stopping.update(epoch, val_loss, val_acc)
    if improved.any():
      best = runner.keep_best(best, train_state, improved)
    state = FitState(train_state, best.map(lambda b: b[0]), best.map(lambda b: b[1]),
                     state.stopping, epoch + 1)
    rows = [{"phase": label, "epoch": epoch, "seed": seeds[s], "train_loss": float(train_loss[s]),
             "val_loss": float(val_loss[s]), "val_accuracy": float(val_acc[s]),
             "best": bool(improved[s])} for s in range(num_seeds) if active[s]]
    for hook in hooks:
      hook.epoch_end(state, rows)
  state = state.whole()
  for hook in hooks:
    hook.end(state)
  logging.info("%s: epochs %d..%d in %.1f s", label, first, state.epoch,
               time.monotonic() - start)
  return state


# -- hooks ------------------------------------------------------------------------------

class History(Hook):
  """Keeps every epoch's metric rows in memory."""

  def __init__(self):
    self.rows: list[dict] = []

  def epoch_end(self, state, rows):
    self.rows.extend(rows)


class MetricsWriter(Hook):
  """Appends each epoch's rows to a JSON-lines file (the primary process only).

  A resumed run first drops the file's rows of its phase from the epochs it will
  train again, so the file ends as an uninterrupted run's would."""

  def __init__(self, path: str | Path, phase: str):
    self.path, self.phase = Path(path), phase

  def start(self, state):
    if is_primary() and self.path.exists():
      kept = []
      for line in self.path.read_text().splitlines():
        try:
          row = json.loads(line)
        except json.JSONDecodeError:
          continue  # a line cut by a kill
        if row.get("phase") != self.phase or row.get("epoch", -1) < state.epoch:
          kept.append(line)
      write_text(self.path, "".join(k + "\n" for k in kept))

  def epoch_end(self, state, rows):
    if is_primary():
      with open(self.path, "a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))


class Checkpointer(Hook):
  """Saves the FitState after the last epoch, and before it whenever a kill would
  otherwise lose `every_s` seconds of training, or `every` epochs (0: no such
  bound). A save costs about as much as an epoch of a small cell, so the time
  bound keeps short runs from spending more on saving than on training
  (docs/performance.md#checkpoints-sized-to-the-work).

  save(state) does the writing (save_fit_state with the run's metadata)."""

  def __init__(self, save, every: int = 0, every_s: float = 0.0, clock=time.monotonic):
    self.save, self.every, self.every_s, self.clock = save, every, every_s, clock
    self.saved_epoch = self.saved_at = None

  def start(self, state):
    self.saved_epoch, self.saved_at = state.epoch, self.clock()  # a restored state is on disk

  def epoch_end(self, state, rows):
    due_epochs = self.every > 0 and state.epoch - self.saved_epoch >= self.every
    due_time = self.every_s > 0 and self.clock() - self.saved_at >= self.every_s
    if due_epochs or due_time:
      self._save(state)

  def end(self, state):
    if state.epoch != self.saved_epoch:
      self._save(state)

  def _save(self, state):
    self.save(state)
    self.saved_epoch, self.saved_at = state.epoch, self.clock()


class ProgressBar(Hook):
  """A console progress bar over max_epochs, with the mean validation metrics. Its
  ETA runs from the epochs early stopping still needs (no seed improving again) to
  the cap: a source model capped at 400 epochs usually stops after 15-25."""

  def __init__(self, max_epochs: int, label: str, stream=None):
    self.max_epochs, self.label, self.stream = max_epochs, label, stream

  def start(self, state):
    # from the epoch it resumes at: the ETA follows this process's epochs only
    self.bar = Progress(self.max_epochs, self.label, self.stream, done=state.epoch)

  def epoch_end(self, state, rows):
    val_loss = np.mean([r["val_loss"] for r in rows])
    val_acc = np.mean([r["val_accuracy"] for r in rows])
    self.bar.update(state.epoch, f"val loss {val_loss:.3f} acc {val_acc:.3f}",
                    fewest_left=fewest_epochs_left(state.stopping))

  def end(self, state):
    if self.bar.done < self.bar.total:
      self.bar.update(self.bar.total, f"stopped early at epochs {state.stopping.epochs}")
