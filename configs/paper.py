"""The paper's protocol on its four datasets (PAMAP2, OPPORTUNITY, Skoda, JSI-FOS).

  python -m launch.prepare --config=configs/paper.py --config.data.data_dir=DATA
  python -m launch.pretrain --config=configs/paper.py --workdir=runs/paper_src
  python -m launch.sweep --config=configs/paper.py --config.data.data_dir=DATA --workdir=runs/paper

Reads the original files below data_dir (see xfer_jax/data/registry.py); JSI-FOS
must be brought as jsi_fos.npz in the interchange format.
"""

from ml_collections import ConfigDict

from configs import common


def get_config(arg: str | None = None) -> ConfigDict:
  del arg
  config = ConfigDict()
  config.datasets = ("skoda", "opportunity", "pamap2", "jsi_fos")
  config.source = "pamap2"  # pretrain's dataset
  config.target = "jsi_fos"  # adapt's dataset
  config.data = common.data_config()
  config.model = common.model_config()
  config.optim = common.optim_config()
  config.train = common.train_config()
  config.runtime = common.runtime_config()
  config.transfer = common.transfer_config()
  config.pretext = common.pretext_config()
  config.pool = common.pool_config()
  # adaptation subsets of the target's train split (xfer_jax/experiment.py's adapt):
  #   budget     "windows": size labelled windows in all; "per_class": size of each class
  #   selection  what picks each seed's epoch: "oracle", the target's whole val split
  #              (labels outside the budget; the paper does not say); "inner",
  #              inner_fraction of the budget's own windows (they do not train);
  #              "fixed", none: train.max_epochs epochs, the last one kept
  config.adapt = ConfigDict(dict(size=2087, subset_seed=0, budget="windows", selection="oracle",
                                 inner_fraction=0.2))
  # the study's grid (xfer_jax/sweep.py): all 12 ordered pairs, sizes from 20 up to
  # the smallest train split (0), baseline and 1..3 transferred blocks
  config.sweep = ConfigDict(dict(pairs=(), sizes=(20, 50, 100, 200, 400, 800, 1600, 0),
                                 blocks=(1, 2, 3), baseline=True,
                                 # size 0 and the cap: the grid's smallest train split
                                 # ("grid", the paper's) or each target's ("target")
                                 size_cap="grid",
                                 sources_dir=""))  # "" = WORKDIR/sources
  config.lock()
  return config
