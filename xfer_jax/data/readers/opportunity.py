"""OPPORTUNITY: `S{1..4}-ADL{1..5}.dat` and `S{1..4}-Drill.dat`.

250 space-separated columns at ~30 Hz (column 1 MILLISEC), accelerations in
milli-g, labels in columns 244-250. Column and label meanings are parsed from the
dataset's own `column_names.txt` and `label_legend.txt` (searched beside the data
and in its parent), so nothing is hard-coded but the defaults:

- sensor: "Accelerometer RWR" (the body-worn accelerometer on the right, i.e.
  dominant, wrist; the XSens "InertialMeasurementUnit RLA" sits on the lower arm);
- label track: "ML_Both_Arms" (the 17 mid-level gestures of the OPPORTUNITY
  challenge; 0 = null, kept as a class as in the challenge). No single track has
  the paper's 21 classes; "Locomotion", "HL_Activity" and "LL_Right_Arm" are the
  alternatives.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from xfer_jax.data.readers.table import load_table, require_files
from xfer_jax.data.recording import DataError, DatasetSpec, RawDataset, Recording

_COLUMN = re.compile(r"Column:\s+(\d+)\s+(.+?)(?:;|$)")
_LEGEND = re.compile(r"(\d+)\s+-\s+(\S+)\s+-\s+(.+)")


def _find_doc(folder: Path, name: str, docs_dir: str | os.PathLike | None) -> Path:
  candidates = [Path(docs_dir) / name] if docs_dir else []
  candidates += [folder / name, folder.parent / name]
  for c in candidates:
    if c.is_file():
      return c
  raise DataError(f"OPPORTUNITY: {name} not found in {[str(c.parent) for c in candidates]}; "
                  "it ships with the dataset (pass docs_dir= to point at it)")


def parse_columns(path: Path) -> dict[str, int]:
  """Column name -> 0-based index, from column_names.txt."""
  columns = {}
  for line in path.read_text().splitlines():
    match = _COLUMN.match(line.strip())
    if match:
      columns[match[2].strip()] = int(match[1]) - 1
  if not columns:
    raise DataError(f"{path}: no 'Column: N name' lines")
  return columns


def parse_legend(path: Path) -> dict[str, dict[int, str]]:
  """Track name -> {label id: name}, from label_legend.txt."""
  tracks: dict[str, dict[int, str]] = {}
  for line in path.read_text().splitlines():
    match = _LEGEND.match(line.strip())
    if match:
      tracks.setdefault(match[2], {})[int(match[1])] = match[3].strip()
  return tracks


def read(path: str | os.PathLike, *, sensor: str = "Accelerometer RWR",
         label_track: str = "ML_Both_Arms", docs_dir: str | os.PathLike | None = None,
         **spec_options) -> RawDataset:
  files = require_files(path, "S*-*.dat", "OPPORTUNITY S<n>-ADL<k>.dat / S<n>-Drill.dat files")
  folder = Path(path) if Path(path).is_dir() else Path(path).parent
  columns = parse_columns(_find_doc(folder, "column_names.txt", docs_dir))
  legend = parse_legend(_find_doc(folder, "label_legend.txt", docs_dir))
  axes = [f"{sensor} acc{a}" for a in "XYZ"]
  missing = [a for a in axes if a not in columns]
  if missing:
    sensors = sorted({n.rsplit(" acc", 1)[0] for n in columns if " acc" in n})
    raise DataError(f"OPPORTUNITY: no column(s) {missing}; accelerometers are {sensors}")
  if label_track not in columns or label_track not in legend:
    raise DataError(f"OPPORTUNITY: unknown label track {label_track!r}; tracks are {sorted(legend)}")
  label_names = {0: "null", **legend[label_track]}
  acc_columns, label_column = [columns[a] for a in axes], columns[label_track]
  recordings = []
  for file in files:
    match = re.fullmatch(r"S(\d+)-(ADL\d+|Drill)\.dat", file.name)
    if not match:
      raise DataError(f"{file}: expected a name like S1-ADL1.dat or S1-Drill.dat")
    table = load_table(file, min_columns=max(columns.values()) + 1)
    t_s = (table[:, columns.get("MILLISEC", 0)] - table[0, columns.get("MILLISEC", 0)]) / 1000.0
    recordings.append(Recording(
        acc_Tx3=(table[:, acc_columns] / 1000.0).astype(np.float32),
        labels_T=np.nan_to_num(table[:, label_column]).astype(np.int32),
        subject=int(match[1]), recording_id=file.name, rate_hz=30.0, source_units="milli-g",
        t_s=t_s))
  spec = DatasetSpec("opportunity", label_names, rate_hz=30.0, null_label=0,
                     num_subjects=len({r.subject for r in recordings}), **spec_options)
  return RawDataset(spec, recordings)
