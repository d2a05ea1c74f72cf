"""Atomic file writes: a reader never sees a half-written file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _process_umask() -> int:
  """The process's umask, read without changing it where Linux shows it (setting it
  to read it races with threads creating files, e.g. orbax's checkpoint writers)."""
  with contextlib.suppress(OSError, ValueError):
    for line in Path("/proc/self/status").read_text().splitlines():
      if line.startswith("Umask:"):
        return int(line.split()[1], 8)
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


_UMASK = _process_umask()  # once, at import


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
  """Yields a temporary path beside `path`; renames it onto `path` on success, with
  the mode a plain open() would have given it (mkstemp's own is 0600)."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
  os.close(fd)
  try:
    yield Path(tmp)
    os.chmod(tmp, 0o666 & ~_UMASK)
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(tmp)
    raise


def write_bytes(path: str | os.PathLike, data: bytes) -> bool:
  """Writes data to path atomically, unless path holds exactly data already (so
  that rewriting an unchanged file works on a read-only file system); returns
  whether it wrote."""
  path = Path(path)
  if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
    return False
  with atomic_path(path) as tmp:
    tmp.write_bytes(data)
  return True


def write_text(path: str | os.PathLike, text: str) -> bool:
  return write_bytes(path, text.encode())
