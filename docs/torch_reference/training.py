"""The plain PyTorch training loop the reference scripts share: Adam under Keras'
decay with the L2 penalty, the validation loss scored after every epoch and the best
epoch's weights kept, the first k blocks (and the spectral branch) frozen."""

from __future__ import annotations

import copy

import torch
from sklearn.metrics import f1_score


def tensors(split, rows=slice(None)):
  return (torch.tensor(split.x_NxWx3[rows]), torch.tensor(split.y_N[rows], dtype=torch.long))


def frozen_modules(net, blocks: int) -> list[torch.nn.Module]:
  """The first k blocks of every tower, and its spectral branch where k > 0 (depth 1)."""
  return [m for tower in net.towers
          for m in [*tower.blocks[:blocks], *([tower.spectral] if blocks else [])]]


def fit(net, train, val, epochs: int, frozen_blocks: int, config) -> None:
  """Trains `net` for `epochs` epochs, then loads the epoch with the lowest validation loss."""
  frozen = frozen_modules(net, frozen_blocks)
  for module in frozen:
    module.requires_grad_(False)
  opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad],
                         lr=config.optim.learning_rate, eps=config.optim.eps,
                         betas=(config.optim.b1, config.optim.b2))
  decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 / (1 + config.optim.decay * step))
  (x, y), (xv, yv) = train, val
  batch = config.train.batch_size
  best_loss, best = float("inf"), copy.deepcopy(net.state_dict())
  for _ in range(epochs):
    net.train()
    for module in frozen:
      module.eval()  # frozen batch-norm statistics
    order = torch.randperm(len(x))
    for i in range(0, len(x), batch):
      rows = order[i:i + batch]
      opt.zero_grad(set_to_none=True)
      loss = torch.nn.functional.cross_entropy(net(x[rows]), y[rows]) + (
          config.optim.l2 * net.l2())
      loss.backward()
      opt.step()
      decay.step()
    net.eval()
    with torch.no_grad():
      val_loss = torch.nn.functional.cross_entropy(net(xv), yv).item()
    if val_loss < best_loss:
      best_loss, best = val_loss, copy.deepcopy(net.state_dict())
  net.load_state_dict(best)


def scores(net, test) -> tuple[float, float]:
  x, y = test
  with torch.no_grad():
    predicted = net(x).argmax(1).numpy()
  return (f1_score(y.numpy(), predicted, average="micro"),
          f1_score(y.numpy(), predicted, average="macro"))
