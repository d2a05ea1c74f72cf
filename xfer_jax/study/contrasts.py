"""Questions declared before the records: primary contrasts, their estimates over
every cell they span, equivalence within a margin, and the power to tell.

A contrast compares two arms of a study (`Arm`: a strategy grid, optionally one
source label and k). Records pair by target, size, fold and seed (and by source
and k where neither arm fixes them and the control is not the baseline): each
pair is one difference, in points. The estimate is the intercept of a linear
mixed model with crossed random effects for the cell (target, size, source, k)
and the replicate (fold, seed), fitted by REML with statsmodels: a seed's windows
and initialisation move every cell it runs, and the cells are a sample of the
targets and sizes the question is about. Its p and 95 % interval use a t
distribution with Satterthwaite's degrees of freedom, not the normal: with five
seeds the normal is too lenient (the false-positive test in tests/test_contrasts.py).

Each contrast reads (alpha, Holm over the declared family):
  better / worse   the Holm-adjusted p of "no difference" is below alpha;
  equivalent       else, if both one-sided tests against the margin +-delta reject
                   (TOST: the 90 % interval lies inside +-delta);
  inconclusive     neither: the study could not tell.
Per-cell tables elsewhere in a summary are exploratory.

Power: `minimum_detectable` is the smallest true difference the design finds with
80 % power at Holm's strictest step (alpha / family), from the variance components
of existing records (`variance_components`) and the planned cells and replicates.
"""

from __future__ import annotations

import collections
import dataclasses
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats as scipy_stats

from xfer_jax.errors import UserError
from xfer_jax.grid.records import METRICS, Record
from xfer_jax.study import stats
from xfer_jax.transfer import BASELINE

POWER = 0.8


class ContrastError(UserError, ValueError):
  """A contrast that cannot be estimated; the message names it and the numbers."""


class EmptyArm(ContrastError):
  """An arm without records (yet: a study in progress)."""


@dataclasses.dataclass(frozen=True)
class Arm:
  """Records of a study: a strategy grid, and within it one source label (the
  study's: "wisdm2019", "pooled", "simclr:own") and k where given."""

  strategy: str
  source: str | None = None
  blocks: int | None = None

  def matches(self, record: Record) -> bool:
    return (record.strategy == self.strategy
            and (self.source is None or record.arm_source == self.source)
            and (self.blocks is None or record.blocks == self.blocks))

  def __str__(self) -> str:
    return ", ".join(str(v) for v in (self.strategy, self.source, self.blocks) if v is not None)


@dataclasses.dataclass(frozen=True)
class Contrast:
  name: str
  treated: Arm
  control: Arm

  @classmethod
  def from_dict(cls, entry: Mapping) -> Contrast:
    try:
      return cls(entry["name"], Arm(**entry["treated"]), Arm(**entry["control"]))
    except (KeyError, TypeError) as e:
      raise ContrastError(f"primary contrast {entry!r}: expected name, treated and control "
                          f"(each with strategy, and optionally source and blocks) ({e})") from e


@dataclasses.dataclass(frozen=True)
class Design:
  """A study's declaration: its primary contrasts, the margin delta (points) within
  which a difference counts as none, and alpha."""

  contrasts: tuple[Contrast, ...]
  margin: float
  alpha: float = stats.ALPHA

  def __post_init__(self):
    if not self.contrasts:
      raise ContrastError("the primary family is empty: declare at least one contrast")
    if not self.margin > 0:
      raise ContrastError(f"margin delta={self.margin}: expected a positive number of points")
    names = [c.name for c in self.contrasts]
    if len(set(names)) != len(names):
      raise ContrastError(f"primary contrasts {names}: names must be distinct")

  @classmethod
  def from_dict(cls, declared: Mapping) -> Design:
    return cls(tuple(Contrast.from_dict(c) for c in declared.get("primary", ())),
               float(declared.get("margin", 0.0)), float(declared.get("alpha", stats.ALPHA)))


