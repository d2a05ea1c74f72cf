"""On-disk cache of prepared windows, keyed by the preprocessing config."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from xfer_jax.data.atomic import atomic_path

CACHE_VERSION = 1  # bump when preprocessing changes what it computes


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
