"""The unit every reader produces: one continuous wrist-accelerometer recording."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence

import numpy as np

from xfer_jax.errors import UserError


class DataError(UserError, ValueError):
  """Bad input data: the message names the file, key or value and what was expected."""


@dataclasses.dataclass(frozen=True)
class Recording:
  """One continuous recording of the dominant-wrist accelerometer.

  acc_Tx3 is in g. labels_T holds the dataset's own label id of every sample.
  Either rate_hz (uniform sampling) or t_s (per-sample timestamps, seconds from
  the first sample, for irregular streams) describes time; both may be set.
  """

  acc_Tx3: np.ndarray
  labels_T: np.ndarray
  subject: int
  recording_id: str
  rate_hz: float | None
  source_units: str
  t_s: np.ndarray | None = None

  def __post_init__(self):
    acc, labels = self.acc_Tx3, self.labels_T
    if acc.ndim != 2 or acc.shape[1] != 3:
      raise DataError(f"{self.recording_id}: acceleration must be (T, 3), got {acc.shape}")
    if labels.shape != (acc.shape[0],):
      raise DataError(
          f"{self.recording_id}: {labels.shape[0] if labels.ndim else 0} labels for "
          f"{acc.shape[0]} samples; expected one label per sample")
    if self.t_s is not None and self.t_s.shape != (acc.shape[0],):
      raise DataError(f"{self.recording_id}: {self.t_s.shape} timestamps for {acc.shape[0]} samples")
    if self.rate_hz is None and self.t_s is None:
      raise DataError(f"{self.recording_id}: needs a sampling rate or timestamps")

  @property
  def num_samples(self) -> int:
    return int(self.acc_Tx3.shape[0])

  @property
  def duration_s(self) -> float:
    if self.t_s is not None and self.num_samples > 1:
      return float(self.t_s[-1] - self.t_s[0]) + self.nominal_period_s
    return self.num_samples / float(self.rate_hz)

  @property
  def nominal_period_s(self) -> float:
    if self.rate_hz:
      return 1.0 / self.rate_hz
    return float(np.median(np.diff(self.t_s))) if self.num_samples > 1 else 0.0


# the one class of a dataset whose recordings carry no labels: it can serve as a
# self-supervised source only (xfer_jax/pretext/sources.py)
UNLABELLED = "<unlabelled>"


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """What a dataset's labels mean and which of them become classes.

  label_names maps the dataset's own ids to names. keep lists the ids that become
  classes, in class order (None: every named id); merge folds one id into
  another before keep applies; every other id is dropped (its samples never
  label a window). null_label is the background id used to cut occurrences.
  """

  name: str
  label_names: Mapping[int, str]
  keep: Sequence[int] | None = None
  merge: Mapping[int, int] = dataclasses.field(default_factory=dict)
  null_label: int | None = None
  rate_hz: float | None = None
  num_subjects: int | None = None

  def __post_init__(self):
    for source, target in self.merge.items():
      for label in (source, target):
        if label not in self.label_names:
          raise DataError(f"dataset {self.name!r}: merge names label {label}, which is not "
                          f"one of its labels {sorted(self.label_names)}")
    for label in self.keep or ():
      if label not in self.label_names:
        raise DataError(f"dataset {self.name!r}: keep names label {label}, which is not one "
                        f"of its labels {sorted(self.label_names)}")

  @property
  def kept_labels(self) -> tuple[int, ...]:
    if self.keep is not None:
      return tuple(self.keep)
    return tuple(sorted(k for k in self.label_names if k not in self.merge))

  @property
  def class_names(self) -> tuple[str, ...]:
    return tuple(self.label_names[k] for k in self.kept_labels)

  @functools.cached_property
  def _class_lut(self) -> np.ndarray:
    """Native id -> class index (-1 dropped, -2 unknown)."""
    merged = np.arange(max(self.label_names) + 1)
    for source, target in self.merge.items():
      merged[source] = target
    lut = np.full(len(merged), -2, np.int32)
    lut[list(self.label_names)] = -1
    for index, label in enumerate(self.kept_labels):
      lut[np.flatnonzero(merged == label)] = index
    return lut

  def class_ids(self, labels: np.ndarray, where: str) -> np.ndarray:
    """Maps native label ids to class indices; dropped ids become -1.

    A label outside label_names is an error naming `where` and the value.
    """
    labels = np.asarray(labels)
    lut = self._class_lut
    inside = (labels >= 0) & (labels < len(lut))
    classes = np.where(inside, lut[np.where(inside, labels, 0)], -2)
    if (classes == -2).any():
      unknown = np.unique(labels[classes == -2])
      raise DataError(f"{where}: label id(s) {unknown.tolist()} are not in the label map of "
                      f"{self.name!r} (known ids: {sorted(self.label_names)})")
    return classes


@dataclasses.dataclass(frozen=True)
class RawDataset:
  """A dataset as read: its spec and its recordings (acceleration in g)."""

  spec: DatasetSpec
  recordings: list[Recording]

  @property
  def hours(self) -> float:
    return sum(r.duration_s for r in self.recordings) / 3600.0
