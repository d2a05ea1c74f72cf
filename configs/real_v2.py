"""The second study on the four real wrist datasets: one grid per transfer strategy.

  python -m launch.sweep --config=configs/real_v2.py:STRATEGY \
      --config.data.data_dir=DATA --workdir=runs/real_v2/STRATEGY
  bash launch/real_v2.sh runs/real_v2 DATA      # every strategy in turn, resumable

STRATEGY,full (e.g. configs/real_v2.py:freeze,full) is the whole study for a GPU:
all four targets, every single source and the leave-one-out pool, sizes 20..400
and each target's own train split (config.sweep.size_cap="target").

STRATEGY,val_accuracy selects each seed's best epoch, and stops it early, on
validation accuracy instead of loss (config.train.stop_on): the check of whether a
strategy's losses come from selecting on a loss that rises while accuracy does too
(docs/results/real_v2/README.md says which cells ran it).

STRATEGY,zero_head starts every transferred model's head at zeros
(config.transfer.head_init) instead of a fresh random initialisation: the check of
whether a strategy's failed runs come from a random head meeting copied features.

STRATEGY is one of STRATEGIES below. Every grid shares the targets, sizes, seeds
and adaptation subsets, so seed s of a strategy's cell and seed s of the
`baseline` grid's cell adapt on the same windows: the gains are paired per seed
(xfer_jax/study/ reads the workdirs together). A grid per strategy keeps each
workdir's records under one config key and lets the strategies run, and resume,
one at a time.

The subset that fits a 2-core CPU (docs/results/real_v2/summary.md says why):
  targets   HMP, ActRecTut, Berkeley MHAD (WISDM, ~10x their windows, is a source only)
  sources   WISDM alone, and the other three datasets pooled (leave one out)
  sizes     20, 50, 100, 200 windows
  seeds     5 (0..4)
  epochs    at most 150 with patience 10 (400 for discriminative, 2000 for lp_ft): the
            first study's cap of 70 stopped 195 of its 648 transfer records
Batch-norm momentum is 0.9, the first study's "fair baseline" grid (a baseline on a
few hundred windows trains with it; see docs/results/real/summary.md).
"""

from ml_collections import ConfigDict

from configs import real

TARGETS = ("hmp", "actrectut", "berkeley_mhad")
SINGLE_SOURCE = "wisdm2019"
MAX_EPOCHS = 150  # with patience 10; no cell of the other strategies reached it
# strategy -> the config.transfer fields it sets, the blocks it transfers and, where
# it needs more than MAX_EPOCHS, its epoch cap; every strategy but the baseline
# transfers from both sources
STRATEGIES = {
    "baseline": {},
    "freeze": dict(mode="freeze_k_copy_rest", blocks=(1, 2, 3)),
    "finetune_all": dict(mode="finetune_all", blocks=(3,)),
    # the copies at a tenth of the learning rate, and lp_ft's linear probe, improve
    # slowly but steadily, so early stopping ends them late: at 150 epochs the cap
    # stopped 29 of discriminative's 60 records from WISDM (at 400 none), and lp_ft's
    # probe on every seed of HMP n = 20; at 400, 16 of lp_ft's 60 probes (15 of
    # ActRecTut's 20) were still improving (a small set is one Adam step per epoch);
    # at 2000 they stop after 73-831 epochs
    "discriminative": dict(mode="discriminative", lr_scale=0.1, blocks=(3,), max_epochs=400),
    "lp_ft": dict(mode="lp_ft", lr_scale=0.1, blocks=(3,), max_epochs=2000),
    # one branch copied and frozen, everything else initialised
    "temporal": dict(mode="freeze_k_init_rest", branch="temporal", blocks=(1, 3)),
    "spectral": dict(mode="freeze_k_init_rest", branch="spectral", blocks=(1,)),
}


VARIANTS = ("full", "val_accuracy", "zero_head")


def leave_one_out(target: str) -> str:
  return "+".join(d for d in real.get_config().datasets if d != target)


def get_config(arg: str | None = None) -> ConfigDict:
  strategy, *variant = (arg or "baseline").split(",")
  if strategy not in STRATEGIES or len(set(variant)) < len(variant) or set(variant) - set(VARIANTS):
    raise ValueError(f"configs/real_v2.py:{arg}: expected STRATEGY[,VARIANT...] with a strategy "
                     f"of {sorted(STRATEGIES)} and variants of {VARIANTS}")
  fields = dict(STRATEGIES[strategy])
  config = real.get_config()
  with config.unlocked():
    config.model.bn_momentum = 0.9
    # this study's records, and those of the studies built on it (real_ssl, real_v3),
    # were computed with an unpadded head; it stays so that they reproduce bit for bit
    config.runtime.pad_classes = 0
    config.train.num_seeds = 5
    config.train.max_epochs = fields.pop("max_epochs", MAX_EPOCHS)
    config.sweep.sizes = (20, 50, 100, 200)
    config.adapt.size = 200
    config.sweep.pairs = tuple(f"{source}->{target}" for target in TARGETS
                               for source in (SINGLE_SOURCE, leave_one_out(target)))
    if "val_accuracy" in variant:
      config.train.stop_on = "val_accuracy"
    if "zero_head" in variant:
      config.transfer.head_init = "zeros"
    if "full" in variant:  # the whole study, for a GPU: every target, every source, up to each
      # target's own train split
      config.sweep.pairs = tuple(f"{source}->{target}" for target in config.datasets
                                 for source in (*[d for d in config.datasets if d != target],
                                                leave_one_out(target)))
      config.sweep.sizes = (20, 50, 100, 200, 400, 0)
      config.sweep.size_cap = "target"
    config.sweep.blocks = tuple(fields.pop("blocks", ()))
    config.sweep.baseline = strategy == "baseline"
    config.sweep.sources_dir = "../sources"  # one set of source models for every strategy
    # how it runs, not its numbers: most committed cells were evaluated in 128-row
    # chunks; the default (1 024 rows, only the last chunk padded to 64 rows:
    # docs/performance.md#evaluation-chunks) evaluates each target's validation split in
    # one call. Two of those cells rerun with it (HMP baseline n = 20, ActRecTut freeze
    # k = 1 n = 50) gave the same epochs and F1 on every seed, bit for bit
    config.transfer.update(fields)
  return config
