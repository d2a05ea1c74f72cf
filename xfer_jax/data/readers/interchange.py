"""The interchange .npz: how any dataset enters xfer_jax (see shared/data/README.md).

Keys per recording i: acc_<i> (T,3) in `units`, label_<i> (T,), subject_<i>,
session_<i>, optional t_ms_<i>; metadata: n_recordings, label_names (index = id,
'' = unused), sampling_rate_hz, units, to_g_scale, to_g_offset, dataset.

A file with no label_<i> key at all (and no label_names) holds unlabelled
recordings: every sample is of the one class UNLABELLED, which a self-supervised
source reads and a supervised run refuses.
"""

from __future__ import annotations

import os
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from xfer_jax.data.atomic import atomic_path
from xfer_jax.data.recording import UNLABELLED, DataError, DatasetSpec, RawDataset, Recording

_REQUIRED = ("n_recordings", "sampling_rate_hz", "to_g_scale", "to_g_offset")


def read(path: str | os.PathLike, name: str | None = None, *, use_timestamps: bool = True,
         clip_g: float | None = None, **spec_options) -> RawDataset:
  """Reads an interchange file; acceleration converted to g with to_g_scale/offset.

  use_timestamps: use t_ms_<i> where present (irregular streams).
  clip_g: clip |acc| per axis to this many g (e.g. a sensor's range, against
    single corrupt samples).
  spec_options: keep / merge / null_label for the DatasetSpec.
  """
  path = Path(path)
  if not path.is_file():
    raise DataError(f"{path}: no such interchange file")
  try:
    with np.load(path, allow_pickle=False) as z:
      return _read(z, path, name, use_timestamps, clip_g, spec_options)
  except DataError:
    raise
  except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, tokenize.TokenError,
          SyntaxError) as e:  # a damaged member: numpy's header parser or zlib fails
    raise DataError(f"{path}: not a readable interchange .npz ({type(e).__name__}: {e})") from e


def _scalar(z, key: str, path: Path, kind: type, check=None, expected: str = ""):
  """z[key] as one `kind` value; anything else is an error naming the key."""
  value = z[key]
  try:
    if value.shape != () and value.size != 1:
      raise ValueError(f"shape {value.shape}")
    item = value.reshape(()).item()
    if kind is int and isinstance(item, float) and not item.is_integer():
      raise ValueError(f"{item} is not a whole number")  # int() would truncate it silently
    value = kind(item)
  except (ValueError, TypeError) as e:
    raise DataError(f"{path}: key {key!r} holds {z[key].tolist()!r}: expected one "
                    f"{expected or kind.__name__}") from e
  if check is not None and not check(value):
    raise DataError(f"{path}: key {key!r} = {value!r}: expected {expected}")
  return value


def _numeric(z, key: str, path: Path, shape: str) -> np.ndarray:
  array = z[key]
  if array.dtype.kind not in "iufb":
    raise DataError(f"{path}: key {key!r} has dtype {array.dtype}: expected numbers, {shape}")
  return array


