"""Convolutions as matrix products (model.conv="unfold"): the same numbers as
lax.conv, and seeds vmapped as a batch dimension, not as grouped convolutions."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xfer_jax import experiment
from xfer_jax.models import MultiResNet


def test_unfold_matches_lax_conv_in_float64():
  """Same parameters (names, shapes, initial values) and, in float64, the same
  logits and gradients as nn.Conv: an odd and an even kernel width."""
  with jax.enable_x64(True):
    x = jax.random.normal(jax.random.key(1), (4, 100, 3), jnp.float64)
    for kernel in (5, 4):
      models = {c: MultiResNet(num_classes=5, kernel_size=kernel, spectral_kernel_size=kernel,
                               conv=c, dtype="float64") for c in ("xla", "unfold")}
      variables = {c: m.init(jax.random.key(0), x) for c, m in models.items()}
      assert jax.tree.all(jax.tree.map(np.array_equal, variables["xla"]["params"],
                                       variables["unfold"]["params"]))
      params = jax.tree.map(lambda a: a.astype(jnp.float64), variables["xla"]["params"])
      stats = variables["xla"]["batch_stats"]

      def loss(p, conv, models=models, stats=stats):
        out, _ = models[conv].apply({"params": p, "batch_stats": stats}, x, train=True,
                                    mutable=["batch_stats"], rngs={"dropout": jax.random.key(2)})
        return jnp.sum(out ** 2)

      (lx, gx), (lu, gu) = (jax.value_and_grad(loss)(params, c) for c in ("xla", "unfold"))
      np.testing.assert_allclose(lu, lx, rtol=1e-12)
      for a, b in zip(jax.tree.leaves(gu), jax.tree.leaves(gx)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12 * float(jnp.abs(b).max()))


def _compiled_step(config, conv: str, seeds: int) -> str:
  config = config.copy_and_resolve_references()
  config.model.conv = conv
  runner = experiment.build_runner(config, num_classes=4)
  return runner.lowered_train_step(seeds).compile().as_text()


def _grouped(hlo: str) -> list[str]:
  return re.findall(r"(?:feature|batch)_group_count=(\d+)", hlo)


def _instructions(hlo: str) -> int:
  return sum(1 for line in hlo.splitlines() if re.match(r"\s*(ROOT )?%?[\w.\-]+ = ", line))


def test_seeds_vmapped_are_a_batch_dimension_not_grouped_convolutions(smoke_config):
  unfold = {s: _compiled_step(smoke_config, "unfold", s) for s in (2, 4)}
  for hlo in unfold.values():
    assert "convolution(" not in hlo and not _grouped(hlo)
  # the program does not grow with the seeds: S is a dimension, not a loop (fusion
  # decisions may move a few instructions either way)
  assert abs(_instructions(unfold[4]) - _instructions(unfold[2])) < 0.01 * _instructions(unfold[2])
  # what the test guards against: lax.conv vmapped over 2 seeds becomes grouped
  assert "2" in _grouped(_compiled_step(smoke_config, "xla", 2))


def test_an_unknown_conv_is_named():
  with pytest.raises(ValueError, match="config.model.conv='fft'"):
    MultiResNet(num_classes=3, conv="fft").init(jax.random.key(0), jnp.zeros((1, 100, 3)))
