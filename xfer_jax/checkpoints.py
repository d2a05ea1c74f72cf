"""Orbax checkpoints: one CheckpointManager per workdir, plain-dict trees.

A checkpoint step holds two items:
- "state": {"params", "batch_stats", "opt_state", "best_params", "best_batch_stats"},
  every leaf with a leading seed axis; opt_state as a state dict (flax
  serialization), so the tree reads back without the experiment's code;
- "meta": JSON (format version, config, class names, epoch, early stopping,
  transfer labels, ...).
Orbax writes each step to a temporary folder and renames it when complete, so an
interrupted save leaves no partial checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import serialization

from xfer_jax.loop import EarlyStopping, FitState

FORMAT = "xfer_jax.checkpoint/1"


class CheckpointError(RuntimeError):
  """A missing, corrupt or incompatible checkpoint (the message names the path)."""


def _manager(directory: Path, create: bool, max_to_keep: int | None = 2) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create,
                                         enable_async_checkpointing=False)
  # handlers named per item, so the manager can also read an item's metadata
  return ocp.CheckpointManager(directory.absolute(), options=options, item_handlers={
      "state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()})


class Checkpoints:
  """Save / restore the training state of a workdir's `checkpoints/` folder."""

  def __init__(self, directory: str | os.PathLike, max_to_keep: int | None = 2):
    self.directory = Path(directory)
    self.max_to_keep = max_to_keep
    self._mngr = None

  @property
  def manager(self) -> ocp.CheckpointManager:
    if self._mngr is None:
      self._mngr = _manager(self.directory, create=True, max_to_keep=self.max_to_keep)
    return self._mngr

  def latest_step(self) -> int | None:
    if not self.directory.is_dir():
      return None
    return self.manager.latest_step()

  def save(self, step: int, tree: dict, meta: dict) -> None:
    meta = {"format": FORMAT, **meta}
    self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                                    meta=ocp.args.JsonSave(meta)), force=True)
    self.manager.wait_until_finished()

  def close(self) -> None:
    if self._mngr is not None:
      self._mngr.close()


def state_tree(state) -> dict:
  """A FitState's arrays as the checkpoint's "state" item."""
  return {"params": state.train.params, "batch_stats": state.train.batch_stats,
          "opt_state": serialization.to_state_dict(state.train.opt_state),
          "best_params": state.best_params, "best_batch_stats": state.best_batch_stats}


def save_fit_state(ckpt: Checkpoints, state, meta: dict) -> None:
  """Saves a FitState as one step: its arrays, and in the metadata its epoch
  (the last completed, which numbers the step) and early-stopping state."""
  last = state.epoch - 1
  ckpt.save(last, state_tree(state),
            {**meta, "epoch": last, "stopping": dataclasses.asdict(state.stopping)})


def _resolve_step(directory: Path, step: int | None) -> tuple[Path, int]:
  directory = Path(directory)
  if (directory / "checkpoints").is_dir():
    directory = directory / "checkpoints"
  if not directory.is_dir():
    raise CheckpointError(f"{directory}: no such checkpoint folder")
  steps = sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit() and p.is_dir())
  if not steps:
    raise CheckpointError(f"{directory}: not a checkpoint folder (no numbered step inside)")
  step = steps[-1] if step is None else step
  if step not in steps:
    raise CheckpointError(f"{directory}: no step {step}; steps are {steps}")
  return directory, step


def read_meta(directory: str | os.PathLike, step: int | None = None) -> dict:
  directory, step = _resolve_step(Path(directory), step)
  try:
    meta = _manager(directory, create=False).restore(
        step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
  except Exception as e:  # orbax raises many types for a damaged folder
    raise CheckpointError(f"{directory}/{step}: unreadable checkpoint metadata ({e})") from e
  if not isinstance(meta, dict) or meta.get("format") != FORMAT:
    found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
    raise CheckpointError(f"{directory}/{step}: checkpoint format {found!r}, expected {FORMAT!r}")
  return meta


def _on_one_device(tree):
  """Abstract arrays of tree on this process's first device, so a checkpoint
  written from several devices or hosts reads back on one (a run spreads its
  seeds over the devices again itself)."""
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), tree)


def read(directory: str | os.PathLike, step: int | None = None, target: Any = None
         ) -> tuple[dict, dict]:
  """(state tree, meta) of a step (default: the latest). Without a target the arrays
  come back as numpy in nested dicts, readable without the experiment's code."""
  meta = read_meta(directory, step)
  directory, step = _resolve_step(Path(directory), step)
  as_numpy = target is None
  try:
    manager = _manager(directory, create=False)
    if as_numpy:
      target = manager.item_metadata(step)["state"]
    tree = manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(_on_one_device(target))))
    tree = tree["state"]
  except Exception as e:
    raise CheckpointError(f"{directory}/{step}: cannot restore the state ({e})") from e
  if as_numpy:
    tree = jax.tree.map(np.asarray, tree)
  return tree, meta


def restore_fit_state(directory, abstract_train_state, step: int | None = None):
  """(FitState, meta) of a saved step (default: the latest), for resuming a run;
  abstract_train_state gives the shapes (Runner.abstract_state)."""
  abstract = abstract_train_state
  target = {"params": abstract.params, "batch_stats": abstract.batch_stats,
            "opt_state": serialization.to_state_dict(abstract.opt_state),
            "best_params": abstract.params, "best_batch_stats": abstract.batch_stats}
  tree, meta = read(directory, step, target=target)
  opt_state = serialization.from_state_dict(abstract.opt_state, tree["opt_state"])
  train = type(abstract)(tree["params"], tree["batch_stats"], opt_state)
  state = FitState(train, tree["best_params"], tree["best_batch_stats"],
                   EarlyStopping(**meta["stopping"]), meta["epoch"] + 1)
  return state, meta
