"""Several source datasets pooled into one: multi-source pretraining.

A source named "a+b+c" (or a tuple of names) is the windows of a, b and c, each
prepared and split on its own (so every split stays subject- or
occurrence-disjoint within its dataset), concatenated split by split. One model
with one head over the union of the datasets' class names: a name two datasets
share (exactly) is one class. Why one head: the head is re-initialised when the
trunk is transferred, so it only shapes the trunk; a union head needs no change
to the model, its parameter paths or the transfer rules, and a model pretrained
on a pool transfers exactly as one pretrained on one dataset. Subjects and
recordings keep their dataset's identity (subject ids are offset per dataset).

Balance (config.pool.balance): "none" concatenates every window; "equal" keeps of
every dataset, split by split, as many windows as the smallest dataset has there
(a seeded draw without replacement), so one large dataset does not make up most of
the pool (WISDM was 88-95 % of the second study's pooled sources).

A self-supervised source names its objective before the datasets
("simclr:a+b": xfer_jax/pretext/sources.py); members() gives its datasets too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from xfer_jax.data.pipeline import Prepared, Split, prepare
from xfer_jax.data.recording import DataError
from xfer_jax.data.splits import SPLITS

SEPARATOR = "+"
OBJECTIVE_SEPARATOR = ":"  # "objective:datasets", a self-supervised source
BALANCES = ("none", "equal")


def members(source: str | Sequence[str]) -> list[str]:
  """The dataset names of a source: "a+b" or ("a", "b") -> ["a", "b"]; "a" -> ["a"];
  "simclr:a+b" -> ["a", "b"]."""
  if isinstance(source, str):
    source = source.split(OBJECTIVE_SEPARATOR, 1)[-1]
  names = source.split(SEPARATOR) if isinstance(source, str) else list(source)
  names = [n.strip() for n in names]
  if not all(names) or len(set(names)) != len(names):
    raise DataError(f"source {source!r}: expected distinct dataset names joined by "
                    f"{SEPARATOR!r}")
  return names


def name_of(source: str | Sequence[str]) -> str:
  return SEPARATOR.join(members(source))


def balanced(datasets: Sequence[Prepared], balance: str, seed: int) -> list[Prepared]:
  """The datasets as a pool takes them under `balance` (see the module docstring)."""
  if balance not in BALANCES:
    raise DataError(f"config.pool.balance={balance!r}: expected one of {BALANCES}")
  if balance == "none" or len(datasets) < 2:
    return list(datasets)
  smallest = {s: min(len(d.splits[s]) for d in datasets) for s in SPLITS}
  rng = np.random.default_rng(seed)
  out = []
  for d in datasets:
    keep = {s: np.sort(rng.choice(len(d.splits[s]), smallest[s], replace=False)) for s in SPLITS}
    splits = {s: Split(*(getattr(d.splits[s], f)[keep[s]] for f in
                         ("x_NxWx3", "y_N", "subject_N", "recording_N"))) for s in SPLITS}
    out.append(dataclasses.replace(d, splits=splits))
  return out


def pool(datasets: Sequence[Prepared], balance: str = "none", seed: int = 0) -> Prepared:
  """One Prepared of several: splits concatenated (balanced by `balance`, drawn with
  `seed`), labels mapped into the union of class names, subject ids offset so that
  no two datasets share one."""
  datasets = balanced(datasets, balance, seed)
  shapes = {d.name: d.splits["train"].x_NxWx3.shape[1:] for d in datasets}
  if len(set(shapes.values())) > 1:
    raise DataError(f"the pooled datasets' windows differ in shape {shapes}: they must share "
                    "a window length and rate (config.data)")
  classes = list(dict.fromkeys(c for d in datasets for c in d.class_names))
  splits, recordings, subject_offset = {s: [] for s in SPLITS}, [], 0
  for d in datasets:
    to_union = np.array([classes.index(c) for c in d.class_names], np.int32)
    for s in SPLITS:
      part = d.splits[s]
      splits[s].append(Split(part.x_NxWx3, to_union[part.y_N], part.subject_N + subject_offset,
                             part.recording_N + len(recordings)))
    subject_offset += 1 + max(int(d.splits[s].subject_N.max()) for s in SPLITS)
    recordings += [f"{d.name}/{r}" for r in d.recording_ids]
  joined = {s: Split(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                       ("x_NxWx3", "y_N", "subject_N", "recording_N")))
            for s, parts in splits.items()}
  return Prepared(name=name_of([d.name for d in datasets]), class_names=tuple(classes),
                  splits=joined, recording_ids=tuple(recordings),
                  split_rule="+".join(d.split_rule for d in datasets),
                  assignment=[a for d in datasets for a in d.assignment],
                  hours=sum(d.hours for d in datasets))


def prepare_source(source: str | Sequence[str], config: Mapping, balance: str = "none"
                   ) -> Prepared:
  """A source dataset, or several pooled (see the module docstring)."""
  names = members(source)
  if len(names) == 1:
    return prepare(names[0], config)
  return pool([prepare(n, config) for n in names], balance, config.get("split_seed", 0))


def class_sources(datasets: Sequence[Prepared]) -> dict[str, list[str]]:
  """Which datasets each class of a pool comes from (for a checkpoint's metadata)."""
  out: dict[str, list[str]] = {}
  for d in datasets:
    for c in d.class_names:
      out.setdefault(c, []).append(d.name)
  return out
