"""The optimiser: Adam with Keras-style decay, L2 on the dense kernels, frozen partitions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import optax
from flax import traverse_util

TRAINABLE, FROZEN = "trainable", "frozen"


def keras_decay(learning_rate: float, decay: float) -> optax.Schedule:
  """Keras' legacy `decay`: lr / (1 + decay * step), step = optimiser updates so far."""
  return lambda step: learning_rate / (1.0 + decay * step)


def _kernel_mask(params) -> Any:
  flat = traverse_util.flatten_dict(params, sep="/")
  return traverse_util.unflatten_dict({k: k.endswith("kernel") for k in flat}, sep="/")


def make_optimizer(config: Mapping, param_labels: Any | None = None
                   ) -> optax.GradientTransformation:
  """Adam (config: learning_rate, decay, b1, b2, eps, weight_decay).

  param_labels: a pytree of TRAINABLE / FROZEN like the params; frozen leaves get
  optax.set_to_zero() in their own multi_transform partition, so they never move
  and carry no Adam state.
  """
  parts = [optax.scale_by_adam(b1=config["b1"], b2=config["b2"], eps=config["eps"])]
  if config.get("weight_decay", 0.0):
    parts.append(optax.add_decayed_weights(config["weight_decay"], mask=_kernel_mask))
  parts.append(optax.scale_by_learning_rate(keras_decay(config["learning_rate"], config["decay"])))
  adam = optax.chain(*parts)
  if param_labels is None:
    return adam
  return optax.multi_transform({TRAINABLE: adam, FROZEN: optax.set_to_zero()}, param_labels)


def l2_penalty(params, l2: float) -> jnp.ndarray:
  """Keras' kernel_regularizer=l2(l2) on the dense layers: l2 * sum(w ** 2)."""
  if not l2:
    return jnp.zeros(())
  total = jnp.zeros(())
  for name, layer in params.items():
    if name.startswith("dense_"):
      total += jnp.sum(jnp.square(layer["kernel"]))
  return l2 * total

