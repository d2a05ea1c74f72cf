"""Leave one dataset out on the four real wrist datasets: each target adapted from
a source model pretrained on the other three, pooled (xfer_jax/data/pool.py).

  python -m launch.sweep --config=configs/real_loo.py --config.data.data_dir=DATA \
      --workdir=runs/real_loo

Everything else is configs/real.py's grid: sizes 20..400 and the smallest train
split, baseline and 1..3 transferred blocks, 3 seeds.
"""

from ml_collections import ConfigDict

from configs import real


def get_config(arg: str | None = None) -> ConfigDict:
  config = real.get_config(arg)
  with config.unlocked():
    config.sweep.pairs = tuple(
        "+".join(d for d in config.datasets if d != target) + "->" + target
        for target in config.datasets)
  return config
