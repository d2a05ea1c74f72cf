"""From a recording at its own rate to labelled 25 Hz windows.

Order: gap policy (NaN runs and timestamp jumps) -> resampling -> windows. The
split into train/val/test happens between the gap policy and resampling (see
pipeline.py), so no window straddles two subsets.
"""

from __future__ import annotations

import dataclasses
import logging
from fractions import Fraction

import numpy as np

from xfer_jax.data.recording import DataError, Recording


def _slice(rec: Recording, start: int, stop: int, piece: int | None = None) -> Recording:
  t_s = None if rec.t_s is None else rec.t_s[start:stop]
  rid = rec.recording_id if piece is None else f"{rec.recording_id}#{piece}"
  return dataclasses.replace(rec, acc_Tx3=rec.acc_Tx3[start:stop], labels_T=rec.labels_T[start:stop],
                             t_s=t_s, recording_id=rid)


def slice_recording(rec: Recording, start: int, stop: int, piece: int) -> Recording:
  """Samples [start, stop) of a recording, named as its piece-th part."""
  return _slice(rec, start, stop, piece)


def apply_gap_policy(rec: Recording, max_interp_gap_s: float) -> list[Recording]:
  """Interpolates runs of missing samples (NaN or inf) up to max_interp_gap_s; longer
  runs, timestamp jumps longer than that, and time going backwards (a clock reset:
  logged) cut the recording into pieces."""
  acc = rec.acc_Tx3
  if len(acc) == 0:
    raise DataError(f"{rec.recording_id}: the recording has no samples")
  missing = ~np.isfinite(acc).all(axis=1)
  if missing.all():
    raise DataError(f"{rec.recording_id}: every sample is NaN or inf")
  period = rec.nominal_period_s
  max_gap = max(1, int(round(max_interp_gap_s / period)))
  # runs of missing samples: [start, stop)
  edges = np.diff(np.r_[0, missing.astype(np.int8), 0])
  starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
  keep = ~missing
  cut_before = np.zeros(len(acc), bool)  # a new piece starts at this sample
  if rec.t_s is not None:
    dt = np.diff(rec.t_s)
    cut_before[1:] |= dt > max(max_interp_gap_s, 1.5 * period)
    backwards = np.flatnonzero(dt < 0)
    if len(backwards):
      logging.warning("%s: time goes backwards at %d sample(s) (first at sample %d, by %.3g s); "
                      "the recording is cut there", rec.recording_id, len(backwards),
                      backwards[0] + 1, -dt[backwards[0]])
      cut_before[backwards + 1] = True
  for start, stop in zip(starts, stops):  # short interior runs are filled, the rest cut
    if stop - start <= max_gap and start > 0 and stop < len(acc):
      keep[start:stop] = True
  if missing.any():
    acc = acc.copy()
    x = np.arange(len(acc)) if rec.t_s is None else rec.t_s
    for axis in range(3):
      acc[missing, axis] = np.interp(x[missing], x[~missing], acc[~missing, axis])
  rec = dataclasses.replace(rec, acc_Tx3=acc)
  # pieces: maximal runs of kept samples without a cut inside
  boundaries = np.flatnonzero(np.diff(np.r_[0, keep.astype(np.int8), 0]) != 0)
  pieces = []
  for start, stop in zip(boundaries[::2], boundaries[1::2]):
    cuts = [start, *(np.flatnonzero(cut_before[start + 1:stop]) + start + 1), stop]
    for a, b in zip(cuts[:-1], cuts[1:]):
      pieces.append((a, b))
  if len(pieces) == 1 and pieces[0] == (0, len(acc)):
    return [rec]
  return [_slice(rec, a, b, i) for i, (a, b) in enumerate(pieces) if b - a > 1]


