"""Accelerometer augmentations: pure, jit-able functions of (key, window).

Each takes one window x_WxC (C = 3 axes, in g) and returns one of the same shape
and dtype; callers vmap them over a batch (and runner.py over seeds). Keys are
derived by the caller (step.augment_key), never reused: a function that needs
several draws splits its key itself.

The transforms of ssl-wearables' multi-task objective (arrow of time,
permutation, time warp) and SimCLR's for sensors (rotation, scaling, jitter,
time warp, channel-consistent masking).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def reverse(x_WxC):
  """The arrow of time flipped: the window played backwards."""
  return x_WxC[::-1]


def segment_bounds(key, length: int, segments: int, min_segment: int):
  """(segments + 1,) increasing boundaries from 0 to length, every segment at least
  min_segment samples: the slack over segments x min_segment spread at random."""
  slack = length - segments * min_segment
  cuts = jnp.sort(jax.random.randint(key, (segments - 1,), 0, slack + 1))
  inner = cuts + min_segment * jnp.arange(1, segments)
  return jnp.concatenate([jnp.zeros(1, inner.dtype), inner, jnp.full(1, length, inner.dtype)])


def permute(key, x_WxC, segments: int, min_segment: int):
  """The window cut into `segments` contiguous pieces of random length (each at
  least min_segment samples), the pieces put back in a random order that is never
  the original one."""
  length = x_WxC.shape[0]
  bounds_key, order_key = jax.random.split(key)
  bounds = segment_bounds(bounds_key, length, segments, min_segment)
  order = jax.random.permutation(order_key, segments)
  identity = jnp.all(order == jnp.arange(segments))
  # a window labelled "permuted" must differ from the original: never the identity
  order = jnp.where(identity, jnp.roll(order, 1), order)
  lengths = jnp.diff(bounds)[order]
  out_starts = jnp.cumsum(lengths) - lengths
  position = jnp.arange(length)
  piece = jnp.searchsorted(out_starts, position, side="right") - 1
  source = bounds[order][piece] + position - out_starts[piece]
  return x_WxC[source]


def warp_times(key, length: int, sigma: float, knots: int):
  """Monotone sample times (length,) from 0 to length - 1: a smooth random speed
  (knots + 2 speeds ~ N(1, sigma), linearly interpolated) integrated and rescaled."""
  speeds = jnp.clip(1.0 + sigma * jax.random.normal(key, (knots + 2,)), 0.1, None)
  speed_W = jnp.interp(jnp.linspace(0.0, 1.0, length), jnp.linspace(0.0, 1.0, knots + 2), speeds)
  elapsed = jnp.cumsum(speed_W) - speed_W[0]
  return elapsed / elapsed[-1] * (length - 1)


def time_warp(key, x_WxC, sigma: float, knots: int):
  """The window resampled at smoothly sped-up and slowed-down times (the first and
  last samples kept), every axis at the same times."""
  length = x_WxC.shape[0]
  times = warp_times(key, length, sigma, knots).astype(x_WxC.dtype)
  grid = jnp.arange(length, dtype=x_WxC.dtype)
  return jax.vmap(lambda axis: jnp.interp(times, grid, axis), 1, 1)(x_WxC)


def random_rotation(key, dtype=jnp.float32):
  """A rotation matrix (3, 3) drawn uniformly (a normalised Gaussian quaternion)."""
  q = jax.random.normal(key, (4,), dtype)
  w, x, y, z = q / jnp.linalg.norm(q)
  return jnp.array([
      [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
      [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
      [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]], dtype)


def rotate(key, x_WxC):
  """The window in a randomly rotated sensor frame (|a| of every sample kept): the
  same movement from a watch worn another way round."""
  return x_WxC @ random_rotation(key, x_WxC.dtype).T


def scale(key, x_WxC, sigma: float):
  """Each axis multiplied by its own factor ~ N(1, sigma)."""
  return x_WxC * (1.0 + sigma * jax.random.normal(key, (x_WxC.shape[1],), x_WxC.dtype))


def jitter(key, x_WxC, sigma: float):
  """Gaussian noise of sigma g added to every sample."""
  return x_WxC + sigma * jax.random.normal(key, x_WxC.shape, x_WxC.dtype)


def mask_span(key, x_WxC, fraction: float):
  """A contiguous span of round(fraction x W) samples set to zero on every axis at
  once (channel-consistent: a dropout of the sensor, not of one axis)."""
  length = x_WxC.shape[0]
  span = round(fraction * length)
  start = jax.random.randint(key, (), 0, length - span + 1)
  inside = (jnp.arange(length) >= start) & (jnp.arange(length) < start + span)
  return jnp.where(inside[:, None], jnp.zeros((), x_WxC.dtype), x_WxC)


def maybe(key, probability: float, transform, x_WxC):
  """(transform(transform_key, x) with the given probability else x, whether it was)."""
  coin_key, transform_key = jax.random.split(key)
  applied = jax.random.uniform(coin_key) < probability
  return jnp.where(applied, transform(transform_key, x_WxC), x_WxC), applied
