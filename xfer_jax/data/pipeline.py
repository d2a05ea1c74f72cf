"""Raw dataset -> gap policy -> split -> 25 Hz -> windows, cached on disk."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xfer_jax import metrics
from xfer_jax.data import cache, preprocess, registry, synthetic
from xfer_jax.data.recording import DataError, RawDataset
from xfer_jax.data.splits import SPLITS, assign_splits

ARRAYS = ("x", "y", "subject", "recording")


@dataclasses.dataclass(frozen=True)
class Split:
  x_NxWx3: np.ndarray  # float32, g
  y_N: np.ndarray  # int32 class index
  subject_N: np.ndarray
  recording_N: np.ndarray  # index into Prepared.recording_ids

  def __len__(self) -> int:
    return len(self.y_N)


@dataclasses.dataclass(frozen=True)
class Prepared:
  """A dataset ready for training: windows per split and how they were made."""

  name: str
  class_names: tuple[str, ...]
  splits: dict[str, Split]
  recording_ids: tuple[str, ...]
  split_rule: str
  assignment: list[dict]  # which samples of which recording went to which split
  hours: float
  from_cache: bool = False

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  def majority(self) -> dict:
    """The majority-class baseline: the train split's most frequent class, scored on
    the test split (the one definition every output uses)."""
    return metrics.majority_baseline(self.splits["train"].y_N, self.splits["test"].y_N,
                                     self.num_classes)

  def summary(self) -> dict[str, Any]:
    majority = self.majority()
    return {
        "dataset": self.name, "recordings": len(self.recording_ids), "hours": self.hours,
        "classes": self.num_classes, "split_rule": self.split_rule,
        **{f"windows_{s}": len(self.splits[s]) for s in SPLITS},
        **{f"subjects_{s}": len(np.unique(self.splits[s].subject_N)) for s in SPLITS},
        "majority_class": self.class_names[majority["class"]],
        "majority_micro_f1": majority["micro_f1"]}


def window_samples(config: Mapping) -> int:
  """Samples in one window at the target rate: the model's input length."""
  return int(round(config["window_s"] * config["rate_hz"]))


def resolve_dataset(dataset: str | Mapping, data_dir: str = "") -> dict:
  """A dataset name or {name, reader, path, options} -> a full, resolved entry."""
  if isinstance(dataset, str):
    entry = {"name": dataset, **registry.dataset_entry(dataset)}
  else:
    entry = dict(dataset)
    if "reader" not in entry or not entry.get("reader"):
      entry = {**registry.dataset_entry(entry["name"]), **{k: v for k, v in entry.items() if v}}
  entry.setdefault("options", {})
  entry["options"] = dict(entry["options"])
  path = entry.get("path", "")
  if path and not os.path.isabs(path):
    base = data_dir or os.environ.get("XFER_JAX_DATA_DIR", "")
    if not base:
      raise DataError(f"dataset {entry['name']!r} reads {path!r} relative to a data folder: "
                      "set --config.data.data_dir or XFER_JAX_DATA_DIR")
    path = str(Path(base) / path)
  entry["path"] = path
  return entry


def _windows_of(raw: RawDataset, config: Mapping) -> tuple[dict, list[str], str, list[dict]]:
  rate, window = float(config["rate_hz"]), window_samples(config)
  step = int(round(config["step_s"] * config["rate_hz"]))
  recordings = []
  for rec in raw.recordings:
    recordings.extend(preprocess.apply_gap_policy(rec, config["max_interp_gap_s"]))
  gap_free = dataclasses.replace(raw, recordings=recordings)
  rule, pieces = assign_splits(gap_free, config["split_rule"], tuple(config["split_fractions"]),
                               int(config["split_seed"]))
  parts = {s: {k: [] for k in ARRAYS} for s in SPLITS}
  assignment = []
  for k, piece in enumerate(pieces):
    rec = gap_free.recordings[piece.recording]
    part = preprocess.slice_recording(rec, piece.start, piece.stop, k)
    classes = raw.spec.class_ids(part.labels_T, where=rec.recording_id)
    acc, classes = preprocess.resample(part, classes, rate)
    x, y = preprocess.make_windows(acc, classes, window, step, config["label_rule"])
    out = parts[piece.split]
    out["x"].append(x)
    out["y"].append(y)
    out["subject"].append(np.full(len(y), rec.subject, np.int32))
    out["recording"].append(np.full(len(y), piece.recording, np.int32))
    assignment.append({"recording": rec.recording_id, "subject": rec.subject,
                       "start": int(piece.start), "stop": int(piece.stop), "split": piece.split,
                       "windows": len(y)})
  arrays = {}
  for s in SPLITS:
    for k in ARRAYS:
      chunks = parts[s][k]
      empty = np.zeros((0, window, 3), np.float32) if k == "x" else np.zeros(0, np.int32)
      arrays[f"{k}_{s}"] = np.concatenate(chunks) if chunks else empty
  return arrays, [r.recording_id for r in recordings], rule, assignment


def prepare(dataset: str | Mapping, config: Mapping, *, use_cache: bool = True) -> Prepared:
  """Prepares one dataset under the preprocessing config (see configs/common.py)."""
  entry = resolve_dataset(dataset, config.get("data_dir", ""))
  keyed = {k: v for k, v in dict(config).items() if k not in ("cache_dir", "data_dir")}
  identity = {"dataset": entry, "preprocess": keyed}
  if entry["reader"] == "synthetic":
    identity["simulator"] = synthetic.SIMULATOR_VERSION
  key = cache.cache_key(identity)
  cache_dir = Path(config.get("cache_dir") or cache.default_cache_dir())
  cache_file = cache_dir / f"{entry['name']}-{key}.npz"
  arrays = cache.load(cache_file) if use_cache else None
  from_cache = arrays is not None
  if arrays is None:
    raw = registry.read_raw(entry["reader"], entry["path"], entry["options"])
    logging.info("preparing %s: %d recordings, %.2f h", entry["name"], len(raw.recordings),
                 raw.hours)
    arrays, recording_ids, rule, assignment = _windows_of(raw, config)
    meta = {"class_names": list(raw.spec.class_names), "recording_ids": recording_ids,
            "split_rule": rule, "assignment": assignment, "hours": raw.hours}
    arrays["meta"] = np.array(json.dumps(meta))
    if use_cache:
      cache.save(cache_file, arrays)
  meta = json.loads(str(arrays["meta"]))
  splits = {s: Split(*(arrays[f"{k}_{s}"] for k in ARRAYS)) for s in SPLITS}
  empty = [s for s in SPLITS if len(splits[s]) == 0]
  if empty:
    raise DataError(f"dataset {entry['name']!r}: no windows in split(s) {empty}; the dataset is "
                    "too small for the split or the window length")
  return Prepared(name=entry["name"], class_names=tuple(meta["class_names"]), splits=splits,
                  recording_ids=tuple(meta["recording_ids"]), split_rule=meta["split_rule"],
                  assignment=meta["assignment"], hours=meta["hours"], from_cache=from_cache)