def resample(rec: Recording, classes_T: np.ndarray, rate_hz: float
             ) -> tuple[np.ndarray, np.ndarray]:
  """Resamples a gap-free recording to rate_hz: (acc (T',3) float32, classes (T',)).

  Uniform input: polyphase filtering (anti-aliased; the edges padded with a line
  fit so gravity does not ring). Timestamped input: a cubic spline through the
  samples at their timestamps onto a uniform grid at the stream's own median
  rate (linear interpolation would shrink a 2 Hz swing at 20 Hz by 3 %), then the
  same polyphase filter, so a regular ~30 Hz stream is anti-aliased like a
  uniform one. A sample's class is that of the nearest earlier input sample.
  """
  # imported here: a run served from the prepared-data cache never resamples, and
  # scipy.signal is a fifth of a fresh process's imports
  import scipy.interpolate
  import scipy.signal
  if rec.t_s is not None:
    t_s, first = np.unique(rec.t_s, return_index=True)  # repeated timestamps: keep the first
    native = 1.0 / float(np.median(np.diff(t_s))) if len(t_s) > 1 else rate_hz
    # upsampling needs no anti-aliasing: the spline goes straight to rate_hz; a faster
    # stream is splined onto its own rate's grid and filtered down like a uniform one
    grid_hz = native if native > rate_hz * (1 + 1e-6) else rate_hz
    t_grid = np.arange(0.0, t_s[-1] - t_s[0] + 1e-9, 1.0 / grid_hz) + t_s[0]
    if len(t_s) >= 4:
      acc = scipy.interpolate.CubicSpline(t_s, rec.acc_Tx3[first], axis=0)(t_grid)
    else:
      acc = np.stack([np.interp(t_grid, t_s, rec.acc_Tx3[first, k]) for k in range(3)], -1)
    source = np.clip(np.searchsorted(t_s, t_grid, side="right") - 1, 0, len(t_s) - 1)
    if grid_hz == rate_hz:
      return acc.astype(np.float32), classes_T[first][source]
    rec = dataclasses.replace(rec, acc_Tx3=acc, labels_T=rec.labels_T[first][source],
                              rate_hz=grid_hz, t_s=None)
    classes_T = classes_T[first][source]
  ratio = Fraction(rate_hz / rec.rate_hz).limit_denominator(1000)
  if ratio == 1:
    return rec.acc_Tx3.astype(np.float32), classes_T
  acc = scipy.signal.resample_poly(rec.acc_Tx3.astype(np.float64), ratio.numerator,
                                   ratio.denominator, axis=0, padtype="line")
  source = np.minimum((np.arange(len(acc)) * rec.rate_hz / rate_hz + 1e-9).astype(int),
                      rec.num_samples - 1)
  return acc.astype(np.float32), classes_T[source]


LABEL_RULES = ("majority", "center", "labelled_majority")


def make_windows(acc_Tx3: np.ndarray, classes_T: np.ndarray, window: int, step: int,
                 label_rule: str = "majority", min_labelled: float = 0.5
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Windows (N, window, 3) and their class (N,); windows labelled -1 are dropped.

  label_rule:
    majority           the most frequent class, dropped samples (-1) counting as a
                       class of their own: a window mostly of dropped null is dropped
    center             the class of the middle sample
    labelled_majority  the most frequent class among the labelled samples, where
                       they fill at least min_labelled of the window: for gesture
                       datasets, whose 1-2 s gestures sit inside dropped null
                       stretches (registry.py: Skoda); the last window of a piece
                       then ends flush with it
  """
  if label_rule not in LABEL_RULES:
    raise ValueError(f"unknown label_rule {label_rule!r}; expected one of {LABEL_RULES}")
  if len(acc_Tx3) < window:
    return np.zeros((0, window, 3), np.float32), np.zeros((0,), np.int32)
  starts = np.arange(0, len(acc_Tx3) - window + 1, step)
  if label_rule == "labelled_majority" and starts[-1] != len(acc_Tx3) - window:
    # one more window flush with the piece's end: an occurrence split's piece ends
    # with its gesture (the null before it attached), which the step may straddle
    starts = np.r_[starts, len(acc_Tx3) - window]
  x = np.lib.stride_tricks.sliding_window_view(acc_Tx3, window, axis=0)[starts]
  x = np.ascontiguousarray(np.swapaxes(x, 1, 2))
  labels = np.lib.stride_tricks.sliding_window_view(classes_T, window)[starts]
  if label_rule == "center":
    y = labels[:, window // 2]
  else:
    values = np.arange(-1, max(int(labels.max()), 0) + 1)  # -1: dropped samples
    counts = np.stack([(labels == v).sum(axis=1) for v in values], axis=1)
    if label_rule == "majority":
      y = values[counts.argmax(axis=1)]
    else:
      labelled = counts[:, 1:]
      enough = labelled.sum(axis=1) >= min_labelled * window
      y = np.where(enough & (labelled.shape[1] > 0),
                   labelled.argmax(axis=1) if labelled.shape[1] else -1, -1)
  keep = y >= 0
  return x[keep].astype(np.float32), y[keep].astype(np.int32)
