"""The cells a finished sweep ran, run again by a plain PyTorch loop: the reference
for a grid's seed-epochs per second.

  python -m launch.sweep --config=configs/demo.py --workdir=W
  python docs/torch_reference/grid_torch.py --config=configs/demo.py --workdir=W

W is the workdir the sweep finished with that config. Both libraries do the same
work: each source is pretrained for as many epochs as its `metrics.jsonl` says each
seed ran, and each record's seed trains for the epochs its record says, on the same
stratified adaptation rows (`xfer_jax.data.adaptation_rows`) of the same prepared
windows, in batches of `train.batch_size`, with Adam under Keras' decay and the L2
penalty, the validation loss scored after every epoch and the best epoch's weights
kept, then the test split predicted. Transfer copies everything but the head and
freezes the first k blocks of every tower and the spectral branch (weights and
batch-norm statistics), as
`freeze_k_copy_rest` does; only that mode and the baseline are run. Seeds run one
after another, as a PyTorch user would write it. Measures cost, not the protocol's
numbers: nothing is written to disk, and early stopping is replayed, not decided.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

START = time.perf_counter()

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from multiresnet_torch import from_config  # noqa: E402
from training import fit, scores, tensors  # noqa: E402

from xfer_jax.data import adaptation_rows, prepare  # noqa: E402  (numpy only)

MODES = ("baseline", "freeze_k_copy_rest")
CELL_STREAM = 1_000  # cells' seeds are drawn apart from the sources' (0, 1, ...)


def load_config(path: str, data_dir: str | None):
  spec = importlib.util.spec_from_file_location("grid_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  if data_dir:
    config.data.data_dir = data_dir
  return config


def read_cells(workdir: Path) -> dict[tuple, list[dict]]:
  """The sweep's records grouped by cell, each cell's seeds in order."""
  path = workdir / "results.jsonl"
  if not path.exists():
    raise SystemExit(f"{path}: no records; run launch.sweep with this workdir first")
  cells = defaultdict(list)
  for line in path.read_text().splitlines():
    r = json.loads(line)
    if r["mode"] not in MODES:
      raise SystemExit(f"{path}: mode {r['mode']!r} is not run here (only {MODES})")
    cells[(r["target"], r["source"], r["size"], r["blocks"], r["mode"])].append(r)
  return {key: sorted(rs, key=lambda r: r["seed"]) for key, rs in cells.items()}


def source_epochs(workdir: Path, source: str) -> dict[int, int]:
  """Epochs each seed of a source's pretraining ran, from its metrics.jsonl."""
  epochs: dict[int, int] = defaultdict(int)
  for line in (workdir / "sources" / source / "metrics.jsonl").read_text().splitlines():
    row = json.loads(line)
    if row.get("phase") == "pretrain":
      epochs[row["seed"]] = max(epochs[row["seed"]], row["epoch"] + 1)
  return dict(epochs)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", required=True, help="the config file the sweep ran")
  parser.add_argument("--workdir", required=True, help="the sweep's finished workdir")
  parser.add_argument("--data_dir", default=None, help="overrides config.data.data_dir")
  args = parser.parse_args()
  config = load_config(args.config, args.data_dir)
  workdir = Path(args.workdir)
  cells = read_cells(workdir)
  data = {}
  get = lambda name: data.setdefault(name, prepare(name, config.data))
  new_net = lambda prepared: from_config(config.model, prepared.num_classes,
                                         prepared.splits["train"].x_NxWx3.shape[1],
                                         config.data.rate_hz)

  seed_epochs, cells_wall = 0, 0.0
  sources = {}  # name -> per-seed state dicts
  for name in sorted({key[1] for key in cells if key[1]}):
    began, prepared = time.perf_counter(), get(name)
    epochs = source_epochs(workdir, name)
    sources[name] = {}
    for seed, n in sorted(epochs.items()):
      torch.manual_seed(seed)
      net = new_net(prepared)
      fit(net, tensors(prepared.splits["train"]), tensors(prepared.splits["val"]), n, 0, config)
      sources[name][seed] = net.state_dict()
      seed_epochs += n
    print(f"source {name}: {sum(epochs.values())} seed-epochs in "
          f"{time.perf_counter() - began:.1f} s")

  for (target, source, size, blocks, _), records in cells.items():
    began, prepared = time.perf_counter(), get(target)
    train = prepared.splits["train"]
    rows_Sxn = adaptation_rows(train.y_N, size, config.adapt.subset_seed, len(records),
                               config.adapt.budget, prepared.class_names, target)
    val, test = tensors(prepared.splits["val"]), tensors(prepared.splits["test"])
    micro = []
    for record, rows in zip(records, rows_Sxn):
      # not the source's stream: a head drawn as the source's first was drawn starts
      # where the source's barely-trained head did, a classifier for similar classes
      torch.manual_seed(CELL_STREAM + record["seed"])
      net = new_net(prepared)
      if source:
        weights = sources[source][record["seed"]]
        net.load_state_dict({k: v for k, v in weights.items() if not k.startswith("head.")},
                            strict=False)
      fit(net, tensors(train, rows), val, record["epochs"], blocks, config)
      micro.append(scores(net, test)[0])
      seed_epochs += record["epochs"]
    wall = time.perf_counter() - began
    cells_wall += wall
    print(f"{target} <- {source or 'baseline'}, n={size}, k={blocks}: micro-F1 "
          f"{np.mean(micro):.3f} over {len(records)} seeds in {wall:.1f} s")

  cell_epochs = sum(r["epochs"] for rs in cells.values() for r in rs)
  total = time.perf_counter() - START
  print(f"cells: {cell_epochs} seed-epochs in {cells_wall:.1f} s, "
        f"{cell_epochs / cells_wall:.2f} seed-epochs/s")
  print(f"whole process: {seed_epochs} seed-epochs in {total:.1f} s, "
        f"{seed_epochs / total:.2f} seed-epochs/s (torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads)")


if __name__ == "__main__":
  main()
