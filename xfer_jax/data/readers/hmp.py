"""HMP (UCI "ADL Recognition with Wrist-worn Accelerometer"), right wrist, 32 Hz.

Files `<Activity>/Accelerometer-<date>-<hmp>-<volunteer>.txt`, one trial each,
lines `x y z` of 6-bit codes: g = -1.5 + code * 3 / 63 (MANUAL.txt 4.2). Label ids
follow MANUAL.txt section 2 (1 brush_teeth ... 14 walk). The `*_MODEL` folders
duplicate trials and are skipped. Subjects are numbered in order of their codes.
"""

from __future__ import annotations

import os
import re

import numpy as np

from xfer_jax.data.readers.table import load_table, require_files
from xfer_jax.data.recording import DataError, DatasetSpec, RawDataset, Recording

HMPS = ("brush_teeth", "climb_stairs", "comb_hair", "descend_stairs", "drink_glass", "eat_meat",
        "eat_soup", "getup_bed", "liedown_bed", "pour_water", "sitdown_chair", "standup_chair",
        "use_telephone", "walk")
LABEL_NAMES = {i + 1: name for i, name in enumerate(HMPS)}
_NAME = re.compile(r"Accelerometer-[\d-]+-(?P<hmp>[a-z_]+)-(?P<volunteer>[fm]\d+)\.txt$")


def read(path: str | os.PathLike, **spec_options) -> RawDataset:
  files = [f for f in require_files(path, "*Accelerometer-*.txt", "HMP trial files")
           if "_MODEL" not in str(f)]
  trials = []
  for file in files:
    match = _NAME.search(file.name)
    if not match:
      raise DataError(f"{file}: name does not follow Accelerometer-<date>-<hmp>-<volunteer>.txt")
    if match["hmp"] not in HMPS:
      raise DataError(f"{file}: unknown motion primitive {match['hmp']!r}; known: {HMPS}")
    codes = load_table(file, min_columns=3)[:, :3]
    if codes.min() < 0 or codes.max() > 63:
      raise DataError(f"{file}: values outside the 6-bit code range 0..63")
    trials.append((match["volunteer"], match["hmp"], file, codes))
  subject_ids = {code: i + 1 for i, code in enumerate(sorted({t[0] for t in trials}))}
  recordings = [
      Recording(acc_Tx3=(-1.5 + codes * 3.0 / 63.0).astype(np.float32),
                labels_T=np.full(len(codes), HMPS.index(hmp) + 1, np.int32),
                subject=subject_ids[volunteer], recording_id=file.name, rate_hz=32.0,
                source_units="6-bit code")
      for volunteer, hmp, file, codes in trials]
  spec = DatasetSpec("hmp", LABEL_NAMES, rate_hz=32.0, num_subjects=len(subject_ids),
                     **spec_options)
  return RawDataset(spec, recordings)
