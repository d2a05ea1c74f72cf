"""Writes a strategy study's summary (summary.md, results.csv) from its grids' records.

  python -m launch.study --root=docs/results/real_v2
  python -m launch.study --root=runs/real_v2 --out=runs/real_v2_summary

ROOT holds one sweep workdir per strategy (launch/real_v2.sh): ROOT/<strategy>/
with its sweep.json and results*.jsonl (source models are not read). See
xfer_jax/study.py for the comparisons and their statistics.
"""

from absl import flags

import launch
from launch import start_process
from xfer_jax import study

_ROOT = flags.DEFINE_string("root", None, "folder of the strategy workdirs", required=True)
_OUT = flags.DEFINE_string("out", None, "folder for summary.md and results.csv (default: ROOT)")


def main(argv):
  del argv
  start_process()
  for name, path in study.write(_ROOT.value, _OUT.value or _ROOT.value).items():
    print(f"{name}: {path}")


if __name__ == "__main__":
  launch.run(main)
