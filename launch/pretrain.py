"""Trains a source model on a dataset's train split (seeds vmapped) and saves it.

  python -m launch.pretrain --config=configs/demo.py --workdir=runs/src_pamap2 \
      [--config.source=syn_pamap2 --config.train.num_seeds=3]
  python -m launch.pretrain --config=configs/demo.py --workdir=runs/ssl_pamap2 \
      --config.source=multitask:syn_pamap2     # self-supervised: or simclr:DATASETS

Selects each seed on the val split, prints test micro/macro-F1 per seed and
mean ± std, and leaves the checkpoint in WORKDIR/checkpoints (rerun to resume).
"""

from absl import flags
from ml_collections import config_flags

import launch
from launch import start_process
from xfer_jax import console, experiment

_CONFIG = config_flags.DEFINE_config_file("config", "configs/demo.py", "experiment config")
_WORKDIR = flags.DEFINE_string("workdir", None, "output folder (resumes if it has a checkpoint)",
                               required=True)


def main(argv):
  del argv
  start_process()
  summary = experiment.pretrain(_CONFIG.value, _WORKDIR.value)
  if "majority" in summary:
    print(f"{summary['dataset']}: test scores of the best-validation parameters "
          f"(majority class: micro-F1 {summary['majority']['micro_f1']:.3f})")
  else:
    print(f"{summary['dataset']}: pretext accuracy of the best-validation parameters on "
          f"{summary['test_windows']} held-out windows (chance: 0.5 per task; simclr: "
          "1 / (2 x windows per evaluation batch - 1))")
  print(console.format_table(console.seed_table(summary)))
  print(f"checkpoint: {_WORKDIR.value}/checkpoints")


if __name__ == "__main__":
  launch.run(main)
