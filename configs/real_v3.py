"""The third study on the real wrist datasets: labels counted honestly, subjects
rotated, self-supervised sources (design and questions: docs/results/real_v3/README.md).

  python -m launch.sweep --config=configs/real_v3.py:ARM,fold=F \
      --config.data.data_dir=DATA --workdir=runs/real_v3/ARM/F
  bash launch/real_v3.sh runs/real_v3 DATA     # every arm and fold in turn, resumable

ARM is one of ARMS below; F one of 0..FOLDS-1. What every grid shares, so that seed
s of any arm's cell adapts on the same windows as seed s of the baseline's:
  targets    HMP, ActRecTut, Berkeley MHAD (WISDM, ~10x their windows, is a source:
             its own self-supervised source would take hours per fold here)
  budget     k labelled windows of every class, k = 1, 2, 3, 5, 8, 12, 18, 25 (config.adapt.budget
             "per_class"; a class with fewer windows in a fold's train split gives all
             it has: short_classes "all"); a fifth of them, never trained on, picks each
             seed's epoch (config.adapt.selection "inner"): no label outside the budget
             is read
  folds      FOLDS subject folds (config.data.folds; ActRecTut's two subjects: folds of
             each class's occurrences): fold f tests one group of subjects
  seeds      SEEDS per fold, so FOLDS x SEEDS replicates per cell
  network    the default Multi-ResNet, batch-norm momentum 0.9, at most 150 epochs with
             patience 10 (the second study's: a baseline on few windows trains with it)
The arms (ARMS): the baseline; supervised WISDM and the pooled other three datasets
(as many windows of each: config.pool.balance "equal"), fine-tuning everything from a
zero head; the same from a random head (head_init is a declared factor); each
target's own unlabelled train split pretrained by multitask and by SimCLR, then
fine-tuned the same way; and, exploratory, the second study's other strategies from
WISDM (freeze k, discriminative, lp_ft, spectral, temporal).
"""

from ml_collections import ConfigDict

from configs import real_v2

TARGETS = real_v2.TARGETS
SINGLE_SOURCE = real_v2.SINGLE_SOURCE
SHOTS = (1, 2, 3, 5, 8, 12, 18, 25)
FOLDS = 4
SEEDS = 6
_WISDM = ("wisdm",)
_BOTH = ("wisdm", "pool")
_OWN_SSL = ("multitask:own", "simclr:own")
# arm -> (its sources, the config.transfer fields it sets, the blocks it transfers)
ARMS = {
    "baseline": ((), {}, ()),
    "finetune_all": (_BOTH, dict(mode="finetune_all", head_init="zeros"), (3,)),
    "finetune_all_random_head": (_WISDM, dict(mode="finetune_all", head_init="random"), (3,)),
    "ssl_finetune_all": (_OWN_SSL, dict(mode="finetune_all", head_init="zeros"), (3,)),
    # exploratory: the second study's other strategies, from WISDM
    "freeze": (_WISDM, dict(mode="freeze_k_copy_rest", head_init="zeros"), (1, 2, 3)),
    "discriminative": (_WISDM, dict(mode="discriminative", lr_scale=0.1, head_init="zeros"), (3,)),
    "lp_ft": (_WISDM, dict(mode="lp_ft", lr_scale=0.1, head_init="zeros"), (3,)),
    "spectral": (_WISDM, dict(mode="freeze_k_init_rest", branch="spectral"), (1,)),
    "temporal": (_WISDM, dict(mode="freeze_k_init_rest", branch="temporal"), (1, 3)),
}
# the second study's caps: a copy at a tenth of the learning rate, and lp_ft's probe,
# improve slowly and stop late (configs/real_v2.py)
MAX_EPOCHS = {"discriminative": 400, "lp_ft": 2000}


def _source(kind: str, target: str) -> str:
  if kind == "wisdm":
    return SINGLE_SOURCE
  if kind == "pool":
    return real_v2.leave_one_out(target)
  return kind.replace("own", target)  # "simclr:own" -> "simclr:hmp"


def get_config(arg: str | None = None) -> ConfigDict:
  arm, *options = (arg or "baseline").split(",")
  fold = [o for o in options if o.startswith("fold=")]
  if arm not in ARMS or len(fold) != 1 or len(options) != 1:
    raise ValueError(f"configs/real_v3.py:{arg}: expected ARM,fold=F with an arm of "
                     f"{sorted(ARMS)} and F in 0..{FOLDS - 1}")
  fold_index = int(fold[0].split("=", 1)[1])
  if not 0 <= fold_index < FOLDS:
    raise ValueError(f"configs/real_v3.py:{arg}: fold {fold_index} outside 0..{FOLDS - 1}")
  sources, transfer, blocks = ARMS[arm]
  config = real_v2.get_config("baseline")
  with config.unlocked():
    config.data.folds, config.data.fold = FOLDS, fold_index
    # a fold whose test (or train) subjects hold no window of a class (ActRecTut's
    # short gestures, HMP's rare activities) scores the classes it holds: declared,
    # and each target's classes per fold are listed in the study's summary
    config.data.allow_lost_classes = True
    config.train.num_seeds = SEEDS
    config.train.max_epochs = MAX_EPOCHS.get(arm, real_v2.MAX_EPOCHS)
    config.adapt.update(budget="per_class", selection="inner", size=SHOTS[-1],
                        short_classes="all")
    config.pool.balance = "equal"
    config.sweep.sizes = SHOTS
    config.sweep.pairs = tuple(f"{_source(kind, target)}->{target}" for target in TARGETS
                               for kind in sources) or tuple(
                                   f"{SINGLE_SOURCE}->{target}" for target in TARGETS)
    config.sweep.blocks = blocks
    config.sweep.baseline = arm == "baseline"
    # the arms of one fold share their source models; each fold trains its own, as the
    # fold also rotates the source datasets' subjects
    config.sweep.sources_dir = f"../../sources/{fold_index}"
    config.transfer.update(transfer)
    # the baseline arm was computed at LLVM's default level before the hot programs
    # moved to level 1, which rounds some records otherwise: every arm compiles as
    # it did (docs/performance.md#compile-time)
    config.runtime.cpu_llvm_level = 3
  return config
