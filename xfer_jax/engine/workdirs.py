"""A run's workdir: the config it was trained with, pinned, and the state to resume.

  workdir/config.json     the run's config; a rerun may change config.runtime, never
                          the science (config_fields.science_fields)
  workdir/checkpoints/    the FitState of the last saved epoch (loop.save_fit_state)
  workdir/result.json     the finished run's scores (experiment.train_and_evaluate)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from xfer_jax import config_fields
from xfer_jax.data.atomic import write_text
from xfer_jax.engine import checkpoints
from xfer_jax.engine.loop import FitState, restore_fit_state
from xfer_jax.engine.runner import Runner
from xfer_jax.errors import UserError

# config groups a phase does not read: a rerun may change them
UNREAD = {"pretrain": ("target", "adapt.", "transfer.", "sweep.", "datasets"),
          "adapt": ("source", "sweep.", "datasets", "pretext.", "pool.")}


RESULT = "result.json"


class WorkdirError(UserError, ValueError):
  """A workdir that holds another run than the one asked for (names the fields)."""


def run_fields(config, phase: str) -> dict[str, object]:
  """The science fields (config_fields.science_fields) that a phase's numbers depend on."""
  return {k: v for k, v in config_fields.science_fields(config).items()
          if not k.startswith(UNREAD[phase.split("_")[0]])}


def pin_config(workdir: Path, config, phase: str, write: bool = True) -> None:
  """Writes workdir/config.json, or checks that the one there describes a run with
  the same numbers, so config.json always says how the workdir's model was trained.
  The checkpoint holds its run's config too: a workdir whose config.json is gone, or
  whose checkpoints came from another run, is checked against what it holds."""
  given = run_fields(config, phase)
  path = workdir / "config.json"
  saved_by_checkpoint = _checkpoint_config(workdir / "checkpoints")
  if saved_by_checkpoint is not None:
    _same_run(run_fields(saved_by_checkpoint, phase), given,
              f"{workdir / 'checkpoints'}: its latest step was trained with another config")
    _same_head(saved_by_checkpoint, config, workdir / "checkpoints")
  if not path.exists():
    if write:
      workdir.mkdir(parents=True, exist_ok=True)
      write_text(path, config.to_json_best_effort(indent=2))
    return
  try:
    saved = run_fields(json.loads(path.read_text()), phase)
  except (json.JSONDecodeError, AttributeError) as e:
    raise WorkdirError(f"{path}: not a config saved by a run ({e}); use a fresh workdir") from e
  _same_run(saved, given, f"{path}: this workdir holds a run of another config")


def _same_run(saved: dict, given: dict, what: str) -> None:
  if saved != given:
    raise WorkdirError(
        f"{what} ({config_fields.describe_differences(saved, given, ('saved', 'given'))}); rerun "
        "with the saved config to resume it, or give a fresh --workdir. Only config.runtime "
        "may change")


def _same_head(saved: dict, config, directory: Path) -> None:
  """config.runtime may change on a rerun, but for pad_classes: the checkpoint holds
  a head of the width it gave."""
  was = int((saved.get("runtime") or {}).get("pad_classes", 0) or 0)
  given = int(config.runtime.get("pad_classes", 0) or 0)
  if was != given:
    raise WorkdirError(f"{directory}: trained with config.runtime.pad_classes={was}, given "
                       f"{given}: its head's width is saved with it; rerun with "
                       f"--config.runtime.pad_classes={was}, or give a fresh --workdir")


def _checkpoint_config(directory: Path) -> dict | None:
  """The config in the latest step's metadata; None without a step, or where the
  step cannot be read (resume then falls back to an older one, or says why not)."""
  if not directory.is_dir() or not any(p.name.isdigit() for p in directory.iterdir()):
    return None
  try:
    return checkpoints.read_meta(directory).get("config")
  except checkpoints.CheckpointError:
    return None


def resume(ckpt: checkpoints.Checkpoints, runner: Runner, meta: dict) -> FitState | None:
  """The newest intact checkpoint of this run (None before its first save); damaged
  newer steps are set aside. A checkpoint of another phase, seeds or source is refused."""
  if ckpt.latest_step() is None:
    return None
  phase, run_seeds = meta["phase"], meta["seeds"]
  state, saved, skipped = restore_fit_state(ckpt.directory,
                                            runner.abstract_state(len(run_seeds)))
  if saved.get("phase") != phase or saved.get("seeds") != run_seeds:
    raise checkpoints.CheckpointError(
        f"{ckpt.directory}: holds phase {saved.get('phase')!r} seeds {saved.get('seeds')}, "
        f"not {phase!r} seeds {run_seeds}; use a fresh workdir")
  source = meta.get("transfer", {}).get("source")
  if saved.get("transfer", {}).get("source") != source:
    raise checkpoints.CheckpointError(
        f"{ckpt.directory}: adapted from source {saved.get('transfer', {}).get('source')!r}, "
        f"not {source!r}; use a fresh workdir")
  for step, why in skipped:
    ckpt.set_aside(step, why)
  logging.info("resuming %s from epoch %d", phase, state.epoch)
  return state


def read_result(workdir: Path) -> dict | None:
  """workdir/result.json, or None before the run has finished."""
  path = workdir / RESULT
  return json.loads(path.read_text()) if path.exists() else None


def write_result(workdir: Path, summary: dict) -> None:
  """workdir/result.json, left as it is where it already says the same (a finished
  run rerun on a read-only file system)."""
  text = json.dumps(summary, indent=2)
  path = workdir / RESULT
  if not path.exists() or path.read_text() != text:
    write_text(path, text)
