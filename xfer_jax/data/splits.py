"""Train / validation / test splits, made on recordings before windowing.

subject: every subject in exactly one split, subjects assigned greedily (longest
  first, ties broken by a seeded shuffle) to the split furthest below its share
  of the total duration.
occurrence: for datasets with too few subjects; recordings are cut only at the
  start of an occurrence (a run of one non-null label, with the null stretch
  before it), so every label segment stays whole and neighbouring windows fall
  in one split; occurrences are assigned per class in the same greedy way, so
  each class is split 40/10/50 too.

Folds (config.data.folds = F >= 3, config.data.fold = f): the same items (subjects,
or each class's occurrences) in F groups of about equal duration instead of three
shares; fold f tests group f, validates on group f + 1 (mod F) and trains on the
rest, so over f = 0..F-1 every subject is tested exactly once.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from xfer_jax.data.recording import DataError, RawDataset

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Piece:
  """Samples [start, stop) of recording `recording` belong to `split`."""

  recording: int
  start: int
  stop: int
  split: str


def _greedy_assign(durations: np.ndarray, fractions, rng: np.random.Generator) -> np.ndarray:
  """Split index per item: the split with the largest relative deficit takes the next item."""
  order = rng.permutation(len(durations))
  order = order[np.argsort(-durations[order], kind="stable")]
  target = np.asarray(fractions, float) * durations.sum()
  filled = np.zeros(len(fractions))
  out = np.zeros(len(durations), int)
  for i in order:
    # while a split is still empty it comes first, so each split gets at least one item
    empty = (filled == 0) & (target > 0)
    deficit = np.where(empty, np.inf, (target - filled) / np.maximum(target, 1e-12))
    out[i] = int(np.argmax(deficit))
    filled[out[i]] += durations[i]
  return out


@dataclasses.dataclass(frozen=True)
class Folds:
  """F groups; fold f tests group f, validates on f + 1 (mod F), trains on the rest."""

  folds: int
  fold: int

  @property
  def fractions(self) -> tuple[float, ...]:
    return (1.0 / self.folds,) * self.folds

  def split_of_group(self, group: int) -> str:
    if group == self.fold:
      return "test"
    return "val" if group == (self.fold + 1) % self.folds else "train"


def _split_names(durations: np.ndarray, fractions, rng, folds: Folds | None) -> list[str]:
  """The split of each item: by the three fractions, or by its fold group."""
  if folds is None:
    return [SPLITS[a] for a in _greedy_assign(durations, fractions, rng)]
  return [folds.split_of_group(g) for g in _greedy_assign(durations, folds.fractions, rng)]


def split_by_subject(dataset: RawDataset, fractions, seed: int,
                     folds: Folds | None = None) -> list[Piece]:
  subjects = sorted({r.subject for r in dataset.recordings})
  if len(subjects) < len(SPLITS):
    raise DataError(f"dataset {dataset.spec.name!r} has {len(subjects)} subject(s); a subject "
                    f"split needs at least {len(SPLITS)} (use the occurrence split)")
  if folds is not None and len(subjects) < folds.folds:
    raise DataError(f"config.data.folds={folds.folds}: dataset {dataset.spec.name!r} has "
                    f"{len(subjects)} subjects, so at most {len(subjects)} subject-wise folds")
  duration = {s: 0.0 for s in subjects}
  for r in dataset.recordings:
    duration[r.subject] += r.duration_s
  names = _split_names(np.array([duration[s] for s in subjects]), fractions,
                       np.random.default_rng(seed), folds)
  split_of = dict(zip(subjects, names))
  return [Piece(i, 0, r.num_samples, split_of[r.subject])
          for i, r in enumerate(dataset.recordings)]


def occurrences(labels_T: np.ndarray, null_label: int | None) -> list[tuple[int, int, int]]:
  """(start, stop, label) chunks: each non-null run together with the null run before it."""
  change = np.flatnonzero(np.diff(labels_T)) + 1
  starts, stops = np.r_[0, change], np.r_[change, len(labels_T)]
  chunks: list[list[int]] = []
  pending_null = None
  for start, stop in zip(starts, stops):
    label = int(labels_T[start])
    if label == null_label:
      pending_null = start if pending_null is None else pending_null
      continue
    chunks.append([start if pending_null is None else pending_null, stop, label])
    pending_null = None
  if pending_null is not None:  # trailing null joins the last chunk (or stands alone)
    if chunks:
      chunks[-1][1] = len(labels_T)
    else:
      chunks.append([0, len(labels_T), int(null_label)])
  return [tuple(c) for c in chunks]


def split_by_occurrence(dataset: RawDataset, fractions, seed: int,
                        folds: Folds | None = None) -> list[Piece]:
  rng = np.random.default_rng(seed)
  chunks = []  # (recording, start, stop, label, seconds)
  for i, r in enumerate(dataset.recordings):
    for start, stop, label in occurrences(r.labels_T, dataset.spec.null_label):
      chunks.append((i, start, stop, label, (stop - start) * r.nominal_period_s))
  split = [""] * len(chunks)
  for label in sorted({c[3] for c in chunks}):
    members = [k for k, c in enumerate(chunks) if c[3] == label]
    names = _split_names(np.array([chunks[k][4] for k in members]), fractions, rng, folds)
    for k, name in zip(members, names):
      split[k] = name
  pieces = [Piece(c[0], c[1], c[2], s) for c, s in zip(chunks, split)]
  return _merge_neighbours(pieces)


def _merge_neighbours(pieces: list[Piece]) -> list[Piece]:
  """Joins consecutive pieces of one recording that landed in the same split."""
  merged: list[Piece] = []
  for p in sorted(pieces, key=lambda p: (p.recording, p.start)):
    last = merged[-1] if merged else None
    if last and last.recording == p.recording and last.stop == p.start and last.split == p.split:
      merged[-1] = dataclasses.replace(last, stop=p.stop)
    else:
      merged.append(p)
  return merged


def assign_splits(dataset: RawDataset, rule: str, fractions, seed: int,
                  min_subjects: int = 3, folds: int = 0, fold: int = 0
                  ) -> tuple[str, list[Piece]]:
  """Returns the rule used and the pieces. rule: 'subject', 'occurrence' or 'auto'
  (subject when the dataset has at least min_subjects subjects); folds > 0: fold
  `fold` of that many (the module docstring)."""
  if len(fractions) != len(SPLITS) or abs(sum(fractions) - 1) > 1e-6:
    raise DataError(f"split fractions {tuple(fractions)} must be three numbers summing to 1")
  fold_set = None
  if folds:
    if folds < len(SPLITS):
      raise DataError(f"config.data.folds={folds}: a fold set needs at least {len(SPLITS)} "
                      "groups (one tests, one validates, the rest train); 0 turns folds off")
    if not 0 <= fold < folds:
      raise DataError(f"config.data.fold={fold}: expected 0..{folds - 1} "
                      f"(config.data.folds={folds})")
    fold_set = Folds(folds, fold)
  if rule == "auto":
    rule = "subject" if len({r.subject for r in dataset.recordings}) >= min_subjects else "occurrence"
  if rule == "subject":
    return rule, split_by_subject(dataset, fractions, seed, fold_set)
  if rule == "occurrence":
    return rule, split_by_occurrence(dataset, fractions, seed, fold_set)
  raise DataError(f"unknown split rule {rule!r}; expected 'subject', 'occurrence' or 'auto'")
