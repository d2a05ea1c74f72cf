"""Numeric text tables with errors that name the file and line."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from xfer_jax.data.recording import DataError


def load_table(path: str | os.PathLike, min_columns: int, delimiter: str | None = None,
               strip: str = "") -> np.ndarray:
  """Reads a float table; 'NaN' cells stay NaN. A short or non-numeric line is an error."""
  path = Path(path)
  if not path.is_file():
    raise DataError(f"{path}: no such file")
  rows = []
  with open(path, encoding="utf-8", errors="replace") as f:
    for line_number, line in enumerate(f, start=1):
      line = line.strip().rstrip(strip)
      if not line:
        continue
      cells = line.split(delimiter)
      if len(cells) < min_columns:
        raise DataError(f"{path}, line {line_number}: {len(cells)} columns, expected at least "
                        f"{min_columns}")
      try:
        rows.append([float(c) for c in cells])
      except ValueError as e:
        raise DataError(f"{path}, line {line_number}: not a number ({e})") from e
  if not rows:
    raise DataError(f"{path}: no data lines")
  width = min(len(r) for r in rows)
  return np.array([r[:width] for r in rows], dtype=np.float64)


def require_files(folder: str | os.PathLike, pattern: str, what: str) -> list[Path]:
  folder = Path(folder)
  if not folder.exists():
    raise DataError(f"{folder}: no such folder (expected {what})")
  files = sorted(folder.rglob(pattern)) if folder.is_dir() else [folder]
  if not files:
    raise DataError(f"{folder}: no files matching {pattern!r} (expected {what})")
  return files
