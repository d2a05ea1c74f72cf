"""Skoda Mini Checkpoint: `right_classall_clean.mat` (variable of the same name).

Column 0 is the label (32 = null, 48-57 = the ten gestures), then 10 sensors x 7
columns (sensor id, calibrated x, y, z, raw x, y, z), ~98 Hz, one subject. The
wrist sensor is the one whose id is `sensor_id`: by the dataset's sensor map,
id 1 is on the right wrist (the dominant hand of the worker); the calibrated axes
are in milli-g-like units of the calibration, scaled by `to_g` (default 1/1000).
Null is dropped by default, as the paper counts 10 classes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.io

from xfer_jax.data.recording import DataError, DatasetSpec, RawDataset, Recording

LABEL_NAMES = {
    32: "null", 48: "write on notepad", 49: "open hood", 50: "close hood",
    51: "check gaps front door", 52: "open left front door", 53: "close left front door",
    54: "close both left doors", 55: "check trunk gaps", 56: "open and close trunk",
    57: "check steering wheel"}
VARIABLE = "right_classall_clean"
COLUMNS_PER_SENSOR = 7


def read(path: str | os.PathLike, *, sensor_id: int = 1, rate_hz: float = 98.0,
         to_g: float = 1e-3, **spec_options) -> RawDataset:
  path = Path(path)
  if path.is_dir():
    path = path / f"{VARIABLE}.mat"
  if not path.is_file():
    raise DataError(f"{path}: no such file (expected {VARIABLE}.mat)")
  try:
    mat = scipy.io.loadmat(path)
  except (ValueError, OSError, NotImplementedError) as e:
    raise DataError(f"{path}: not a MATLAB .mat file ({e})") from e
  if VARIABLE not in mat:
    raise DataError(f"{path}: no variable {VARIABLE!r}; found "
                    f"{[k for k in mat if not k.startswith('__')]}")
  data = np.asarray(mat[VARIABLE], np.float64)
  num_sensors = (data.shape[1] - 1) // COLUMNS_PER_SENSOR
  if data.ndim != 2 or num_sensors < 1:
    raise DataError(f"{path}: {VARIABLE} has shape {data.shape}; expected 1 + 10 x 7 columns")
  ids = data[0, 1::COLUMNS_PER_SENSOR][:num_sensors].astype(int)
  if sensor_id not in ids:
    raise DataError(f"{path}: no sensor with id {sensor_id}; ids are {ids.tolist()}")
  first = 1 + COLUMNS_PER_SENSOR * int(np.flatnonzero(ids == sensor_id)[0]) + 1
  recording = Recording(
      acc_Tx3=(data[:, first:first + 3] * to_g).astype(np.float32),
      labels_T=data[:, 0].astype(np.int32), subject=1, recording_id=path.name,
      rate_hz=rate_hz, source_units="calibrated")
  spec_options.setdefault("keep", tuple(range(48, 58)))
  spec = DatasetSpec("skoda", LABEL_NAMES, rate_hz=rate_hz, null_label=32, num_subjects=1,
                     **spec_options)
  return RawDataset(spec, [recording])
