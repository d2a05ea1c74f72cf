"""The interchange .npz: how any dataset enters xfer_jax (see shared/data/README.md).

Keys per recording i: acc_<i> (T,3) in `units`, label_<i> (T,), subject_<i>,
session_<i>, optional t_ms_<i>; metadata: n_recordings, label_names (index = id,
'' = unused), sampling_rate_hz, units, to_g_scale, to_g_offset, dataset.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from xfer_jax.data.atomic import atomic_path
from xfer_jax.data.recording import DataError, DatasetSpec, RawDataset, Recording

_REQUIRED = ("n_recordings", "label_names", "sampling_rate_hz", "to_g_scale", "to_g_offset")


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
    z = np.load(path, allow_pickle=False)
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    raise DataError(f"{path}: not an interchange .npz ({e})") from e
  with z:
    missing = [k for k in _REQUIRED if k not in z.files]
    if missing:
      raise DataError(f"{path}: missing key(s) {missing}; an interchange file has {list(_REQUIRED)}")
    label_names = {i: str(n) for i, n in enumerate(z["label_names"]) if str(n)}
    scale, offset = float(z["to_g_scale"]), float(z["to_g_offset"])
    rate = float(z["sampling_rate_hz"])
    units = str(z["units"]) if "units" in z.files else "g"
    recordings = []
    for i in range(int(z["n_recordings"])):
      for key in (f"acc_{i}", f"label_{i}", f"subject_{i}"):
        if key not in z.files:
          raise DataError(f"{path}: missing key {key!r} (n_recordings = {int(z['n_recordings'])})")
      acc = z[f"acc_{i}"].astype(np.float64) * scale + offset
      if clip_g is not None:
        acc = np.clip(acc, -clip_g, clip_g)
      t_s = None
      if use_timestamps and f"t_ms_{i}" in z.files:
        t_s = z[f"t_ms_{i}"].astype(np.float64) / 1000.0
      session = str(z[f"session_{i}"]) if f"session_{i}" in z.files else str(i)
      recordings.append(Recording(
          acc_Tx3=acc.astype(np.float32), labels_T=z[f"label_{i}"].astype(np.int32),
          subject=int(z[f"subject_{i}"]), recording_id=f"{path.name}:{session}",
          rate_hz=rate, source_units=units, t_s=t_s))
  spec = DatasetSpec(name=name or path.stem, label_names=label_names, rate_hz=rate,
                     num_subjects=len({r.subject for r in recordings}), **spec_options)
  for r in recordings:  # fail early, naming the recording, on labels outside the map
    spec.class_ids(r.labels_T, where=r.recording_id)
  return RawDataset(spec, recordings)


def write(path: str | os.PathLike, dataset: RawDataset) -> None:
  """Writes a dataset (acceleration in g) as an interchange file, atomically."""
  spec = dataset.spec
  names = np.array([spec.label_names.get(i, "") for i in range(max(spec.label_names) + 1)])
  arrays = {
      "n_recordings": np.int64(len(dataset.recordings)), "label_names": names,
      "sampling_rate_hz": np.float64(spec.rate_hz or 0.0), "units": np.str_("g"),
      "to_g_scale": np.float64(1.0), "to_g_offset": np.float64(0.0),
      "dataset": np.str_(spec.name)}
  for i, r in enumerate(dataset.recordings):
    arrays[f"acc_{i}"] = r.acc_Tx3.astype(np.float32)
    arrays[f"label_{i}"] = r.labels_T.astype(np.int16)
    arrays[f"subject_{i}"] = np.int32(r.subject)
    arrays[f"session_{i}"] = np.str_(r.recording_id)
    if r.t_s is not None:
      arrays[f"t_ms_{i}"] = np.round(r.t_s * 1000.0).astype(np.int32)
  with atomic_path(path, suffix=".npz") as tmp:
    with open(tmp, "wb") as f:
      np.savez_compressed(f, **arrays)
