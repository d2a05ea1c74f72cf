"""Runs a config's grid (config.sweep): sources once, cells with seeds vmapped.

  python -m launch.sweep --config=configs/demo.py --workdir=runs/demo
  python -m launch.sweep --config=configs/paper.py --workdir=runs/paper \
      --task_index=3 --num_tasks=16   # one slice of 16; the slices are disjoint
  python -m launch.sweep --config=configs/demo.py --workdir=runs/demo --local_tasks=2
      # both slices at once, as two processes of this machine, then the report

Appends one record per cell and seed to WORKDIR/results.jsonl (per-task files when
num_tasks > 1), skips what is recorded, then (with --report, the default for a
single task) writes WORKDIR/report/ and prints where the heatmaps are. In a SLURM
array job the slice defaults to the array's (launch/slurm_sweep.sh).
"""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

import launch
from launch import start_process
from xfer_jax import config_fields, console
from xfer_jax.engine.runtime import is_primary
from xfer_jax.grid import cost, results, sweep
from xfer_jax.study import report

_CONFIG = config_flags.DEFINE_config_file("config", "configs/demo.py", "experiment config")
_WORKDIR = flags.DEFINE_string("workdir", None, "sweep folder (rerun to resume)", required=True)
_TASK_INDEX = flags.DEFINE_integer("task_index", None, "this task's slice of the grid "
                                   "(default: from SLURM_ARRAY_TASK_ID, else 0)")
_NUM_TASKS = flags.DEFINE_integer("num_tasks", None, "slices the grid is cut into "
                                  "(default: SLURM_ARRAY_TASK_COUNT, else 1)")
_REPORT = flags.DEFINE_bool("report", None, "write the report after the slice "
                            "(default: when this is the only task)")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "print the cells this call would run (recorded "
                             "ones skipped), the grid's size and the projected wall time on "
                             "this machine (writes nothing)")
_SOURCES = flags.DEFINE_list(
    "sources", None, "run only the cells from these sources (and the baselines) in this call: "
    "a later call without it runs the rest; as task slices, it never changes a number")
_CALIBRATE = flags.DEFINE_bool("calibrate", True, "with --dry_run: time the model briefly "
                               "(compiles it) to project the wall time")
_LOCAL_TASKS = flags.DEFINE_integer(
    "local_tasks", 1, "run the grid as this many task processes on this machine, then "
    "the report: on a small CPU one process leaves a core idle while it compiles")


def task() -> tuple[int, int]:
  """Flags first, then a scheduler's array-job environment, then the whole grid."""
  index, count = sweep.task_from_env(os.environ) or (0, 1)
  return (index if _TASK_INDEX.value is None else _TASK_INDEX.value,
          count if _NUM_TASKS.value is None else _NUM_TASKS.value)


def _child_argv(argv: list[str]) -> list[str]:
  """This command's flags without --local_tasks (its value may follow it)."""
  out, skip = [], False
  for arg in argv[1:]:
    if skip:
      skip = False
    elif arg.startswith("--local_tasks"):
      skip = "=" not in arg
    else:
      out.append(arg)
  return out


def run_local_tasks(config, workdir: Path, count: int, argv: list[str]) -> None:
  """The grid's `count` task slices as child processes (logs: WORKDIR/task-<i>.log),
  with one progress bar over all cells; raises if a task fails."""
  # prepared here first, so the tasks read the datasets from the cache
  cells = sweep.expand(config, sweep.train_sizes(config))
  workdir.mkdir(parents=True, exist_ok=True)
  key = results.claim_grid(workdir, config_fields.grid_fields(config))
  logs = [workdir / f"task-{i}.log" for i in range(count)]
  with contextlib.ExitStack() as stack:
    children = [subprocess.Popen(
        [sys.executable, "-m", "launch.sweep", *_child_argv(argv), f"--task_index={i}",
         f"--num_tasks={count}", "--report=false"],
        stdout=stack.enter_context(log.open("w")), stderr=subprocess.STDOUT)
        for i, log in enumerate(logs)]
    bar = console.Progress(len(cells), f"sweep in {count} local tasks")
    while any(c.poll() is None for c in children):
      time.sleep(2)
      bar.update(results.finished_cells(workdir, key, config.train.num_seeds))
  failed = [str(log) for c, log in zip(children, logs) if c.returncode != 0]
  if failed:
    raise SystemExit(f"sweep task(s) failed; see {', '.join(failed)} (rerun to resume)")


def write_report() -> None:
  written = report.write(_WORKDIR.value, [_WORKDIR.value])
  print(f"heatmaps: {written['heatmaps']}")
  if "gains" in written:
    print(f"gains:    {written['gains']}  (* = significant)")
  print(f"summary:  {written['summary']}")


def main(argv):
  del argv
  start_process()
  config = _CONFIG.value
  if _LOCAL_TASKS.value > 1:
    if _TASK_INDEX.value is not None or _NUM_TASKS.value is not None:
      raise app.UsageError("--local_tasks runs every slice itself: drop --task_index/--num_tasks")
    run_local_tasks(config, Path(_WORKDIR.value), _LOCAL_TASKS.value, sys.argv)
    write_report()
    return
  task_index, num_tasks = task()
  if _DRY_RUN.value:
    plan = sweep.plan(config, task_index, num_tasks, calibrate=_CALIBRATE.value,
                      workdir=_WORKDIR.value, sources=_SOURCES.value)
    print("\n".join(plan.pop("to_run")))
    if plan["cells_recorded"]:
      print(f"({plan['cells_recorded']} cells already recorded in {_WORKDIR.value}: skipped)")
    print(console.format_table([{k: v for k, v in plan.items() if k != "projection"}],
                               floatfmt=".1f"))
    if "projection" in plan:
      print(cost.describe(plan["projection"]))
    return
  summary = sweep.run(config, _WORKDIR.value, task_index=task_index, num_tasks=num_tasks,
                      sources=_SOURCES.value)
  print(console.format_table([{k: summary[k] for k in (
      "cells_in_grid", "cells_in_task", "cells_run", "compilations", "wall_s", "mean_cell_s",
      "seed_epochs", "seed_epochs_per_s")}],
      floatfmt=".1f"))
  print(f"records: {summary['results']}")
  if is_primary() and (_REPORT.value or (_REPORT.value is None and num_tasks == 1)):
    write_report()


if __name__ == "__main__":
  launch.run(main)
