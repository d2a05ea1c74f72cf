"""Self-supervised sources on the real wrist datasets, against the second study's
supervised source and baseline (issue "Self-supervised sources").

  python -m launch.sweep --config=configs/real_ssl.py --config.data.data_dir=DATA \
      --workdir=runs/real_ssl/ssl_finetune_all
  python -m launch.sweep --config=configs/real_ssl.py:wisdm ...   # also from WISDM's windows

Each target's own train split pretrains a source without its labels
("multitask:hmp->hmp", "simclr:hmp->hmp": xfer_jax/pretext/sources.py), the
realistic case of many unlabelled windows and a few labelled ones; that source is
then fine-tuned on n = 20..200 of the target's labelled windows exactly as the
second study fine-tuned WISDM's supervised source (configs/real_v2.py:finetune_all:
everything copied but the head, nothing frozen, a random head, 5 seeds, the same
adaptation subsets, the target's validation split selecting each seed's epoch).
Every other field is that grid's, so its records and the baseline's
(docs/results/real_v2/{finetune_all,baseline}) pair with these seed by seed:
launch.study reads the three workdirs side by side.

The variant "wisdm" adds multitask and simclr sources pretrained on WISDM's
unlabelled train windows (28 432: hours of pretraining on 2 cores).
"""

from ml_collections import ConfigDict

from configs import real_v2

OBJECTIVES = ("multitask", "simclr")
VARIANTS = ("wisdm",)


def get_config(arg: str | None = None) -> ConfigDict:
  variant = [v for v in (arg or "").split(",") if v]
  if set(variant) - set(VARIANTS):
    raise ValueError(f"configs/real_ssl.py:{arg}: expected variants of {VARIANTS}")
  config = real_v2.get_config("finetune_all")
  with config.unlocked():
    config.source = f"multitask:{real_v2.TARGETS[0]}"
    pairs = [f"{objective}:{target}->{target}" for target in real_v2.TARGETS
             for objective in OBJECTIVES]
    if "wisdm" in variant:
      pairs += [f"{objective}:{real_v2.SINGLE_SOURCE}->{target}" for target in real_v2.TARGETS
                for objective in OBJECTIVES]
    config.sweep.pairs = tuple(pairs)
    config.sweep.sources_dir = "../ssl_sources"
  return config
