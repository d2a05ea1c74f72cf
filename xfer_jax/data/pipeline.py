"""Raw dataset -> gap policy -> split -> 25 Hz -> windows, cached on disk."""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xfer_jax import metrics
from xfer_jax.data import cache, preprocess, registry, synthetic, units
from xfer_jax.data.recording import UNLABELLED, DataError, RawDataset
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
  recordings: int = 0  # as read, before the gap policy cut them into pieces
  losses: dict = dataclasses.field(default_factory=dict)  # per split: _windows_of
  from_cache: bool = False

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @property
  def labelled(self) -> bool:
    """False for recordings without labels (a self-supervised source only)."""
    return self.class_names != (UNLABELLED,)

  def majority(self) -> dict:
    """The majority-class baseline: the train split's most frequent class among those the
    test split holds (metrics.majority_baseline), scored on
    the test split (the one definition every output uses)."""
    return metrics.majority_baseline(self.splits["train"].y_N, self.splits["test"].y_N,
                                     self.num_classes)

  def summary(self) -> dict[str, Any]:
    majority = self.majority()
    return {
        "dataset": self.name, "recordings": self.recordings, "pieces": len(self.recording_ids),
        "hours": self.hours,
        "classes": self.num_classes, "split_rule": self.split_rule,
        **{f"windows_{s}": len(self.splits[s]) for s in SPLITS},
        **{f"subjects_{s}": len(np.unique(self.splits[s].subject_N)) for s in SPLITS},
        "majority_class": self.class_names[majority["class"]],
        "majority_micro_f1": majority["micro_f1"],
        **{f"lost_{s}": _lost(self.losses.get(s)) for s in SPLITS}}


def _lost(loss: Mapping | None) -> str:
  """A split's losses to the window length, for prepare's table."""
  if not loss:
    return ""
  text = f"{len(loss['pieces_without_windows'])}/{loss['pieces']} pieces"
  return text + (f", classes {','.join(loss['classes_lost'])}" if loss["classes_lost"] else "")


def window_samples(config: Mapping) -> int:
  """Samples in one window at the target rate: the model's input length."""
  return int(round(config["window_s"] * config["rate_hz"]))


def resolve_dataset(dataset: str | Mapping, data_config: Mapping | None = None) -> dict:
  """A dataset name (built in, or declared in data_config["datasets"]) or an entry
  {name, reader, path, options, preprocess} -> a full entry, its path resolved
  against data_config["data_dir"] (or $XFER_JAX_DATA_DIR)."""
  data_config = data_config or {}
  own = data_config.get("datasets") or {}
  if isinstance(dataset, str):
    entry = {"name": dataset, **registry.dataset_entry(dataset, own)}
  else:
    entry = dict(dataset)
    if "reader" not in entry or not entry.get("reader"):
      entry = {**registry.dataset_entry(entry["name"], own),
               **{k: v for k, v in entry.items() if v}}
  entry["options"] = dict(entry.get("options") or {})
  entry["preprocess"] = dict(entry.get("preprocess") or {})
  unknown = sorted(set(entry["preprocess"]) - PREPROCESS_FIELDS)
  if unknown:
    raise DataError(f"dataset {entry['name']!r}: its preprocess sets {unknown}; a dataset may "
                    f"set only {sorted(PREPROCESS_FIELDS)} (rate_hz and window_s shape the "
                    "model's input: they are the config's)")
  path = entry.get("path", "")
  if path and not os.path.isabs(path):
    base = data_config.get("data_dir", "") or os.environ.get("XFER_JAX_DATA_DIR", "")
    if not base:
      raise DataError(f"dataset {entry['name']!r} reads {path!r} relative to a data folder: "
                      "set --config.data.data_dir or XFER_JAX_DATA_DIR")
    path = str(Path(base) / path)
  entry["path"] = path
  return entry