def differences(records: Sequence[Record], contrast: Contrast, metric: str = "micro_f1"
                ) -> list[dict]:
  """One row per paired (treated, control) record: cell, replicate, difference in
  points. Records carry their strategy (the study's grid)."""
  treated = [r for r in records if contrast.treated.matches(r)]
  control = [r for r in records if contrast.control.matches(r)]
  if not treated or not control:
    empty = contrast.treated if not treated else contrast.control
    raise EmptyArm(f"contrast {contrast.name!r}: arm {empty} has no records")
  against_baseline = contrast.control.strategy == BASELINE
  free = [f for f, fixed in (("arm_source", "source"), ("blocks", "blocks"))
          if not against_baseline and getattr(contrast.treated, fixed) is None
          and getattr(contrast.control, fixed) is None]
  key = lambda r: (r.target, r.size, r.fold or 0, r.seed, *(getattr(r, f) for f in free))
  by_key = collections.defaultdict(list)
  for r in control:
    by_key[key(r)].append(r)
  ambiguous = [k for k, rs in by_key.items() if len(rs) > 1]
  if ambiguous:
    raise ContrastError(f"contrast {contrast.name!r}: the control arm {contrast.control} has "
                        f"{len(by_key[ambiguous[0]])} records for one target, size and seed "
                        f"{ambiguous[0][:4]}; name its source or k")
  rows = []
  for r in treated:
    match = by_key.get(key(r))
    if match:
      rows.append({"cell": (r.target, r.size, r.arm_source, r.blocks),
                   "replicate": (r.fold or 0, r.seed),
                   "difference": 100.0 * (r.metric(metric) - match[0].metric(metric))})
  if not rows:
    raise ContrastError(f"contrast {contrast.name!r}: arms {contrast.treated} and "
                        f"{contrast.control} share no cell (target, size and seed)")
  return rows


def satterthwaite_df(components: Mapping, cells: int, replicates: int) -> float:
  """Degrees of freedom of the mean's variance in a balanced cells x replicates design,
  (MS_cell + MS_replicate - MS_residual) / (cells x replicates), by Satterthwaite's
  approximation from the mean squares the variance components imply. With one cell
  or one replicate factor it falls back on replicates - 1."""
  c, r = cells, replicates
  if c < 2 or r < 2:
    return float(max(r - 1, 1))
  ms_cell = r * components["cell"] + components["residual"]
  ms_rep = c * components["replicate"] + components["residual"]
  ms_res = components["residual"]
  numerator = (ms_cell + ms_rep - ms_res) ** 2
  denominator = ms_cell ** 2 / (c - 1) + ms_rep ** 2 / (r - 1) + ms_res ** 2 / ((c - 1) * (r - 1))
  return float(np.clip(numerator / denominator, 1.0, c * r - 1)) if denominator > 0 else c * r - 1.0


def _fit(rows: Sequence[Mapping]):
  """The REML fit of d ~ 1 + (1 | cell) + (1 | replicate), crossed."""
  import pandas as pd
  import statsmodels.formula.api as smf
  cells = sorted({r["cell"] for r in rows})
  replicates = sorted({r["replicate"] for r in rows})
  frame = pd.DataFrame({"d": [r["difference"] for r in rows],
                        "cell": [cells.index(r["cell"]) for r in rows],
                        "replicate": [replicates.index(r["replicate"]) for r in rows]})
  with warnings.catch_warnings():  # a variance component at its boundary (0) is an answer
    warnings.simplefilter("ignore")
    fit = smf.mixedlm("d ~ 1", frame, groups=np.ones(len(frame)), re_formula="0",
                      vc_formula={"cell": "0 + C(cell)", "replicate": "0 + C(replicate)"}
                      ).fit(reml=True)
  names = list(fit.model.exog_vc.names)
  components = {"cell": float(fit.vcomp[names.index("cell")]),
                "replicate": float(fit.vcomp[names.index("replicate")]),
                "residual": float(fit.scale)}
  return fit, components


def estimate(rows: Sequence[Mapping]) -> dict:
  """The mean difference over cells and replicates, its standard error and degrees
  of freedom: the mixed model's intercept (crossed random effects for cell and
  replicate), or with one cell the mean over replicates."""
  cells = sorted({r["cell"] for r in rows})
  replicates = sorted({r["replicate"] for r in rows})
  d = np.array([r["difference"] for r in rows])
  df = len(replicates) - 1
  if df < 1:
    raise ContrastError(f"{len(replicates)} replicate(s): an estimate needs at least 2 seeds")
  if len(cells) == 1 or np.allclose(d, d[0]):
    se = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
    return {"estimate": float(d.mean()), "se": se, "df": df, "cells": len(cells),
            "replicates": len(replicates)}
  fit, components = _fit(rows)
  return {"estimate": float(fit.fe_params.iloc[0]), "se": float(fit.bse_fe.iloc[0]),
          "df": satterthwaite_df(components, len(cells), len(replicates)), "cells": len(cells),
          "replicates": len(replicates)}


