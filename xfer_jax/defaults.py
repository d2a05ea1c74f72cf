"""Every config field with its default: the paper's protocol (configs/paper.py
builds on it).

A field's default is the value that reproduces what was computed before the field
existed, so a config saved before it (a workdir's config.json, a grid's
sweep.json) reads as the same config now (config_fields.science_fields).
"""

from ml_collections import ConfigDict
from ml_collections.config_dict import placeholder


def data_config() -> ConfigDict:
  """The paper's preprocessing: 25 Hz, 4 s windows with a 2 s step, 40/10/50 split."""
  return ConfigDict(dict(
      rate_hz=25.0,
      window_s=4.0,
      step_s=2.0,
      # a window's class: "majority" (dropped samples count as a class), "center", or
      # "labelled_majority" (gesture datasets: xfer_jax/data/preprocess.py)
      label_rule="majority",
      min_labelled=0.5,  # labelled_majority: the labelled share a window needs
      max_interp_gap_s=0.5,  # NaN runs up to this long are interpolated, longer ones cut
      split_rule="auto",  # subject split with >= 3 subjects, else by activity occurrence
      split_fractions=(0.4, 0.1, 0.5),
      split_seed=0,
      # subject-wise folds (xfer_jax/data/splits.py): folds >= 3 groups of subjects (or of
      # each class's occurrences); fold f tests group f, validates on f + 1, trains on the
      # rest; 0 = the fixed split_fractions split
      folds=0,
      fold=0,
      cache_dir="",  # "" = $XFER_JAX_CACHE or ~/.cache/xfer_jax
      data_dir="",  # "" = $XFER_JAX_DATA_DIR; where the real datasets' files are
      # your own datasets, by name: {name: {reader, path, options, preprocess}}
      # (xfer_jax/data/registry.py; configs/own.py declares one interchange file)
      datasets={},
      check_units=True,  # a recording whose median |a| is far from 1 g is an error
      # a sample beyond this many g on any axis is an error naming its file, recording
      # and time (a glitch or a unit error); 0: no check
      max_abs_g=1000.0,
      # a class whose every window the window length (or label rule) loses from the
      # train or test split is an error, unless this is set
      allow_lost_classes=False,
  ))


def model_config() -> ConfigDict:
  """The Multi-ResNet (see xfer_jax/models/multiresnet.py for why these defaults)."""
  return ConfigDict(dict(
      filters=(16, 32, 64),  # one width per residual block: the number of blocks
      layers_per_block=2,
      kernel_size=5,
      pool_size=2,
      spectral_window=32,  # samples (1.28 s at 25 Hz)
      spectral_hop=8,
      spectral_filters=16,
      spectral_kernel_size=3,
      dense_units=(128, 64),
      dropout=0.5,
      use_magnitude=False,  # add |acc| as a fourth, orientation-free channel
      # batch norm's running-average momentum (Keras' 0.99). Lower it (e.g. 0.9) where
      # a model gets few updates: a baseline on a few hundred windows otherwise
      # evaluates with statistics that barely left their initial 0 and 1
      bn_momentum=0.99,
      dtype="float32",  # "float64" (with JAX_ENABLE_X64=1) for the equivalence tests
  ))


def optim_config() -> ConfigDict:
  """Adam, lr 1e-3 with Keras-style decay 1e-3: lr / (1 + decay * step)."""
  return ConfigDict(dict(
      learning_rate=1e-3,
      decay=1e-3,
      b1=0.9,
      b2=0.999,
      eps=1e-7,  # Keras' Adam epsilon
      l2=1e-4,  # L2 on the dense kernels, added to the loss (Keras kernel_regularizer)
      weight_decay=0.0,  # decoupled weight decay on every kernel, off as in the paper
  ))


def train_config() -> ConfigDict:
  return ConfigDict(dict(
      batch_size=256,
      max_epochs=70,
      patience=10,  # epochs without a better validation score; 0 = train all epochs
      # the validation score that picks each seed's best epoch: "val_loss" (lowest) or
      # "val_accuracy" (highest, the lower loss deciding ties): xfer_jax/engine/loop.py
      stop_on="val_loss",
      num_seeds=3,  # seeds trained together (vmapped)
      seed=0,  # seed s of a run is seed + s
  ))


def runtime_config() -> ConfigDict:
  """How a run executes, never its numbers: left out of a grid's key as a whole, so
  a sweep or a checkpoint can resume under other settings (xfer_jax/engine/runner.py)."""
  return ConfigDict(dict(
      epoch_loop="auto",  # "device": one compiled call per epoch; "host": a call per batch;
                          # auto: host on CPU, device elsewhere
      seed_chunk=0,  # seeds per vmapped call; 0 = auto: 1 on one CPU device, else all
      num_devices=0,  # devices the seeds (and batches) are spread over; 0 = all
      # devices each seed's batch is split over (data parallelism inside a seed; the
      # seeds share the rest). 1: off, as a cell's small batches are latency-bound;
      # worth it for large source models on several GPUs (docs/scaling.md)
      batch_devices=1,
      # rows per evaluation call; a split's last chunk is padded only to a multiple of
      # 64 (runner.EvalSet). 1 024 evaluates a 582-window split as one call of 640
      # rows, 15 % faster than 512 + 128; a large split runs as fast at 512 or 1 024
      # (docs/performance.md#evaluation-chunks)
      eval_batch_size=1024,
      # checkpoints: the last epoch always saves; before it, a save whenever a kill would
      # lose this many seconds of training (0: no time bound) ...
      checkpoint_every_s=60.0,
      checkpoint_every=0,  # ... or this many epochs (0: no epoch bound)
      # training curves for TensorBoard beside metrics.jsonl: WORKDIR/tensorboard/
      # (xfer_jax/engine/tensorboard.py)
      tensorboard=True,
      # how the convolutions run: "xla" (lax.conv) or "unfold" (one matrix product each,
      # the same parameters), faster only for seeds vmapped on CPU
      # (docs/performance.md#convolutions-as-matrix-products)
      conv="xla",
      # the head's outputs rounded up to a multiple of this (0: exactly the classes). The
      # padded outputs are masked by their bias and never learn, so targets with other
      # class counts share their compiled programs; the numbers are an unpadded head's
      # up to rounding (docs/performance.md#a-grid-compiles-once-per-frozen-partition).
      # A checkpoint keeps its width: a rerun must give the same
      pad_classes=0,
      # LLVM's optimisation level for the hot programs (batch step, evaluation) on CPU:
      # 1 compiles in less time than XLA's default 3 and runs as fast; the level changes
      # how a program rounds, so a study computed at 3 keeps 3
      # (docs/performance.md#compile-time)
      cpu_llvm_level=1,
  ))


