"""The paper's protocol on its four datasets (PAMAP2, OPPORTUNITY, Skoda, JSI-FOS).

  python -m launch.prepare --config=configs/paper.py --config.data.data_dir=DATA
  python -m launch.pretrain --config=configs/paper.py --workdir=runs/paper_src
  python -m launch.sweep --config=configs/paper.py --config.data.data_dir=DATA --workdir=runs/paper

Reads the original files below data_dir (see xfer_jax/data/registry.py); JSI-FOS
must be brought as jsi_fos.npz in the interchange format.
"""

from ml_collections import ConfigDict

from xfer_jax import defaults


def get_config(arg: str | None = None) -> ConfigDict:
  del arg
  config = defaults.base_config()
  config.datasets = ("skoda", "opportunity", "pamap2", "jsi_fos")
  config.source = "pamap2"  # pretrain's dataset
  config.target = "jsi_fos"  # adapt's dataset
  config.lock()
  return config
