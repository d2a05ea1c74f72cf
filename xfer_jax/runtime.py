"""Process-level JAX settings the launchers apply before any work."""

from __future__ import annotations

import os
from pathlib import Path

import jax


def enable_compilation_cache(directory: str | os.PathLike | None = None) -> Path:
  """Persists XLA compilations across processes.

  Compiling the Multi-ResNet's train step takes tens of seconds on a small CPU;
  with the cache a rerun, a resumed run or a sweep task reuses it. The folder is
  $XFER_JAX_COMPILATION_CACHE, or ~/.cache/xfer_jax/jax.
  """
  directory = Path(directory or os.environ.get("XFER_JAX_COMPILATION_CACHE")
                   or Path.home() / ".cache" / "xfer_jax" / "jax")
  directory.mkdir(parents=True, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", str(directory))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return directory


class CompileCounter:
  """Counts programs JAX lowers for XLA while active (jit cache misses).

  A lowering is counted whether or not the persistent cache then spares the
  backend compile, so the count says how many distinct programs a run needed:
  cells of a sweep that share model shapes must not add any.

    with CompileCounter() as counter:
      ...
    counter.count
  """

  def __init__(self):
    self.count = 0
    self.names: list[str] = []

  def _listener(self, event: str, duration: float, **kwargs) -> None:
    del duration
    if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
      self.count += 1
      self.names.append(str(kwargs.get("fun_name", "?")))

  def __enter__(self) -> CompileCounter:
    jax.monitoring.register_event_duration_secs_listener(self._listener)
    return self

  def __exit__(self, *exc) -> None:
    jax.monitoring.unregister_event_duration_listener(self._listener)
