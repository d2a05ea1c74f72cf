"""Keras-style decay and frozen partitions."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from xfer_jax import defaults
from xfer_jax.engine.optim import FROZEN, TRAINABLE, TRANSFERRED, keras_decay, l2_penalty, make_optimizer


@pytest.mark.parametrize("step", [0, 1, 10, 100, 1000, 12345])
def test_keras_decay_formula(step):
  assert float(keras_decay(1e-3, 1e-3)(step)) == pytest.approx(1e-3 / (1 + 1e-3 * step), rel=1e-6)


def test_adam_step_size_follows_the_schedule():
  config = defaults.optim_config()
  tx = make_optimizer(config)
  params = {"w": jnp.zeros(3)}
  state = tx.init(params)
  grads = {"w": jnp.ones(3)}
  for step in range(5):
    updates, state = tx.update(grads, state, params)
    # with a constant gradient Adam's normalised step is 1, so |update| = lr(step)
    np.testing.assert_allclose(np.abs(updates["w"]), 1e-3 / (1 + 1e-3 * step), rtol=1e-3)


def test_frozen_leaves_have_no_state_and_do_not_move():
  params = {"a": {"kernel": jnp.ones((2, 2))}, "b": {"kernel": jnp.ones(2)}}
  labels = {"a": {"kernel": FROZEN}, "b": {"kernel": TRAINABLE}}
  tx = make_optimizer(defaults.optim_config(), labels)
  state = tx.init(params)
  adam_state = state.inner_states[TRAINABLE].inner_state[0]
  assert isinstance(adam_state.mu["a"]["kernel"], optax.MaskedNode)
  assert adam_state.mu["b"]["kernel"].shape == (2,)
  updates, _ = tx.update({"a": {"kernel": jnp.ones((2, 2))}, "b": {"kernel": jnp.ones(2)}}, state,
                         params)
  assert not np.any(updates["a"]["kernel"]) and np.all(updates["b"]["kernel"] != 0)


def test_l2_only_on_dense_kernels():
  params = {"dense_0": {"kernel": jnp.full((2,), 2.0), "bias": jnp.ones(2)},
            "head": {"kernel": jnp.ones(3)}, "tower_0": {"conv": {"kernel": jnp.ones(4)}}}
  assert float(l2_penalty(params, 0.5)) == pytest.approx(0.5 * 8.0)


def test_transferred_leaves_step_at_the_scaled_rate():
  params = {"a": {"kernel": jnp.ones(3)}, "b": {"kernel": jnp.ones(3)}, "c": {"kernel": jnp.ones(3)}}
  labels = {"a": {"kernel": TRANSFERRED}, "b": {"kernel": TRAINABLE}, "c": {"kernel": FROZEN}}
  tx = make_optimizer(defaults.optim_config(), labels, lr_scale=0.25)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  # Adam's first step with a constant gradient: |update| = its learning rate
  np.testing.assert_allclose(np.abs(updates["b"]["kernel"]), 1e-3, rtol=1e-3)
  np.testing.assert_allclose(np.abs(updates["a"]["kernel"]), 0.25e-3, rtol=1e-3)
  assert not np.any(updates["c"]["kernel"])
