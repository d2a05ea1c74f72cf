"""A study's records: one sweep workdir per strategy below a root (each fold its
own workdir), checked to differ only in their strategy; its design and source models."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from xfer_jax import config_fields
from xfer_jax.data.atomic import write_bytes
from xfer_jax.grid import results
from xfer_jax.grid.records import Record
from xfer_jax.study import contrasts
from xfer_jax.transfer import BASELINE

SOURCES = "sources"  # ROOT/sources/<source>/result.json: what each source model reached
# ROOT/design.json: the study's declared questions (xfer_jax/study/contrasts.py's Design):
# {"margin": points, "primary": [{"name", "treated": {"strategy", "source"?,
# "blocks"?}, "control": {...}}]}
DESIGN_FILE = "design.json"
FOLD_FIELD = "data.fold"  # a fold set's grids differ in it alone
# the fields a strategy may change; every other grid field is shared by the study. The
# epoch cap is one: a strategy that trains its copies at a fraction of the learning
# rate needs more epochs before early stopping ends it, and a cell that stops early
# records the same numbers under any higher cap
# The pairs are one too: a grid may run other sources into the same targets (every
# comparison pairs cells by target, size and seed, which the shared fields fix)
STRATEGY_FIELDS = ("transfer.", "sweep.blocks", "sweep.baseline", "train.max_epochs",
                   "sweep.pairs")


class StudyError(results.ResultsError):
  """Strategy grids that cannot be compared; the message names the folder and field."""


def grid_folders(root: Path) -> list[Path]:
  """Each strategy's sweep workdirs: ROOT/<strategy>/ itself or, for a fold set, one
  workdir per fold below it (ROOT/<strategy>/<fold>/: config.data.fold is a grid
  field, so each fold is its own grid)."""
  folds = [p.parent for p in root.glob(f"*/*/{results.GRID_FILE}")
           if results.read_grid(p.parent)["fields"].get("data.folds")]
  # (a folder of grids without folds below ROOT is another study: real_v2/val_accuracy)
  return sorted({p.parent for p in root.glob(f"*/{results.GRID_FILE}")} | set(folds))


def load(root: str | os.PathLike) -> tuple[list[Record], dict[str, dict]]:
  """(records tagged with their strategy, {strategy: grid fields}) of ROOT's grids;
  a strategy's fold workdirs are one grid but for config.data.fold."""
  root = Path(root)
  folders = grid_folders(root)
  if not folders:
    raise StudyError(f"{root}: no <strategy>/{results.GRID_FILE} below it; expected one sweep "
                     "workdir per strategy (launch/real_v2.sh), or one per fold below it")
  records, grids = [], {}
  for folder in folders:
    if not results.results_files(folder):
      continue  # a grid that has not recorded a cell yet
    grid_records, fields = results.load([folder])
    strategy = folder.relative_to(root).parts[0]
    fields = {k: v for k, v in fields.items() if k != FOLD_FIELD}
    if strategy in grids and grids[strategy] != fields:
      raise StudyError(f"{folder}: its grid differs from the other folds of {strategy!r} in "
                       f"more than the fold ({config_fields.describe_differences(fields, grids[strategy])})")
    grids[strategy] = fields
    records += [dataclasses.replace(r, strategy=strategy) for r in grid_records]
  if BASELINE not in grids:
    raise StudyError(f"{root / BASELINE}: no baseline records; every comparison is against them")
  shared = {s: {k: v for k, v in f.items() if not k.startswith(STRATEGY_FIELDS)}
            for s, f in grids.items()}
  for strategy, fields in shared.items():
    if fields != shared[BASELINE]:
      differences = config_fields.describe_differences(fields, shared[BASELINE], (strategy, BASELINE))
      raise StudyError(f"{root / strategy}: its grid differs from {root / BASELINE} in more than "
                       f"the strategy ({differences})")
  return records, grids


def read_design(root: str | os.PathLike, path: str | os.PathLike | None = None
                ) -> contrasts.Design | None:
  """`path` (default ROOT/design.json) as a Design, or None where the study declared none."""
  path = Path(path) if path else Path(root) / DESIGN_FILE
  if not path.exists():
    if path.name != DESIGN_FILE:
      raise StudyError(f"{path}: no such design file")
    return None
  try:
    return contrasts.Design.from_dict(json.loads(path.read_text()))
  except json.JSONDecodeError as e:
    raise StudyError(f"{path}: not JSON ({e})") from e


def source_models(root: str | os.PathLike) -> list[dict]:
  """Per source model of ROOT/sources: its train windows and classes (or pretext
  outputs), and over its seeds the epochs it ran and its score on its own test
  split: micro-F1, or a self-supervised source's pretext accuracy."""
  rows = []
  for path in sorted(Path(root).glob(f"{SOURCES}/*/result.json")):
    try:
      result = json.loads(path.read_text())
      seeds = result["per_seed"]
      score = "micro_f1" if "micro_f1" in seeds[0] else "pretext_accuracy"
      epochs, scores = [s["epochs"] for s in seeds], [s[score] for s in seeds]
      windows = result["train_windows"]
      classes = result.get("num_classes") or "/".join(result["pretext_outputs"])
    except (ValueError, KeyError, TypeError, IndexError) as e:
      raise StudyError(f"{path}: expected a source model's result.json (per_seed epochs and "
                       f"micro_f1 or pretext_accuracy, train_windows, num_classes or "
                       f"pretext_outputs): {e!r}") from None
    rows.append({"source": path.parent.name, "train windows": windows,
                 "classes (or pretext outputs)": classes, "seeds": len(seeds),
                 "epochs": f"{min(epochs)}–{max(epochs)}",
                 "test score": f"{'micro-F1' if score == 'micro_f1' else 'pretext accuracy'} "
                               f"{100 * float(np.mean(scores)):.1f}"})
  return rows


def publish(run_root: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
  """Copies a running study's records into out_dir (each grid's sweep.json and
  results*.jsonl, each source's result.json, the design; checkpoints stay behind), each file
  atomically, so out_dir can be committed while the study goes on."""
  run_root, out_dir = Path(run_root), Path(out_dir)
  files = [p for folder in grid_folders(run_root)
           for p in [folder / results.GRID_FILE, *results.results_files(folder)]]
  files += sorted(run_root.glob(f"{SOURCES}/*/result.json"))
  files += [run_root / DESIGN_FILE] if (run_root / DESIGN_FILE).exists() else []
  for path in files:
    write_bytes(out_dir / path.relative_to(run_root), path.read_bytes())
  return [out_dir / path.relative_to(run_root) for path in files]
