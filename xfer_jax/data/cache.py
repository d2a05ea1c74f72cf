"""On-disk cache of prepared windows, keyed by the preprocessing config."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from xfer_jax.data.atomic import atomic_path, write_text

CACHE_VERSION = 2  # bump when preprocessing changes what it computes


def cache_key(config: dict[str, Any]) -> str:
  text = json.dumps({"version": CACHE_VERSION, **config}, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
  env = os.environ.get("XFER_JAX_CACHE")
  return Path(env) if env else Path.home() / ".cache" / "xfer_jax"


def load(path: Path) -> dict[str, np.ndarray] | None:
  """The cached arrays, or None when absent or unreadable (then it is rebuilt)."""
  if not path.is_file():
    return None
  try:
    with np.load(path, allow_pickle=False) as z:
      return {k: z[k] for k in z.files}
  except (OSError, ValueError, EOFError):
    return None


def save(path: Path, arrays: dict[str, np.ndarray]) -> None:
  with atomic_path(path, suffix=".npz") as tmp:
    with open(tmp, "wb") as f:
      np.savez(f, **arrays)


FINGERPRINTS = "fingerprints.json"


def fingerprint(path: Path, memo_dir: Path) -> str:
  """A digest of the contents of `path` (a file, or every file below a folder, by
  relative name). Each file's sha256 is remembered in memo_dir/fingerprints.json
  under its size, modification and status-change times and inode, so an unchanged
  file is read once; the status-change time cannot be set back by tools that
  restore a modification time (cp -p, rsync -t), so a corrected file is read
  again. A missing path is left to the reader to report."""
  if not path.exists():
    return "missing"
  files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
  memo_path = memo_dir / FINGERPRINTS
  try:
    memo = json.loads(memo_path.read_text())
  except (OSError, ValueError):
    memo = {}
  digest, changed = hashlib.sha256(), False
  for file in files:
    stat = file.stat()
    stamp = f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_ino}"
    key = str(file.resolve())
    if memo.get(key, {}).get("stamp") != stamp:
      memo[key] = {"stamp": stamp, "sha256": _sha256(file)}
      changed = True
    name = file.name if file == path else file.relative_to(path).as_posix()
    digest.update(f"{name}\0{memo[key]['sha256']}\n".encode())
  if changed:
    try:
      memo_dir.mkdir(parents=True, exist_ok=True)
      write_text(memo_path, json.dumps(memo))
    except OSError:  # a read-only cache folder: the digests are computed again next time
      pass
  return digest.hexdigest()[:16]


def _sha256(file: Path) -> str:
  h = hashlib.sha256()
  with open(file, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()
