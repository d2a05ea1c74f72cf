"""Training and evaluation speed of a config's model against the machine's matmul
rate (what is measured: xfer_jax/benchmark.py).

  python -m launch.benchmark [--config=configs/paper.py] [--seeds=8[,64...]] [--steps=8]
      [--repeats=3] [--json]
      [--profile_dir=DIR]   # also profile each training row (jax.profiler traces)
      [--cell_size=1600 --cell_epochs=70]   # also time one adaptation cell
      [--objectives]   # also pretraining under each self-supervised objective
"""

import json

from absl import app, flags
from ml_collections import config_flags

import launch
from launch import start_process
from xfer_jax import benchmark

_CONFIG = config_flags.DEFINE_config_file("config", "configs/paper.py", "experiment config")
_SEEDS = flags.DEFINE_list("seeds", ["8"], "seed counts S trained together, each compared "
                           "with one seed (the first S also times evaluation and the cell)")
_STEPS = flags.DEFINE_integer("steps", 8, "batches in the timed epoch")
_REPEATS = flags.DEFINE_integer("repeats", 3, "timed epochs (and evaluations) per row: "
                                "rates are of the fastest, so a noisy machine's slow "
                                "moments do not count against training")
_EVAL_WINDOWS = flags.DEFINE_integer("eval_windows", 2048, "windows in the timed evaluation")
_CELL_SIZE = flags.DEFINE_integer("cell_size", 0, "time one adaptation cell of this many "
                                  "windows (the default grid's 1600); 0 = skip")
_CELL_EPOCHS = flags.DEFINE_integer("cell_epochs", 70, "the cell's max epochs")
_OBJECTIVES = flags.DEFINE_bool("objectives", False, "also time one seed's pretraining under "
                                "each self-supervised objective beside the supervised step")
_JSON = flags.DEFINE_bool("json", False, "print one JSON object")
_PROFILE_DIR = flags.DEFINE_string("profile_dir", None, "also profile one epoch of each "
                                   "training row: traces here, op families in the output")


def main(argv):
  del argv
  reused = start_process()
  seeds = [int(s) for s in _SEEDS.value]
  if not seeds or min(seeds) < 1:
    raise app.UsageError(f"--seeds={','.join(_SEEDS.value)}: expected positive seed counts")
  if _REPEATS.value < 1:
    raise app.UsageError(f"--repeats={_REPEATS.value}: expected at least 1 timed epoch")
  out = benchmark.run(_CONFIG.value, seeds, _STEPS.value, _EVAL_WINDOWS.value, _CELL_SIZE.value,
                      _CELL_EPOCHS.value, _PROFILE_DIR.value, _REPEATS.value, reused,
                      _OBJECTIVES.value)
  print(json.dumps(out, default=list) if _JSON.value else benchmark.format_report(out))


if __name__ == "__main__":
  launch.run(main)
