"""Scores: micro-F1 (the paper's), macro-F1, per-class F1, confusion, majority baseline."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score


def scores(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
  """Micro- and macro-F1, per-class F1 and the confusion matrix (rows = truth).

  Macro-F1 averages over the classes present in y_true or y_pred, as sklearn does.
  """
  labels = np.arange(num_classes)
  present = np.union1d(np.unique(y_true), np.unique(y_pred))
  return {
      "micro_f1": float(f1_score(y_true, y_pred, average="micro")),
      "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
      "per_class_f1": f1_score(y_true, y_pred, labels=labels, average=None,
                               zero_division=0).tolist(),
      "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
  }


def majority_baseline(y_train: np.ndarray, y_test: np.ndarray, num_classes: int) -> dict:
  """A classifier that always says the train split's most frequent class among the
  classes the test split holds. Why not simply the most frequent: a class the test
  split never holds scores 0 whatever the data (HMP's train majority, eat_meat, is
  absent from its test split), a baseline that is no baseline."""
  counts = np.bincount(y_train, minlength=num_classes)
  held = np.isin(np.arange(num_classes), np.unique(y_test))
  majority = int(np.where(held, counts, -1).argmax())
  predicted = np.full_like(y_test, majority)
  return {"class": majority, "micro_f1": float(f1_score(y_test, predicted, average="micro")),
          "macro_f1": float(f1_score(y_test, predicted, labels=np.unique(y_test), average="macro",
                                     zero_division=0))}