def _read(z, path: Path, name, use_timestamps, clip_g, spec_options) -> RawDataset:
  unlabelled = not any(k.startswith("label_") and k != "label_names" for k in z.files)
  required = _REQUIRED if unlabelled else (*_REQUIRED, "label_names")
  missing = [k for k in required if k not in z.files]
  if missing:
    raise DataError(f"{path}: missing key(s) {missing}; an interchange file has {list(required)}"
                    + ("" if unlabelled else " (label_names: the name of each label id)"))
  if unlabelled:
    label_names = {0: UNLABELLED}
  elif z["label_names"].dtype.kind not in "US":
    raise DataError(f"{path}: key 'label_names' has dtype {z['label_names'].dtype}: expected "
                    "strings, the name of each label id ('' for an unused id)")
  else:
    label_names = {i: str(n) for i, n in enumerate(z["label_names"].reshape(-1)) if str(n)}
  if not label_names:
    raise DataError(f"{path}: key 'label_names' names no label (all {z['label_names'].size} are "
                    "empty): give the name of each label id")
  finite = lambda v: np.isfinite(v)
  scale = _scalar(z, "to_g_scale", path, float, finite, "finite number")
  offset = _scalar(z, "to_g_offset", path, float, finite, "finite number")
  rate = _scalar(z, "sampling_rate_hz", path, float, lambda v: np.isfinite(v) and v > 0,
                 "a positive rate in Hz")
  count = _scalar(z, "n_recordings", path, int, lambda v: v >= 1, "recordings (at least 1)")
  units = str(z["units"]) if "units" in z.files else "g"
  recordings = []
  for i in range(count):
    for key in (f"acc_{i}", f"subject_{i}") + (() if unlabelled else (f"label_{i}",)):
      if key not in z.files:
        raise DataError(f"{path}: missing key {key!r} (n_recordings = {count})")
    acc = _numeric(z, f"acc_{i}", path, "(T, 3) acceleration").astype(np.float64)
    if acc.ndim != 2 or acc.shape[1] != 3:
      raise DataError(f"{path}: key 'acc_{i}' has shape {acc.shape}: expected (T, 3)")
    acc = acc * scale + offset
    if clip_g is not None:
      acc = np.clip(acc, -clip_g, clip_g)
    labels = (np.zeros(len(acc), np.int32) if unlabelled else
              _numeric(z, f"label_{i}", path, "one integer label id per sample"))
    if labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
      raise DataError(f"{path}: key 'label_{i}' holds non-integer label ids")
    subject = _scalar(z, f"subject_{i}", path, int, None,
                      "integer subject id (map names like 'S02' to numbers)")
    t_s = None
    if use_timestamps and f"t_ms_{i}" in z.files:
      t_s = _numeric(z, f"t_ms_{i}", path, "one time in ms per sample").astype(np.float64) / 1000.0
    session = str(z[f"session_{i}"]) if f"session_{i}" in z.files else str(i)
    recordings.append(Recording(
        acc_Tx3=acc.astype(np.float32), labels_T=labels.astype(np.int32), subject=subject,
        recording_id=f"{path.name}:{session}", rate_hz=rate, source_units=units, t_s=t_s))
  spec = DatasetSpec(name=name or path.stem, label_names=label_names, rate_hz=rate,
                     num_subjects=len({r.subject for r in recordings}), **spec_options)
  for r in recordings:  # fail early, naming the recording, on labels outside the map
    spec.class_ids(r.labels_T, where=r.recording_id)
  return RawDataset(spec, recordings)


def write(path: str | os.PathLike, dataset: RawDataset) -> None:
  """Writes a dataset (acceleration in g) as an interchange file, atomically."""
  spec = dataset.spec
  unlabelled = spec.class_names == (UNLABELLED,)
  names = np.array([spec.label_names.get(i, "") for i in range(max(spec.label_names) + 1)])
  arrays = {
      "n_recordings": np.int64(len(dataset.recordings)), "label_names": names,
      "sampling_rate_hz": np.float64(spec.rate_hz or 0.0), "units": np.str_("g"),
      "to_g_scale": np.float64(1.0), "to_g_offset": np.float64(0.0),
      "dataset": np.str_(spec.name)}
  if unlabelled:
    del arrays["label_names"]
  for i, r in enumerate(dataset.recordings):
    arrays[f"acc_{i}"] = r.acc_Tx3.astype(np.float32)
    if not unlabelled:
      arrays[f"label_{i}"] = r.labels_T.astype(np.int16)
    arrays[f"subject_{i}"] = np.int32(r.subject)
    arrays[f"session_{i}"] = np.str_(r.recording_id)
    if r.t_s is not None:
      arrays[f"t_ms_{i}"] = np.round(r.t_s * 1000.0).astype(np.int32)
  with atomic_path(path, suffix=".npz") as tmp:
    with open(tmp, "wb") as f:
      np.savez_compressed(f, **arrays)
