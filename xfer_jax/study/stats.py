"""Statistics that tell a gain from noise, over the few seeds of a grid's cells.

A transfer cell and the baseline of its target and size share each seed's
adaptation windows, so a gain is measured per seed and the seeds are the
replicates: a paired t-test on the per-seed gains (scipy's ttest_rel), and a
t-interval for means and gains. A grid makes many such comparisons at once, so
the p-values are Holm-corrected over the grid's transfer cells (family-wise error
at `ALPHA`), and only corrected p-values below it count as a significant win or
loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as scipy_stats

ALPHA = 0.05
CORRECTION = "Holm"


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float | None]:
  """(mean, half-width of its t-interval); None with fewer than 2 values."""
  values = np.asarray(values, float)
  if len(values) < 2:
    return float(values.mean()), None
  sem = values.std(ddof=1) / np.sqrt(len(values))
  return float(values.mean()), float(scipy_stats.t.ppf(0.5 + level / 2, len(values) - 1) * sem)


def paired_p(treated: Sequence[float], control: Sequence[float]) -> float | None:
  """Two-sided p of the paired t-test of treated against control (same seeds in
  the same order); None where the test is undefined: fewer than 2 pairs, or
  identical per-seed differences (no spread to judge them by; micro-F1 on one test
  split is discrete, so two seeds can tie). An untested cell is never significant."""
  diffs = np.asarray(treated, float) - np.asarray(control, float)
  if len(diffs) < 2 or np.all(diffs == diffs[0]):
    return None
  return float(scipy_stats.ttest_rel(treated, control).pvalue)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
  """Holm's step-down adjustment of a family of p-values (None: not tested, left
  out of the family). Adjusted p_(i) = max over j <= i of min(1, (m - j + 1) p_(j))."""
  tested = [(p, i) for i, p in enumerate(p_values) if p is not None]
  adjusted: list[float | None] = [None] * len(p_values)
  running, m = 0.0, len(tested)
  for rank, (p, i) in enumerate(sorted(tested)):
    running = max(running, min(1.0, (m - rank) * p))
    adjusted[i] = running
  return adjusted


def smallest_detectable(gain_sd: float, n: int, family: int, alpha: float = ALPHA) -> float:
  """The smallest mean gain over n paired seeds, with per-seed gains spread by
  gain_sd, that Holm's strictest step (p < alpha / family, the first test of a
  family of `family`) can call significant, with half power: what a grid of this
  size can detect at best. xfer_jax/study/contrasts.py projects a declared contrast's
  80 %-power difference."""
  return float(scipy_stats.t.ppf(1 - alpha / (2 * family), n - 1) * gain_sd / np.sqrt(n))


def verdict(gain: float | None, p_adjusted: float | None, alpha: float = ALPHA) -> str:
  """"win" / "loss" where the corrected test rejects no difference, else ""."""
  if gain is None or p_adjusted is None or p_adjusted >= alpha:
    return ""
  return "win" if gain > 0 else "loss"
