"""A study's comparisons, each paired per seed (or fold and seed) against the
baseline grid's same windows and Holm-corrected within its own family."""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence

import numpy as np

from xfer_jax.grid.records import Record, source_label
from xfer_jax.pretext import sources as pretext_sources
from xfer_jax.study import stats
from xfer_jax.transfer import BASELINE, WHOLE_MODEL_MODES


def seed_values(records: Sequence[Record], field: str = "micro_f1") -> dict[tuple, dict]:
  """{(strategy, target, source, size, blocks): {replicate: the record's field}}, a
  replicate being a seed (Record.replicate: (fold, seed) where a study runs folds)."""
  out: dict[tuple, dict] = collections.defaultdict(dict)
  for r in records:
    out[(r.strategy, *r.cell)][r.replicate] = getattr(r, field)
  return out


def paired(a: Mapping[int, float], b: Mapping[int, float]) -> dict:
  """a - b over their common seeds: mean, 95 % half-width, p (paired t)."""
  seeds = sorted(set(a) & set(b))
  diffs = [a[s] - b[s] for s in seeds]
  mean, ci = stats.mean_ci(diffs) if diffs else (None, None)
  return {"diff": mean, "ci95": ci, "p": stats.paired_p([a[s] for s in seeds],
                                                         [b[s] for s in seeds]),
          "seeds": len(seeds)}


def corrected(rows: list[dict]) -> list[dict]:
  """Holm's p and the verdict on rows from `paired` (one family)."""
  for row, p in zip(rows, stats.holm([r["p"] for r in rows])):
    row["p_holm"] = p
    row["verdict"] = stats.verdict(row["diff"], p)
  return rows


def averaged_over_cells(values: Mapping[tuple, Mapping[int, float]],
                        grids: Mapping[str, Mapping]) -> list[dict]:
  """Per strategy, source (pools as one) and k: the gain over the baseline averaged
  over every target and size it has run, per seed, then tested over the seeds.

  A seed is one replicate of the whole design (its adaptation windows, its
  initialisation, its source model), so its cells are averaged, not counted as
  replicates; the test asks whether the strategy helps on average over the
  study's targets and sizes, which a per-cell test with few seeds cannot see."""
  arms: dict[tuple, list] = collections.defaultdict(list)
  for (strategy, target, source, size, blocks), treated in values.items():
    base = values.get((BASELINE, target, None, size, 0))
    if source is not None and base is not None:
      arms[(strategy, source_label(source, target), blocks)].append((treated, base))
  rows = []
  for (strategy, source, blocks), cells in arms.items():
    seeds = sorted(set.intersection(*(set(t) & set(b) for t, b in cells)))
    if not seeds:
      continue
    gain = {s: float(np.mean([t[s] - b[s] for t, b in cells])) for s in seeds}
    rows.append({"arm": arm_name({"strategy": strategy, "source": source, "blocks": blocks},
                                   grids), "cells": len(cells),
                 **paired(gain, dict.fromkeys(seeds, 0.0))})
  return corrected(sorted(rows, key=lambda r: r["arm"]))


def against_reference(values: Mapping[tuple, Mapping[int, float]],
                      reference: Mapping[tuple, Mapping[int, float]],
                      grids: Mapping[str, Mapping]) -> tuple[list[dict], list[dict]]:
  """This study against a reference study on the cells both ran (a check that reruns
  part of a study with one setting changed, e.g. train.stop_on): per arm (strategy,
  source with the pools as one, k), averaged over the common cells per seed and
  tested over the seeds, (micro-F1 here minus there, for every arm and the
  baseline; each transfer arm's gain over its own study's baseline, here minus
  there). Each list is its own Holm family."""
  arms: dict[tuple, list] = collections.defaultdict(list)
  for key in values.keys() & reference.keys():
    strategy, target, source, _, blocks = key
    arms[(strategy, source_label(source, target) if source else BASELINE, blocks)].append(key)
  scores, gains = [], []
  for (strategy, source, blocks), keys in sorted(arms.items(), key=lambda item: str(item[0])):
    keys = sorted(keys, key=str)
    base_keys = [(BASELINE, k[1], None, k[3], 0) for k in keys]
    runs = [values[k] for k in keys] + [reference[k] for k in keys]
    has_baselines = strategy != BASELINE and all(b in values and b in reference
                                                 for b in base_keys)
    if has_baselines:
      runs += [v[b] for b in base_keys for v in (values, reference)]
    seeds = sorted(set.intersection(*(set(v) for v in runs)))
    if not seeds:
      continue
    row = {"arm": BASELINE if strategy == BASELINE else arm_name(
        {"strategy": strategy, "source": source, "blocks": blocks}, grids), "cells": len(keys),
        "cell_keys": keys, "seed_list": seeds,
        "below_half_here": _below_half(values, keys, base_keys, seeds),
        "below_half_there": _below_half(reference, keys, base_keys, seeds)}
    here, there = _cell_mean(values, keys, seeds), _cell_mean(reference, keys, seeds)
    scores.append({**row, "here": _mean(here), "there": _mean(there), **paired(here, there)})
    if has_baselines:
      here_gain = _minus(here, _cell_mean(values, base_keys, seeds))
      there_gain = _minus(there, _cell_mean(reference, base_keys, seeds))
      gains.append({**row, "here": _mean(here_gain), "there": _mean(there_gain),
                    **paired(here_gain, there_gain)})
  return corrected(scores), corrected(gains)


