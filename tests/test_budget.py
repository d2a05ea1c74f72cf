"""Label budgets that count every label: shots per class, selection inside the budget."""

import dataclasses

import numpy as np
import pytest

from xfer_jax import checks, experiment
from xfer_jax.data import DataError, adaptation_rows, inner_validation, prepare, shots_per_class
from xfer_jax.grid import sweep


def test_shots_per_class_take_k_of_every_class_nested_over_k():
  y = np.repeat(np.arange(4), [3, 8, 5, 12])
  one, three = (shots_per_class(y, k, seed=7) for k in (1, 3))
  assert np.bincount(y[one], minlength=4).tolist() == [1] * 4
  assert np.bincount(y[three], minlength=4).tolist() == [3] * 4
  assert set(one) <= set(three)
  with pytest.raises(DataError, match=r"config.adapt.size=4 shots per class .* hmp's train "
                     r"split has fewer windows of class\(es\) walk \(3\)"):
    shots_per_class(y, 4, 0, ("walk", "run", "sit", "lie"), "hmp")
  # short_classes="all": a class with fewer windows gives every one it has, still nested
  four, eight = (shots_per_class(y, k, 7, short_classes="all") for k in (4, 8))
  assert np.bincount(y[four], minlength=4).tolist() == [3, 4, 4, 4]
  assert np.bincount(y[eight], minlength=4).tolist() == [3, 8, 5, 8]
  assert set(three) <= set(four) <= set(eight)


def test_inner_validation_splits_each_seeds_budget_without_overlap():
  y = np.repeat(np.arange(5), 20)
  rows = np.stack([shots_per_class(y, 5, seed) for seed in range(3)])
  train, val = inner_validation(y, rows, 0.2, seed=0)
  assert train.shape == (3, 20) and val.shape == (3, 5)
  for s in range(3):
    assert not set(train[s]) & set(val[s])
    assert sorted([*train[s], *val[s]]) == sorted(rows[s])
  with pytest.raises(DataError, match="leaves none to train"):
    inner_validation(y, rows[:, :1], 0.5, seed=0)


@pytest.fixture(scope="module")
def poisoned(smoke_config):
  """The smoke target with NaN in its val split and in every
  train window outside the cells' budgets, so any of them reaching a loss or a
  selection makes the run fail."""
  config = smoke_config.copy_and_resolve_references()
  config.adapt.budget, config.adapt.size = "per_class", 4
  config.train.max_epochs = 3
  target = prepare(config.target, config.data)
  train = target.splits["train"]
  rows = adaptation_rows(train.y_N, 4, config.adapt.subset_seed, config.train.num_seeds,
                         "per_class", target.class_names, target.name)
  x = np.full_like(train.x_NxWx3, np.nan)
  # row 0 also pads a batch smaller than a power of two (masked: runner.Batches)
  kept = np.union1d(np.unique(rows), [0])
  x[kept] = train.x_NxWx3[kept]
  val = target.splits["val"]
  splits = {**target.splits, "train": dataclasses.replace(train, x_NxWx3=x),
            "val": dataclasses.replace(val, x_NxWx3=np.full_like(val.x_NxWx3, np.nan))}
  return config, dataclasses.replace(target, splits=splits), rows


@pytest.mark.parametrize("selection", ["inner", "fixed"])
def test_no_label_outside_the_budget_reaches_the_loss_or_the_selection(poisoned, selection):
  config, target, rows = poisoned
  config = config.copy_and_resolve_references()
  config.adapt.selection = selection
  summary = experiment.adapt(config, None, prepared=target, progress=False)
  assert np.isfinite(summary["micro_f1_mean"])
  assert summary["labelled_windows"] == rows.shape[1] == 4 * target.num_classes
  assert summary["selection"] == selection
  if selection == "fixed":  # no validation: every epoch trained, the last one kept
    assert summary["selection_windows"] == 0
    assert all(r["best_epoch"] == r["epochs"] - 1 == 2 for r in summary["per_seed"])
  else:
    assert summary["selection_windows"] == round(0.2 * rows.shape[1])


def test_oracle_selection_reads_the_val_split(poisoned):
  """The same cell selecting on the target's val split meets its NaN: the budget
  test above would fail if inner or fixed selection read it."""
  config, target, _ = poisoned
  with pytest.raises(FloatingPointError, match=rf"dataset '{target.name}', adapt: the "
                     r"validation loss is NaN/inf .*check its windows for extreme or non-finite"):
    experiment.adapt(config, None, prepared=target, progress=False)


@pytest.mark.parametrize("field,value,message", [
    ("selection", "best", r"config.adapt.selection='best': expected one of"),
    ("budget", "shots", r"config.adapt.budget='shots': expected one of"),
    ("inner_fraction", 1.0, r"config.adapt.inner_fraction=1.0: expected"),
])
def test_bad_budget_settings_are_one_line_errors(smoke_config, field, value, message):
  config = smoke_config.copy_and_resolve_references()
  config.adapt[field] = value
  with pytest.raises(checks.ConfigError, match=message):
    checks.check_config(config)


def test_a_per_class_grid_needs_positive_shots(smoke_config):
  config = smoke_config.copy_and_resolve_references()
  config.adapt.budget = "per_class"
  config.sweep.sizes = (1, 0)
  with pytest.raises(sweep.SweepError, match="a size is shots per class, at least 1"):
    sweep.check_grid(config)


def test_records_of_a_budgeted_grid_say_what_they_spent(smoke_config):
  config = smoke_config.copy_and_resolve_references()
  assert sweep.budget_fields(config, {}) == {}  # the paper's protocol: records as before
  config.adapt.selection = "inner"
  assert sweep.budget_fields(config, {"labelled_windows": 20, "selection_windows": 4}) == {
      "budget": "windows", "selection": "inner", "labelled_windows": 20, "selection_windows": 4}


def test_a_summary_says_which_labels_its_cells_read():
  from xfer_jax.study import report
  assert "(oracle selection)" in report.labels_spent({})  # a grid saved before the fields
  inner = report.labels_spent({"adapt.budget": "per_class", "adapt.selection": "inner",
                               "adapt.inner_fraction": 0.2})
  assert inner == ("Each cell adapts on k labelled windows of every class; each seed's epoch "
                   "is picked by 20% of each seed's own budget, which does not train (every "
                   "label inside the budget).")
