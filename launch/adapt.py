"""Adapts a target model on an adaptation subset, from a source checkpoint or not.

  python -m launch.adapt --config=configs/demo.py --source_checkpoint=runs/src \
      --workdir=runs/adapt [--config.adapt.size=200 --config.transfer.blocks=2]

Without --source_checkpoint it trains the baseline (nothing transferred). Writes
WORKDIR/result.json (per-seed test scores) and the checkpoint, whose metadata
records the copy / copy_freeze / init label of every parameter path.
"""

from absl import flags
from ml_collections import config_flags

import launch
from launch import start_process
from xfer_jax import console, experiment, transfer

_CONFIG = config_flags.DEFINE_config_file("config", "configs/demo.py", "experiment config")
_WORKDIR = flags.DEFINE_string("workdir", None, "output folder", required=True)
_SOURCE = flags.DEFINE_string("source_checkpoint", None,
                              "a pretrain workdir (or its checkpoints/); none = baseline")


def main(argv):
  del argv
  start_process()
  config = _CONFIG.value
  summary = experiment.adapt(config, _WORKDIR.value, _SOURCE.value)
  what = (f"{transfer.describe(config.transfer)} from {_SOURCE.value}"
          if _SOURCE.value else "baseline (nothing transferred)")
  print(f"{summary['dataset']}: adapted on {summary['train_windows']} windows, {what}; "
        f"majority class micro-F1 {summary['majority']['micro_f1']:.3f}")
  print(console.format_table(console.seed_table(summary)))


if __name__ == "__main__":
  launch.run(main)
