"""Training throughput of the default model: windows/s for 1 and S vmapped seeds.

  python -m launch.benchmark [--config=configs/paper.py] [--seeds=8] [--steps=5] [--json]

Times, in one process: the first training step (compilation included), then
`steps` more batches of config.train.batch_size random windows per seed count,
through the engine's own batch step. Prints a table (or one JSON object).
"""

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from xfer_jax import console, experiment
from xfer_jax.train import Batches, seed_keys

_CONFIG = config_flags.DEFINE_config_file("config", "configs/paper.py", "experiment config")
_SEEDS = flags.DEFINE_integer("seeds", 8, "vmapped seeds to compare with one seed")
_STEPS = flags.DEFINE_integer("steps", 5, "timed batches after the first")
_JSON = flags.DEFINE_bool("json", False, "print one JSON object")
NUM_CLASSES = 10


def measure(config, num_seeds: int, steps: int) -> dict:
  config = config.copy_and_resolve_references()
  config.train.num_seeds = num_seeds
  engine = experiment.build_engine(config, NUM_CLASSES)
  batch = config.train.batch_size
  rng = np.random.default_rng(0)
  n = batch * (steps + 1)
  window = int(round(config.data.window_s * config.data.rate_hz))
  data = Batches.create(rng.normal(size=(n, window, 3)).astype(np.float32),
                        rng.integers(0, NUM_CLASSES, n), num_seeds, batch)
  keys = seed_keys(0, num_seeds)
  start = time.perf_counter()
  state = engine.init(keys)
  jax.block_until_ready(state)
  init_s = time.perf_counter() - start
  rows = engine._order(data.index_SxC, data.n_valid, keys)
  loss = jnp.zeros(num_seeds)
  start = time.perf_counter()
  state, loss = engine._host_step(state, data.x_NxWx3, data.y_N, rows[:, 0], 0, data.n_valid,
                                  keys, loss)
  jax.block_until_ready(loss)
  first_step_s = time.perf_counter() - start
  start = time.perf_counter()
  for i in range(1, steps + 1):
    state, loss = engine._host_step(state, data.x_NxWx3, data.y_N, rows[:, i], i, data.n_valid,
                                    keys, loss)
  jax.block_until_ready(loss)
  elapsed = time.perf_counter() - start
  windows_per_s = num_seeds * batch * steps / elapsed
  return {"seeds": num_seeds, "init_s": init_s, "first_step_s": first_step_s,
          "step_s": elapsed / steps, "windows_per_s": windows_per_s,
          "windows_per_s_per_seed": windows_per_s / num_seeds}


def main(argv):
  del argv
  config = _CONFIG.value
  rows = [measure(config, s, _STEPS.value) for s in sorted({1, _SEEDS.value})]
  result = {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
            "batch_size": config.train.batch_size, "model": config.model.to_dict(),
            "results": rows}
  if _JSON.value:
    print(json.dumps(result, default=list))
  else:
    print(f"{result['backend']}: {result['devices']}, batch {result['batch_size']}")
    print(console.format_table(rows, floatfmt=".3g"))


if __name__ == "__main__":
  app.run(main)
