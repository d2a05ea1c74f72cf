"""The built-in demo: the paper's protocol on the synthetic datasets, offline.

  python -m launch.prepare --config=configs/demo.py

Prepares the four synthetic presets (OPPORTUNITY-, Skoda-, PAMAP2- and
JSI-FOS-like) and prints what each holds.
"""

from ml_collections import ConfigDict

from configs import paper


def get_config(arg: str | None = None) -> ConfigDict:
  config = paper.get_config(arg)
  with config.unlocked():
    config.datasets = ("syn_skoda", "syn_opportunity", "syn_pamap2", "syn_jsifos")
    config.source = "syn_pamap2"
    config.target = "syn_jsifos"
    config.adapt.size = 400
  return config
