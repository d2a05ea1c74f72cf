"""A sweep's records: one JSON line per (cell, seed), appended, never rewritten.

Records are appended with one `os.write` per cell on an O_APPEND descriptor and
fsynced, so a finished cell is on disk before the next starts. A process killed
mid-write leaves at most a truncated last line: `read` skips it with a warning
(and `repair` cuts it off before appending), never dropping a complete record.

Every record carries the sweep's `config_key`; a workdir also keeps the grid's
config in sweep.json, so records of different grids are refused by name of the
fields that differ, not silently merged.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from xfer_jax.config_fields import current_fields, default_fields, describe_differences, upgrade_fields
from xfer_jax.data.atomic import write_text
from xfer_jax.errors import UserError
from xfer_jax.grid.records import Record, RecordError

RESULTS_GLOB = "results*.jsonl"
GRID_FILE = "sweep.json"
GRID_FORMAT = 2


class ResultsError(UserError, ValueError):
  """Results that cannot be used as asked; the message names the file or fields."""


def config_key(fields: Mapping[str, object]) -> str:
  """A grid's key: a hash of its fields that differ from their defaults, so that a
  field added at its default leaves every key as it was."""
  changed = {k: v for k, v in fields.items() if default_fields().get(k, "<absent>") != v}
  return hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:16]


def grid_key(workdir: Path, fields: Mapping[str, object]) -> str | None:
  """The config key of this grid's records in workdir: the one its sweep.json pins
  (a workdir of an older format keeps its key), or None without a sweep.json.
  A sweep.json of another grid is an error naming the fields that differ."""
  saved = read_grid(workdir)
  if saved is None:
    _no_orphans(workdir, config_key(fields))
    return None
  saved_fields = current_fields(saved["fields"])
  if saved.get("format", 1) < GRID_FORMAT:
    saved_fields = current_fields(upgrade_fields(saved["fields"]))
  if saved_fields != dict(fields):
    raise ResultsError(
        f"{workdir / GRID_FILE}: this workdir holds results of a different grid config ("
        f"{describe_differences(saved_fields, fields, ('saved', 'given'))}); use another "
        "workdir or the saved config")
  return saved["config_key"]


def _no_orphans(workdir: Path, key: str) -> None:
  """Records of another grid with no sweep.json beside them (deleted, or lost) are
  refused before any compute: the new grid would run beside them under its own key."""
  keys = sorted({r.config_key for path in results_files(workdir) for r in read(path, quiet=True)}
                - {key})
  if keys:
    raise ResultsError(f"{workdir}: its results files hold records of another grid (config key "
                       f"{', '.join(keys)}) and no {GRID_FILE} says which config that was; "
                       f"restore {GRID_FILE} from a copy, or give a fresh --workdir")


def claim_grid(workdir: Path, fields: Mapping[str, object], write: bool = True) -> str:
  """Checks workdir/sweep.json against this grid, or writes it (if `write`); returns
  the config key of the grid's records."""
  key = grid_key(workdir, fields)
  if key is not None:
    return key
  key = config_key(fields)
  if write:
    write_text(workdir / GRID_FILE, json.dumps(
        {"format": GRID_FORMAT, "config_key": key, "fields": dict(fields)}, indent=2))
  return key


def read_grid(workdir: Path) -> dict | None:
  """workdir's sweep.json, or None without one; a damaged one is an error naming it."""
  path = workdir / GRID_FILE
  if not path.exists():
    return None
  try:
    saved = json.loads(path.read_text())
    if not isinstance(saved, dict) or not {"config_key", "fields"} <= set(saved):
      raise ValueError("expected an object with config_key and fields")
  except ValueError as e:  # json.JSONDecodeError is one
    raise ResultsError(f"{path}: not a sweep's grid file ({e}); it pins which config this "
                       "workdir's records belong to: restore it from a copy, or give a fresh "
                       "--workdir") from None
  return saved


