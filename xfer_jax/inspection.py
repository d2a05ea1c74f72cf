"""Checkpoint inspection: what a model holds, what was transferred, what stayed frozen.

Works on the stored arrays and metadata alone (numpy + orbax); the model code and
the config need not be importable. Arrays carry a leading seed axis: shapes and
counts below are per seed, statistics are over all seeds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from xfer_jax.engine import checkpoints
from xfer_jax.errors import UserError
from xfer_jax.transfer import flatten


class InspectionError(UserError, ValueError):
  """Checkpoints that cannot be compared (the message says why)."""


def group_of(path: str) -> str:
  """tower_0/temporal/block_1/conv_0/kernel -> tower_0/temporal/block_1; dense_0/kernel -> dense_0."""
  match = re.match(r"(tower_\d+/(?:temporal/block_\d+|spectral))/", path)
  return match[1] if match else path.split("/")[0]


def _row(path: str, value: np.ndarray) -> dict:
  value = np.asarray(value)
  per_seed = value.shape[1:]
  return {"path": path, "shape": list(per_seed), "dtype": str(value.dtype),
          "count": int(np.prod(per_seed)), "mean": float(value.mean()), "std": float(value.std()),
          "max_abs": float(np.abs(value).max()) if value.size else 0.0}


def tree_report(directory, step: int | None = None) -> dict:
  """Every parameter (the best-validation ones) with statistics and group subtotals,
  the batch-norm statistics, the stored config and label names."""
  tree, meta = checkpoints.read(directory, step)
  params, stats = flatten(tree["best_params"]), flatten(tree["best_batch_stats"])
  rows = [_row(p, v) for p, v in sorted(params.items())]
  groups: dict[str, int] = {}
  for r in rows:
    groups[group_of(r["path"])] = groups.get(group_of(r["path"]), 0) + r["count"]
  towers: dict[str, int] = {}
  for g, c in groups.items():
    top = g.split("/")[0]
    towers[top] = towers.get(top, 0) + c
  return {"checkpoint": str(directory), "epoch": meta.get("epoch"), "phase": meta.get("phase"),
          "dataset": meta.get("dataset"), "seeds": meta.get("seeds"),
          # a pooled source: its datasets, and which of them each class of its head is from
          "datasets": meta.get("datasets"), "class_sources": meta.get("class_sources"),
          # a source's objective ("supervised" before it was recorded) and, when
          # self-supervised, its pretext outputs and the unlabelled windows it read
          "objective": meta.get("objective", "supervised"), "pretext": meta.get("pretext"),
          "class_names": meta.get("class_names"), "config": meta.get("config"),
          "params": rows, "groups": groups, "top_level": towers,
          "total": sum(r["count"] for r in rows),
          "batch_stats": [_row(p, v) for p, v in sorted(stats.items())]}


def transfer_report(directory, step: int | None = None) -> dict:
  """The copy / copy_freeze / init label of every path of an adapted checkpoint."""
  meta = checkpoints.read_meta(directory, step)
  info = meta.get("transfer")
  if not info:
    raise InspectionError(f"{directory}: phase {meta.get('phase')!r} has no transfer record "
                          "(only checkpoints written by launch/adapt.py do)")
  counts: dict[str, int] = {}
  for action in info["labels"].values():
    counts[action] = counts.get(action, 0) + 1
  return {"checkpoint": str(directory), "dataset": meta.get("dataset"),
          "source": info.get("source"), "source_dataset": info.get("source_dataset"),
          "rules": info.get("rules"), "frozen_bn": info.get("frozen_bn"),
          "adaptation_size": info.get("size"), "counts": counts,
          "labels": [{"path": p, "action": a, "group": group_of(p)}
                     for p, a in sorted(info["labels"].items())]}


def _match_seeds(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Compares seed s of a with seed s mod S_b of b (an adapted run may have more seeds)."""
  if a.shape[0] != b.shape[0]:
    b = b[np.arange(a.shape[0]) % b.shape[0]]
  return a, b


def diff_report(directory_a, directory_b) -> dict:
  """Per path of the best parameters and batch statistics: identical, changed
  (max |delta|, relative change ||delta|| / ||a||), only in one, or shape differs."""
  tree_a, meta_a = checkpoints.read(directory_a)
  tree_b, meta_b = checkpoints.read(directory_b)
  rows = []
  for kind in ("best_params", "best_batch_stats"):
    flat_a, flat_b = flatten(tree_a[kind]), flatten(tree_b[kind])
    for path in sorted(set(flat_a) | set(flat_b)):
      row = {"tree": kind.removeprefix("best_"), "path": path}
      if path not in flat_b:
        row["status"] = "only_in_a"
      elif path not in flat_a:
        row["status"] = "only_in_b"
      elif np.shape(flat_a[path])[1:] != np.shape(flat_b[path])[1:]:
        row.update(status="shape_differs", shape_a=list(np.shape(flat_a[path])[1:]),
                   shape_b=list(np.shape(flat_b[path])[1:]))
      else:
        a, b = _match_seeds(np.asarray(flat_a[path]), np.asarray(flat_b[path]))
        delta = np.abs(a.astype(np.float64) - b)
        identical = bool(np.array_equal(a, b))
        row.update(status="identical" if identical else "changed", max_abs_delta=float(delta.max()),
                   relative_change=float(np.linalg.norm(delta) / max(np.linalg.norm(a), 1e-30)))
      rows.append(row)
  body = [r for r in rows if not r["path"].startswith("head/")]
  mismatched = [r["path"] for r in body if r["status"] in ("only_in_a", "only_in_b", "shape_differs")]
  if mismatched:
    raise InspectionError(
        f"{directory_a} and {directory_b} hold different models: {len(mismatched)} path(s) "
        f"outside the head are missing on one side or differ in shape, e.g. {mismatched[:5]}")
  counts: dict[str, int] = {}
  for r in rows:
    counts[r["status"]] = counts.get(r["status"], 0) + 1
  return {"a": str(directory_a), "b": str(directory_b), "dataset_a": meta_a.get("dataset"),
          "dataset_b": meta_b.get("dataset"), "counts": counts, "rows": rows}


def param_count(params: Mapping) -> int:
  """Parameters per seed of a seed-stacked parameter tree."""
  return sum(int(np.prod(np.shape(v)[1:])) for v in flatten(params).values())
