"""Adaptation subsets of a target's train split: nested, class-stratified, seeded."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from xfer_jax.data.recording import DataError


def stratified_order(y_N: np.ndarray, seed: int) -> np.ndarray:
  """A permutation of range(N) whose every prefix is stratified by class.

  Each class's windows are shuffled and spread evenly over [0, 1): the j-th of
  n_c windows sits at (j + u_c) / n_c with a random offset u_c per class. Sorting
  by that position gives prefixes whose class counts differ from the
  proportional share by less than one, so taking the first n windows gives
  subsets that are nested across sizes.
  """
  rng = np.random.default_rng(seed)
  position = np.empty(len(y_N))
  for c in np.unique(y_N):
    members = rng.permutation(np.flatnonzero(y_N == c))
    position[members] = (np.arange(len(members)) + rng.uniform()) / len(members)
  tiebreak = rng.random(len(y_N))
  return np.lexsort((tiebreak, position))


def adaptation_subsets(y_N: np.ndarray, sizes: Iterable[int], seed: int
                       ) -> dict[int, np.ndarray]:
  """size -> indices into the train split; the subset of a smaller size is a prefix
  of every larger one. A size beyond the split is an error."""
  order = stratified_order(np.asarray(y_N), seed)
  out = {}
  for size in sizes:
    if not 0 < size <= len(order):
      raise DataError(f"adaptation size {size} outside 1..{len(order)} (the train split)")
    out[int(size)] = np.sort(order[:size])
  return out


def cap_sizes(sizes: Sequence[int], train_sizes: Sequence[int]) -> list[int]:
  """Sizes capped at the smallest train split of an experiment's datasets; a size
  written as 0 or -1 means 'the cap itself' (the paper's largest size)."""
  cap = int(min(train_sizes))
  capped = sorted({cap if s <= 0 else min(int(s), cap) for s in sizes})
  return capped


SHORT_CLASSES = ("error", "all")  # config.adapt.short_classes


def shots_per_class(y_N: np.ndarray, shots: int, seed: int, class_names: Sequence[str] = (),
                    dataset: str = "", short_classes: str = "error") -> np.ndarray:
  """shots windows of every class of the train split (indices, sorted); nested across
  shot counts for one seed. A class with fewer windows is an error naming it, or
  (short_classes "all") gives every window it has: a fold whose train subjects hold
  few of a class adapts on what there is, and the record counts what was read."""
  y_N = np.asarray(y_N)
  classes, counts = np.unique(y_N, return_counts=True)
  short = [(int(c), int(n)) for c, n in zip(classes, counts) if n < shots]
  if short_classes == "all":
    short = []
  if shots < 1 or short:
    named = ", ".join(f"{class_names[c] if c < len(class_names) else c} ({n})" for c, n in short)
    raise DataError(f"config.adapt.size={shots} shots per class (config.adapt.budget="
                    f"'per_class'): {dataset or 'the target'}'s train split has fewer windows "
                    f"of class(es) {named}" if short else
                    f"config.adapt.size={shots}: shots per class must be at least 1")
  rng = np.random.default_rng(seed)
  picked = [rng.permutation(np.flatnonzero(y_N == c))[:shots] for c in classes]
  return np.sort(np.concatenate(picked))


def inner_validation(y_N: np.ndarray, rows_Sxn: np.ndarray, fraction: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
  """Each seed's labelled rows split into (train rows (S, n - v), validation rows
  (S, v)), v = max(1, round(fraction x n)) the same for every seed, the validation
  rows spread over the classes as stratified_order spreads a prefix."""
  y_N = np.asarray(y_N)
  n = rows_Sxn.shape[1]
  v = max(1, round(fraction * n))
  if v >= n:
    raise DataError(f"config.adapt.inner_fraction={fraction} of {n} labelled window(s) leaves "
                    "none to train: give a larger budget or selection='fixed'")
  train, val = [], []
  for s, rows in enumerate(rows_Sxn):
    order = stratified_order(y_N[rows], seed + s)
    val.append(np.sort(rows[order[:v]]))
    train.append(np.sort(rows[order[v:]]))
  return np.stack(train), np.stack(val)


def adaptation_rows(y_train: np.ndarray, size: int, subset_seed: int, num_seeds: int,
                    budget: str = "windows", class_names: Sequence[str] = (),
                    dataset: str = "", short_classes: str = "error") -> np.ndarray:
  """(S, n) labelled rows of a target's train split: seed s's nested subset drawn
  with subset_seed + s, stratified (budget "windows": n = size) or size of each
  class (budget "per_class": n = size x classes)."""
  if budget == "per_class":
    return np.stack([shots_per_class(y_train, size, subset_seed + s, class_names, dataset,
                                     short_classes) for s in range(num_seeds)])
  if size > len(y_train):
    raise DataError(f"adaptation size {size} (config.adapt.size) is larger than {dataset!r}'s "
                    f"train split ({len(y_train)} windows); a sweep caps its sizes to the smallest "
                    "train split (xfer_jax/grid/sweep.py)")
  return np.stack([adaptation_subsets(y_train, [size], subset_seed + s)[size]
                   for s in range(num_seeds)])
