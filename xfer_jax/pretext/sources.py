"""Self-supervised sources: "objective:datasets" names and their unlabelled windows.

A source named "multitask:wisdm2019+hmp" (or "simclr:hmp") pretrains the
Multi-ResNet by that objective (pretext/objectives.py) on the windows of its
datasets, labels unread; without the prefix a source is supervised. The name
stands wherever a dataset or pooled source name does: config.source,
config.sweep.pairs ("simclr:wisdm2019->hmp"), a sweep's sources folder.

Only the datasets' train splits are read. Why: a target may then be among its own
source's datasets ("simclr:hmp->hmp", the realistic case of many unlabelled
windows and few labels: pretrain on the target's unlabelled train split, adapt on
n of its labels) and its validation and test windows still never reach the source.
The pretext is validated and tested on held-out recordings of those train splits
(config.pretext.holdout of the windows, whole recordings, or blocks of consecutive
windows where there are few recordings: half validate, half test), and several
datasets are pooled under config.pool.balance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from xfer_jax.data import DataError, Prepared, Split, pool, prepare, window_samples
from xfer_jax.data.recording import UNLABELLED
from xfer_jax.engine import step
from xfer_jax.pretext.objectives import OBJECTIVES, PretextError, build

SUPERVISED = "supervised"
SUPERVISED_ONLY_OPTIONS = ("keep", "merge", "null_label")  # a dataset entry's class lists


def objective_of(source: str) -> str:
  """The objective a source is trained by: "supervised", or the prefix of an
  "objective:datasets" name (checked)."""
  if pool.OBJECTIVE_SEPARATOR not in str(source):
    return SUPERVISED
  objective = str(source).split(pool.OBJECTIVE_SEPARATOR, 1)[0].strip()
  if objective not in OBJECTIVES:
    raise PretextError(f"source {source!r}: unknown self-supervised objective {objective!r}; "
                       f"expected 'objective:datasets' with an objective of {OBJECTIVES}, or "
                       "a dataset name alone (supervised)")
  return objective


def is_self_supervised(source: str) -> bool:
  return objective_of(source) != SUPERVISED


def _check_entry(name: str, data_config: Mapping) -> None:
  """An own dataset whose entry selects classes is a supervised setting."""
  entry = dict(data_config.get("datasets", {})).get(name) or {}
  chosen = [k for k in SUPERVISED_ONLY_OPTIONS if k in dict(entry.get("options", {}))]
  if chosen:
    raise PretextError(f"config.data.datasets.{name}.options.{chosen[0]}: selects classes, a "
                       "supervised setting; a self-supervised source reads no labels (drop it, "
                       "or name the source without an objective)")


def unlabelled_windows(source: str, data_config: Mapping, balance: str, holdout: float,
                       seed: int) -> Prepared:
  """The train-split windows of a self-supervised source's datasets, pooled and
  balanced, labels set to 0 (the one class UNLABELLED); held-out recordings make
  up its val and test splits (see the module docstring)."""
  if not isinstance(holdout, (int, float)) or not 0 < holdout < 1:
    raise PretextError(f"config.pretext.holdout={holdout!r}: expected the share of the "
                       "windows (whole recordings) held out to validate the pretext, in (0, 1)")
  names = pool.members(source)
  for name in names:
    _check_entry(name, data_config)
  parts = []
  for name in names:
    prepared = prepare(name, data_config)
    train = prepared.splits["train"]
    unlabelled = Split(train.x_NxWx3, np.zeros(len(train), np.int32), train.subject_N,
                       train.recording_N)
    parts.append(Prepared(name=prepared.name, class_names=(UNLABELLED,),
                          splits={s: unlabelled for s in ("train", "val", "test")},
                          recording_ids=prepared.recording_ids, split_rule=prepared.split_rule,
                          assignment=[], hours=prepared.hours))
  pooled = parts[0] if len(parts) == 1 else pool.pool(parts, balance, seed)
  windows = pooled.splits["train"]
  return Prepared(name=str(source), class_names=(UNLABELLED,),
                  splits=_hold_out(windows, holdout, seed, str(source)),
                  recording_ids=pooled.recording_ids,
                  split_rule=f"train split(s) of {names}, {holdout:.0%} held out by recording",
                  assignment=[], hours=pooled.hours)


MIN_UNITS = 10  # recordings below which the hold-out cuts recordings into blocks
BLOCKS = 20


def _units(windows: Split) -> np.ndarray:
  """The unit each window is held out with: its recording, or, where the split has
  fewer than MIN_UNITS recordings (a synthetic or one-session dataset), a block of
  about len / BLOCKS consecutive windows of one recording."""
  recording = windows.recording_N.astype(np.int64)
  if len(np.unique(recording)) >= MIN_UNITS:
    return recording
  block = -(-len(recording) // BLOCKS)
  position = np.zeros(len(recording), np.int64)
  for r in np.unique(recording):  # windows of a recording are in time order
    at = recording == r
    position[at] = np.arange(at.sum())
  return recording * (len(recording) + 1) + position // block


def _hold_out(windows: Split, holdout: float, seed: int, source: str) -> dict[str, Split]:
  """train / val / test of one split's windows by whole units (_units): a seeded
  order of units, the first holdout / 2 of the windows validate, the next test.
  With blocks, a train window next to a held-out one is dropped: neighbours overlap
  by the window step, and no held-out sample should have trained."""
  units = _units(windows)
  order = np.random.default_rng(seed).permutation(np.unique(units))
  if len(order) < 3:
    raise DataError(f"self-supervised source {source!r}: its train split(s) hold {len(order)} "
                    "unit(s) to hold out; validating and testing the pretext needs at least 3")
  counts = np.array([np.sum(units == u) for u in order])
  start = np.cumsum(counts) - counts  # windows before each unit, in this order
  total = len(windows)
  part = np.where(start < holdout / 2 * total, 1, np.where(start < holdout * total, 2, 0))
  part[0], part[-1] = 1, 0  # at least one unit validates, one trains
  if not np.any(part == 2):
    part[1] = 2
  which = dict(zip(order.tolist(), part.tolist()))
  of = np.array([which[u] for u in units.tolist()])
  if not np.array_equal(units, windows.recording_N):
    same = windows.recording_N[1:] == windows.recording_N[:-1]
    held = of != 0
    near = np.zeros(total, bool)
    near[:-1] |= same & held[1:]
    near[1:] |= same & held[:-1]
    of = np.where((of == 0) & near, -1, of)
  take = lambda mask: Split(*(getattr(windows, f)[mask] for f in
                              ("x_NxWx3", "y_N", "subject_N", "recording_N")))
  return {"train": take(of == 0), "val": take(of == 1), "test": take(of == 2)}


def training_data(config, source: str) -> tuple[Prepared, Any, dict]:
  """(the windows a source model trains on, its objective, what its checkpoint
  meta says of them)."""
  names = pool.members(source)
  balance, seed = config.pool.balance, config.data.split_seed
  objective_name = objective_of(source)
  extra = {"datasets": names, "objective": objective_name}
  if len(names) > 1:
    extra["pool_balance"] = balance
  if objective_name == SUPERVISED:
    parts = [prepare(name, config.data) for name in names]
    extra["class_sources"] = pool.class_sources(parts)
    return (parts[0] if len(parts) == 1 else pool.pool(parts, balance, seed)), step.SUPERVISED, extra
  objective = build(objective_name, config.pretext, window_samples(config.data),
                               config.data.rate_hz)
  prepared = unlabelled_windows(source, config.data, balance, config.pretext.holdout,
                                        seed)
  extra["pretext"] = {"objective": objective_name, "splits_read": ["train"],
                      "outputs": list(objective.score_names),
                      "windows": {s: len(prepared.splits[s]) for s in ("train", "val", "test")}}
  return prepared, objective, extra