# config.data fields that decide where files are, not what is computed from them
_LOCATIONS = ("cache_dir", "data_dir", "datasets")
# the config.data fields a dataset's entry may set for itself (registry.py)
PREPROCESS_FIELDS = {"label_rule", "min_labelled", "step_s", "max_interp_gap_s", "split_rule",
                     "split_fractions", "split_seed", "check_units", "allow_lost_classes",
                     "folds", "fold"}


def dataset_config(entry: Mapping, data_config: Mapping) -> dict:
  """config.data as one dataset sees it: its entry's preprocess fields over the
  config's, without the location fields."""
  merged = {**{k: v for k, v in dict(data_config).items() if k not in _LOCATIONS},
             **entry.get("preprocess", {})}
  if not merged.get("folds"):  # off: prepared (and cached) as before folds existed
    merged.pop("folds", None)
    merged.pop("fold", None)
  return merged


def check_data_config(data_config: Mapping, name: str) -> None:
  """The preprocessing fields a dataset is prepared with, each in its range."""
  def need(field, ok, expected):
    if field in data_config and not ok(data_config[field]):
      raise DataError(f"config.data.{field}={data_config[field]!r} (dataset {name!r}): "
                      f"expected {expected}")
  positive = lambda v: isinstance(v, (int, float)) and np.isfinite(v) and v > 0
  need("rate_hz", positive, "a positive rate in Hz")
  need("window_s", positive, "a positive window length in seconds")
  need("step_s", positive, "a positive window step in seconds")
  need("max_interp_gap_s", lambda v: v >= 0, "seconds >= 0")
  need("label_rule", lambda v: v in preprocess.LABEL_RULES, f"one of {preprocess.LABEL_RULES}")
  need("min_labelled", lambda v: 0 < v <= 1, "a fraction of the window in (0, 1]")
  if "rate_hz" in data_config and "window_s" in data_config and window_samples(data_config) < 2:
    raise DataError(f"config.data.window_s={data_config['window_s']} at rate_hz="
                    f"{data_config['rate_hz']} is {window_samples(data_config)} sample(s) "
                    f"(dataset {name!r}): a window needs at least 2")


