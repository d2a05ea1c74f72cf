"""Self-supervised objectives: what a source model learns from unlabelled windows.

An objective turns a batch of windows into model inputs and targets (`views`) and
the model's outputs into summed losses (`sums`), the interface of step.py's
`Supervised`; Step calls whichever the run was built with. The model is the
Multi-ResNet unchanged, its `head` the pretext head: transfer re-initialises the
head as it does a supervised one, so every trunk path, rule and strategy applies.

- multitask (ssl-wearables, Yuan et al. 2024): each transform of `tasks` is applied
  to a window with probability transform_prob; the head has one logit per task,
  each a binary "was this transform applied" classifier (sigmoid cross-entropy).
- simclr (Chen et al. 2020; Tang et al. 2020 for sensors): two augmented views
  of every window; NT-Xent over the batch's 2B views, the head a linear
  projection of projection_dim units.

`sums` returns (loss summed over the batch's real windows, score summed likewise,
real windows, an int per row): the score is the pretext accuracy (the share of
tasks right; the share of views whose positive is their nearest view), the int per
row its correctness bits (bit t: task t right; simclr: bit 0 / 1, view 1 / 2 found
its positive).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from xfer_jax.errors import UserError
from xfer_jax.pretext import augment

OBJECTIVES = ("multitask", "simclr")
TASKS = ("arrow_of_time", "permutation", "time_warp")
AUGMENTATIONS = ("rotate", "scale", "jitter", "time_warp", "mask")


class PretextError(UserError, ValueError):
  """A self-supervised setting out of its range; the message names the field."""


@dataclasses.dataclass(frozen=True)
class Multitask:
  tasks: tuple[str, ...]
  transform_prob: float
  segments: int
  min_segment: int  # samples
  warp_sigma: float
  warp_knots: int

  @property
  def num_outputs(self) -> int:
    return len(self.tasks)

  @property
  def score_names(self) -> tuple[str, ...]:
    return self.tasks

  def transform(self, task: str):
    """The (key, x_WxC) -> x_WxC function of a task."""
    return {"arrow_of_time": lambda key, x: augment.reverse(x),
            "permutation": lambda key, x: augment.permute(key, x, self.segments, self.min_segment),
            "time_warp": lambda key, x: augment.time_warp(key, x, self.warp_sigma, self.warp_knots),
            }[task]

  def transform_window(self, key, x_WxC):
    """(the window with each task's transform applied or not, (T,) whether it was)."""
    applied = []
    for t, task in enumerate(self.tasks):
      x_WxC, was = augment.maybe(jax.random.fold_in(key, t), self.transform_prob,
                                 self.transform(task), x_WxC)
      applied.append(was)
    return x_WxC, jnp.stack(applied)

  def views(self, key, x_BxWxC, y_B, mask_B):
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(x_BxWxC.shape[0]))
    x, applied_BxT = jax.vmap(self.transform_window)(keys, x_BxWxC)
    return x, applied_BxT, mask_B

  def sums(self, logits_BxT, applied_BxT, mask_B):
    target = applied_BxT.astype(logits_BxT.dtype)
    loss_B = optax.sigmoid_binary_cross_entropy(logits_BxT, target).mean(-1)
    right_BxT = (logits_BxT > 0) == applied_BxT
    weights = mask_B.astype(loss_B.dtype)
    bits_B = jnp.sum(right_BxT.astype(jnp.int32) << jnp.arange(self.num_outputs), -1)
    return (jnp.sum(loss_B * weights), jnp.sum(right_BxT.mean(-1) * weights), jnp.sum(weights),
            bits_B)


@dataclasses.dataclass(frozen=True)
class SimCLR:
  projection_dim: int
  temperature: float
  augment_prob: tuple[tuple[str, float], ...]
  scale_sigma: float
  jitter_sigma: float
  warp_sigma: float
  warp_knots: int
  mask_fraction: float

  @property
  def num_outputs(self) -> int:
    return self.projection_dim

  @property
  def score_names(self) -> tuple[str, ...]:
    return ("view_1", "view_2")

  def augmentation(self, name: str):
    return {"rotate": augment.rotate,
            "scale": lambda key, x: augment.scale(key, x, self.scale_sigma),
            "jitter": lambda key, x: augment.jitter(key, x, self.jitter_sigma),
            "time_warp": lambda key, x: augment.time_warp(key, x, self.warp_sigma,
                                                          self.warp_knots),
            "mask": lambda key, x: augment.mask_span(key, x, self.mask_fraction)}[name]

  def view(self, key, x_WxC):
    """One augmented view: each augmentation with its probability, in a fixed order."""
    for a, (name, probability) in enumerate(self.augment_prob):
      x_WxC, _ = augment.maybe(jax.random.fold_in(key, a), probability, self.augmentation(name),
                               x_WxC)
    return x_WxC

  def views(self, key, x_BxWxC, y_B, mask_B):
    """Both views of every window as one batch of 2B rows: view 1 of window i at row
    i, view 2 at row B + i."""
    B = x_BxWxC.shape[0]
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(2 * B))
    x = jax.vmap(self.view)(keys, jnp.concatenate([x_BxWxC, x_BxWxC]))
    return x, None, jnp.concatenate([mask_B, mask_B])

  def sums(self, z_2BxD, _, mask_2B):
    """NT-Xent: each real view's positive is the other view of its window, its
    negatives every other real view of the batch (padding rows take no part)."""
    B2 = z_2BxD.shape[0]
    B = B2 // 2
    z = z_2BxD / jnp.maximum(jnp.linalg.norm(z_2BxD, axis=-1, keepdims=True), 1e-12)
    logits = z @ z.T / self.temperature
    excluded = jnp.eye(B2, dtype=bool) | ~mask_2B[None, :]
    # finite: a padding row's own loss must stay finite, or its zero weight makes NaN
    logits = jnp.where(excluded, jnp.asarray(-1e9, logits.dtype), logits)
    positive = jnp.concatenate([jnp.arange(B, B2), jnp.arange(B)])
    loss_2B = optax.softmax_cross_entropy_with_integer_labels(logits, positive)
    found_2B = jnp.argmax(logits, -1) == positive
    weights = mask_2B[:B].astype(loss_2B.dtype)
    per_window = lambda v: (v[:B] + v[B:]) / 2
    bits_B = found_2B[:B].astype(jnp.int32) + (found_2B[B:].astype(jnp.int32) << 1)
    return (jnp.sum(per_window(loss_2B) * weights),
            jnp.sum(per_window(found_2B.astype(loss_2B.dtype)) * weights), jnp.sum(weights), bits_B)


