"""Gap policy, resampling and windowing."""

import numpy as np
import pytest

from xfer_jax.data import DataError, Recording
from xfer_jax.data.preprocess import apply_gap_policy, make_windows, resample


def _recording(acc, labels=None, rate=50.0, t_s=None):
  labels = np.zeros(len(acc), np.int32) if labels is None else labels
  return Recording(acc_Tx3=np.asarray(acc, np.float32), labels_T=labels, subject=1,
                   recording_id="r", rate_hz=rate, source_units="g", t_s=t_s)


def _peak(signal, rate):
  spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
  return np.fft.rfftfreq(len(signal), 1 / rate)[np.argmax(spectrum)]


@pytest.mark.parametrize("rate", [100.0, 96.0, 50.0, 32.0, 30.0, 20.0])
def test_resampling_keeps_a_2hz_sine(rate):
  t = np.arange(int(60 * rate)) / rate
  sine = np.sin(2 * np.pi * 2.0 * t)
  rec = _recording(np.stack([sine, sine, np.ones_like(t)], -1), rate=rate)
  acc, _ = resample(rec, np.zeros(len(t), np.int32), 25.0)
  assert abs(len(acc) - 60 * 25) <= 2
  inner = acc[50:-50, 0]  # away from the edges
  assert abs(_peak(inner, 25.0) - 2.0) / 2.0 < 0.02
  amplitude = np.sqrt(2) * inner.std()
  assert abs(amplitude - 1.0) < 0.02
  np.testing.assert_allclose(acc[5:-5, 2], 1.0, atol=0.02)  # gravity does not ring at the edges


def test_resampling_on_irregular_timestamps():
  rng = np.random.default_rng(0)
  t = np.cumsum(rng.choice([0.01, 0.05, 0.05, 0.05], size=1500))
  t -= t[0]
  sine = np.sin(2 * np.pi * 2.0 * t)
  rec = _recording(np.stack([sine, sine, sine], -1), rate=20.0, t_s=t)
  acc, _ = resample(rec, np.zeros(len(t), np.int32), 25.0)
  assert abs(len(acc) - t[-1] * 25) <= 2
  assert abs(_peak(acc[:, 0], 25.0) - 2.0) / 2.0 < 0.02
  assert abs(np.sqrt(2) * acc[:, 0].std() - 1.0) < 0.02


def test_resampling_labels_follow_time():
  labels = np.repeat([3, 5], 500).astype(np.int32)
  rec = _recording(np.zeros((1000, 3)), labels, rate=100.0)
  _, classes = resample(rec, labels, 25.0)
  assert (classes[:125] == 3).all() and (classes[125:] == 5).all()


def test_gap_policy_interpolates_short_and_cuts_long():
  acc = np.tile(np.arange(1000, dtype=float)[:, None], (1, 3))
  acc[100:110] = np.nan  # 0.2 s at 50 Hz: interpolated
  acc[500:600] = np.nan  # 2 s: cut
  pieces = apply_gap_policy(_recording(acc), max_interp_gap_s=0.5)
  assert [p.num_samples for p in pieces] == [500, 400]
  np.testing.assert_allclose(pieces[0].acc_Tx3[100:110, 0], np.arange(100, 110))
  assert not np.isnan(pieces[0].acc_Tx3).any()


def test_gap_policy_cuts_at_timestamp_jumps():
  t = np.r_[np.arange(100) * 0.05, 10 + np.arange(100) * 0.05]
  pieces = apply_gap_policy(_recording(np.zeros((200, 3)), rate=20.0, t_s=t), 0.5)
  assert [p.num_samples for p in pieces] == [100, 100]


def test_all_nan_recording_is_an_error():
  with pytest.raises(DataError, match="r: every sample is NaN"):
    apply_gap_policy(_recording(np.full((10, 3), np.nan)), 0.5)


def test_windows_majority_and_dropped_labels():
  acc = np.arange(300, dtype=np.float32)[:, None].repeat(3, 1)
  classes = np.r_[np.zeros(140), np.ones(60), -np.ones(100)].astype(np.int32)
  x, y = make_windows(acc, classes, window=100, step=50)
  # windows start at 0, 50, 100, 150, 200: [100, 200) is 60 % class 1; [150, 250) ties
  # class 1 with dropped samples and is dropped, as is the all-dropped last window
  assert x.shape == (3, 100, 3)
  np.testing.assert_array_equal(y, [0, 0, 1])
  np.testing.assert_array_equal(x[:, 0, 0], [0, 50, 100])
  x_center, y_center = make_windows(acc, classes, 100, 50, label_rule="center")
  np.testing.assert_array_equal(x_center[:, 0, 0], [0, 50, 100])  # centre of [150, 250) dropped
  np.testing.assert_array_equal(y_center, [0, 0, 1])
  with pytest.raises(ValueError, match="unknown label_rule 'mode'"):
    make_windows(acc, classes, 100, 50, label_rule="mode")
