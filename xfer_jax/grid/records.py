"""A sweep's record: the result of one (cell, seed), the one schema that sweep writes
and report, study and contrasts read. Fields are named here only."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from xfer_jax.data import pool
from xfer_jax.pretext import sources as pretext_sources
from xfer_jax.transfer import BASELINE

METRICS = ("micro_f1", "macro_f1")


class RecordError(ValueError):
  """A results line that is not a record; the message names the fields."""


@dataclasses.dataclass(frozen=True)
class Record:
  config_key: str  # the grid's (results.config_key)
  target: str
  source: str | None  # None: the baseline, trained from scratch
  size: int  # adaptation windows in all, or per class (budget)
  blocks: int  # transferred blocks; 0 for the baseline
  mode: str  # config.transfer.mode, or BASELINE
  seed: int
  micro_f1: float  # on the target's test split
  macro_f1: float
  majority_micro_f1: float  # always predicting the train split's majority class
  majority_macro_f1: float
  epochs: int  # epochs trained
  best_epoch: int  # the epoch whose parameters were kept
  num_classes: int | None = None
  wall_s: float | None = None  # the cell's wall time (all its seeds)
  task: str | None = None  # "i/n": the task slice that ran it
  # a transfer cell's strategy beyond its mode (config.transfer)
  branch: str | None = None
  lr_scale: float | None = None
  # lp_ft: how long its linear probe trained
  probe_epochs: int | None = None
  probe_best_epoch: int | None = None
  fold: int | None = None  # a fold set's fold (config.data.folds)
  # a label budget other than the paper's (size windows, the val split selecting)
  budget: str | None = None
  selection: str | None = None
  labelled_windows: int | None = None  # per seed: training and selection
  selection_windows: int | None = None
  # the study's name of the record's grid, set when a study reads it; never written
  strategy: str | None = dataclasses.field(default=None, compare=False)

  @property
  def cell(self) -> tuple:
    """(target, source, size, blocks): what a sweep runs once for all seeds."""
    return (self.target, self.source, self.size, self.blocks)

  @property
  def id(self) -> tuple:
    """The cell and seed: one record per id in a grid."""
    return (*self.cell, self.seed)

  @property
  def replicate(self):
    """What pairs a record with its baseline: its seed, or (fold, seed) in a fold
    set, whose seeds repeat in every fold."""
    return self.seed if self.fold is None else (self.fold, self.seed)

  @property
  def arm_source(self) -> str | None:
    """The source as a study's arms group it (source_label); None for the baseline."""
    return self.source and source_label(self.source, self.target)

  def metric(self, name: str) -> float:
    if name not in METRICS:
      raise RecordError(f"metric {name!r}: expected one of {METRICS}")
    return getattr(self, name)

  def to_json(self) -> dict:
    """The record as written: optional fields left out where unset, but a transfer
    cell's branch and lr_scale, which it always states."""
    out = {}
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if field.name == "strategy":
        continue
      stated = field.name in ("branch", "lr_scale") and self.source is not None
      if value is not None or field.default is dataclasses.MISSING or stated:
        out[field.name] = value
    return out

  @classmethod
  def from_json(cls, line: Mapping, where: str = "a record") -> Record:
    names = {f.name for f in dataclasses.fields(cls)} - {"strategy"}
    required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
    missing, unknown = sorted(required - set(line)), sorted(set(line) - names)
    if missing or unknown:
      raise RecordError(f"{where}: not a sweep record (" + "; ".join(
          f"{what}: {fields}" for what, fields in (("missing", missing), ("unknown", unknown))
          if fields) + ")")
    return cls(**line)


def source_label(source: str, target: str | None = None) -> str:
  """A source as a study's arms group it: the leave-one-out pools of different
  targets are one arm ("pooled"), and so are the self-supervised sources of each
  target's own train split ("simclr:own")."""
  objective = pretext_sources.objective_of(source)
  prefix = "" if objective == pretext_sources.SUPERVISED else f"{objective}:"
  if prefix and target in pool.members(source):
    return f"{prefix}own" + ("+" if "+" in source else "")
  return f"{prefix}pooled" if "+" in source else source


def build(*, config_key: str, target: str, source: str | None, size: int, blocks: int,
          transfer: Mapping, seed_result: Mapping, majority: Mapping, num_classes: int,
          budget: Mapping, fold: int | None, wall_s: float, task: str) -> Record:
  """A cell's record for one seed: its cell, its strategy (transfer: config.transfer),
  the seed's result (experiment.adapt's per_seed row), the target's majority scores,
  the budget fields where the budget is not the paper's (sweep.budget_fields)."""
  strategy = {} if source is None else {"branch": transfer["branch"],
                                         "lr_scale": transfer["lr_scale"]}
  return Record(
      config_key=config_key, target=target, source=source, size=size, blocks=blocks,
      mode=BASELINE if source is None else transfer["mode"], seed=seed_result["seed"],
      micro_f1=seed_result["micro_f1"], macro_f1=seed_result["macro_f1"],
      majority_micro_f1=majority["micro_f1"], majority_macro_f1=majority["macro_f1"],
      epochs=seed_result["epochs"], best_epoch=seed_result["best_epoch"],
      num_classes=num_classes, wall_s=round(wall_s, 3), task=task, **strategy,
      probe_epochs=seed_result.get("probe_epochs"),
      probe_best_epoch=seed_result.get("probe_best_epoch"), fold=fold, **budget)
