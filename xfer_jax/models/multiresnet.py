"""The multimodal spectro-temporal ResNet (Multi-ResNet) of Gjoreski et al. 2019.

Per input channel (x, y, z; optionally |acc|) a tower with
- temporal/block_k: `layers_per_block` x (1D conv -> batch norm -> ReLU) with a
  residual shortcut (1x1 conv + batch norm where the width changes), ending in
  a max-pool;
- spectral: the channel's log-power spectrogram -> 1D conv over frames
  (frequency bins as features) -> batch norm -> ReLU;
then the towers' flattened outputs are concatenated and merged by dense_0 and
dense_1 (ReLU, dropout; L2 on their kernels is added to the loss) and `head`.

Defaults (xfer_jax/defaults.py), where the paper is silent: 3 blocks of 2 layers,
16/32/64 filters of width 5 (a 4 s window at 25 Hz shrinks 100 -> 50 -> 25 -> 12
samples, so the last block sees about 2 s), spectrogram windows of 32 samples
(1.28 s, 0.78 Hz bins) every 8, 128 and 64 dense units, dropout 0.5; batch norm
with Keras' momentum 0.99 and epsilon 1e-3, as the original Keras model
(bn_momentum: with few updates, e.g. a baseline on 400 windows, 0.99 leaves the
running statistics near their initial values; docs/results/real/summary.md).

frozen_bn names branch parts ("temporal/block_0", "spectral") whose batch norm
uses its running statistics even while training: the "frozen" policy of
transfer (see transfer.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from xfer_jax.models.spectrogram import log_spectrogram

BN_MOMENTUM, BN_EPSILON = 0.99, 1e-3


def _batch_norm(name: str, frozen: bool, train: bool, momentum: float):
  return nn.BatchNorm(use_running_average=frozen or not train, momentum=momentum,
                      epsilon=BN_EPSILON, name=name)


def max_pool(x_BxLxC, size: int):
  """Non-overlapping max-pool over the length axis (a trailing remainder is dropped,
  like nn.max_pool with VALID padding).

  A reshape and a max rather than nn.max_pool: the gradient of lax.reduce_window
  is a select-and-scatter that XLA:CPU runs, once seeds are vmapped, as an
  index-building reduce-window plus a scatter
  (docs/performance.md#max-pool-as-reshape-and-max). The values
  are identical; so are the gradients, except between exactly tied maxima."""
  B, L, C = x_BxLxC.shape
  kept = L // size * size
  return x_BxLxC[:, :kept].reshape(B, kept // size, size, C).max(axis=2)


class UnfoldConv(nn.Module):
  """A 1D convolution (stride 1, SAME padding, no bias) as one matrix product: the
  kernel_size shifted copies of the input stacked as features, then a dot_general
  with the (kernel_size, C_in, C_out) kernel, the parameter nn.Conv has (same name,
  shape and initialiser: checkpoints and transfer rules do not see the difference).

  Why: vmapped over seeds, nn.Conv becomes a grouped convolution (its weight
  gradient a batch_group_count one) wrapped in transposes, which XLA runs far
  slower per seed than S separate ones; a dot_general takes the seed axis as a batch
  dimension, a batched matrix product (docs/performance.md#convolutions-as-matrix-products)."""

  features: int
  kernel_size: int

  @nn.compact
  def __call__(self, x_BxLxC):
    kernel = self.param("kernel", nn.initializers.lecun_normal(),  # as nn.Conv's, float32
                        (self.kernel_size, x_BxLxC.shape[-1], self.features), jnp.float32)
    kernel = jnp.asarray(kernel, x_BxLxC.dtype)
    left = (self.kernel_size - 1) // 2  # SAME: as lax's padding for an odd or even width
    padded = jnp.pad(x_BxLxC, ((0, 0), (left, self.kernel_size - 1 - left), (0, 0)))
    length = x_BxLxC.shape[1]
    patches_BxLxKxC = jnp.stack([padded[:, k:k + length] for k in range(self.kernel_size)],
                                axis=2)
    return jnp.einsum("blkc,kcf->blf", patches_BxLxKxC, kernel)


def conv(features: int, kernel_size: int, name: str, impl: str):
  """A SAME, bias-free 1D convolution: nn.Conv ("xla") or UnfoldConv ("unfold")."""
  if impl == "unfold":
    return UnfoldConv(features, kernel_size, name=name)
  if impl != "xla":
    raise ValueError(f"config.runtime.conv={impl!r}: expected 'auto', 'xla' or 'unfold'")
  return nn.Conv(features, (kernel_size,), padding="SAME", use_bias=False, name=name)


class ResidualBlock(nn.Module):
  filters: int
  layers: int
  kernel_size: int
  pool_size: int
  frozen_bn: bool = False
  bn_momentum: float = BN_MOMENTUM
  conv: str = "xla"

  @nn.compact
  def __call__(self, x_BxLxC, train: bool, mask_Bx1x1=None):
    shortcut = x_BxLxC
    x = x_BxLxC
    for i in range(self.layers):
      x = conv(self.filters, self.kernel_size, f"conv_{i}", self.conv)(x)
      x = _batch_norm(f"bn_{i}", self.frozen_bn, train, self.bn_momentum)(x, mask=mask_Bx1x1)
      if i < self.layers - 1:
        x = nn.relu(x)
    if shortcut.shape[-1] != self.filters:
      shortcut = conv(self.filters, 1, "shortcut_conv", self.conv)(shortcut)
      shortcut = _batch_norm("shortcut_bn", self.frozen_bn, train, self.bn_momentum)(
          shortcut, mask=mask_Bx1x1)
    return max_pool(nn.relu(x + shortcut), self.pool_size)


class Temporal(nn.Module):
  filters: Sequence[int]
  layers_per_block: int
  kernel_size: int
  pool_size: int
  frozen_bn: Sequence[str] = ()
  bn_momentum: float = BN_MOMENTUM
  conv: str = "xla"

  @nn.compact
  def __call__(self, x_BxLx1, train: bool, mask_Bx1x1=None):
    x = x_BxLx1
    for k, filters in enumerate(self.filters):
      x = ResidualBlock(filters, self.layers_per_block, self.kernel_size, self.pool_size,
                        frozen_bn=f"temporal/block_{k}" in self.frozen_bn,
                        bn_momentum=self.bn_momentum, conv=self.conv,
                        name=f"block_{k}")(x, train, mask_Bx1x1)
    return x.reshape(x.shape[0], -1)


class Spectral(nn.Module):
  window: int
  hop: int
  filters: int
  kernel_size: int
  rate_hz: float
  frozen_bn: bool = False
  bn_momentum: float = BN_MOMENTUM
  conv: str = "xla"

  @nn.compact
  def __call__(self, x_BxL, train: bool, mask_Bx1x1=None):
    spec_BxFxK = log_spectrogram(x_BxL, self.window, self.hop, self.rate_hz)
    x = conv(self.filters, self.kernel_size, "conv", self.conv)(spec_BxFxK)
    x = _batch_norm("bn", self.frozen_bn, train, self.bn_momentum)(x, mask=mask_Bx1x1)
    return nn.relu(x).reshape(x.shape[0], -1)


class Tower(nn.Module):
  """One input channel's temporal and spectral branches."""

  filters: Sequence[int]
  layers_per_block: int
  kernel_size: int
  pool_size: int
  spectral_window: int
  spectral_hop: int
  spectral_filters: int
  spectral_kernel_size: int
  rate_hz: float
  frozen_bn: Sequence[str] = ()
  bn_momentum: float = BN_MOMENTUM
  conv: str = "xla"

  @nn.compact
  def __call__(self, x_BxL, train: bool, mask_Bx1x1=None):
    temporal = Temporal(self.filters, self.layers_per_block, self.kernel_size, self.pool_size,
                        frozen_bn=tuple(self.frozen_bn), bn_momentum=self.bn_momentum,
                        conv=self.conv, name="temporal")
    spectral = Spectral(self.spectral_window, self.spectral_hop, self.spectral_filters,
                        self.spectral_kernel_size, self.rate_hz,
                        frozen_bn="spectral" in self.frozen_bn, bn_momentum=self.bn_momentum,
                        conv=self.conv, name="spectral")
    return jnp.concatenate([temporal(x_BxL[..., None], train, mask_Bx1x1),
                            spectral(x_BxL, train, mask_Bx1x1)], axis=-1)


class MultiResNet(nn.Module):
  num_classes: int
  filters: Sequence[int] = (16, 32, 64)  # one width per residual block
  layers_per_block: int = 2
  kernel_size: int = 5
  pool_size: int = 2
  spectral_window: int = 32
  spectral_hop: int = 8
  spectral_filters: int = 16
  spectral_kernel_size: int = 3
  dense_units: Sequence[int] = (128, 64)
  dropout: float = 0.5
  use_magnitude: bool = False
  bn_momentum: float = BN_MOMENTUM
  rate_hz: float = 25.0
  frozen_bn: Sequence[str] = ()
  # what the model computes in; its variables are cast to it after init (Step). float64
  # (with jax_enable_x64) serves the equivalence tests: two programs that should
  # compute the same then agree to ~1e-12 instead of float32's CPU-dependent rounding
  dtype: str = "float32"
  # how the convolutions run, never what they compute: "xla" (lax.conv) or "unfold"
  # (UnfoldConv: a matrix product each, the same parameters). Set per backend by
  # config.runtime.conv (runner.Settings), so it does not key a grid
  conv: str = "xla"
  # the head's outputs when more than num_classes (config.runtime.pad_classes): the
  # extra outputs are masked by their bias (MASKED_LOGIT) and never learn, so the real
  # classes compute what an unpadded head would
  head_outputs: int = 0

  @property
  def num_blocks(self) -> int:
    return len(self.filters)

  @property
  def num_towers(self) -> int:
    return 4 if self.use_magnitude else 3

  @nn.compact
  def __call__(self, x_BxLx3, train: bool = False, mask_B=None):
    """Logits (B, num_classes). mask_B marks the real rows of a padded batch:
    batch norm computes its statistics on them only."""
    x_BxLx3 = jnp.asarray(x_BxLx3, self.dtype)
    mask_Bx1x1 = None if mask_B is None else mask_B[:, None, None]
    channels = [x_BxLx3[..., i] for i in range(x_BxLx3.shape[-1])]
    if self.use_magnitude:
      channels.append(jnp.linalg.norm(x_BxLx3, axis=-1))
    tower_args = (self.filters, self.layers_per_block, self.kernel_size, self.pool_size,
                  self.spectral_window, self.spectral_hop, self.spectral_filters,
                  self.spectral_kernel_size, self.rate_hz, tuple(self.frozen_bn),
                  self.bn_momentum, self.conv)
    x = jnp.concatenate([Tower(*tower_args, name=f"tower_{c}")(x_BxL, train, mask_Bx1x1)
                         for c, x_BxL in enumerate(channels)], axis=-1)
    for i, units in enumerate(self.dense_units):
      x = nn.relu(nn.Dense(units, name=f"dense_{i}")(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    outputs = max(self.head_outputs, self.num_classes)
    if outputs == self.num_classes:
      return nn.Dense(self.num_classes, name="head")(x)
    return nn.Dense(outputs, name="head",
                    kernel_init=_first_columns(nn.initializers.lecun_normal(), self.num_classes),
                    bias_init=_masked_beyond(self.num_classes))(x)


# a padded output's bias: with its kernel column zero its logit is exactly this, and
# exp(MASKED_LOGIT - a real logit) is exactly 0, so it adds nothing to the softmax,
# takes an exactly zero gradient (Adam's update of it stays 0: it never moves) and is
# never the argmax. The class count is then in the initial values alone, not in the
# step's program: targets padded to one width share their compilations
MASKED_LOGIT = -1e9


def _first_columns(init, columns: int):
  """init drawn for the first `columns` outputs (the values an unpadded head gets from
  the same key), zeros after them."""
  def padded(key, shape, dtype=jnp.float32):
    return jnp.pad(init(key, (*shape[:-1], columns), dtype), ((0, 0), (0, shape[-1] - columns)))
  return padded


def _masked_beyond(columns: int):
  def bias(key, shape, dtype=jnp.float32):
    del key
    return jnp.where(jnp.arange(shape[-1]) < columns, 0.0, MASKED_LOGIT).astype(dtype)
  return bias
