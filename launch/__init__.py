"""Thin absl entry points: flags and a config in, one library call out.

Every launcher runs through run(main), and its main() calls start_process()
first, before anything starts a JAX backend."""

import os
import re
import sys

from absl import app, flags
from absl import logging as absl_logging

from xfer_jax.engine.runtime import (
  enable_compilation_cache,
  join_processes,
  prefer_deterministic_gpu,
  reuse_freed_host_memory,
)
from xfer_jax.errors import explain

_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "join a multi-process run (jax.distributed): host:port of "
    "process 0, or 'auto' to read the cluster's environment (SLURM, Open MPI, Cloud TPU)")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "processes in the run")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "this process's index in the run")
_DEBUG = flags.DEFINE_bool("debug", False, "on an error, raise it with its full traceback "
                           "instead of printing one line")


def run(main) -> None:
  """app.run(main); an error the user can act on (a bad config, file or checkpoint,
  a full disk, a read-only folder) ends the process with one line naming the path
  and what to do, and exit status 1. Anything else keeps its traceback."""
  def guarded(argv):
    try:
      return main(argv)
    except Exception as e:  # noqa: BLE001 - explain() decides which are the user's to fix
      message = explain(e)
      if message is None or _DEBUG.value:
        raise
      # (a newline first: a progress bar may hold the line)
      print(f"\nerror: {message}\n(--debug shows the traceback)", file=sys.stderr, flush=True)
      sys.stdout.flush()
      # At once: a library's threads, left mid-failure (orbax after a full disk),
      # would print their own tracebacks at interpreter shutdown. What the run
      # wrote is closed and on disk already (atomic files, fsynced records).
      os._exit(1)
  app.run(guarded, flags_parser=_parse_flags)


def _parse_flags(argv):
  """absl's flag parsing, with a --config override that names no field, or a value
  the field cannot take, as one line (ml_collections raises it from inside absl's
  parser, as three chained tracebacks ending in "Did you mean ...")."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    if "Error whilst parsing config file" in str(e) and "--debug" not in argv:
      print(f"error: {_config_file_error(str(e))}", file=sys.stderr)
      sys.exit(2)
    # absl's own handling (app.parse_flags_with_usage): its message and where help is
    print(f"FATAL Flags parsing error: {e}\nPass --helpshort or --helpfull to see help on "
          "flags.", file=sys.stderr)
    sys.exit(1)
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    if "--debug" in argv:
      raise
    text = re.sub(r"(\\n|\n)+", " ", str(e)).replace("\\'", "'").strip("'\" ")
    mean = re.search(r'Did you mean "([^"]+)" instead of "([^"]+)"', text)
    if mean:
      text = f"no field {mean[2]!r}; did you mean {mean[1]!r}?"
    named = [mean[2]] if mean else re.findall(r"'([^']+)'", text)
    override = next((a for a in argv[1:] if a.startswith("--config.")
                     and any(n in a.split("=")[0] for n in named)), None)
    print(f"error: {override + ': ' if override else ''}{text}", file=sys.stderr)
    sys.exit(2)


NAMES_A_DATASET = ("target", "source")


def _config_file_error(message: str) -> str:
  """A config file's get_config() failure as one line: where in the file, and why."""
  lines = [line.strip() for line in message.splitlines()
           if line.strip() and not line.strip().startswith(("^", "~", "Pass --help"))]
  where = [line for line in lines if line.startswith("File ") and "site-packages" not in line]
  raised = [i for i, line in enumerate(lines) if re.match(r"\w+(Error|Exception): ", line)]
  text = " ".join(lines[raised[-1]:]) if raised else lines[-1]
  hint = ""
  if "cannot be casted" in text and any(f"config.{n}" in text or f"key: {n}" in text
                                        or f"'{n}'" in text for n in NAMES_A_DATASET):
    hint = ("; config.target and config.source name a dataset: declare a dataset of your "
            "own in config.data.datasets (configs/own.py) and name it there")
  location = where[-1].split(", in ")[0] if where else "the config file"
  return f"{location}: get_config() failed: {text}{hint}"


def start_process() -> bool:
  """The process settings of every launcher (xfer_jax/engine/runtime.py): deterministic GPU
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
