"""Convolutions as matrix products (model.conv="unfold"): the same numbers as
lax.conv, and seeds vmapped as a batch dimension, not as grouped convolutions."""

import functools
import re
import tempfile

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


def test_stacked_towers_compute_the_same_in_the_user_layout(smoke_config):
  """stack_towers: parameters keep the tower_i layout outside the module (Step
  converts), and in float64 the loss, its gradients and the batch statistics are
  those of the towers run one by one."""
  with jax.enable_x64(True):
    steps = {}
    for stacked in (False, True):
      config = smoke_config.copy_and_resolve_references()
      config.model.update(conv="unfold", stack_towers=stacked, dtype="float64")
      steps[stacked] = experiment.build_runner(config, num_classes=4).step
    params, stats = steps[False].init_variables(jax.random.key(0))
    stacked_params, _ = steps[True].init_variables(jax.random.key(0))
    assert jax.tree.structure(stacked_params) == jax.tree.structure(params)
    x = jax.random.normal(jax.random.key(1), (8, 100, 3), jnp.float64)
    batch = (x, jnp.arange(8) % 4, jnp.ones(8, bool))
    keys = jax.random.key(2), jax.random.key(3)  # dropout, augmentation (unused: supervised)
    out = {s: jax.value_and_grad(step.loss, has_aux=True)(params, stats, batch, *keys)
           for s, step in steps.items()}
    (loss_a, (_, stats_a)), grads_a = out[False]
    (loss_b, (_, stats_b)), grads_b = out[True]
    np.testing.assert_allclose(loss_b, loss_a, rtol=1e-12)
    for a, b in zip(jax.tree.leaves((grads_a, stats_a)), jax.tree.leaves((grads_b, stats_b))):
      np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12 * float(jnp.abs(a).max()))


def _dots(hlo: str) -> int:
  return len(re.findall(r"= \S+ dot\(", hlo))


def test_stacked_towers_run_one_matrix_product_per_layer_for_every_tower(smoke_config):
  """With stack_towers and unfold, the seed-vmapped step's matrix products do not
  grow with the towers (3, or 4 with |acc|); one tower per Python loop adds a set
  per tower. (The optimiser still updates each tower_i leaf: elementwise work.)"""
  dots = {}
  for stacked in (False, True):
    for magnitude in (False, True):
      config = smoke_config.copy_and_resolve_references()
      config.model.update(stack_towers=stacked, use_magnitude=magnitude)
      hlo = _compiled_step(config, "unfold", 2)
      assert "convolution(" not in hlo
      dots[stacked, magnitude] = _dots(hlo)
  assert dots[True, True] == dots[True, False]
  assert dots[False, True] > dots[False, False] > dots[True, False]


def test_a_stacked_target_takes_a_plain_sources_blocks(smoke_config, pretrained):
  """Checkpoints keep the tower_i layout, so a model with stacked towers adapts from
  a source trained without them, and the frozen block arrives unchanged."""
  from xfer_jax import checkpoints
  config = smoke_config.copy_and_resolve_references()
  config.model.update(conv="unfold", stack_towers=True)
  config.transfer.blocks, config.train.max_epochs = 1, 2
  with tempfile.TemporaryDirectory() as workdir:
    experiment.adapt(config, workdir, pretrained, progress=False)
    adapted, _ = checkpoints.read(workdir)
  source, _ = checkpoints.read(pretrained)
  path = ("tower_2", "temporal", "block_0", "conv_0", "kernel")
  pick = lambda tree: functools.reduce(lambda t, k: t[k], path, tree)
  np.testing.assert_array_equal(pick(adapted["best_params"]), pick(source["best_params"]))
