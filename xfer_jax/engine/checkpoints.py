"""Orbax checkpoints: one CheckpointManager per workdir, plain-dict trees.

A checkpoint step holds two items:
- "state": {"params", "batch_stats", "opt_state", "best_params", "best_batch_stats"},
  every leaf with a leading seed axis; opt_state as a state dict (flax
  serialization), so the tree reads back without the experiment's code;
- "meta": JSON (format version, config, class names, epoch, early stopping,
  transfer labels, ..., and the dtype and SHA-256 of every array of "state").
Orbax writes each step to a temporary folder and renames it when complete, so an
interrupted save leaves no partial checkpoint. Reading a step checks every array
against its checksum and refuses non-finite values, so a damaged file is an
error naming the step and the array, never a silently different model; a resumed
run falls back to the newest intact step.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from xfer_jax import errors
from xfer_jax.engine import devices
from xfer_jax.errors import UserError, describe_os_error, os_cause

FORMAT = "xfer_jax.checkpoint/1"


class CheckpointError(UserError, RuntimeError):
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
    meta = {"format": FORMAT, **meta, "checksums": checksums(tree)}
    try:
      with errors.quiet_background_failures():
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                                        meta=ocp.args.JsonSave(meta)), force=True)
        self.manager.wait_until_finished()
    except Exception as e:  # orbax reports a failed write from its threads in many types
      cause = os_cause(e)
      raise CheckpointError(f"{self.directory}/{step}: saving the checkpoint failed ("
                            f"{describe_os_error(cause) if cause else e})") from e

  def set_aside(self, step: int, why: str) -> Path:
    """Renames a damaged step's folder out of the manager's sight (kept, not
    deleted), so that training can save that step again."""
    self.close()
    self._mngr = None
    damaged = self.directory / f"{step}.damaged"
    os.replace(self.directory / str(step), damaged)
    logging.warning("%s/%d: skipped (%s); kept as %s", self.directory, step, why, damaged)
    return damaged

  def close(self) -> None:
    if self._mngr is not None:
      with errors.quiet_background_failures():
        self._mngr.close()
      self._mngr = None


def _path_name(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def checksums(tree) -> dict[str, list[str]]:
  """{array path: [dtype, SHA-256 of its bytes]} of every array of a state tree."""
  flat = jax.tree_util.tree_flatten_with_path(devices.to_host(tree))[0]
  return {_path_name(path): [str(a.dtype), hashlib.sha256(np.ascontiguousarray(a).tobytes())
                             .hexdigest()] for path, a in flat}


def verify(tree, meta: dict, where: str) -> None:
  """Checks a restored state tree against the checksums saved with it, every array
  of it, and refuses non-finite values."""
  found = checksums(tree)
  expected = meta.get("checksums", {})
  missing = sorted(set(expected) - set(found))
  if missing:
    raise CheckpointError(f"{where}: arrays {missing} are missing from the step")
  unchecked = sorted(set(found) - set(expected))
  if unchecked:
    raise CheckpointError(
        f"{where}: its metadata holds no checksum for {len(unchecked)} array(s) "
        f"({unchecked[:3]}{' ...' if len(unchecked) > 3 else ''}), so they cannot be verified: "
        "the metadata is damaged (every step this code saves has one per array); use an "
        "older step or retrain")
  for path, (dtype, _) in expected.items():
    if found[path][0] != dtype:
      hint = "; set JAX_ENABLE_X64=1 to read float64 arrays" if dtype == "float64" else ""
      raise CheckpointError(f"{where}: {path} was saved as {dtype} but reads as "
                            f"{found[path][0]}{hint}")
  damaged = sorted(p for p, (_, digest) in expected.items() if found[p][1] != digest)
  if damaged:
    raise CheckpointError(f"{where}: {len(damaged)} array(s) differ from the checksums saved "
                          f"with the step, so its files are damaged: {damaged[:6]}")
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  nonfinite = [_path_name(path) for path, a in flat
               if np.issubdtype(np.asarray(a).dtype, np.floating) and not np.isfinite(a).all()]
  if nonfinite:
    raise CheckpointError(f"{where}: non-finite values (NaN or inf) in {nonfinite[:6]}"
                          f"{' and more' if len(nonfinite) > 6 else ''}")


def _unreadable(directory: Path, step: int, error: Exception) -> str:
  """Why a step's arrays cannot be read, named where the cause is known: a file cut
  short (a copy or a full disk), with the steps still there."""
  text, cause = str(error), error
  while cause.__cause__ is not None or cause.__context__ is not None:
    cause = cause.__cause__ or cause.__context__
    text += f" {cause}"
  others = [s for s in steps(directory)[1] if s != step]
  use = f"use an older step ({others})" if others else "retrain (no other step is here)"
  if any(sign in text for sign in ("OUT_OF_RANGE", "yte range", "DATA_LOSS",
                                   "Encountered error while reading array")):
    return (f"{directory}/{step}: a file of the step is shorter than its index says (truncated "
            f"by an interrupted copy or a full disk): restore the step from a copy, or {use}")
  return f"{directory}/{step}: cannot restore the state ({str(error)[:300]}); {use}"


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


def steps(directory: str | os.PathLike) -> tuple[Path, list[int]]:
  """(the checkpoint folder, its saved steps in increasing order)."""
  directory, _ = _resolve_step(Path(directory), None)
  return directory, sorted(int(p.name) for p in directory.iterdir()
                           if p.name.isdigit() and p.is_dir())


@contextlib.contextmanager
def _reading(directory: Path):
  """A manager for reading a folder; a damaged step's failure inside orbax's
  threads is raised here, not printed from them."""
  with errors.quiet_background_failures():
    manager = _manager(directory, create=False)
    try:
      yield manager
    finally:
      manager.close()


def read_meta(directory: str | os.PathLike, step: int | None = None) -> dict:
  directory, step = _resolve_step(Path(directory), step)
  try:
    with _reading(directory) as manager:
      meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
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
    with _reading(directory) as manager:
      if as_numpy:
        target = manager.item_metadata(step)["state"]
      tree = manager.restore(
          step, args=ocp.args.Composite(state=ocp.args.StandardRestore(_on_one_device(target))))
      tree = tree["state"]
  except Exception as e:
    raise CheckpointError(_unreadable(directory, step, e)) from e
  if as_numpy:
    tree = jax.tree.map(np.asarray, tree)
  verify(tree, meta, f"{directory}/{step}")
  return tree, meta


def read_newest_intact(directory, target) -> tuple[dict, dict, list[tuple[int, str]]]:
  """(state tree, meta, skipped) of the newest step that reads and verifies, as
  `target`'s structure; skipped: the (step, reason) of newer steps that did not."""
  directory, saved_steps = steps(directory)
  skipped = []
  for step in reversed(saved_steps):
    try:
      tree, meta = read(directory, step, target=target)
      return tree, meta, skipped
    except CheckpointError as e:
      skipped.append((step, str(e)))
  raise CheckpointError(f"{directory}: no intact step to resume from: "
                        + "; ".join(reason for _, reason in skipped))
