"""Prepares datasets (windows, splits, cache) and prints what each holds.

  python -m launch.prepare --config=configs/demo.py [--datasets=syn_skoda,syn_jsifos]
  python -m launch.prepare --config=configs/own.py:PATH/mine.npz --config.data.data_dir=DATA

recordings: as read; pieces: after the gap policy's cuts. lost_<split>: pieces of
the split too short for one window, and classes whose every window the window
length lost (an error for train and test unless config.data.allow_lost_classes).
Datasets are named as config.datasets does: built in, or declared in
config.data.datasets.
"""

from absl import flags
from ml_collections import config_flags

import launch
from launch import start_process
from xfer_jax import console
from xfer_jax.data import prepare

_CONFIG = config_flags.DEFINE_config_file("config", "configs/demo.py", "experiment config")
_DATASETS = flags.DEFINE_list("datasets", None, "datasets to prepare (default: config.datasets)")

COLUMNS = ("dataset", "recordings", "pieces", "hours", "classes", "split_rule", "windows_train",
           "windows_val", "windows_test", "subjects_train", "subjects_val", "subjects_test",
           "majority_class", "majority_micro_f1", "lost_train", "lost_val", "lost_test")


def main(argv):
  del argv
  start_process()
  config = _CONFIG.value
  # a user's own datasets first: what is wrong with theirs comes before the built-in ones'
  names = _DATASETS.value or sorted(config.datasets, key=lambda n: n not in config.data.datasets)
  rows = [prepare(name, config.data).summary() for name in names]
  print(console.format_table(rows, COLUMNS, floatfmt=".3f"))


if __name__ == "__main__":
  launch.run(main)
