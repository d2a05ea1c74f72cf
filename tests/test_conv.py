"""Convolutions as matrix products (config.runtime.conv="unfold"): the same numbers
as lax.conv, and seeds vmapped as a batch dimension, not as grouped convolutions."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xfer_jax.engine import programs
from xfer_jax.models.multiresnet import Tower


def test_unfold_matches_lax_conv_in_float64():
  """Same parameters (names, shapes, initial values) and, in float64, the same
  outputs and gradients as nn.Conv: an odd and an even kernel width, on one tower
  of one block (a temporal, a shortcut and the spectral convolution: every kind the
  model has; more blocks and towers repeat them)."""
  with jax.enable_x64(True):
    x = jax.random.normal(jax.random.key(1), (4, 64), jnp.float64)
    for kernel in (5, 4):
      towers = {c: Tower((4,), 1, kernel, 2, 32, 8, 4, kernel, 25.0, conv=c)
                for c in ("xla", "unfold")}
      variables = {c: jax.jit(t.init, static_argnums=2)(jax.random.key(0), x, False)
                   for c, t in towers.items()}
      assert jax.tree.all(jax.tree.map(np.array_equal, variables["xla"]["params"],
                                       variables["unfold"]["params"]))
      params = variables["xla"]["params"]
      stats = variables["xla"]["batch_stats"]

      def loss(p, conv, towers=towers, stats=stats):
        out, _ = towers[conv].apply({"params": p, "batch_stats": stats}, x, True,
                                    mutable=["batch_stats"])
        return jnp.sum(out ** 2)

      grad = jax.jit(jax.value_and_grad(loss), static_argnums=1)
      (lx, gx), (lu, gu) = (grad(params, c) for c in ("xla", "unfold"))
      np.testing.assert_allclose(lu, lx, rtol=1e-12)
      for a, b in zip(jax.tree.leaves(gu), jax.tree.leaves(gx)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12 * float(jnp.abs(b).max()))


def _compiled_step(config, conv: str, seeds: int) -> str:
  config = config.copy_and_resolve_references()
  config.runtime.conv = conv
  runner = programs.build_runner(config, num_classes=4)
  return runner.lowered_train_step(seeds).compile().as_text()


def _grouped(hlo: str) -> list[str]:
  return re.findall(r"(?:feature|batch)_group_count=(\d+)", hlo)


def _instructions(hlo: str) -> int:
  return sum(1 for line in hlo.splitlines() if re.match(r"\s*(ROOT )?%?[\w.\-]+ = ", line))


def test_seeds_vmapped_are_a_batch_dimension_not_grouped_convolutions(smoke_config):
  # a one-block network: what is checked holds for every convolution alike, and each
  # of the three train steps below compiles in a fraction of the smoke network's time
  small = smoke_config.copy_and_resolve_references()
  small.model.filters, small.model.layers_per_block, small.model.dense_units = (8,), 1, (16,)
  unfold = {s: _compiled_step(small, "unfold", s) for s in (2, 4)}
  for hlo in unfold.values():
    assert "convolution(" not in hlo and not _grouped(hlo)
  # the program does not grow with the seeds: S is a dimension, not a loop (fusion
  # decisions may move a few instructions either way)
  assert abs(_instructions(unfold[4]) - _instructions(unfold[2])) < 0.01 * _instructions(unfold[2])
  # what the test guards against: lax.conv vmapped over 2 seeds becomes grouped
  assert "2" in _grouped(_compiled_step(small, "xla", 2))


def test_an_unknown_conv_is_named(smoke_config):
  config = smoke_config.copy_and_resolve_references()
  config.runtime.conv = "fft"
  with pytest.raises(ValueError, match=r"config.runtime.conv='fft': expected one of \('xla', "):
    programs.build_runner(config, num_classes=4)


def test_an_llvm_level_outside_0_to_3_is_named(smoke_config):
  """config.runtime.cpu_llvm_level (the hot programs' LLVM level on CPU; the study
  that needs level 3 is guarded by tests/test_study.py's recomputed record)."""
  config = smoke_config.copy_and_resolve_references()
  config.runtime.cpu_llvm_level = 4
  with pytest.raises(ValueError, match=r"config.runtime.cpu_llvm_level=4: expected 0, 1, 2 or 3"):
    programs.build_runner(config, num_classes=4)
