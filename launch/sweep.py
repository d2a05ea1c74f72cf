"""Runs a config's grid (config.sweep): sources once, cells with seeds vmapped.

  python -m launch.sweep --config=configs/demo.py --workdir=runs/demo
  python -m launch.sweep --config=configs/paper.py --workdir=runs/paper \
      --task_index=3 --num_tasks=16   # one slice of 16; the slices are disjoint

Appends one record per cell and seed to WORKDIR/results.jsonl (per-task files when
num_tasks > 1), skips what is recorded, then (with --report, the default for a
single task) writes WORKDIR/report/ and prints where the heatmaps are. In a SLURM
array job the slice defaults to the array's (launch/slurm_sweep.sh).
"""

import json
import os

from absl import app, flags
from ml_collections import config_flags

from launch import join_processes_from_flags
from xfer_jax import console, report, sweep
from xfer_jax.data import prepare
from xfer_jax.runtime import is_primary

_CONFIG = config_flags.DEFINE_config_file("config", "configs/demo.py", "experiment config")
_WORKDIR = flags.DEFINE_string("workdir", None, "sweep folder (rerun to resume)", required=True)
_TASK_INDEX = flags.DEFINE_integer("task_index", None, "this task's slice of the grid "
                                   "(default: from SLURM_ARRAY_TASK_ID, else 0)")
_NUM_TASKS = flags.DEFINE_integer("num_tasks", None, "slices the grid is cut into "
                                  "(default: SLURM_ARRAY_TASK_COUNT, else 1)")
_REPORT = flags.DEFINE_bool("report", None, "write the report after the slice "
                            "(default: when this is the only task)")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "print the grid's size and this task's cells")


def task() -> tuple[int, int]:
  """Flags first, then a scheduler's array-job environment, then the whole grid."""
  index, count = sweep.task_from_env(os.environ) or (0, 1)
  return (index if _TASK_INDEX.value is None else _TASK_INDEX.value,
          count if _NUM_TASKS.value is None else _NUM_TASKS.value)


def main(argv):
  del argv
  join_processes_from_flags()
  config = _CONFIG.value
  task_index, num_tasks = task()
  if _DRY_RUN.value:
    names = sorted({d for p in sweep.pairs(config) for d in p})
    sizes = {d: len(prepare(d, config.data).splits["train"]) for d in names}
    cells = sweep.expand(config, sizes)
    mine = sweep.task_slice(cells, task_index, num_tasks)
    print(json.dumps({**sweep.grid_size(config, sizes), "task_cells": len(mine)}))
    print("\n".join(c.name for c in mine))
    return
  summary = sweep.run(config, _WORKDIR.value, task_index=task_index, num_tasks=num_tasks)
  print(console.format_table([{k: summary[k] for k in (
      "cells_in_grid", "cells_in_task", "cells_run", "compilations", "wall_s", "mean_cell_s")}],
      floatfmt=".1f"))
  print(f"records: {summary['results']}")
  if is_primary() and (_REPORT.value or (_REPORT.value is None and num_tasks == 1)):
    written = report.write(_WORKDIR.value, [_WORKDIR.value])
    print(f"heatmaps: {written['heatmaps']}")
    print(f"summary:  {written['summary']}")


if __name__ == "__main__":
  app.run(main)
