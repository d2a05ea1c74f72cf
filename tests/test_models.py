"""The Multi-ResNet: pinned shape and size, spectrogram, masked batch norm."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal
from flax import traverse_util

from configs import smoke
from xfer_jax import defaults
from xfer_jax.engine.programs import build_model
from xfer_jax.models.spectrogram import power_spectrogram


def test_default_model_shape_and_parameter_count():
  model = build_model(defaults.model_config(), num_classes=8, rate_hz=25.0)
  x = jnp.zeros((4, 100, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  count = sum(np.prod(v.shape) for v in jax.tree.leaves(variables["params"]))
  assert count == 490_680
  out = jax.eval_shape(lambda v: model.apply(v, x), variables)
  assert out.shape == (4, 8)
  paths = traverse_util.flatten_dict(variables["params"], sep="/")
  assert "tower_2/temporal/block_2/conv_1/kernel" in paths
  assert "tower_0/spectral/conv/kernel" in paths
  assert {"dense_0/kernel", "dense_1/kernel", "head/kernel"} <= set(paths)
  assert not any(p.startswith("tower_3") for p in paths)


def test_magnitude_adds_a_tower():
  config = defaults.model_config()
  config.use_magnitude = True
  model = build_model(config, num_classes=5, rate_hz=25.0)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((2, 100, 3))))
  assert "tower_3" in variables["params"]


def test_spectrogram_matches_scipy():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(3, 100)).astype(np.float32) + 1.0
  ours = np.asarray(power_spectrogram(jnp.asarray(x), window=32, hop=8, fs=25.0))
  _, _, theirs = scipy.signal.spectrogram(x, fs=25.0, window="hann", nperseg=32, noverlap=24,
                                          detrend="constant", scaling="density", mode="psd")
  theirs = np.swapaxes(theirs, 1, 2)  # scipy: (B, freq, time)
  assert ours.shape == theirs.shape == (3, 9, 17)
  np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * theirs.max())


def _small_model(**kwargs):
  """The smoke config's network: the same code paths, quicker to compile."""
  return build_model(smoke.get_config().model, num_classes=4, rate_hz=25.0, **kwargs)


def _train_mode(model, variables, x, mask_B=None):
  logits, updates = model.apply(variables, x, train=True, mask_B=mask_B,
                                rngs={"dropout": jax.random.key(1)}, mutable=["batch_stats"])
  return logits, updates["batch_stats"]


def _init(model, x):
  # compiled without LLVM optimisation: random initialisation is slow to compile
  # at the default level and runs once (as in Engine)
  return jax.jit(model.init, compiler_options={"xla_backend_optimization_level": 0})(
      jax.random.key(0), x)


def test_padded_rows_do_not_touch_batch_norm():
  """Two paddings of the same rows, masked: batch statistics and the real rows'
  logits must not see what the padding holds."""
  model = _small_model().clone(dropout=0.0)  # dropout draws depend on the batch shape
  x = jnp.asarray(np.random.default_rng(1).normal(size=(6, 100, 3)), jnp.float32)
  variables = _init(model, x)
  mask = jnp.arange(16) < 6
  run = jax.jit(lambda v, x: _train_mode(model, v, x, mask))
  logits_a, stats_a = run(variables, jnp.concatenate([x, 100 * jnp.ones((10, 100, 3))]))
  logits_b, stats_b = run(variables, jnp.concatenate([x, -50 * jnp.ones((10, 100, 3))]))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), stats_a, stats_b)
  np.testing.assert_allclose(logits_a[:6], logits_b[:6], rtol=1e-5, atol=1e-6)
  moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), stats_a, variables["batch_stats"])
  assert max(jax.tree.leaves(moved)) > 0  # the statistics did update (on the real rows)


def test_frozen_batch_norm_uses_running_statistics():
  model = _small_model(frozen_bn=("temporal/block_0", "spectral"))
  x = jnp.asarray(np.random.default_rng(2).normal(size=(8, 100, 3)), jnp.float32)
  variables = _init(model, x)
  _, stats = jax.jit(lambda v, x: _train_mode(model, v, x))(variables, x)
  before = traverse_util.flatten_dict(variables["batch_stats"], sep="/")
  after = traverse_util.flatten_dict(stats, sep="/")
  for path, value in after.items():
    frozen = "temporal/block_0/" in path or "/spectral/" in path
    assert np.array_equal(value, before[path]) == frozen, path


def test_bn_momentum_reaches_every_batch_norm():
  """running mean after one step = (1 - momentum) * batch mean (it starts at 0), so
  momentum 0.9 moves every layer's running mean 10x as far as Keras' 0.99."""
  config = smoke.get_config().model
  x = jax.random.normal(jax.random.key(1), (16, 100, 3)) + 0.5
  moved = {}
  for momentum in (0.99, 0.9):
    config.bn_momentum = momentum
    model = build_model(config, num_classes=5, rate_hz=25.0)
    _, stats = jax.jit(functools.partial(_train_mode, model))(_init(model, x), x)
    moved[momentum] = traverse_util.flatten_dict(stats, sep="/")
  means = [p for p in moved[0.9] if p.endswith("/mean")]
  assert len(means) == 3 * (2 * 2 + 2 + 1)  # per tower: 2 blocks x (2 layers + shortcut), spectral
  for path in means:
    np.testing.assert_allclose(moved[0.9][path], 10 * moved[0.99][path], rtol=1e-4, atol=1e-6)
