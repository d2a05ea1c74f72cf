"""The report's statistics: paired tests over seeds, Holm's correction, intervals,
and which cells the report marks as significant."""

import re

import numpy as np
import pytest
from scipy import stats as scipy_stats

from xfer_jax.grid.records import Record
from xfer_jax.study import report, stats


def test_paired_p_and_interval_match_scipy():
  treated, control = [0.61, 0.58, 0.66, 0.59, 0.63], [0.52, 0.55, 0.57, 0.50, 0.58]
  assert stats.paired_p(treated, control) == pytest.approx(
      scipy_stats.ttest_rel(treated, control).pvalue, rel=1e-12)
  mean, half = stats.mean_ci(treated)
  low, high = scipy_stats.t.interval(0.95, 4, loc=np.mean(treated), scale=scipy_stats.sem(treated))
  assert (mean - half, mean + half) == pytest.approx((low, high), rel=1e-12)
  assert stats.paired_p([0.5], [0.4]) is None and stats.mean_ci([0.5]) == (0.5, None)
  # no spread in the differences: the test is undefined, the cell untested
  assert stats.paired_p([0.6, 0.7], [0.5, 0.6]) is None
  assert stats.paired_p([0.6, 0.7], [0.6, 0.7]) is None


def test_holm_against_its_definition():
  p = [0.01, 0.04, None, 0.03, 0.005]
  # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): x4, x3, x2, x1, then running maxima
  assert stats.holm(p) == pytest.approx([0.03, 0.06, None, 0.06, 0.02])
  rng = np.random.default_rng(0)
  for _ in range(20):
    values = list(rng.uniform(0, 0.2, 7))
    order = np.argsort(values)
    expected = np.maximum.accumulate([min(1, (7 - k) * values[i]) for k, i in enumerate(order)])
    got = stats.holm(values)
    assert [got[i] for i in order] == pytest.approx(list(expected))


def _records(gains_by_source, seeds=5, base=0.5):
  """A grid of one target, sizes 20 and 100: the baseline with seed noise, and per
  source a cell whose seed s scores the baseline's seed s plus gain(s)."""
  rng = np.random.default_rng(1)
  out = []
  for size in (20, 100):
    noise = rng.normal(0, 0.03, seeds)
    for seed in range(seeds):
      baseline = {"config_key": "k", "target": "t", "source": None, "size": size, "blocks": 0,
                  "mode": "baseline", "seed": seed, "micro_f1": base + noise[seed],
                  "macro_f1": base + noise[seed], "majority_micro_f1": 0.2,
                  "majority_macro_f1": 0.05, "epochs": 10, "best_epoch": 5}
      out.append(Record(**baseline))
      for source, gain in gains_by_source.items():
        value = baseline["micro_f1"] + gain(seed)
        out.append(Record(**{**baseline, "source": source, "blocks": 1,
                             "mode": "freeze_k_copy_rest", "micro_f1": value, "macro_f1": value}))
  return out


def test_a_clear_gain_is_marked_and_noise_is_not(tmp_path):
  rng = np.random.default_rng(2)
  jitter = rng.normal(0, 0.04, 100)
  records = _records({"good": lambda s: 0.15 + 0.01 * (s % 2),  # better in every seed
                      "bad": lambda s: -0.12 - 0.01 * (s % 3),
                      "noise": lambda s: jitter[s]})
  rows = {(r["source"], r["size"]): r for r in report.aggregate(records)}
  assert rows[("good", 20)]["micro_f1_verdict"] == "win"
  assert rows[("bad", 100)]["micro_f1_verdict"] == "loss"
  assert rows[("noise", 20)]["micro_f1_verdict"] == rows[("noise", 100)]["micro_f1_verdict"] == ""
  assert rows[("baseline", 20)]["micro_f1_p"] is None  # the baseline is not tested
  # the family is the grid's 6 transfer cells: Holm's p is at least the raw p
  tested = [r for r in rows.values() if r["micro_f1_p"] is not None]
  assert len(tested) == 6 and all(r["micro_f1_p_holm"] >= r["micro_f1_p"] for r in tested)
  (tmp_path / "run").mkdir()
  from xfer_jax.grid import results
  results.append(tmp_path / "run" / "results.jsonl", records)
  written = report.write(tmp_path / "run", [tmp_path / "run"])
  assert open(written["gains"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
  summary = open(written["summary"]).read()
  assert "Significant wins: 2; significant losses: 2; of 6 transfer cells" in summary
  assert "Holm-corrected" in summary


def test_a_raw_p_below_alpha_can_fail_after_correction():
  # five equal p-values of 0.02: Holm multiplies the smallest by 5
  adjusted = stats.holm([0.02] * 5)
  assert adjusted == pytest.approx([0.1] * 5)
  assert stats.verdict(0.1, adjusted[0]) == "" and stats.verdict(0.1, 0.01) == "win"


def test_a_grid_of_noise_says_so_plainly(tmp_path):
  rng = np.random.default_rng(3)
  jitter = rng.normal(0, 0.05, 10)
  records = _records({"s": lambda seed: jitter[seed]}, seeds=2)
  from xfer_jax.grid import results
  (tmp_path / "run").mkdir()
  results.append(tmp_path / "run" / "results.jsonl", records)
  summary = open(report.write(tmp_path / "run", [tmp_path / "run"])["summary"]).read()
  assert "Significant wins: 0; significant losses: 0; of 2 transfer cells" in summary
  assert "No transfer cell differs significantly from its baseline: with 2 seed(s)" in summary
  # with 2 seeds (1 degree of freedom) no gain an F1 can make would count: said plainly,
  # with the uncorrected count beside it
  assert ("This family cannot detect anything: with 2 seeds per cell and each cell's own "
          "spread of per-seed gains, Holm's first test of its 2 cells (p < 0.05/2) would need "
          "a mean gain of more than 100 points in most cells, which F1 cannot reach: run more "
          "seeds.") in summary
  assert "at least over 100" not in summary
  assert re.search(r"Uncorrected, \d of the 2 cells have p < 0.05 \(\d higher, \d lower\), "
                   r"against 0.1 expected", summary)


def test_the_smallest_detectable_gain_is_where_holms_first_step_rejects():
  # per-seed gains with mean d and spread s: at d = smallest_detectable(s, n, m), the
  # paired test's p is exactly alpha / m, the threshold of Holm's first step
  base = np.array([0.010, -0.020, 0.015, -0.005, 0.0])
  spread = base.std(ddof=1)
  for family in (1, 12, 250):
    d = stats.smallest_detectable(spread, 5, family)
    p = stats.paired_p(base + d, np.zeros(5))
    assert p == pytest.approx(stats.ALPHA / family, rel=1e-9)
  assert stats.smallest_detectable(spread, 5, 250) > 3 * stats.smallest_detectable(spread, 5, 1)
