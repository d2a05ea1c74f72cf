"""Writes docs/results/FINDINGS.md: each committed study's claims, recomputed from its
records (xfer_jax/study/findings.py lists the studies and how each asks its questions).

  python -m launch.findings                       # rewrites docs/results/FINDINGS.md
  python -m launch.findings --check               # exit 1 where the file is stale
"""

import sys
from pathlib import Path

from absl import flags

import launch
from launch import start_process
from xfer_jax.data.atomic import write_text
from xfer_jax.study import findings

_RESULTS = flags.DEFINE_string("results", "docs/results", "the folder of the studies' records")
_CHECK = flags.DEFINE_bool("check", False, "compare with the file instead of writing it")


def main(argv):
  del argv
  start_process()
  path = Path(_RESULTS.value) / "FINDINGS.md"
  text = findings.markdown(_RESULTS.value)
  if _CHECK.value:
    same = path.exists() and path.read_text() == text
    print(f"{path}: {'up to date' if same else 'stale: rerun python -m launch.findings'}")
    sys.exit(0 if same else 1)
  write_text(path, text)
  print(f"findings: {path}")


if __name__ == "__main__":
  launch.run(main)
