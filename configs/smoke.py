"""A tiny variant of the demo for tests: small synthetic datasets, a small
network, few epochs.

  python -m launch.prepare --config=configs/smoke.py
  python -m launch.sweep --config=configs/smoke.py --workdir=runs/smoke
"""

from ml_collections import ConfigDict

from configs import demo


def get_config(arg: str | None = None) -> ConfigDict:
  config = demo.get_config(arg)
  with config.unlocked():
    config.datasets = ("syn_smoke_a", "syn_smoke_b")
    config.source = "syn_smoke_a"
    config.target = "syn_smoke_b"
    # a small network keeps compilation and steps quick on a 2-core machine
    config.model.filters = (8, 16)
    config.model.dense_units = (32, 16)
    config.model.spectral_filters = 8
    config.model.dropout = 0.2
    config.train.max_epochs = 12
    config.train.patience = 0
    config.train.num_seeds = 2
    config.train.batch_size = 64
    config.runtime.checkpoint_every = 6  # by epochs, so the tests know where
    config.runtime.checkpoint_every_s = 0.0
    config.adapt.size = 60
    config.sweep.pairs = ("syn_smoke_a->syn_smoke_b",)
    config.sweep.sizes = (20, 60)
    config.sweep.blocks = (1, 2)
  return config
