"""xfer_jax's training against an equivalent PyTorch network, in one process.

  pip install torch --index-url https://download.pytorch.org/whl/cpu   # not a project dependency
  python docs/torch_reference/compare.py [--rounds=5] [--steps=8] [--cell_epochs=20]

1. Equivalence: the PyTorch copy (multiresnet_torch.py) gets the JAX model's
   initial variables; parameter counts and inference logits must agree.
2. The training step, batch 256, one seed: rounds alternate xfer_jax (Runner.epoch,
   the host loop a CPU cell uses), PyTorch eager and torch.compile, each timing
   --steps batches; the best round of each, and the ratios.
3. The cell: 100 training windows, 582 validation windows (HMP's val split), 3
   seeds, --cell_epochs epochs without early stopping, then a test pass:
   xfer_jax's train_and_evaluate with a workdir (metrics, checkpoints: as
   launch.adapt runs it; timed on its second call, the first compiling) against a
   plain PyTorch loop (seeds one after another, train and validation per epoch,
   after an untimed warm-up). Seed-epochs per second.
Random windows: this measures cost, not accuracy. Prints one JSON object.

Run it on an otherwise idle machine, twice: the first run compiles the JAX
programs (a cold start, `compilations_cached_here` > 0), the second loads them
from the persistent cache, as a user's later runs do. A job running beside it,
even at a lower priority, slows PyTorch's OpenMP threads far more than XLA's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from xfer_jax.engine import runtime  # noqa: E402

# as the launchers run xfer_jax (before JAX starts): malloc keeps freed memory, and
# compilations persist, so a second run of this script measures the programs as a
# user's later runs load them (docs/performance.md: "Cold start")
HOST_MEMORY_REUSED = runtime.reuse_freed_host_memory()
CACHE = runtime.enable_compilation_cache()
CACHED_BEFORE = len(list(CACHE.iterdir()))

import jax  # noqa: E402
from multiresnet_torch import MultiResNet, load_jax  # noqa: E402

from configs import paper  # noqa: E402
from xfer_jax import benchmark  # noqa: E402
from xfer_jax.engine import programs  # noqa: E402
from xfer_jax.engine.runner import Batches  # noqa: E402
from xfer_jax.engine.step import seed_keys  # noqa: E402

CLASSES, WINDOW, BATCH = 10, 100, 256


def check_equivalence(runner) -> dict:
  params, stats = runner.step.init_variables(jax.random.key(0))
  variables = jax.tree.map(np.asarray, {"params": params, "batch_stats": stats})
  net = MultiResNet(CLASSES)
  load_jax(net, variables)
  net.eval()
  x = np.random.default_rng(0).normal(size=(16, WINDOW, 3)).astype(np.float32)
  jax_logits = np.asarray(runner.step.model.apply(variables, x, train=False))
  with torch.no_grad():
    torch_logits = net(torch.tensor(x)).numpy()
  count = lambda tree: sum(int(np.size(a)) for a in jax.tree.leaves(tree))
  return {"parameters_jax": count(variables["params"]),
          "parameters_torch": sum(p.numel() for p in net.parameters()),
          "logits_max_abs_diff": float(np.abs(jax_logits - torch_logits).max()),
          "logits_max_abs": float(np.abs(jax_logits).max())}


def torch_step(net, opt, l2):
  def step(x, y):
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(net(x), y) + l2 * net.l2()
    loss.backward()
    opt.step()
    return loss
  return step


def time_steps(run, steps: int) -> float:
  start = time.perf_counter()
  run(steps)
  return time.perf_counter() - start


def step_rates(config, runner, rounds: int, steps: int) -> dict:
  rng = np.random.default_rng(0)
  x = rng.normal(size=(BATCH * steps, WINDOW, 3)).astype(np.float32)
  y = rng.integers(0, CLASSES, BATCH * steps).astype(np.int32)
  keys = seed_keys(0, 1)
  batches = Batches.create(x, y, 1, BATCH, None, None)
  state = runner.init(keys)

  def run_jax(_):
    nonlocal state
    state, loss = runner.epoch(state, batches, keys)
    loss.numpy()

  xt, yt = torch.tensor(x), torch.tensor(y, dtype=torch.long)
  engines = {"xfer_jax": run_jax}
  for name, compiled in (("torch_eager", False), ("torch_compile", True)):
    net = MultiResNet(CLASSES).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    step = torch_step(net, opt, config.optim.l2)
    if compiled:
      step = torch.compile(step)

    def run(n, step=step):
      for i in range(n):
        step(xt[i * BATCH:(i + 1) * BATCH], yt[i * BATCH:(i + 1) * BATCH]).item()
    engines[name] = run
  for run in engines.values():  # compile, warm up
    run(steps)
  best = {name: float("inf") for name in engines}
  for _ in range(rounds):
    for name, run in engines.items():
      best[name] = min(best[name], time_steps(run, steps))
  rates = {name: BATCH * steps / s for name, s in best.items()}
  return {"windows_per_s": rates,
          "xfer_jax_vs_torch_eager": rates["xfer_jax"] / rates["torch_eager"],
          "xfer_jax_vs_torch_compile": rates["xfer_jax"] / rates["torch_compile"]}


def cell(config, epochs: int, seeds: int = 3, n_train: int = 100, n_val: int = 582) -> dict:
  data = benchmark.random_prepared(config, n_train, n_val)
  jax_first_s, jax_s = benchmark.user_cell_s(config, data, seeds, epochs)
  tensors = {s: (torch.tensor(v.x_NxWx3), torch.tensor(v.y_N, dtype=torch.long))
             for s, v in data.splits.items()}
  for seed in range(-1, seeds):  # seed -1 warms up, untimed
    if seed == 0:
      start = time.perf_counter()
    torch.manual_seed(seed)
    net = MultiResNet(CLASSES)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    step = torch_step(net, opt, config.optim.l2)
    for _ in range(epochs if seed >= 0 else 1):
      net.train()
      x, y = tensors["train"]
      order = torch.randperm(n_train)
      step(x[order], y[order]).item()
      net.eval()
      with torch.no_grad():
        xv, yv = tensors["val"]
        torch.nn.functional.cross_entropy(net(xv), yv).item()
    with torch.no_grad():
      net(tensors["test"][0]).argmax(1)
  torch_s = time.perf_counter() - start
  seed_epochs = seeds * epochs
  return {"seed_epochs": seed_epochs, "xfer_jax_first_s": jax_first_s, "xfer_jax_s": jax_s,
          "torch_eager_s": torch_s, "xfer_jax_seed_epochs_per_s": seed_epochs / jax_s,
          "torch_seed_epochs_per_s": seed_epochs / torch_s,
          "xfer_jax_vs_torch": torch_s / jax_s}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--steps", type=int, default=8)
  parser.add_argument("--cell_epochs", type=int, default=20)
  args = parser.parse_args()
  config = paper.get_config()
  runner = programs.build_runner(config, CLASSES)
  out = {"jax": jax.__version__, "torch": torch.__version__,
         "torch_threads": torch.get_num_threads(), "backend": jax.default_backend(),
         "host_memory_reused": HOST_MEMORY_REUSED,
         "equivalence": check_equivalence(runner),
         "step": step_rates(config, runner, args.rounds, args.steps)}
  if args.cell_epochs:
    out["cell"] = cell(config, args.cell_epochs)
  # 0: every JAX program came from the persistent cache (a warm start); more: this
  # process compiled them, and trains slower for it (docs/performance.md: "Cold start")
  out["compilations_cached_here"] = len(list(CACHE.iterdir())) - CACHED_BEFORE
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