def _windows_of(raw: RawDataset, config: Mapping) -> tuple[dict, dict]:
  rate, window = float(config["rate_hz"]), window_samples(config)
  step = max(1, int(round(config["step_s"] * config["rate_hz"])))
  recordings = []
  for rec in raw.recordings:
    recordings.extend(preprocess.apply_gap_policy(rec, config["max_interp_gap_s"]))
  if not recordings:
    raise DataError(f"dataset {raw.spec.name!r}: no recording has two consecutive valid samples")
  gap_free = dataclasses.replace(raw, recordings=recordings)
  rule, pieces = assign_splits(gap_free, config["split_rule"], tuple(config["split_fractions"]),
                               int(config["split_seed"]), folds=int(config.get("folds", 0)),
                               fold=int(config.get("fold", 0)))
  parts = {s: {k: [] for k in ARRAYS} for s in SPLITS}
  # what the window length costs, per split: pieces without a window, and the
  # classes present in the samples against those left in the windows
  sampled = {s: set() for s in SPLITS}
  windowed = {s: set() for s in SPLITS}
  empty_pieces = {s: [] for s in SPLITS}
  runs = {s: collections.defaultdict(list) for s in SPLITS}  # class -> its runs' seconds
  assignment = []
  for k, piece in enumerate(pieces):
    rec = gap_free.recordings[piece.recording]
    part = preprocess.slice_recording(rec, piece.start, piece.stop, k)
    classes = raw.spec.class_ids(part.labels_T, where=rec.recording_id)
    acc, classes = preprocess.resample(part, classes, rate)
    x, y = preprocess.make_windows(acc, classes, window, step, config["label_rule"],
                                   config.get("min_labelled", 0.5))
    out = parts[piece.split]
    out["x"].append(x)
    out["y"].append(y)
    out["subject"].append(np.full(len(y), rec.subject, np.int32))
    out["recording"].append(np.full(len(y), piece.recording, np.int32))
    sampled[piece.split].update(np.unique(classes[classes >= 0]).tolist())
    for c, length in _runs(classes):
      runs[piece.split][c].append(length / rate)
    windowed[piece.split].update(np.unique(y).tolist())
    if not len(y):
      empty_pieces[piece.split].append(part.recording_id)
    assignment.append({"recording": rec.recording_id, "subject": rec.subject,
                       "start": int(piece.start), "stop": int(piece.stop), "split": piece.split,
                       "windows": len(y)})
  arrays = {}
  for s in SPLITS:
    for k in ARRAYS:
      chunks = parts[s][k]
      empty = np.zeros((0, window, 3), np.float32) if k == "x" else np.zeros(0, np.int32)
      arrays[f"{k}_{s}"] = np.concatenate(chunks) if chunks else empty
  names = raw.spec.class_names
  never = [names[c] for c in range(len(names)) if not any(c in sampled[s] for s in SPLITS)]
  if never:
    raise DataError(f"dataset {raw.spec.name!r}: class(es) {never} never occur in its "
                    f"recordings; declare only the labels it has (label_names / keep)")
  if len(names) < 2 and tuple(names) != (UNLABELLED,):  # unlabelled: an SSL source only
    raise DataError(f"dataset {raw.spec.name!r} has {len(names)} class(es) {list(names)}: a "
                    "classifier needs at least 2")
  pieces_in = collections.Counter(piece.split for piece in pieces)
  losses = {s: {"pieces": pieces_in[s], "pieces_without_windows": empty_pieces[s],
                "classes_in_samples": sorted(names[c] for c in sampled[s]),
                "classes_lost": sorted(names[c] for c in sampled[s] - windowed[s]),
                # how long the lost classes' runs of samples are: what a window must fit
                "lost_runs_s": {names[c]: {"longest": round(max(runs[s][c]), 2),
                                           "median": round(float(np.median(runs[s][c])), 2),
                                           "runs": len(runs[s][c])}
                                for c in sorted(sampled[s] - windowed[s])}}
            for s in SPLITS}
  meta = {"class_names": list(names), "recording_ids": [r.recording_id for r in recordings],
          "split_rule": rule, "assignment": assignment, "hours": raw.hours,
          "recordings": len(raw.recordings), "losses": losses}
  return arrays, meta


def _runs(classes: np.ndarray):
  """(class, samples) of every run of one labelled class in a piece."""
  if not len(classes):
    return
  edges = np.flatnonzero(np.diff(classes)) + 1
  for start, stop in zip(np.r_[0, edges], np.r_[edges, len(classes)]):
    if classes[start] >= 0:
      yield int(classes[start]), int(stop - start)


def _fitting_window(lost_runs: Mapping) -> str:
  """What the lost classes' runs need: their lengths, and a window that fits them."""
  if not lost_runs:
    return ""
  longest = min(r["longest"] for r in lost_runs.values())
  shown = "; ".join(f"{name}: {r['runs']} run(s), median {r['median']} s, longest "
                    f"{r['longest']} s" for name, r in sorted(lost_runs.items()))
  fit = max(0.5, np.floor(2 * longest) / 2)
  return (f" Their runs of samples: {shown}. A window of at most {fit:g} s "
          f"(config.data.window_s, with config.data.step_s at most half of it) fits the "
          "longest run of each;")


