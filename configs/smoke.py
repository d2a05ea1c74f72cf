"""A tiny variant of the demo for tests: small synthetic datasets, few epochs.

  python -m launch.prepare --config=configs/smoke.py
"""

from ml_collections import ConfigDict

from configs import demo


def get_config(arg: str | None = None) -> ConfigDict:
  config = demo.get_config(arg)
  with config.unlocked():
    config.datasets = ("syn_smoke_a", "syn_smoke_b")
    config.source = "syn_smoke_a"
    config.target = "syn_smoke_b"
    config.train.max_epochs = 6
    config.train.patience = 0
    config.train.num_seeds = 2
    config.train.batch_size = 64
    config.train.checkpoint_every = 2
    config.adapt.size = 60
  return config
