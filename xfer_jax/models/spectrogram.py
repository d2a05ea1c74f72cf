"""The log-power spectrogram, computed inside the model (jit-able, on the device).

Matches scipy.signal.spectrogram(x, fs, window='hann', nperseg=window,
noverlap=window - hop, detrend='constant', scaling='density', mode='psd'): each
frame loses its mean (gravity), is Hann-windowed, and its one-sided power
density is taken. The DFT is a matmul against fixed cos/sin tables, which maps
onto matrix units on every backend and is exact enough in float32.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def num_frames(length: int, window: int, hop: int) -> int:
  return 1 + (length - window) // hop


def power_spectrogram(x_BxL: jnp.ndarray, window: int, hop: int, fs: float) -> jnp.ndarray:
  """(B, L) -> (B, frames, window // 2 + 1) power spectral density."""
  frames = num_frames(x_BxL.shape[-1], window, hop)
  index = np.arange(frames)[:, None] * hop + np.arange(window)[None, :]
  x_BxFxW = x_BxL[..., index]
  x_BxFxW = x_BxFxW - x_BxFxW.mean(axis=-1, keepdims=True)
  hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)  # scipy's periodic Hann
  k = np.arange(window // 2 + 1)
  angle = 2 * np.pi * np.outer(np.arange(window), k) / window
  cos_WxK = jnp.asarray(hann[:, None] * np.cos(angle), x_BxL.dtype)
  sin_WxK = jnp.asarray(hann[:, None] * np.sin(angle), x_BxL.dtype)
  power = (x_BxFxW @ cos_WxK) ** 2 + (x_BxFxW @ sin_WxK) ** 2
  one_sided = np.full(len(k), 2.0)
  one_sided[0] = 1.0
  if window % 2 == 0:
    one_sided[-1] = 1.0
  scale = one_sided / (fs * np.sum(hann ** 2))
  return power * jnp.asarray(scale, x_BxL.dtype)


def log_spectrogram(x_BxL: jnp.ndarray, window: int, hop: int, fs: float,
                    floor: float = 1e-6) -> jnp.ndarray:
  return jnp.log(power_spectrogram(x_BxL, window, hop, fs) + floor)
