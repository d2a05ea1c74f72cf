"""Primary contrasts (xfer_jax/study/contrasts.py) on simulated studies whose truth is known."""

import numpy as np
import pytest

from xfer_jax.grid.records import Record
from xfer_jax.study import contrasts
from xfer_jax.study.contrasts import Arm, Contrast, ContrastError, Design

# points^2: the cell's, the seed's and the residual spread of a difference
COMPONENTS = {"cell": 4.0, "replicate": 4.0, "residual": 16.0}


def _differences(rng, effect, cells=8, replicates=5, components=COMPONENTS):
  cell = rng.normal(0, np.sqrt(components["cell"]), cells)
  seed = rng.normal(0, np.sqrt(components["replicate"]), replicates)
  return [{"cell": (c,), "replicate": (0, s),
           "difference": effect + cell[c] + seed[s] + rng.normal(0, np.sqrt(components["residual"]))}
          for c in range(cells) for s in range(replicates)]


def _rejects(rng, effect, studies, alpha=0.05, **design):
  hits = 0
  for _ in range(studies):
    result = contrasts.estimate(_differences(rng, effect, **design))
    hits += contrasts.test(result, 2.0, alpha)["p"] < alpha
  return hits / studies


def test_a_planted_effect_is_found_and_its_size_recovered():
  rng = np.random.default_rng(0)
  rows = _differences(rng, 3.0, cells=12, replicates=20, components={
      "cell": 1.0, "replicate": 1.0, "residual": 4.0})
  result = contrasts.estimate(rows)
  tested = contrasts.test(result, 1.0, 0.05)
  assert abs(result["estimate"] - 3.0) < 2 * result["se"]
  assert tested["p"] < 1e-4 and result["cells"] == 12 and result["replicates"] == 20


def test_without_an_effect_false_positives_stay_near_alpha():
  """Five seeds, eight cells, 200 simulated studies: the t with Satterthwaite's
  degrees of freedom keeps the rate at or under alpha (2 % here; the normal in its
  place rejects 8 % of these studies)."""
  rate = _rejects(np.random.default_rng(1), 0.0, 200)
  assert 0.005 <= rate <= 0.065


def test_a_zero_effect_is_equivalent_at_a_generous_margin_and_inconclusive_at_a_tight_one():
  rng = np.random.default_rng(2)
  contrast = Contrast("zero", Arm("a"), Arm("baseline"))
  records = []
  for seed in range(10):
    for target in ("t1", "t2", "t3"):
      base = 0.5 + rng.normal(0, 0.02)
      records.append(_record("baseline", None, seed, base, target, blocks=0))
      records.append(_record("a", "s", seed, base + rng.normal(0, 0.01), target))
  generous = contrasts.analyse(records, Design((contrast,), margin=5.0))
  assert [r["verdict"] for r in generous if r["metric"] == "micro_f1"] == ["equivalent"]
  tight = contrasts.analyse(records, Design((contrast,), margin=0.05))
  assert [r["verdict"] for r in tight if r["metric"] == "micro_f1"] == ["inconclusive"]
  # an arm still to run: said so, and left out of the Holm family until it has
  later = Contrast("later", Arm("b"), Arm("baseline"))
  rows = contrasts.analyse(records, Design((contrast, later), margin=5.0))
  assert [r["verdict"] for r in rows if r["metric"] == "micro_f1"] == ["equivalent",
                                                                         "no records yet"]


def test_the_projected_minimum_detectable_effect_matches_simulation():
  """At the MDE the projection prints for 8 cells x 5 seeds, the simulated power is
  80 %: below it at 0.8 x MDE, above it at 1.2 x MDE (the 80 %-power effect lies
  within 20 % of the projection)."""
  mde = contrasts.minimum_detectable(COMPONENTS, cells=8, replicates=5, family=1)
  rng = np.random.default_rng(3)
  assert _rejects(rng, 0.8 * mde, 150) < contrasts.POWER < _rejects(rng, 1.2 * mde, 150)


def test_more_replicates_shrink_the_detectable_effect_down_to_the_cells_spread():
  one = contrasts.minimum_detectable(COMPONENTS, 8, 5, 4)
  assert contrasts.minimum_detectable(COMPONENTS, 8, 20, 4) < one
  needed = contrasts.replicates_needed(COMPONENTS, 8, 4, target=0.6 * one)
  assert needed is not None and contrasts.minimum_detectable(COMPONENTS, 8, needed, 4) <= 0.6 * one
  assert contrasts.minimum_detectable(COMPONENTS, 8, needed - 1, 4) > 0.6 * one
  # the cells' own spread does not average away over seeds: a tiny target is out of reach
  assert contrasts.replicates_needed(COMPONENTS, 8, 4, target=0.1, limit=200) is None


def _record(strategy, source, seed, value, target="t", size=20, blocks=3):
  return Record(config_key="k", target=target, source=source, size=size, blocks=blocks,
                mode=strategy, seed=seed, micro_f1=value, macro_f1=value, majority_micro_f1=0.1,
                majority_macro_f1=0.1, epochs=10, best_epoch=5, strategy=strategy)


def test_bad_designs_are_one_line_errors():
  with pytest.raises(ContrastError, match="the primary family is empty"):
    Design((), margin=2.0)
  with pytest.raises(ContrastError, match=r"margin delta=0.0: expected a positive"):
    Design((Contrast("c", Arm("a"), Arm("baseline")),), margin=0.0)
  records = [_record("a", "s", 0, 0.5, target="t1"), _record("baseline", None, 0, 0.4,
                                                             target="t2", blocks=0)]
  with pytest.raises(ContrastError, match="share no cell"):
    contrasts.differences(records, Contrast("c", Arm("a"), Arm("baseline")))
  with pytest.raises(ContrastError, match="arm b has no records"):
    contrasts.differences(records, Contrast("c", Arm("a"), Arm("b")))
  with pytest.raises(ContrastError, match=r"1 replicate\(s\)"):
    contrasts.estimate([{"cell": (0,), "replicate": (0, 0), "difference": 1.0}])


def test_pairs_follow_the_coordinates_neither_arm_fixes():
  """zeros vs random head: the same source and k pair; against the baseline only
  target, size and seed do."""
  records = [_record(s, src, seed, 0.5 + 0.1 * (s == "zeros"), blocks=k)
             for s in ("zeros", "random") for src in ("w", "pooled") for k in (1, 3)
             for seed in range(3)]
  rows = contrasts.differences(records, Contrast("head", Arm("zeros"), Arm("random")))
  assert len(rows) == 12 and all(r["difference"] == pytest.approx(10.0) for r in rows)
  records += [_record("baseline", None, seed, 0.4, blocks=0) for seed in range(3)]
  rows = contrasts.differences(records, Contrast("z", Arm("zeros", "w", 3), Arm("baseline")))
  assert len(rows) == 3 and all(r["difference"] == pytest.approx(20.0) for r in rows)
  with pytest.raises(ContrastError, match="name its source or k"):  # zeros has w and pooled
    contrasts.differences(records, Contrast("z", Arm("random", "w"), Arm("zeros")))
