"""Writes a strategy study's summary (summary.md, results.csv, gains.png) from the
records of its grids.

  python -m launch.study --root=docs/results/real_v2
  python -m launch.study --root=runs/real_v2 --out=runs/real_v2_summary
  python -m launch.study --root=runs/real_v2 --out=docs/results/real_v2 --publish
  python -m launch.study --root=runs/real_v2_acc --out=docs/results/real_v2/val_accuracy \
      --publish --against=docs/results/real_v2

ROOT holds one sweep workdir per strategy (launch/real_v2.sh): ROOT/<strategy>/
with its sweep.json and results*.jsonl, and ROOT/sources/<source>/result.json
(read for the source models' table; their checkpoints are not). With --publish,
those files are first copied into OUT (atomically, so OUT can be committed while
the study runs) and the summary is made from the copies. See xfer_jax/study/
for the comparisons and their statistics. --against=REF adds a section comparing
the cells this study shares with the study in REF (a rerun of part of it with one
setting changed: the section names the settings that differ).

The declared questions (ROOT/design.json, or --design=FILE: xfer_jax/study/contrasts.py)
lead the summary. Before a study runs, size it from records that exist (a pilot, or
an earlier study of the same targets); this prints and writes nothing else:
  python -m launch.study --root=docs/results/real_v2 --design=DESIGN.json \
      --questions --plan=5,10,20 --target_mde=3
"""

from absl import flags

import launch
from launch import start_process
from xfer_jax import study

_ROOT = flags.DEFINE_string("root", None, "folder of the strategy workdirs", required=True)
_OUT = flags.DEFINE_string("out", None, "folder for summary.md and results.csv (default: ROOT)")
_AGAINST = flags.DEFINE_string("against", None, "a reference study (a folder like ROOT) to "
                               "compare the cells both ran with")
_DESIGN = flags.DEFINE_string("design", None, "the declared questions (default: "
                               "ROOT/design.json)")
_QUESTIONS = flags.DEFINE_bool("questions", False, "print the declared questions' table (and "
                               "with --plan their power) from ROOT's records; write nothing")
_PLAN = flags.DEFINE_list("plan", [], "replicates (seeds x folds) to project each declared "
                          "contrast's minimum detectable difference at")
_TARGET_MDE = flags.DEFINE_float("target_mde", None, "with --plan: the replicates each "
                                 "contrast needs to detect this many points")
_PUBLISH = flags.DEFINE_bool("publish", False, "copy ROOT's records into OUT first and summarise "
                             "the copies")


def main(argv):
  del argv
  start_process()
  root, out = _ROOT.value, _OUT.value or _ROOT.value
  if _QUESTIONS.value:
    print(study.questions_markdown(root, _DESIGN.value, [int(n) for n in _PLAN.value],
                                   _TARGET_MDE.value))
    return
  if _PUBLISH.value:
    print(f"published {len(study.publish(root, out))} record files into {out}")
    root = out
  for name, path in study.write(root, out, _AGAINST.value, _DESIGN.value).items():
    print(f"{name}: {path}")


if __name__ == "__main__":
  launch.run(main)
