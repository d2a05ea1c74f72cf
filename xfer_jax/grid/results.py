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
import functools
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from xfer_jax import defaults
from xfer_jax.data.atomic import write_text
from xfer_jax.errors import UserError
from xfer_jax.grid.records import Record, RecordError

RESULTS_GLOB = "results*.jsonl"
GRID_FILE = "sweep.json"
GRID_FORMAT = 2
# A grid's key covers every config field but config.runtime (how it runs) and these:
# the coordinates a sweep sets per cell, and where files are read and cached.
CELL_FIELDS = ("source", "target", "adapt.size", "transfer.blocks")
LOCATION_FIELDS = ("data.cache_dir", "data.data_dir", "sweep.sources_dir")


class ResultsError(UserError, ValueError):
  """Results that cannot be used as asked; the message names the file or fields."""


def flat_fields(tree: Mapping, prefix: str = "") -> dict[str, object]:
  out = {}
  for key, value in tree.items():
    path = f"{prefix}{key}"
    if isinstance(value, Mapping):
      out.update(flat_fields(value, path + "."))
    else:
      out[path] = list(value) if isinstance(value, tuple) else value
  return out


def science_fields(config: Mapping | object) -> dict[str, object]:
  """The fields of a config (a ConfigDict, or one as saved in config.json) that
  decide a run's numbers: all but config.runtime and file locations, flattened
  'a.b' -> value, as today's config: a field added since it was saved takes its
  default, which reproduces what was computed before the field existed
  (xfer_jax/defaults.py); a field since removed or moved out of the science is dropped."""
  tree = config if isinstance(config, Mapping) else json.loads(config.to_json_best_effort())
  fields = flat_fields({k: v for k, v in tree.items() if k != "runtime"})
  if "runtime" not in tree:
    fields = upgrade_fields(fields)
  fields = current_fields(fields)
  return {k: v for k, v in sorted(fields.items()) if k not in LOCATION_FIELDS}


def grid_fields(config) -> dict[str, object]:
  """The fields of a config that decide a sweep's numbers: its science fields but
  the coordinates each cell sets."""
  return {k: v for k, v in science_fields(config).items() if k not in CELL_FIELDS}


# run settings that lived in config.train before config.runtime
_FORMER_TRAIN_RUNTIME = ("epoch_loop", "seed_chunk", "num_devices", "batch_devices",
                         "eval_batch_size", "checkpoint_every")
# fields that left the science: how a run computes, not what (model.conv is now
# config.runtime.conv; model.stack_towers was removed: docs/performance.md)
_NOT_SCIENCE = ("model.conv", "model.stack_towers")


@functools.cache
def default_fields() -> dict[str, object]:
  """Every science field at its default (xfer_jax/defaults.py), but the coordinates
  a sweep sets per cell and file locations, which a saved grid leaves out by design."""
  tree = json.loads(defaults.base_config().to_json_best_effort())
  fields = flat_fields({k: v for k, v in tree.items() if k != "runtime"})
  return {k: v for k, v in fields.items() if k not in CELL_FIELDS + LOCATION_FIELDS}


def current_fields(fields: Mapping[str, object]) -> dict[str, object]:
  """Saved fields as the same config's fields now: absent ones at their default,
  those that left the science dropped."""
  return {**default_fields(), **{k: v for k, v in fields.items() if k not in _NOT_SCIENCE}}


def upgrade_fields(fields: Mapping[str, object]) -> dict[str, object]:
  """Fields of a config saved before GRID_FORMAT 2 (a sweep.json, a config.json) as
  the same config's fields now."""
  fields = {k: v for k, v in fields.items()
            if k not in {f"train.{name}" for name in _FORMER_TRAIN_RUNTIME}}
  fields.pop("model.num_blocks", None)  # now len(model.filters)
  fields.pop("adapt.validation", None)  # was read nowhere: the target's val split selects
  return fields


def config_key(fields: Mapping[str, object]) -> str:
  """A grid's key: a hash of its fields that differ from their defaults, so that a
  field added at its default leaves every key as it was."""
  changed = {k: v for k, v in fields.items() if default_fields().get(k, "<absent>") != v}
  return hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:16]


def differing_fields(a: Mapping[str, object], b: Mapping[str, object]) -> list[str]:
  return sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))


def describe_differences(a: Mapping, b: Mapping, names=("this", "that")) -> str:
  return "; ".join(f"{k}: {names[0]} {a.get(k, '<absent>')!r} vs {names[1]} {b.get(k, '<absent>')!r}"
                   for k in differing_fields(a, b))


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
