"""Your own dataset through the paper's study: transfer into it from each of the four
real wrist datasets (configs/real.py), against its baseline.

  python -m launch.prepare --config=configs/own.py:PATH/mine.npz --config.data.data_dir=DATA
  python -m launch.sweep --config=configs/own.py:PATH/mine.npz --config.data.data_dir=DATA \
      --workdir=runs/mine

PATH/mine.npz is an interchange file (shared/data/README.md; xfer_jax/data/readers/
interchange.py writes one from a RawDataset); the dataset is named after the file
("mine") in every output. DATA holds the real datasets. Everything else is
configs/real.py's grid: 4 s windows, sizes 20..400 and the smallest train split,
baseline and 1..3 transferred blocks, 3 seeds. `launch.prepare` first: it reports
per split what the window length costs (pieces without a window, classes lost),
and a class lost from train or test is an error. Short trials (e.g. isolated
gestures of 2-4 s) need shorter windows for every dataset of the grid:
--config.data.window_s=2 --config.data.step_s=1.

The declaration is an entry of config.data.datasets (xfer_jax/data/registry.py);
write your own config the same way to read another format, set reader options
(keep, merge, null_label, clip_g) or a dataset's own preprocessing (label_rule).
"""

import os
from pathlib import Path

from ml_collections import ConfigDict

from configs import real


def get_config(arg: str | None = None) -> ConfigDict:
  if not arg:
    raise ValueError("configs/own.py needs your interchange file: --config=configs/own.py:PATH.npz")
  path = os.path.abspath(os.path.expanduser(arg))
  name = Path(path).stem
  config = real.get_config()
  if name in config.datasets:
    raise ValueError(f"configs/own.py:{arg}: the name {name!r} is a built-in dataset's; rename "
                     "the file")
  with config.unlocked():
    config.data.datasets = {name: dict(reader="interchange", path=path,
                                       options=dict(name=name))}
    config.sweep.pairs = tuple(f"{source}->{name}" for source in config.datasets)
    config.datasets = (*config.datasets, name)
    config.target = name
  return config