def pretext_config() -> ConfigDict:
  """Self-supervised sources ("multitask:DATASETS", "simclr:DATASETS":
  xfer_jax/pretext/); a supervised run reads none of it."""
  return ConfigDict(dict(
      # multitask (ssl-wearables): each task's transform is applied to a window with
      # transform_prob, and one binary head per task says whether it was
      tasks=("arrow_of_time", "permutation", "time_warp"),
      transform_prob=0.5,
      segments=4,  # permutation: the window cut into this many pieces ...
      min_segment_s=0.4,  # ... each at least this long
      warp_sigma=0.2,  # time warp: speeds ~ N(1, warp_sigma) at warp_knots + 2 knots
      warp_knots=4,
      # simclr: two views per window, each augmentation applied with its probability
      augment_prob=dict(rotate=0.8, scale=0.8, jitter=0.8, time_warp=0.5, mask=0.5),
      scale_sigma=0.1,  # per-axis factor ~ N(1, scale_sigma)
      jitter_sigma=0.05,  # g of Gaussian noise
      mask_fraction=0.2,  # share of the window zeroed on every axis at once
      temperature=0.1,  # NT-Xent
      projection_dim=64,  # units of the projection head (the model's head)
      # share of the train windows (whole recordings) held out to validate and test
      # the pretext: the source model is selected on its pretext loss there
      holdout=0.2,
  ))


def pool_config() -> ConfigDict:
  """How several source datasets are pooled (xfer_jax/data/pool.py)."""
  return ConfigDict(dict(
      balance="none",  # "none": every window; "equal": as many of each dataset as the smallest has
  ))


def transfer_config() -> ConfigDict:
  return ConfigDict(dict(
      mode="freeze_k_copy_rest",  # or freeze_k_init_rest, finetune_all, discriminative
      blocks=1,  # residual blocks transferred (and frozen), counted from the input
      branch="both",  # or "temporal" / "spectral": transfer one branch only
      bn_policy="frozen",  # frozen blocks' batch norm: "frozen" stats or "adapt" (AdaBN)
      rules=(),  # custom ((regex, action), ...) rules; when set they replace the preset
      # discriminative only: the copied leaves train at lr x lr_scale (e.g. 0.1)
      lr_scale=placeholder(float),
      # the head a transferred model starts from: "random" (a fresh initialisation, as
      # the paper's new output layer) or "zeros" (uniform predictions at the first step,
      # so copied features are not met by confidently wrong logits)
      head_init="random",
  ))


def adapt_config() -> ConfigDict:
  """Adaptation subsets of the target's train split (xfer_jax/experiment.py's adapt):
    budget     "windows": size labelled windows in all; "per_class": size of each class
    selection  what picks each seed's epoch: "oracle", the target's whole val split
               (labels outside the budget; the paper does not say); "inner",
               inner_fraction of the budget's own windows (they do not train);
               "fixed", none: train.max_epochs epochs, the last one kept
    short_classes  per_class: a class with fewer windows than size is an "error", or
               gives "all" it has (the records count every label read)"""
  return ConfigDict(dict(size=2087, subset_seed=0, budget="windows", selection="oracle",
                         inner_fraction=0.2,
                         # per_class: a class with fewer windows than the budget is an
                         # "error", or gives "all" it has
                         short_classes="error"))


def sweep_config() -> ConfigDict:
  """The study's grid (xfer_jax/grid/sweep.py): all ordered pairs, sizes from 20 up to
  the smallest train split (0), baseline and 1..3 transferred blocks."""
  return ConfigDict(dict(pairs=(), sizes=(20, 50, 100, 200, 400, 800, 1600, 0),
                         blocks=(1, 2, 3), baseline=True,
                         # size 0 and the cap: the grid's smallest train split
                         # ("grid", the paper's) or each target's ("target")
                         size_cap="grid",
                         sources_dir=""))  # "" = WORKDIR/sources


def base_config() -> ConfigDict:
  """Every section at its default, unlocked; datasets, source and target empty."""
  return ConfigDict(dict(
      datasets=(), source="", target="", data=data_config(), model=model_config(),
      optim=optim_config(), train=train_config(), runtime=runtime_config(),
      transfer=transfer_config(), pretext=pretext_config(), pool=pool_config(),
      adapt=adapt_config(), sweep=sweep_config()))
