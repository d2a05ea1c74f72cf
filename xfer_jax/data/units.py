"""Plausibility checks of units and rate: a wrist accelerometer at rest or in daily
motion measures gravity, so the median |a| of a recording is near 1 g; and a wrist
moves slowly, so little of its motion's power lies above 12.5 Hz (data declared at
ten times its rate puts most of it there).

A file in m/s^2 labelled as g reads ~9.8 "g", raw int16 counts read hundreds, a
zero scale reads 0: each would train without complaint on garbage. Datasets whose
acceleration has gravity removed (linear acceleration) fail this check by design:
set config.data.check_units=False for them (or "check_units": False in their
entry's preprocess).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from xfer_jax.data.recording import DataError, RawDataset

# median |a| of a recording, in g: real recordings span 0.5-2.3 g (vigorous jumping
# in Berkeley MHAD), unit mistakes are a factor of ~10 or more away (m/s^2: 9.8)
PLAUSIBLE_G = (0.3, 4.0)
_CONVERSION = {"interchange": "the file's to_g_scale and to_g_offset keys"}


def check_samples(raw: RawDataset, entry: Mapping, max_abs_g: float) -> None:
  """An error naming the file, the recording and the time of the first sample whose
  |a| on any axis exceeds max_abs_g (0: no check): a wrist sensor's range is a few
  tens of g at most, so such a sample is a glitch or a unit error, and one of them
  overflows the model's first layers into NaN."""
  if not max_abs_g:
    return
  for r in raw.recordings:
    # NaN and inf are missing data, for the gap policy: only finite samples are judged
    finite = np.where(np.isfinite(r.acc_Tx3), np.abs(r.acc_Tx3), 0.0)
    over = np.flatnonzero(finite.max(axis=1, initial=0.0) > max_abs_g)
    if len(over):
      i = int(over[0])
      when = (f"{r.t_s[i]:.2f} s" if r.t_s is not None else
              f"{i / r.rate_hz:.2f} s" if r.rate_hz else f"sample {i}")
      raise DataError(
          f"{entry.get('path') or entry['name']}: recording {r.recording_id}: at {when} "
          f"(sample {i}) the acceleration reads {r.acc_Tx3[i].tolist()} g, beyond "
          f"config.data.max_abs_g={max_abs_g:g} g ({len(over)} such sample(s) in this "
          "recording): a sensor glitch or a unit error. Fix the file, or raise "
          "data.max_abs_g (0: no check)")


def median_g(acc_Tx3: np.ndarray) -> float:
  norm = np.linalg.norm(acc_Tx3.astype(np.float64), axis=1)
  norm = norm[np.isfinite(norm)]
  return float(np.median(norm)) if len(norm) else float("nan")


# a wrist's motion has little power above 12.5 Hz (the real datasets: a median share
# of 0-5 % over their recordings); declared at ten times its true rate, the same data
# put 56-83 % there
FAST_HZ, FAST_SHARE = 12.5, 0.3


def fast_share(acc_Tx3: np.ndarray, rate_hz: float) -> float | None:
  """The share of |a|'s power (DC removed) above FAST_HZ; None for a short recording."""
  # float64: a glitch of 1e30 g squares past float32 (with data.max_abs_g=0 it gets here)
  norm = np.linalg.norm(np.nan_to_num(acc_Tx3.astype(np.float64), posinf=0.0, neginf=0.0),
                        axis=1)
  if len(norm) < 64 or rate_hz <= 2 * FAST_HZ:
    return None
  power = np.abs(np.fft.rfft(norm - norm.mean())) ** 2
  freqs = np.fft.rfftfreq(len(norm), 1.0 / rate_hz)
  total = power[freqs > 0.1].sum()
  return float(power[freqs > FAST_HZ].sum() / total) if total > 0 else None


def check_rate(raw: RawDataset, entry: Mapping) -> None:
  """An error where the recordings' motion sits mostly above FAST_HZ: a sampling
  rate declared higher than the data's (its windows would hold a fraction of the
  seconds they claim)."""
  shares = []
  for r in raw.recordings:
    rate = r.rate_hz or (1.0 / float(np.median(np.diff(r.t_s))) if r.t_s is not None and
                         len(r.t_s) > 1 else 0.0)
    share = fast_share(r.acc_Tx3, rate) if rate else None
    if share is not None:
      shares.append((share, rate))
  if not shares:
    return
  median = float(np.median([share for share, _ in shares]))
  if median > FAST_SHARE:
    rates = sorted({round(rate, 3) for _, rate in shares})
    raise DataError(
        f"{entry.get('path') or entry['name']}: its recordings put {median:.0%} of their "
        f"motion's power above {FAST_HZ:g} Hz (median over {len(shares)} recordings), where a "
        f"worn accelerometer's motion has little (real datasets: under 15 %): is the sampling "
        f"rate right? Declared {rates} Hz; a rate ten times too high reads so. Fix the file's "
        "rate (interchange: sampling_rate_hz), or set config.data.check_units=False")


def check(raw: RawDataset, entry: Mapping) -> None:
  """An error naming the dataset's file, the implausible recordings and the
  conversion to g to check, where a recording's median |a| is outside PLAUSIBLE_G;
  then the rate's plausibility (check_rate)."""
  low, high = PLAUSIBLE_G
  bad = [(r.recording_id, median_g(r.acc_Tx3)) for r in raw.recordings]
  # a recording without finite samples is left to the gap policy to report
  bad = [(rid, g) for rid, g in bad if np.isfinite(g) and not low <= g <= high]
  if not bad:
    check_rate(raw, entry)
    return
  shown = ", ".join(f"{rid}: {g:.3g} g" for rid, g in bad[:5])
  more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
  conversion = _CONVERSION.get(entry["reader"], f"the {entry['reader']} reader's conversion to g")
  raise DataError(
      f"{entry.get('path') or entry['name']}: {len(bad)} of {len(raw.recordings)} recording(s) "
      f"have a median |acceleration| outside {low}-{high} g ({shown}{more}); a worn "
      f"accelerometer reads about 1 g of gravity. Check {conversion} (m/s^2 need a scale of "
      f"1/9.80665, raw counts the sensor's counts per g), or set config.data.check_units=False "
      "if gravity was removed from this data")
