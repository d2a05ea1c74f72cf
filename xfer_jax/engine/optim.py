"""The optimiser: Adam with Keras-style decay, L2 on the dense kernels, frozen partitions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import optax
from flax import traverse_util

TRAINABLE, FROZEN, TRANSFERRED = "trainable", "frozen", "transferred"


def keras_decay(learning_rate: float, decay: float) -> optax.Schedule:
  """Keras' legacy `decay`: lr / (1 + decay * step), step = optimiser updates so far."""
  return lambda step: learning_rate / (1.0 + decay * step)


def _kernel_mask(params) -> Any:
  flat = traverse_util.flatten_dict(params, sep="/")
  return traverse_util.unflatten_dict({k: k.endswith("kernel") for k in flat}, sep="/")


def _adam(config: Mapping, lr_scale: float = 1.0) -> optax.GradientTransformation:
  parts = [optax.scale_by_adam(b1=config["b1"], b2=config["b2"], eps=config["eps"])]
  if config.get("weight_decay", 0.0):
    parts.append(optax.add_decayed_weights(config["weight_decay"], mask=_kernel_mask))
  parts.append(optax.scale_by_learning_rate(
      keras_decay(config["learning_rate"] * lr_scale, config["decay"])))
  return optax.chain(*parts)


def make_optimizer(config: Mapping, param_labels: Any | None = None, lr_scale: float = 1.0
                   ) -> optax.GradientTransformation:
  """Adam (config: learning_rate, decay, b1, b2, eps, weight_decay).

  param_labels: a pytree of TRAINABLE / TRANSFERRED / FROZEN like the params, each
  label its own optax.multi_transform partition: TRAINABLE leaves train at the
  learning rate, TRANSFERRED ones at lr_scale times it (discriminative
  fine-tuning), and FROZEN ones get optax.set_to_zero(), so they never move and
  carry no Adam state.
  """
  if param_labels is None:
    return _adam(config)
  return optax.multi_transform({TRAINABLE: _adam(config), TRANSFERRED: _adam(config, lr_scale),
                                FROZEN: optax.set_to_zero()}, param_labels)


def l2_penalty(params, l2: float) -> jnp.ndarray:
  """Keras' kernel_regularizer=l2(l2) on the dense layers: l2 * sum(w ** 2)."""
  if not l2:
    return jnp.zeros(())
  total = jnp.zeros(())
  for name, layer in params.items():
    if name.startswith("dense_"):
      total += jnp.sum(jnp.square(layer["kernel"]))
  return l2 * total

