"""WISDM 2019 smartwatch accelerometer, raw files `data_<id>_accel_watch.txt`.

Line format `subject,letter,timestamp_ns,x,y,z;` in m/s^2 (Android, gravity
included), nominally 20 Hz with irregular bursts, so the timestamps are kept
and resampling interpolates on them. The watch was worn on the dominant hand.
A file is cut into recordings where the letter changes, time goes backwards or
jumps by more than `max_jump_s`. Label id = ord(letter) - ord('A') (13, 'N', is
unused), matching the interchange file of shared/data.
"""

from __future__ import annotations

import os
import string

import numpy as np

from xfer_jax.data.readers.table import require_files
from xfer_jax.data.recording import DataError, DatasetSpec, RawDataset, Recording

STANDARD_GRAVITY = 9.80665
ACTIVITIES = {
    "A": "walking", "B": "jogging", "C": "stairs", "D": "sitting", "E": "standing",
    "F": "typing", "G": "teeth", "H": "soup", "I": "chips", "J": "pasta", "K": "drinking",
    "L": "sandwich", "M": "kicking", "O": "catch", "P": "dribbling", "Q": "writing",
    "R": "clapping", "S": "folding"}
LABEL_NAMES = {ord(k) - ord("A"): v for k, v in ACTIVITIES.items()}


def _parse(path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  subjects, letters, rows = [], [], []
  with open(path, encoding="utf-8") as f:
    for line_number, line in enumerate(f, start=1):
      line = line.strip().rstrip(";")
      if not line:
        continue
      cells = line.split(",")
      if len(cells) != 6 or cells[1] not in string.ascii_uppercase:
        raise DataError(f"{path}, line {line_number}: expected 'subject,letter,timestamp_ns,x,y,z;'"
                        f", got {line[:60]!r}")
      if cells[1] not in ACTIVITIES:
        raise DataError(f"{path}, line {line_number}: activity letter {cells[1]!r} is not one of "
                        f"{''.join(ACTIVITIES)}")
      try:
        rows.append((float(cells[2]), float(cells[3]), float(cells[4]), float(cells[5])))
        subjects.append(int(cells[0]))
      except ValueError as e:
        raise DataError(f"{path}, line {line_number}: not a number ({e}); expected "
                        "'subject,letter,timestamp_ns,x,y,z;' with an integer subject") from e
      letters.append(ord(cells[1]) - ord("A"))
  if not rows:
    raise DataError(f"{path}: no data lines")
  return np.array(subjects), np.array(letters, np.int32), np.array(rows)


def read(path: str | os.PathLike, *, max_jump_s: float = 1.0, **spec_options) -> RawDataset:
  """Reads one file or every data_*_accel_watch.txt below a folder."""
  recordings = []
  for file in require_files(path, "data_*_accel_watch.txt", "WISDM 2019 watch accel files"):
    subjects, labels, rows = _parse(file)
    t_s = rows[:, 0] * 1e-9
    cuts = np.flatnonzero((np.diff(labels) != 0) | (np.diff(t_s) < 0)
                          | (np.diff(t_s) > max_jump_s) | (np.diff(subjects) != 0)) + 1
    for piece, (start, stop) in enumerate(zip(np.r_[0, cuts], np.r_[cuts, len(rows)])):
      if stop - start < 2:
        continue
      recordings.append(Recording(
          acc_Tx3=(rows[start:stop, 1:] / STANDARD_GRAVITY).astype(np.float32),
          labels_T=labels[start:stop], subject=int(subjects[start]),
          recording_id=f"{file.name}:{piece}", rate_hz=20.0, source_units="m/s^2",
          t_s=t_s[start:stop] - t_s[start]))
  spec = DatasetSpec("wisdm2019", LABEL_NAMES, rate_hz=20.0,
                     num_subjects=len({r.subject for r in recordings}), **spec_options)
  return RawDataset(spec, recordings)
