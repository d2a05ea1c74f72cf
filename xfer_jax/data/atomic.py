"""Atomic file writes: a reader never sees a half-written file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
  """Yields a temporary path beside `path`; renames it onto `path` on success."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
  os.close(fd)
  try:
    yield Path(tmp)
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
