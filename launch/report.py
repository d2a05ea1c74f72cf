"""Writes the report (Figure-2 heatmaps, results.csv, summary.md) of sweep results.

  python -m launch.report --results=runs/demo --out=runs/demo
  python -m launch.report --results=runs/a,runs/b/results.task-0001-of-0004.jsonl --out=runs/all

--results takes sweep workdirs (all their results*.jsonl) or single files; they
must come from one grid config. Writes OUT/report/.
"""

from pathlib import Path

from absl import flags

import launch
from launch import start_process
from xfer_jax.study import report

_RESULTS = flags.DEFINE_list("results", None, "sweep workdirs or results files", required=True)
_OUT = flags.DEFINE_string("out", None, "folder for report/ (default: the first --results)")


def main(argv):
  del argv
  start_process()
  out = Path(_OUT.value or _RESULTS.value[0])
  written = report.write(out.parent if out.is_file() else out, _RESULTS.value)
  for name, path in written.items():
    print(f"{name}: {path}")


if __name__ == "__main__":
  launch.run(main)
