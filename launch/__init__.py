"""Thin absl entry points: flags and a config in, one library call out.

Every launcher's main() calls start_process() first, before anything starts a
JAX backend."""

from absl import flags
from absl import logging as absl_logging

from xfer_jax.runtime import (
  enable_compilation_cache,
  join_processes,
  prefer_deterministic_gpu,
  reuse_freed_host_memory,
)

_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "join a multi-process run (jax.distributed): host:port of "
    "process 0, or 'auto' to read the cluster's environment (SLURM, Open MPI, Cloud TPU)")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "processes in the run")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "this process's index in the run")


def start_process() -> bool:
  """The process settings of every launcher (xfer_jax/runtime.py): deterministic GPU
  ops, reuse of freed host memory, the compilation cache, a quiet log unless
  --verbosity says otherwise, and joining a multi-process run when the flags name
  one. Returns whether freed host memory is reused (the benchmark reports it)."""
  prefer_deterministic_gpu()  # same config and seed, same numbers: on GPUs too
  reused = reuse_freed_host_memory()
  enable_compilation_cache()
  if not flags.FLAGS["verbosity"].present:
    # orbax reports every save at INFO; keep the console for progress and results
    absl_logging.set_verbosity(absl_logging.WARNING)
  if _COORDINATOR.value:
    join_processes(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  return reused
