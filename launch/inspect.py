"""Shows what a checkpoint holds, what was transferred into it, or how two differ.

  python -m launch.inspect --checkpoint=runs/src                       # parameter tree
  python -m launch.inspect --checkpoint=runs/adapt --view=transfer     # copy/freeze/init
  python -m launch.inspect --checkpoint=runs/src --diff=runs/adapt     # what differs [--all]
  ... --format=json                                                    # for scripts

Reads only the checkpoint (orbax arrays + JSON metadata): the experiment's code
and config need not be importable.
"""

import json

from absl import flags

import launch
from launch import start_process
from xfer_jax import console, inspection

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "workdir or checkpoints folder",
                                  required=True)
_DIFF = flags.DEFINE_string("diff", None, "a second checkpoint to compare against")
_ALL = flags.DEFINE_bool("all", False, "with --diff: list identical paths too (by default "
                         "only what differs is listed; the counts cover every path)")
_VIEW = flags.DEFINE_enum("view", "tree", ["tree", "transfer"], "what to show")
_FORMAT = flags.DEFINE_enum("format", "table", ["table", "json"], "output format")
_STEP = flags.DEFINE_integer("step", None, "checkpoint step (default: the latest)")


def _print_tree(report):
  print(f"{report['checkpoint']}: phase {report['phase']}, dataset {report['dataset']}, "
        f"epoch {report['epoch']}, seeds {report['seeds']}")
  if report["objective"] == "supervised":
    print(f"classes: {report['class_names']}")
  else:
    pretext = report["pretext"]
    print(f"self-supervised ({report['objective']}) on the unlabelled {pretext['splits_read']} "
          f"split(s) of {report['datasets']}: windows {pretext['windows']}; pretext head "
          f"outputs {pretext['outputs']} (dropped at transfer, as a supervised head)")
  rows = [{**r, "shape": "x".join(map(str, r["shape"])) or "()"} for r in report["params"]]
  print(console.format_table(rows, ["path", "shape", "dtype", "count", "mean", "std", "max_abs"],
                             floatfmt=".4g"))
  print("\nsubtotals per group:")
  print(console.format_table([{"group": g, "count": c} for g, c in report["groups"].items()]))
  print(console.format_table([{"top": g, "count": c} for g, c in report["top_level"].items()]))
  print(f"total parameters per seed: {report['total']}")
  print("\nbatch-norm statistics:")
  rows = [{**r, "shape": "x".join(map(str, r["shape"]))} for r in report["batch_stats"]]
  print(console.format_table(rows, ["path", "shape", "mean", "std", "max_abs"], floatfmt=".4g"))


def _print_transfer(report):
  print(f"{report['checkpoint']}: {report['dataset']} adapted on {report['adaptation_size']} "
        f"windows from {report['source']} ({report['source_dataset']})")
  print(f"rules: {report['rules']}; batch norm kept frozen in: {report['frozen_bn']}")
  print(console.format_table(report["labels"], ["path", "action"]))
  print(f"counts: {report['counts']}")


def _print_diff(report):
  print(f"a = {report['a']} ({report['dataset_a']}), b = {report['b']} ({report['dataset_b']})")
  rows = [r for r in report["rows"] if _ALL.value or r["status"] != "identical"]
  if rows:
    print(console.format_table(rows, ["tree", "path", "status", "max_abs_delta",
                                      "relative_change"], floatfmt=".3g"))
  identical = report["counts"].get("identical", 0)
  if identical and not _ALL.value:
    print(f"({identical} identical path(s) not listed: --all lists them)")
  print(f"counts: {report['counts']}")


def main(argv):
  del argv
  start_process()
  if _DIFF.value:
    report, show = inspection.diff_report(_CHECKPOINT.value, _DIFF.value), _print_diff
  elif _VIEW.value == "transfer":
    report, show = inspection.transfer_report(_CHECKPOINT.value, _STEP.value), _print_transfer
  else:
    report, show = inspection.tree_report(_CHECKPOINT.value, _STEP.value), _print_tree
  if _FORMAT.value == "json":
    print(json.dumps(report, indent=1))
  else:
    show(report)


if __name__ == "__main__":
  launch.run(main)
