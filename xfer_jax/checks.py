"""A run's config and data, checked before any work; each error names the field or
dataset and what it needs."""

from __future__ import annotations

from xfer_jax.data import DataError, Prepared, window_samples
from xfer_jax.data.subsets import SHORT_CLASSES
from xfer_jax.engine.loop import STOP_ON
from xfer_jax.errors import UserError

BUDGETS = ("windows", "per_class")  # config.adapt.budget: size in all, or per class
# config.adapt.selection: what picks each seed's epoch (configs/paper.py)
ORACLE, INNER, FIXED = "oracle", "inner", "fixed"
SELECTIONS = (ORACLE, INNER, FIXED)


class ConfigError(UserError, ValueError):
  """A config value out of its range; the message names the field and what it needs."""


def check_config(config) -> None:
  """The training and model fields a run reads, each in its range."""
  tc, mc = config.train, config.model
  for field, value in (("num_seeds", tc.num_seeds), ("batch_size", tc.batch_size),
                       ("max_epochs", tc.max_epochs)):
    if not isinstance(value, int) or value < 1:
      raise ConfigError(f"config.train.{field}={value!r}: expected an integer >= 1")
  if tc.patience < 0:
    raise ConfigError(f"config.train.patience={tc.patience}: expected >= 0 (0 = no early stopping)")
  if tc.stop_on not in STOP_ON:
    raise ConfigError(f"config.train.stop_on={tc.stop_on!r}: expected one of {STOP_ON} (the "
                      "validation metric that picks each seed's best epoch and stops it early)")
  adapt = config.get("adapt") or {}
  if adapt.get("budget", "windows") not in BUDGETS:
    raise ConfigError(f"config.adapt.budget={adapt['budget']!r}: expected one of {BUDGETS}")
  if adapt.get("selection", ORACLE) not in SELECTIONS:
    raise ConfigError(f"config.adapt.selection={adapt['selection']!r}: expected one of "
                      f"{SELECTIONS}")
  if adapt.get("short_classes", "error") not in SHORT_CLASSES:
    raise ConfigError(f"config.adapt.short_classes={adapt['short_classes']!r}: expected one of "
                      f"{SHORT_CLASSES} (a class with fewer windows than a per-class budget: an "
                      "error, or all it has)")
  if not 0 < adapt.get("inner_fraction", 0.2) < 1:
    raise ConfigError(f"config.adapt.inner_fraction={adapt['inner_fraction']}: expected the "
                      "share of a budget's windows that selects the epoch, in (0, 1)")
  window = window_samples(config.data)
  if mc.spectral_window > window:
    raise ConfigError(
        f"config.model.spectral_window={mc.spectral_window} samples is longer than a window "
        f"(config.data.window_s={config.data.window_s} s at {config.data.rate_hz} Hz = {window} "
        f"samples): the spectral branch would see no frame. Set model.spectral_window <= "
        f"{window} (and model.spectral_hop below it), or lengthen data.window_s")


def check_trainable(prepared: Prepared, batch_size: int, n_train: int | None = None,
                    supervised: bool = True) -> None:
  """Labels a supervised run needs, two classes at least, a batch's worth of windows."""
  if supervised and not prepared.labelled:
    raise DataError(f"dataset {prepared.name!r} has no labels (an interchange file without "
                    "label_<i> keys): it can only be a self-supervised source, e.g. "
                    f"config.source='multitask:{prepared.name}' or 'simclr:{prepared.name}'")
  if supervised and prepared.num_classes < 2:
    raise DataError(f"dataset {prepared.name!r} has {prepared.num_classes} class "
                    f"{list(prepared.class_names)}; classification needs at least 2")
  if n_train is None and len(prepared.splits["train"]) < batch_size:
    raise DataError(f"dataset {prepared.name!r}: the train split has "
                    f"{len(prepared.splits['train'])} windows, fewer than batch_size={batch_size}; "
                    "lower --config.train.batch_size")
