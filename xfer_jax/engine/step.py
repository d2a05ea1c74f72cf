"""One seed's training and evaluation as pure functions: the file to edit to change
the loss or what is measured.

Nothing here knows about seeds, devices or epochs: runner.py turns these
functions into seed-batched, compiled programs, and loop.py drives them.

A batch is (x_BxWx3, y_B, mask_B): rows where mask_B is False are padding, left
out of the loss and of batch norm's statistics, so that training sets of any
size share one compiled program.

Randomness: seed s owns key(seed + s). Its initialisation uses fold_in(key, 0);
epoch e uses epoch_key = fold_in(fold_in(key, 1), e), from which the epoch's
shuffle takes fold_in(epoch_key, 0) and batch i's dropout
fold_in(fold_in(epoch_key, 1), i), and a self-supervised objective's
augmentations of batch i fold_in(fold_in(epoch_key, 2), i). A seed therefore
trains the same numbers whichever seeds share its program.

What is learnt is the step's objective: `Supervised` (cross-entropy on the class
labels) or a self-supervised one (xfer_jax/pretext/objectives.py), which turns a
batch into inputs and targets of its own.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from xfer_jax.engine.optim import l2_penalty


@flax.struct.dataclass
class TrainState:
  params: Any
  batch_stats: Any
  opt_state: Any


def seed_numbers(seed: int, num_seeds: int) -> list[int]:
  """A run's seeds: seed s of a run of num_seeds is seed + s."""
  return [seed + s for s in range(num_seeds)]


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
  """Keys of seed_numbers(seed, num_seeds), stacked on a leading axis.

  threefry, the default: unlike "rbg" its draws under vmap equal the unbatched ones."""
  return jnp.stack([jax.random.key(s) for s in seed_numbers(seed, num_seeds)])


def init_key(key):
  return jax.random.fold_in(key, 0)


def epoch_key(key, epoch):
  return jax.random.fold_in(jax.random.fold_in(key, 1), epoch)


def dropout_key(epoch_key, batch_index):
  return jax.random.fold_in(jax.random.fold_in(epoch_key, 1), batch_index)


def augment_key(epoch_key, batch_index):
  return jax.random.fold_in(jax.random.fold_in(epoch_key, 2), batch_index)


def epoch_order(index_C, n_valid, epoch_key, batch_rows: int):
  """The seed's rows of every batch of an epoch, (C // batch_rows, batch_rows),
  real rows (index_C[:n_valid]) first in a fresh order, padding after them.

  One uniform per position, drawn with fold_in(shuffle key, position), so the real
  rows' order does not depend on how much padding follows them."""
  capacity = index_C.shape[0]
  shuffle_key = jax.random.fold_in(epoch_key, 0)
  row_keys = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(shuffle_key, i)))(
      jnp.arange(capacity))
  order = jnp.argsort(jnp.where(jnp.arange(capacity) < n_valid, row_keys, 2.0))
  return index_C[order].reshape(capacity // batch_rows, batch_rows)


def cross_entropy(logits, y_B, mask_B):
  """(summed cross-entropy, correct predictions, real rows) over the batch's real
  rows: the one loss definition, for training and evaluation alike."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, y_B)
  weights = mask_B.astype(ce.dtype)
  correct = jnp.sum((jnp.argmax(logits, -1) == y_B) * weights)
  return jnp.sum(ce * weights), correct, jnp.sum(weights)


@dataclasses.dataclass(frozen=True)
class Supervised:
  """The paper's objective: the class labels, by cross-entropy. Its `views` and
  `sums` are the interface every objective has (pretext/objectives.py)."""

  score_names = ("accuracy",)

  def views(self, key, x_BxWx3, y_B, mask_B):
    return x_BxWx3, y_B, mask_B

  def sums(self, logits, y_B, mask_B):
    ce_sum, correct, rows = cross_entropy(logits, y_B, mask_B)
    return ce_sum, correct, rows, jnp.argmax(logits, -1)


SUPERVISED = Supervised()
EVAL_KEY = 0  # the augmentation key of evaluation: every epoch scores the same windows


@dataclasses.dataclass(frozen=True, eq=False)
class Step:
  """The model, optimiser and regulariser of one run, and its single-seed functions."""

  model: Any  # a flax linen module: apply(variables, x, train=, mask_B=)
  tx: optax.GradientTransformation
  l2: float
  window_shape: tuple[int, int]
  objective: Any = SUPERVISED

  def init_variables(self, key):
    """(params, batch stats) of a fresh model in its dtype; key: the seed's init_key."""
    x = jnp.zeros((1, *self.window_shape), jnp.float32)
    variables = self.model.init({"params": key, "dropout": key}, x, train=False)
    cast = lambda tree: jax.tree.map(lambda a: a.astype(self.model.dtype), tree)
    return cast(variables["params"]), cast(variables.get("batch_stats", {}))

  def init(self, key) -> TrainState:
    params, batch_stats = self.init_variables(init_key(key))
    return TrainState(params, batch_stats, self.tx.init(params))

  def loss(self, params, batch_stats, batch, dropout_key, augment_key):
    """The training objective: the objective's mean loss over the real windows
    (cross-entropy for Supervised) plus L2; also returns (that mean loss, the
    updated batch statistics)."""
    x, target, mask = self.objective.views(augment_key, *batch)
    outputs, updates = self.model.apply(
        {"params": params, "batch_stats": batch_stats}, x, train=True, mask_B=mask,
        rngs={"dropout": dropout_key}, mutable=["batch_stats"])
    loss_sum, _, rows, _ = self.objective.sums(outputs, target, mask)
    loss = loss_sum / jnp.maximum(rows, 1.0)
    new_stats = updates["batch_stats"] if "batch_stats" in updates else batch_stats
    return loss + l2_penalty(params, self.l2), (loss, new_stats)

  def train_step(self, state: TrainState, batch, epoch_key, batch_index):
    """One optimiser update on batch batch_index of the epoch; returns (state, mean
    loss)."""
    grads, (loss, batch_stats) = jax.grad(self.loss, has_aux=True)(
        state.params, state.batch_stats, batch, dropout_key(epoch_key, batch_index),
        augment_key(epoch_key, batch_index))
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return TrainState(params, batch_stats, opt_state), loss

  def logits(self, params, batch_stats, x):
    return self.model.apply({"params": params, "batch_stats": batch_stats}, x, train=False)

  def eval_step(self, params, batch_stats, batch):
    """(summed loss, summed score, an int per row) of a batch's real rows: for
    Supervised the cross-entropy, the correct count and the predicted classes."""
    x, target, mask = self.objective.views(jax.random.key(EVAL_KEY), *batch)
    loss_sum, score_sum, _, per_row = self.objective.sums(
        self.logits(params, batch_stats, x), target, mask)
    return loss_sum, score_sum, per_row