def read(path: Path, quiet: bool = False) -> list[Record]:
  """The complete records of one results file; a cut-off line is skipped with a
  warning (quiet: silently, as while tasks are appending to it)."""
  records = []
  text = path.read_text()
  lines = text.split("\n")
  for number, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      line_json = json.loads(line)
    except json.JSONDecodeError:
      if quiet:
        continue
      last = number == len(lines) and not text.endswith("\n")
      logging.warning("%s:%d: skipped a %s line (%d characters)", path, number,
                      "truncated last" if last else "corrupt", len(line))
      continue
    try:
      records.append(Record.from_json(line_json, f"{path}:{number}"))
    except (RecordError, TypeError, AttributeError) as e:
      raise ResultsError(str(e) if isinstance(e, RecordError) else
                         f"{path}:{number}: not a sweep record ({e})") from None
  return records


def repair(path: Path) -> None:
  """Cuts a truncated last line (a write killed midway), so appends start clean."""
  if not path.exists():
    return
  data = path.read_bytes()  # opened for writing only when there is a line to cut
  if data and not data.endswith(b"\n"):
    keep = data.rfind(b"\n") + 1
    logging.warning("%s: removed a truncated last line (%d bytes)", path, len(data) - keep)
    os.truncate(path, keep)


def append(path: Path, records: Sequence[Record]) -> None:
  """Appends records as one write, flushed to disk before returning."""
  if not records:
    return
  data = "".join(json.dumps(r.to_json(), sort_keys=True) + "\n" for r in records).encode()
  fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
  try:
    written = os.write(fd, data)
    while written < len(data):  # a short write (a full disk): the next one names the cause
      step = os.write(fd, data[written:])
      if step == 0:
        raise OSError(errno.ENOSPC, f"wrote {written} of {len(data)} bytes", str(path))
      written += step
    os.fsync(fd)
  finally:
    os.close(fd)


def results_files(workdir: Path) -> list[Path]:
  return sorted(workdir.glob(RESULTS_GLOB))


def load(paths: Iterable[str | os.PathLike]) -> tuple[list[Record], dict]:
  """Records of results files or sweep workdirs, checked to come from one grid.

  Returns (records, grid fields). Files are paired with the sweep.json beside
  them; grids that differ are refused with the differing fields named.
  """
  records, grid, grid_source = [], None, None
  for given in paths:
    given = Path(given)
    files = results_files(given) if given.is_dir() else [given]
    if not files:
      raise ResultsError(f"{given}: no {RESULTS_GLOB} files there")
    for path in files:
      if not path.exists():
        raise ResultsError(f"{path}: no such results file")
      saved = read_grid(path.parent)
      file_records = read(path)
      keys = {r.config_key for r in file_records}
      if saved is not None:
        if keys - {saved["config_key"]}:
          raise ResultsError(f"{path}: records with config keys {sorted(map(str, keys))} beside "
                             f"{path.parent / GRID_FILE} (key {saved['config_key']})")
        fields = current_fields(saved["fields"])
        if grid is None:
          grid, grid_source = fields, path.parent / GRID_FILE
        elif fields != grid:
          raise ResultsError(
              f"{path}: from a different grid config than {grid_source} ("
              f"{describe_differences(grid, fields, (str(grid_source), str(path)))})")
      records.extend(file_records)
  keys = {r.config_key for r in records}
  if len(keys) > 1:
    raise ResultsError(f"records of {len(keys)} different grid configs {sorted(map(str, keys))}; "
                       "report one grid at a time")
  return records, grid or {}


def check_overlap(records: Sequence[Record]) -> list[str]:
  """Cells recorded more than once for a seed (overlapping task slices)."""
  seen: dict[tuple, list] = {}
  for r in records:
    seen.setdefault(r.id, []).append(r.task)
  return [f"{cell} recorded {len(tasks)} times (tasks {tasks})"
          for cell, tasks in seen.items() if len(tasks) > 1]


def recorded(workdir: Path, key: str, quiet: bool = False) -> dict[tuple, Record]:
  """The complete records of grid `key` in every results file of workdir, by
  Record.id (the first of duplicates)."""
  out = {}
  for path in results_files(workdir):
    for r in read(path, quiet):
      if r.config_key == key:
        out.setdefault(r.id, r)
  return out


def finished_cells(workdir: Path, key: str, num_seeds: int) -> int:
  """Cells of grid `key` with every seed recorded (safe while tasks append)."""
  seeds_per_cell = collections.Counter(cell[:-1] for cell in recorded(workdir, key, quiet=True))
  return sum(n >= num_seeds for n in seeds_per_cell.values())