def _probability(field: str, value) -> float:
  if not isinstance(value, (int, float)) or not 0 <= value <= 1:
    raise PretextError(f"config.pretext.{field}={value!r}: expected a probability in [0, 1]")
  return float(value)


def _positive(field: str, value, kind=float):
  if not isinstance(value, (int, float)) or value <= 0 or (kind is int and value != int(value)):
    raise PretextError(f"config.pretext.{field}={value!r}: expected a positive "
                       f"{'integer' if kind is int else 'number'}")
  return kind(value)


def build(objective: str, config: Mapping, window: int, rate_hz: float):
  """The objective `objective` with config.pretext's settings, each checked, for
  windows of `window` samples at rate_hz."""
  if objective not in OBJECTIVES:
    raise PretextError(f"self-supervised objective {objective!r}: expected one of {OBJECTIVES}")
  warp = dict(warp_sigma=_positive("warp_sigma", config["warp_sigma"]),
              warp_knots=_positive("warp_knots", config["warp_knots"], int))
  if objective == "multitask":
    tasks = tuple(config["tasks"])
    unknown = [t for t in tasks if t not in TASKS]
    if not tasks or unknown or len(set(tasks)) != len(tasks):
      raise PretextError(f"config.pretext.tasks={tasks}: expected distinct tasks from {TASKS}")
    segments = _positive("segments", config["segments"], int)
    min_segment = round(_positive("min_segment_s", config["min_segment_s"]) * rate_hz)
    if "permutation" in tasks and (segments < 2 or segments * max(min_segment, 1) > window):
      raise PretextError(
          f"config.pretext.segments={segments} of at least min_segment_s="
          f"{config['min_segment_s']} s ({min_segment} samples at {rate_hz} Hz) do not fit a "
          f"{window}-sample window: the permutation task needs segments >= 2 and segments x "
          f"min_segment <= {window}")
    if "time_warp" in tasks and warp["warp_knots"] + 2 > window:
      raise PretextError(f"config.pretext.warp_knots={warp['warp_knots']}: a {window}-sample "
                         "window is too short to warp at that many knots")
    return Multitask(tasks, _probability("transform_prob", config["transform_prob"]), segments,
                     max(min_segment, 1), **warp)
  probs = dict(config["augment_prob"])
  unknown = sorted(set(probs) - set(AUGMENTATIONS))
  if unknown:
    raise PretextError(f"config.pretext.augment_prob: unknown augmentation(s) {unknown}; "
                       f"expected some of {AUGMENTATIONS}")
  augment_prob = tuple((name, _probability(f"augment_prob.{name}", probs[name]))
                       for name in AUGMENTATIONS if name in probs)
  mask_fraction = config["mask_fraction"]
  if not isinstance(mask_fraction, (int, float)) or not 0 <= mask_fraction < 1:
    raise PretextError(f"config.pretext.mask_fraction={mask_fraction!r}: expected a share of "
                       "the window in [0, 1)")
  return SimCLR(_positive("projection_dim", config["projection_dim"], int),
                _positive("temperature", config["temperature"]), augment_prob,
                _positive("scale_sigma", config["scale_sigma"]),
                _positive("jitter_sigma", config["jitter_sigma"]), mask_fraction=mask_fraction,
                **warp)


def scores(objective, bits_N) -> dict[str, float]:
  """Test scores of a pretext from its per-row correctness bits (see `sums`): the
  accuracy of each output (task, or view) and their mean, pretext_accuracy."""
  bits_N = np.asarray(bits_N)
  per_output = {f"{name}_accuracy": float(np.mean((bits_N >> t) & 1))
                for t, name in enumerate(objective.score_names)}
  return {"pretext_accuracy": float(np.mean(list(per_output.values()))), **per_output}
