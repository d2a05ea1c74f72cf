"""A plain PyTorch script doing what one `launch.adapt` baseline cell does, from a
fresh process: the reference for a fresh process's time to its first result.

  python docs/torch_reference/adapt_torch.py --target=hmp --data_dir=DATA \
      [--size=100 --seeds=3 --epochs=20]

against

  python -m launch.adapt --config=configs/real.py --config.target=hmp \
      --config.data.data_dir=DATA --workdir=W --config.adapt.size=100 \
      --config.train.num_seeds=3 --config.train.max_epochs=20 --config.train.patience=0

The same windows (the prepared-data cache both read), the same network
(multiresnet_torch.py, the default Multi-ResNet), the same schedule: each seed trains
on `size` windows of the train split drawn at random in batches of 256 for `epochs`
epochs (training.py: Adam under Keras' decay, the L2 penalty), scores the validation
split after every epoch and keeps the best epoch's weights, then predicts the test
split; prints the test micro-F1 per seed. Seeds run one after another, as a PyTorch
user would write it. Measures cost, not the protocol: the subset is not stratified,
and nothing is written to disk.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

START = time.perf_counter()

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from multiresnet_torch import MultiResNet  # noqa: E402
from training import fit, scores, tensors  # noqa: E402

from configs import real  # noqa: E402
from xfer_jax.data import prepare  # noqa: E402  (numpy only: reads the prepared-data cache)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--target", default="hmp")
  parser.add_argument("--data_dir", required=True)
  parser.add_argument("--size", type=int, default=100)
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--epochs", type=int, default=20)
  args = parser.parse_args()
  config = real.get_config()
  config.data.data_dir = args.data_dir
  data = prepare(args.target, config.data)
  subset = np.random.default_rng(0).permutation(len(data.splits["train"]))[:args.size]
  train = tensors(data.splits["train"], subset)
  val, test = tensors(data.splits["val"]), tensors(data.splits["test"])
  for seed in range(args.seeds):
    torch.manual_seed(seed)
    net = MultiResNet(data.num_classes, window=train[0].shape[1])
    fit(net, train, val, args.epochs, 0, config)
    print(f"seed {seed}: test micro-F1 {scores(net, test)[0]:.3f}")
  print(f"finished in {time.perf_counter() - START:.1f} s of the process (torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
  main()
