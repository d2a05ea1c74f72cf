"""Process-level settings the launchers apply before any work: JAX, XLA and malloc."""

from __future__ import annotations

import ctypes
import os
import platform
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
  # every program, not only those over JAX's default second: a grid's runners that
  # differ in what they freeze share their evaluation, shuffle and keep-best programs,
  # which compile in a fraction of a second and read back in less (JAX's own variable
  # still decides where it is set)
  if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
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


_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8  # glibc's malloc.h
_KEPT_FREE_BYTES = 2**31 - 1  # mallopt takes an int: keep up to 2 GiB of freed heap


def reuse_freed_host_memory(environ=os.environ) -> bool:
  """Makes glibc's malloc hand a freed large buffer back out instead of unmapping it.

  XLA:CPU mallocs each execution's temporary buffer and frees it afterwards: 137 MB
  for the default model's batch step at batch 256, more for vmapped seeds. glibc
  serves any block above its mmap threshold (32 MiB at most) with a fresh
  mmap, and the kernel zero-fills each 4 KiB page on first touch, so every step
  paid 33 000 page faults and about 100 ms of system time (a third of the step's
  CPU time on the 2-core machine; docs/performance.md#host-memory). Here malloc keeps one
  arena (a worker thread's own arena cannot grow past 64 MiB, so its large blocks
  would be mmapped whatever the threshold), never mmaps, and keeps up to 2 GiB of
  freed memory: the next step reuses the same, already mapped pages. Process
  memory then stays at its peak instead of shrinking between steps.

  Must run before JAX starts its backend's threads. Numbers do not change, only
  where buffers live. Does nothing off glibc, or where the environment already
  tunes malloc (GLIBC_TUNABLES with glibc.malloc.*, or a MALLOC_*_ variable): that
  is the way to opt out. Returns whether it applied the settings.
  """
  if "glibc.malloc" in environ.get("GLIBC_TUNABLES", "") or any(
      name.startswith("MALLOC_") for name in environ):
    return False
  if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
    return False
  mallopt = ctypes.CDLL(None).mallopt
  return all([mallopt(_M_ARENA_MAX, 1), mallopt(_M_MMAP_MAX, 0),
              mallopt(_M_TRIM_THRESHOLD, _KEPT_FREE_BYTES)])


def join_processes(coordinator_address: str, num_processes: int | None = None,
                   process_id: int | None = None) -> None:
  """Makes this process one of a multi-process run (jax.distributed).

  coordinator_address "auto" lets JAX read the cluster's environment (SLURM,
  Open MPI, Cloud TPU, ...); otherwise "host:port" of process 0, with the
  process count and this process's index. Afterwards jax.devices() lists every
  process's devices: a runner spreads its seeds over all of them and each
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
  """Counts programs JAX lowers for XLA while active (jit cache misses), and those
  loaded whole in their place (executables.py).

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
    # a program lowered, or its stored executable loaded in its place (executables.py)
    if event in ("/jax/core/compile/jaxpr_to_mlir_module_duration",
                 "/xfer_jax/executables/load_duration"):
      self.count += 1
      self.names.append(str(kwargs.get("fun_name", "?")))

  def __enter__(self) -> CompileCounter:
    jax.monitoring.register_event_duration_secs_listener(self._listener)
    return self

  def __exit__(self, *exc) -> None:
    jax.monitoring.unregister_event_duration_listener(self._listener)