def _cell_mean(values, keys, seeds) -> dict[int, float]:
  """Per seed, its value averaged over the cells keys."""
  return {s: float(np.mean([values[k][s] for k in keys])) for s in seeds}


def _minus(a: Mapping[int, float], b: Mapping[int, float]) -> dict[int, float]:
  return {s: a[s] - b[s] for s in a}


def _mean(per_seed: Mapping[int, float]) -> float:
  return float(np.mean(list(per_seed.values())))


def _below_half(values, keys, base_keys, seeds) -> str:
  """Runs of keys under half their seed's baseline, of the runs with a baseline."""
  runs = [(values[k][s], values[b][s]) for k, b in zip(keys, base_keys) if b in values
          and k != b for s in seeds]
  return f"{sum(v < base / 2 for v, base in runs)}/{len(runs)}" if runs else ""


def _supervised(source: str | None) -> bool:
  return source is not None and not pretext_sources.is_self_supervised(source)


def multi_vs_single(values: Mapping[tuple, Mapping[int, float]]) -> list[dict]:
  """Per strategy, target, size and k: each pooled supervised source against each
  single one."""
  rows = []
  for (strategy, target, source, size, blocks), pooled in values.items():
    if not _supervised(source) or "+" not in source:
      continue
    for (s2, t2, single, n2, k2), other in values.items():
      if (s2, t2, n2, k2) == (strategy, target, size, blocks) and _supervised(single) \
          and "+" not in single:
        rows.append({"strategy": strategy, "target": target, "size": size, "blocks": blocks,
                     "pooled": source, "single": single, **paired(pooled, other)})
  return corrected(sorted(rows, key=lambda r: (r["target"], r["size"], r["strategy"], r["blocks"])))


def self_supervised_vs_supervised(values: Mapping[tuple, Mapping[int, float]],
                                  grids: Mapping[str, Mapping]) -> list[dict]:
  """Per target, size and k: each self-supervised source against each supervised
  single source, between grids whose transfer strategy (config.transfer) is the same."""
  strategy_of = lambda name: {k: v for k, v in grids[name].items() if k.startswith("transfer.")}
  rows = []
  for (strategy, target, source, size, blocks), ssl in values.items():
    if source is None or not pretext_sources.is_self_supervised(source):
      continue
    for (s2, t2, other, n2, k2), supervised in values.items():
      if ((t2, n2, k2) == (target, size, blocks) and _supervised(other) and "+" not in other
          and strategy_of(s2) == strategy_of(strategy)):
        rows.append({"target": target, "size": size, "blocks": blocks,
                     "self_supervised": source_label(source, target), "supervised": other,
                     "strategies": strategy if s2 == strategy else f"{strategy} / {s2}",
                     **paired(ssl, supervised)})
  return corrected(sorted(rows, key=lambda r: (r["target"], r["size"], r["self_supervised"])))


def spectral_vs_temporal(values: Mapping[tuple, Mapping[int, float]],
                         grids: Mapping[str, Mapping]) -> list[dict]:
  """Per target, size, source and temporal k: a grid transferring the spectral branch
  alone (config.transfer.branch) minus one transferring the temporal branch alone."""
  branch = lambda strategy: grids.get(strategy, {}).get("transfer.branch")
  rows = []
  for (strategy, target, source, size, _), spectral in values.items():
    if branch(strategy) != "spectral":
      continue
    for (s2, t2, src2, n2, k2), temporal in values.items():
      if branch(s2) == "temporal" and (t2, src2, n2) == (target, source, size):
        rows.append({"target": target, "source": source, "size": size, "temporal_blocks": k2,
                     **paired(spectral, temporal)})
  return corrected(sorted(rows, key=lambda r: (r["target"], r["size"], r["source"],
                                               r["temporal_blocks"])))


def arm_name(row: Mapping, grids: Mapping[str, Mapping]) -> str:
  """strategy, source[, k where the strategy's k decides what is transferred]."""
  fields = grids.get(row["strategy"], {})
  nominal_k = (fields.get("transfer.mode") in WHOLE_MODEL_MODES
               or fields.get("transfer.branch") == "spectral")
  return f"{row['strategy']}, {row['source']}" + ("" if nominal_k else f", k={row['blocks']}")


def at_epoch_cap(record: Record, cap: int) -> bool:
  """Whether a phase of the record's run stopped at the epoch cap (lp_ft's probe too)."""
  return max(record.epochs, record.probe_epochs or 0) >= cap


def below_half_the_baseline(records: Sequence[Record]) -> tuple[int, int]:
  """(runs whose micro-F1 is under half their seed's baseline on the same windows, runs
  with such a baseline): a strategy that sometimes fails outright, where a mean gain
  cannot tell it from one a little worse everywhere."""
  key = lambda r: (r.target, r.size, r.replicate)
  base = {key(r): r.micro_f1 for r in records if r.strategy == BASELINE}
  paired = [(r.micro_f1, base[key(r)]) for r in records
            if r.strategy != BASELINE and key(r) in base]
  return sum(value < base_value / 2 for value, base_value in paired), len(paired)
