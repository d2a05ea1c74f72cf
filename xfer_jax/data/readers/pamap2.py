"""PAMAP2 Physical Activity Monitoring: `Protocol/subject10N.dat` (and `Optional/`).

54 space-separated columns at 100 Hz: 1 timestamp (s), 2 activityID (0 =
transient), 3 heart rate, 4-20 the hand IMU (4 temperature, 5-7 the +-16 g
accelerometer in m/s^2, ...). The hand IMU sits on the dominant wrist; the
+-16 g accelerometer is used because the +-6 g one saturates during running
and rope jumping. NaN marks dropped packets: the gap policy of preprocessing
interpolates short runs and cuts long ones, and the timestamps cut the recording
where they jump (the protocol's pauses between activities are left out of some
files). ID 0 (transient) is dropped by default. The 12 protocol activities are
the classes; the 6 optional ones (PROTOCOL's complement) are classes too where the
dataset's `Optional/` folder, beside `Protocol/`, is there to be read as well.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from xfer_jax.data.readers.table import load_table, require_files
from xfer_jax.data.recording import DataError, DatasetSpec, RawDataset, Recording

STANDARD_GRAVITY = 9.80665
LABEL_NAMES = {
    0: "transient", 1: "lying", 2: "sitting", 3: "standing", 4: "walking", 5: "running",
    6: "cycling", 7: "Nordic walking", 9: "watching TV", 10: "computer work", 11: "car driving",
    12: "ascending stairs", 13: "descending stairs", 16: "vacuum cleaning", 17: "ironing",
    18: "folding laundry", 19: "house cleaning", 20: "playing soccer", 24: "rope jumping"}
# the activities every subject performed; 9, 10, 11, 18, 19, 20 are optional (Optional/)
PROTOCOL = (1, 2, 3, 4, 5, 6, 7, 12, 13, 16, 17, 24)
TIMESTAMP, ACTIVITY, HAND_ACC16 = 0, 1, slice(4, 7)  # 0-based columns
NUM_COLUMNS = 54


def read(path: str | os.PathLike, optional: bool = True, **spec_options) -> RawDataset:
  """path: the Protocol/ folder; optional: also read Optional/ beside it, if present."""
  files = list(require_files(path, "subject*.dat", "PAMAP2 subject10N.dat files"))
  optional_dir = Path(path).parent / "Optional"
  with_optional = optional and optional_dir.is_dir()
  if with_optional:
    files += list(require_files(optional_dir, "subject*.dat", "PAMAP2 subject10N.dat files"))
  recordings = []
  for file in files:
    match = re.fullmatch(r"subject(\d+)\.dat", file.name)
    if not match:
      raise DataError(f"{file}: expected a name like subject101.dat")
    table = load_table(file, min_columns=NUM_COLUMNS)
    labels = table[:, ACTIVITY]
    if np.isnan(labels).any():
      raise DataError(f"{file}: column 2 (activityID) has missing values")
    t = table[:, TIMESTAMP]
    if not np.isfinite(t).all():
      raise DataError(f"{file}: column 1 (timestamp) has missing values")
    recordings.append(Recording(
        acc_Tx3=(table[:, HAND_ACC16] / STANDARD_GRAVITY).astype(np.float32),
        labels_T=labels.astype(np.int32), subject=int(match[1]),
        recording_id=f"{file.parent.name}/{file.name}", rate_hz=100.0, source_units="m/s^2",
        t_s=t - t[0]))
  spec_options.setdefault("keep", tuple(k for k in LABEL_NAMES if k != 0) if with_optional
                          else PROTOCOL)
  spec = DatasetSpec("pamap2", LABEL_NAMES, rate_hz=100.0,
                     num_subjects=len({r.subject for r in recordings}), **spec_options)
  return RawDataset(spec, recordings)
