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


def prefer_deterministic_gpu(environ=os.environ) -> bool:
  """Asks XLA:GPU for run-to-run identical results unless XLA_FLAGS already decides.

  By default XLA:GPU may use atomics-based reductions and scatters, whose
  summation order varies between runs. Over a cell's epochs and its early
  stopping those last bits grow: the same baseline cells of configs/real.py, run
  twice on one H100, differed by up to 5 points of micro-F1 per seed
  (docs/results/real/summary.md). Must run before JAX starts a backend; CPU and
  TPU ignore the flag. XLA_FLAGS=--xla_gpu_deterministic_ops=false opts out.
  Returns whether it set the flag.
  """
  flags = environ.get("XLA_FLAGS", "")
  if "xla_gpu_deterministic_ops" in flags:
    return False
  environ["XLA_FLAGS"] = f"{flags} --xla_gpu_deterministic_ops=true".strip()
  return True


def join_processes(coordinator_address: str, num_processes: int | None = None,
                   process_id: int | None = None) -> None:
  """Makes this process one of a multi-process run (jax.distributed).

  coordinator_address "auto" lets JAX read the cluster's environment (SLURM,
  Open MPI, Cloud TPU, ...); otherwise "host:port" of process 0, with the
  process count and this process's index. Afterwards jax.devices() lists every
  process's devices: an engine spreads its seeds over all of them and each
  process feeds the shards its own devices hold; only process 0 writes files
  (`is_primary`). Must run before anything touches a JAX device.
  """
  # CPU processes exchange data (gathered metrics) through gloo; other backends
  # ignore this option
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if coordinator_address == "auto":
    jax.distributed.initialize()
  else:
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)


def is_primary() -> bool:
  """True in the process that writes results, metrics and reports: the only one,
  or process 0 of a multi-process run."""
  return jax.process_index() == 0


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
