"""Which windows pick each seed's epoch, and the test scores of each seed's best parameters."""

from __future__ import annotations

import numpy as np

from xfer_jax import metrics
from xfer_jax.checks import INNER, ORACLE
from xfer_jax.data import Prepared
from xfer_jax.engine.loop import FitState
from xfer_jax.engine.runner import EvalSet, Runner
from xfer_jax.engine.step import SUPERVISED
from xfer_jax.pretext import objectives


def selection_set(prepared: Prepared, selection: str, val_rows_Sxv, eval_batch: int
                   ) -> EvalSet | None:
  """The windows that pick each seed's epoch: the val split (ORACLE), each seed's
  held-out budget rows of the train split (INNER), or none (FIXED)."""
  if selection == ORACLE:
    val = prepared.splits["val"]
    return EvalSet.create(val.x_NxWx3, val.y_N, eval_batch)
  if selection == INNER:
    train, union = prepared.splits["train"], np.unique(val_rows_Sxv)
    return EvalSet.create(train.x_NxWx3[union], train.y_N[union], eval_batch,
                          np.stack([np.isin(union, rows) for rows in val_rows_Sxv]))
  return None


def test_scores(runner: Runner, state: FitState, prepared: Prepared, objective, run_seeds
           ) -> tuple[list[dict], tuple[str, ...]]:
  """(per seed: its epochs and its best parameters' test scores, F1 or pretext
  accuracies; the headline scores' names)."""
  supervised = objective is SUPERVISED
  test = prepared.splits["test"]
  test_set = EvalSet.create(test.x_NxWx3, test.y_N, runner.settings.eval_batch_size)
  predictions = runner.predict(state.best_params, state.best_batch_stats, test_set)
  per_seed = []
  for s, seed in enumerate(run_seeds):
    score = (metrics.scores(test.y_N, predictions[s], prepared.num_classes) if supervised
             else objectives.scores(objective, predictions[s]))
    per_seed.append({"seed": seed, "epochs": state.stopping.epochs[s],
                     "best_epoch": state.stopping.best_epoch[s],
                     "best_val_loss": state.stopping.best_loss[s], **score})
  return per_seed, (("micro_f1", "macro_f1") if supervised else ("pretext_accuracy",))
