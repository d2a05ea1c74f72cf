"""Scores: micro-F1 (the paper's), macro-F1, per-class F1, confusion, majority baseline.

Computed from the confusion matrix with sklearn's formulas, operation for operation
(tests/test_pipeline.py holds them bitwise equal to sklearn.metrics): importing
sklearn.metrics costs a fresh process 1.6 s, 40 % of its imports, before any result.
"""

from __future__ import annotations

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
  """(num_classes, num_classes) counts, rows = truth."""
  cells = np.asarray(y_true, np.int64) * num_classes + np.asarray(y_pred, np.int64)
  return np.bincount(cells, minlength=num_classes**2).reshape(num_classes, num_classes)


def _f1(counts: np.ndarray) -> tuple[float, np.ndarray]:
  """Micro-F1 and per-class F1 (0 for a class neither true nor predicted), as
  sklearn's 2·tp / (true + predicted) in float64."""
  tp = np.diag(counts).astype(np.float64)
  true, predicted = counts.sum(1).astype(np.float64), counts.sum(0).astype(np.float64)
  denominator = true + predicted
  per_class = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
  total = true.sum() + predicted.sum()
  micro = 2 * tp.sum() / total if total else 0.0
  return float(micro), per_class


def scores(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
  """Micro- and macro-F1, per-class F1 and the confusion matrix (rows = truth).

  Macro-F1 averages over the classes present in y_true or y_pred, as sklearn does.
  """
  counts = confusion(y_true, y_pred, num_classes)
  micro, per_class = _f1(counts)
  present = np.union1d(np.unique(y_true), np.unique(y_pred))
  return {"micro_f1": micro, "macro_f1": float(per_class[present].mean()),
          "per_class_f1": per_class.tolist(), "confusion": counts.tolist()}


def majority_baseline(y_train: np.ndarray, y_test: np.ndarray, num_classes: int) -> dict:
  """A classifier that always says the train split's most frequent class among the
  classes the test split holds. Why not simply the most frequent: a class the test
  split never holds scores 0 whatever the data (HMP's train majority, eat_meat, is
  absent from its test split), a baseline that is no baseline."""
  counts = np.bincount(y_train, minlength=num_classes)
  held = np.isin(np.arange(num_classes), np.unique(y_test))
  majority = int(np.where(held, counts, -1).argmax())
  micro, per_class = _f1(confusion(y_test, np.full_like(y_test, majority), num_classes))
  return {"class": majority, "micro_f1": micro,
          "macro_f1": float(per_class[np.unique(y_test)].mean())}