def test(result: Mapping, margin: float, alpha: float) -> dict:
  """p of no difference, the 95 % half-width, and TOST's p against +-margin."""
  estimate, se, df = result["estimate"], result["se"], result["df"]
  t = scipy_stats.t(df)
  if se == 0:
    p = 0.0 if estimate != 0 else 1.0
    tost = 0.0 if abs(estimate) < margin else 1.0
  else:
    p = float(2 * t.sf(abs(estimate) / se))
    tost = float(max(t.sf((estimate + margin) / se), t.sf((margin - estimate) / se)))
  return {"ci95": float(t.ppf(0.975) * se), "p": p, "p_equivalence": tost}


def verdict(estimate: float, p_holm: float, p_equivalence_holm: float, alpha: float) -> str:
  if p_holm < alpha:
    return "better" if estimate > 0 else "worse"
  if p_equivalence_holm < alpha:
    return "equivalent"
  return "inconclusive"


def analyse(records: Sequence[Record], design: Design) -> list[dict]:
  """Every primary contrast on every metric: estimate, interval, Holm-adjusted p
  (over the contrasts of one metric) and verdict. A contrast one of whose arms has
  no records yet reads "no records yet" (Holm then adjusts over the others, so its
  p-values are provisional until every arm has run)."""
  rows = []
  for metric in METRICS:
    family = []
    for contrast in design.contrasts:
      try:
        result = estimate(differences(records, contrast, metric))
      except EmptyArm:
        family.append({"contrast": contrast.name, "metric": metric, "estimate": None,
                       "se": None, "df": None, "cells": 0, "replicates": 0, "ci95": None,
                       "p": None, "p_equivalence": None})
        continue
      family.append({"contrast": contrast.name, "metric": metric, **result,
                     **test(result, design.margin, design.alpha)})
    for row, p, q in zip(family, stats.holm([r["p"] for r in family]),
                         stats.holm([r["p_equivalence"] for r in family])):
      row.update(p_holm=p, p_equivalence_holm=q,
                 verdict="no records yet" if row["estimate"] is None else
                 verdict(row["estimate"], p, q, design.alpha))
    rows += family
  return rows


# -- power ---------------------------------------------------------------------------

def variance_components(rows: Sequence[Mapping]) -> dict:
  """Variances (points^2) of the cell effect, the replicate effect and the residual,
  from one contrast's differences (REML)."""
  return _fit(rows)[1]


def standard_error(components: Mapping, cells: int, replicates: int) -> float:
  """The standard error of the mean difference of a balanced design of `cells`
  cells, each run on the same `replicates` replicates."""
  return float(np.sqrt(components["cell"] / cells + components["replicate"] / replicates
                       + components["residual"] / (cells * replicates)))


def minimum_detectable(components: Mapping, cells: int, replicates: int, family: int,
                       alpha: float = stats.ALPHA, power: float = POWER) -> float:
  """The smallest true difference (points) found with `power` at alpha / family."""
  if replicates < 2:
    raise ContrastError(f"replicates={replicates}: a design needs at least 2 seeds x folds")
  t = scipy_stats.t(satterthwaite_df(components, cells, replicates))
  return float((t.ppf(1 - alpha / (2 * family)) + t.ppf(power))
               * standard_error(components, cells, replicates))


def replicates_needed(components: Mapping, cells: int, family: int, target: float,
                      alpha: float = stats.ALPHA, power: float = POWER,
                      limit: int = 1000) -> int | None:
  """The fewest replicates (seeds x folds) whose minimum detectable difference is at
  most `target` points; None where even `limit` do not reach it (the cells' own
  spread, which more seeds cannot average away, is larger)."""
  for n in range(2, limit + 1):
    if minimum_detectable(components, cells, n, family, alpha, power) <= target:
      return n
  return None