def check_windows(prepared: Prepared, data_config: Mapping, *,
                  losses_declared: bool = False) -> None:
  """Every split has windows; no class of the train or test samples is lost to the
  window length or label rule (unless config.data.allow_lost_classes). A lost class
  is warned once, when prepared, unless the dataset's own entry declares its losses
  (losses_declared: a built-in dataset's known, documented price of the window)."""
  name, losses = prepared.name, prepared.losses
  length = f"{data_config['window_s']} s windows, {data_config['step_s']} s step, label rule " \
           f"{data_config['label_rule']!r}"
  empty = [s for s in SPLITS if len(prepared.splits[s]) == 0]
  if empty:
    short = {s: f"{len(losses[s]['pieces_without_windows'])} of {losses[s]['pieces']} pieces"
             for s in empty}
    raise DataError(f"dataset {name!r}: no windows in split(s) {empty} ({length}: {short} are "
                    "shorter than a window or have no labelled window); shorten "
                    "config.data.window_s or check the dataset's rate and labels")
  lost = {s: losses[s]["classes_lost"] for s in ("train", "test") if losses[s]["classes_lost"]}
  if lost and not data_config.get("allow_lost_classes", False):
    lost_runs = {c: r for s in lost for c, r in losses[s].get("lost_runs_s", {}).items()}
    raise DataError(
        f"dataset {name!r}: {length} lose every window of class(es) {lost} that the split's "
        f"recordings contain.{_fitting_window(lost_runs)} or, where gestures sit inside "
        "longer unlabelled stretches, label_rule='labelled_majority'; or set "
        "config.data.allow_lost_classes=True to train without them")
  for s, loss in losses.items():
    # pieces shorter than a window that cost no class are the window length's ordinary
    # price, and a declared loss is documented where the dataset is: logged, not warned
    # (they used to open a user's own-data prepare with warnings that read as theirs)
    warn = loss["classes_lost"] and not prepared.from_cache and not losses_declared
    if loss["classes_lost"] or loss["pieces_without_windows"]:
      (logging.warning if warn else logging.info)(
          "%s, %s split: %d of %d pieces give no window; classes lost: %s (%s)",
          name, s, len(loss["pieces_without_windows"]), loss["pieces"],
          loss["classes_lost"] or "none", length)


def prepare(dataset: str | Mapping, config: Mapping, *, use_cache: bool = True) -> Prepared:
  """Prepares one dataset under the preprocessing config (see xfer_jax/defaults.py).

  The cache is keyed by the dataset's entry, the preprocessing fields and the
  contents of its files (cache.fingerprint): a corrected file at the same path is
  prepared again, a moved data folder is not."""
  entry = resolve_dataset(dataset, config)
  data_config = dataset_config(entry, config)
  check_data_config(data_config, entry["name"])
  cache_dir = Path(config.get("cache_dir") or cache.default_cache_dir())
  identity = {"dataset": {k: v for k, v in entry.items() if k != "path"},
              "preprocess": data_config}
  if entry["reader"] == "synthetic":
    identity["simulator"] = synthetic.SIMULATOR_VERSION
  else:
    identity["contents"] = cache.fingerprint(Path(entry["path"]), cache_dir)
  key = cache.cache_key(identity)
  cache_file = cache_dir / f"{entry['name']}-{key}.npz"
  arrays = cache.load(cache_file) if use_cache else None
  from_cache = arrays is not None
  if arrays is None:
    raw = registry.read_raw(entry["reader"], entry["path"], entry["options"])
    logging.info("preparing %s: %d recordings, %.2f h", entry["name"], len(raw.recordings),
                 raw.hours)
    units.check_samples(raw, entry, data_config.get("max_abs_g", 0.0))
    if data_config.get("check_units", True):
      units.check(raw, entry)
    arrays, meta = _windows_of(raw, data_config)
    arrays["meta"] = np.array(json.dumps(meta))
    if use_cache:
      cache.save(cache_file, arrays)
  meta = json.loads(str(arrays["meta"]))
  splits = {s: Split(*(arrays[f"{k}_{s}"] for k in ARRAYS)) for s in SPLITS}
  prepared = Prepared(name=entry["name"], class_names=tuple(meta["class_names"]), splits=splits,
                      recording_ids=tuple(meta["recording_ids"]), split_rule=meta["split_rule"],
                      assignment=meta["assignment"], hours=meta["hours"],
                      recordings=meta["recordings"], losses=meta["losses"],
                      from_cache=from_cache)
  check_windows(prepared, data_config,
                losses_declared=bool(entry.get("preprocess", {}).get("allow_lost_classes")))
  return prepared
