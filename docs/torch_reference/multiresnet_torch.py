"""The default Multi-ResNet in PyTorch, for speed comparisons only (not a dependency).

Layer for layer the network of xfer_jax/models/multiresnet.py: three towers (x, y,
z), each 3 residual blocks of 2 width-5 convolutions (16/32/64 filters, batch norm
with Keras' momentum 0.99 and epsilon 1e-3, a 1x1 shortcut where the width changes,
max-pool 2) and a spectral branch (log-power spectrogram, 32-sample frames every 8,
a width-3 convolution over frames, batch norm, ReLU); the towers concatenated into
dense 128 and 64 (ReLU, dropout 0.5) and the head. `load_jax` copies a JAX model's
variables in, so that the logits can be checked against it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _bn(channels: int) -> nn.BatchNorm1d:
  return nn.BatchNorm1d(channels, eps=1e-3, momentum=0.01)  # Keras' 0.99, in torch's sense


class ResidualBlock(nn.Module):
  def __init__(self, cin: int, filters: int, layers: int = 2, kernel: int = 5):
    super().__init__()
    self.convs = nn.ModuleList(
        [nn.Conv1d(cin if i == 0 else filters, filters, kernel, padding="same", bias=False)
         for i in range(layers)])
    self.bns = nn.ModuleList([_bn(filters) for _ in range(layers)])
    self.shortcut = (nn.Sequential(nn.Conv1d(cin, filters, 1, bias=False), _bn(filters))
                     if cin != filters else None)

  def forward(self, x_BxCxL):
    x = x_BxCxL
    for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
      x = bn(conv(x))
      if i < len(self.convs) - 1:
        x = torch.relu(x)
    shortcut = x_BxCxL if self.shortcut is None else self.shortcut(x_BxCxL)
    return nn.functional.max_pool1d(torch.relu(x + shortcut), 2)


class Spectral(nn.Module):
  def __init__(self, window=32, hop=8, filters=16, kernel=3, rate_hz=25.0):
    super().__init__()
    self.window, self.hop = window, hop
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)
    k = np.arange(window // 2 + 1)
    angle = 2 * np.pi * np.outer(np.arange(window), k) / window
    one_sided = np.full(len(k), 2.0)
    one_sided[0] = one_sided[-1] = 1.0
    self.register_buffer("cos", torch.tensor(hann[:, None] * np.cos(angle), dtype=torch.float32))
    self.register_buffer("sin", torch.tensor(hann[:, None] * np.sin(angle), dtype=torch.float32))
    self.register_buffer("scale", torch.tensor(one_sided / (rate_hz * np.sum(hann ** 2)),
                                               dtype=torch.float32))
    self.conv = nn.Conv1d(len(k), filters, kernel, padding="same", bias=False)
    self.bn = _bn(filters)

  def forward(self, x_BxL):
    frames = x_BxL.unfold(1, self.window, self.hop)  # (B, F, W)
    frames = frames - frames.mean(dim=-1, keepdim=True)
    power = ((frames @ self.cos) ** 2 + (frames @ self.sin) ** 2) * self.scale
    spec_BxKxF = torch.log(power + 1e-6).transpose(1, 2)
    x = torch.relu(self.bn(self.conv(spec_BxKxF)))
    return x.transpose(1, 2).flatten(1)  # (B, F * filters), the JAX model's order


class Tower(nn.Module):
  def __init__(self, filters=(16, 32, 64), layers=2, kernel=5, spectral=None):
    super().__init__()
    widths = (1, *filters)
    self.blocks = nn.ModuleList([ResidualBlock(widths[i], widths[i + 1], layers, kernel)
                                 for i in range(len(filters))])
    self.spectral = Spectral(**(spectral or {}))

  def forward(self, x_BxL):
    x = x_BxL[:, None, :]
    for block in self.blocks:
      x = block(x)
    return torch.cat([x.transpose(1, 2).flatten(1), self.spectral(x_BxL)], dim=1)


class MultiResNet(nn.Module):
  def __init__(self, num_classes: int, window: int = 100, dense=(128, 64), dropout=0.5,
               **tower):
    super().__init__()
    self.towers = nn.ModuleList([Tower(**tower) for _ in range(3)])
    with torch.no_grad():
      features = sum(t(torch.zeros(2, window)).shape[1] for t in self.towers)
    self.dense = nn.ModuleList([nn.Linear(features, dense[0]), nn.Linear(dense[0], dense[1])])
    self.dropout = nn.Dropout(dropout)
    self.head = nn.Linear(dense[1], num_classes)

  def forward(self, x_BxLx3):
    x = torch.cat([tower(x_BxLx3[..., c]) for c, tower in enumerate(self.towers)], dim=1)
    for layer in self.dense:
      x = self.dropout(torch.relu(layer(x)))
    return self.head(x)

  def l2(self):
    """The L2 penalty's sum of squares: the dense kernels (not the head), as in JAX."""
    return sum((layer.weight ** 2).sum() for layer in self.dense)


def load_jax(model: MultiResNet, variables) -> None:
  """Copies a JAX MultiResNet's params and batch stats (numpy trees) into `model`."""
  p, s = variables["params"], variables["batch_stats"]
  t = lambda a: torch.tensor(np.asarray(a, np.float32))
  conv = lambda m, k: m.weight.data.copy_(t(np.transpose(k["kernel"], (2, 1, 0))))

  def bn(m, params, stats):
    m.weight.data.copy_(t(params["scale"]))
    m.bias.data.copy_(t(params["bias"]))
    m.running_mean.copy_(t(stats["mean"]))
    m.running_var.copy_(t(stats["var"]))

  for c, tower in enumerate(model.towers):
    tp, ts = p[f"tower_{c}"], s[f"tower_{c}"]
    for k, block in enumerate(tower.blocks):
      bp, bs = tp["temporal"][f"block_{k}"], ts["temporal"][f"block_{k}"]
      for i, (cv, norm) in enumerate(zip(block.convs, block.bns)):
        conv(cv, bp[f"conv_{i}"])
        bn(norm, bp[f"bn_{i}"], bs[f"bn_{i}"])
      if block.shortcut is not None:
        conv(block.shortcut[0], bp["shortcut_conv"])
        bn(block.shortcut[1], bp["shortcut_bn"], bs["shortcut_bn"])
    conv(tower.spectral.conv, tp["spectral"]["conv"])
    bn(tower.spectral.bn, tp["spectral"]["bn"], ts["spectral"]["bn"])
  for i, layer in enumerate(model.dense):
    layer.weight.data.copy_(t(p[f"dense_{i}"]["kernel"]).T)
    layer.bias.data.copy_(t(p[f"dense_{i}"]["bias"]))
  model.head.weight.data.copy_(t(p["head"]["kernel"]).T)
  model.head.bias.data.copy_(t(p["head"]["bias"]))


def from_config(model, num_classes: int, window: int, rate_hz: float = 25.0) -> MultiResNet:
  """The network an xfer_jax `config.model` describes (towers over x, y, z only)."""
  if model.get("use_magnitude", False):
    raise ValueError("multiresnet_torch has no magnitude tower (model.use_magnitude=True)")
  spectral = dict(window=model.spectral_window, hop=model.spectral_hop,
                  filters=model.spectral_filters, kernel=model.spectral_kernel_size,
                  rate_hz=rate_hz)
  return MultiResNet(num_classes, window, dense=tuple(model.dense_units),
                     dropout=model.dropout, filters=tuple(model.filters),
                     layers=model.layers_per_block, kernel=model.kernel_size,
                     spectral=spectral)
