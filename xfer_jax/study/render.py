"""A study as text and pictures: its summary.md (the declared questions first, then
every exploratory table), results.csv and gains.png, from the records alone."""

from __future__ import annotations

import collections
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from xfer_jax import config_fields
from xfer_jax.console import format_markdown
from xfer_jax.data.atomic import write_bytes, write_text
from xfer_jax.grid.records import Record, source_label
from xfer_jax.study import contrasts, report, stats
from xfer_jax.study.analysis import (
  against_reference,
  arm_name,
  at_epoch_cap,
  averaged_over_cells,
  below_half_the_baseline,
  multi_vs_single,
  seed_values,
  self_supervised_vs_supervised,
  spectral_vs_temporal,
)
from xfer_jax.study.cost import cost_rows
from xfer_jax.study.load import DESIGN_FILE, StudyError, load, read_design, source_models
from xfer_jax.transfer import BASELINE


def primary_lines(records: Sequence[Record], design: contrasts.Design) -> list[str]:
  """The declared contrasts' table: estimate, interval, Holm p and verdict per metric."""
  rows = contrasts.analyse(records, design)
  table = [{"contrast": r["contrast"], "metric": r["metric"].replace("_", "-"),
            "cells": r["cells"], "replicates": r["replicates"],
            "difference (95% CI)": "" if r["estimate"] is None else
            _pts(r["estimate"] / 100, r["ci95"] / 100),
            "p (Holm)": _p(r["p_holm"]), "p equivalence (Holm)": _p(r["p_equivalence_holm"]),
            "verdict": r["verdict"]} for r in rows]
  return ["## The declared questions", "",
          f"Each contrast over every cell it spans (a mixed model with crossed random effects "
          f"for cell and seed; t with Satterthwaite's degrees of freedom), "
          f"{stats.CORRECTION}-corrected over the {len(design.contrasts)} contrasts of each "
          f"metric, alpha {design.alpha}. *equivalent*: both one-sided tests against "
          f"±{design.margin:g} points reject; *inconclusive*: neither a difference nor "
          "equivalence is shown, the study could not tell. Every other table below is "
          "exploratory.", "", format_markdown(table), ""]


def power_rows(records: Sequence[Record], design: contrasts.Design,
               replicates: Sequence[int], target: float | None = None) -> list[dict]:
  """Per declared contrast: its variance components from these records and, at its
  cells, the smallest difference found with 80 % power at each planned number of
  replicates (seeds x folds), and the replicates a target difference needs."""
  rows = []
  for contrast in design.contrasts:
    try:
      differences = contrasts.differences(records, contrast)
    except contrasts.EmptyArm:
      rows.append({"contrast": contrast.name, "cells": 0})
      continue
    components = contrasts.variance_components(differences)
    cells, family = len({d["cell"] for d in differences}), len(design.contrasts)
    mde = {n: contrasts.minimum_detectable(components, cells, n, family) for n in replicates}
    row = {"contrast": contrast.name, "cells": cells,
           **{f"sd {k}": f"{np.sqrt(v):.1f}" for k, v in components.items()},
           **{f"MDE at {n}": f"{v:.1f}" for n, v in mde.items()}}
    if target is not None:
      needed = contrasts.replicates_needed(components, cells, family, target)
      row[f"replicates for {target:g}"] = needed if needed is not None else "out of reach"
    rows.append(row)
  return rows


def questions_markdown(root: str | os.PathLike, design_path: str | os.PathLike | None,
                       plan: Sequence[int] = (), target: float | None = None) -> str:
  """The declared questions' table from ROOT's records and, with a plan of
  replicates, each contrast's power there (launch.study --questions)."""
  design = read_design(root, design_path)
  if design is None:
    raise StudyError(f"{Path(root) / DESIGN_FILE}: no declared questions; write one or give "
                     "--design")
  records, _ = load(root)
  lines = primary_lines(records, design)
  if plan:
    lines += ["### Power at other sizes", "",
              "Variance components (SD, points) of each contrast's differences in these "
              "records; MDE at R: the smallest true difference found with 80 % power at "
              f"Holm's strictest step (alpha / {len(design.contrasts)}) with R replicates "
              "(seeds x folds) per cell.", "",
              format_markdown(power_rows(records, design, plan, target)), ""]
  return "\n".join(lines)


def _pts(value: float | None, ci: float | None = None) -> str:
  if value is None:
    return ""
  return f"{100 * value:+.1f}" + (f" ± {100 * ci:.1f}" if ci is not None else "")


def best_per_target_size(rows: Sequence[Mapping], grids: Mapping[str, Mapping]) -> list[dict]:
  """The strategy cell with the highest mean micro-F1 per target and size."""
  out = []
  for (target, size), group in _by(rows, "target", "size").items():
    base = [r for r in group if r["source"] == BASELINE]
    transfer = [r for r in group if r["source"] != BASELINE]
    if not base or not transfer:
      continue
    best = max(transfer, key=lambda r: r["micro_f1_mean"])
    out.append({"target": target, "size": size,
                "baseline": f"{100 * base[0]['micro_f1_mean']:.1f}",
                "best cell": arm_name(best, grids), "micro_f1": f"{100 * best['micro_f1_mean']:.1f}",
                "gain (95% CI)": _pts(best["micro_f1_gain"], best["micro_f1_gain_ci95"]),
                "p (Holm)": _p(best["micro_f1_p_holm"]), "verdict": best["micro_f1_verdict"],
                "macro gain": _pts(best["macro_f1_gain"], best["macro_f1_gain_ci95"])})
  return out


def per_strategy(rows: Sequence[Mapping], records: Sequence[Record], grids: Mapping) -> list[dict]:
  """Per strategy: cells, significant wins and losses, mean gain, runs under half their
  baseline, records at the epoch cap (in any phase)."""
  out = []
  baseline = [r for r in records if r.strategy == BASELINE]
  for strategy, group in _by([r for r in rows if r["source"] != BASELINE], "strategy").items():
    cap = grids[strategy]["train.max_epochs"]
    mine = [r for r in records if r.strategy == strategy]
    out.append({"strategy": strategy, **_gains(group),
                "untested": sum(r["micro_f1_p"] is None for r in group),
                "gain > 0": sum(r["micro_f1_gain"] > 0 for r in group),
                "runs < ½ baseline": "{}/{}".format(*below_half_the_baseline(baseline + mine)),
                "epoch cap": cap,
                "records at the epoch cap": f"{sum(at_epoch_cap(r, cap) for r in mine)}/{len(mine)}"})
  return out


def _by(rows: Sequence[Mapping], *keys: str) -> dict[tuple, list[Mapping]]:
  out: dict[tuple, list[Mapping]] = collections.defaultdict(list)
  for r in rows:
    out[tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]].append(r)
  return dict(out)


def _p(p: float | None) -> str:
  return "" if p is None else f"{p:.3g}"


def _paired_table(rows: Sequence[Mapping], columns: Sequence[str]) -> list[dict]:
  return [{**{c: r[c] for c in columns}, "difference (95% CI)": _pts(r["diff"], r["ci95"]),
           "p (Holm)": _p(r["p_holm"]), "verdict": r["verdict"]} for r in rows]


def _gains(group: Sequence[Mapping]) -> dict:
  """Cells, significant wins and losses, and the mean gain of a group of transfer cells."""
  return {"cells": len(group), "wins": sum(r["micro_f1_verdict"] == "win" for r in group),
          "losses": sum(r["micro_f1_verdict"] == "loss" for r in group),
          "mean gain": _pts(float(np.mean([r["micro_f1_gain"] for r in group])))}


def _verdict_count(rows: Sequence[Mapping]) -> str:
  verdicts = [r["verdict"] for r in rows]
  positive = sum(r["diff"] is not None and r["diff"] > 0 for r in rows)
  return (f"{len(rows)} comparisons: the first is higher in {positive}; significant "
          f"({stats.CORRECTION}-corrected, alpha {stats.ALPHA}): {verdicts.count('win')} higher, "
          f"{verdicts.count('loss')} lower")


def coverage(rows: Sequence[Mapping], grids: Mapping[str, Mapping]) -> list[dict]:
  """Per strategy: cells recorded with every seed, of the cells its grid declares."""
  out = []
  for strategy, fields in grids.items():
    targets = {p.split("->")[1] for p in fields["sweep.pairs"]}
    declared = len(fields["sweep.sizes"]) * (
        len(fields["sweep.pairs"]) * len(fields["sweep.blocks"])
        + (len(targets) if fields["sweep.baseline"] else 0))
    mine = [r for r in rows if r.get("strategy") == strategy]
    complete = sum(r["n"] >= fields["train.num_seeds"] for r in mine)
    out.append({"strategy": strategy, "cells complete": complete, "cells declared": declared,
                "records": sum(r["n"] for r in mine)})
  return out


def _caps(grids: Mapping[str, Mapping]) -> str:
  """The epoch cap, or each strategy's where they differ."""
  caps = {s: f["train.max_epochs"] for s, f in grids.items()}
  if len(set(caps.values())) == 1:
    return str(caps[BASELINE])
  return " / ".join(f"{cap} ({', '.join(s for s in caps if caps[s] == cap)})"
                    for cap in sorted(set(caps.values())))


def summary_markdown(records: Sequence[Record], grids: Mapping[str, Mapping],
                     sources: Sequence[Mapping] = (), reference: tuple | None = None,
                     design: contrasts.Design | None = None) -> tuple[str, list[dict]]:
  """The summary's text and its per-cell rows; reference = (its name, its records, its
  grids) adds a section comparing the cells both studies ran; design, the declared
  questions' table first."""
  rows = report.aggregate(records)
  values = seed_values(records)
  base = grids[BASELINE]
  transfer_rows = [r for r in rows if r["source"] != BASELINE]
  wins = sum(r["micro_f1_verdict"] == "win" for r in transfer_rows)
  losses = sum(r["micro_f1_verdict"] == "loss" for r in transfer_rows)
  multi, spectral = multi_vs_single(values), spectral_vs_temporal(values, grids)
  classes = {r.target: r.num_classes for r in records}
  lines = [
      "# Transfer strategies, sources and branches against the baseline",
      "", "Generated by `python -m launch.study` from the records below this folder; every "
      "number here is recomputed from them.", "",
      f"{len(records)} records in {len(rows)} cells; seeds per cell {base['train.num_seeds']}; "
      f"sizes {base['sweep.sizes']}; targets "
      + ", ".join(f"{t} ({c} classes)" for t, c in sorted(classes.items()))
      + f"; at most {_caps(grids)} epochs, patience {base['train.patience']}; "
      f"batch-norm momentum {base['model.bn_momentum']}. {report.labels_spent(base)}", "",
      "Micro-F1 in %; a gain is the mean of the per-seed differences against the baseline "
      "on the same windows, in points, ± the half-width of its 95 % t-interval. Significant "
      f"= paired t over seeds, {stats.CORRECTION}-corrected within the question's family, "
      f"p < {stats.ALPHA}.", "",
      "![Gain over the baseline per strategy, target and size](gains.png)", "",
      *(primary_lines(records, design) if design is not None else []),
      "## What has run", "", format_markdown(coverage(rows, grids)), "",
      "What the cells cost as the sweeps ran them (`xfer_jax/study/cost.py`; a cell's wall "
      "time is its finishing process's, compiling, validation and checkpoints included, on "
      "whatever else shared the machine):", "", format_markdown(cost_rows(records)), "",
      *(["The source models (every seed; in % on the source's own test split: micro-F1, "
         "or a self-supervised source's pretext accuracy on its held-out windows):", "",
         format_markdown(list(sources)), ""] if sources else []),
      "## Transfer against the baseline", "",
      f"**{wins} significant wins and {losses} significant losses among {len(transfer_rows)} "
      f"transfer cells** ({sum(r['micro_f1_p'] is not None for r in transfer_rows)} tested; "
      "one family).", "", *report.power_lines(transfer_rows),
      format_markdown(per_strategy(rows, records, grids)), "",
      "Runs < ½ baseline: seeds whose micro-F1 fell under half of the same seed's "
      "baseline on the same windows, a failure a mean gain hides among the other seeds.",
      "",
      "### Each strategy over all its cells", "",
      "The gain averaged over every target and size a strategy has run, per seed, and "
      "tested over the seeds (a seed is one replicate of the whole design); "
      f"{stats.CORRECTION}-corrected over these rows.", "",
      format_markdown(_paired_table(averaged_over_cells(values, grids), ("arm", "cells"))),
      "",
      "### The best cell per target and size", "",
      format_markdown(best_per_target_size(rows, grids)), ""]
  if multi:
    lines += ["## Multi-source pretraining against a single source", "",
              _verdict_count(multi) + " (pooled minus single).", "",
              format_markdown(_paired_table(multi, ("target", "size", "strategy", "blocks",
                                                    "pooled", "single"))), ""]
  self_supervised = self_supervised_vs_supervised(values, grids)
  if self_supervised:
    lines += ["## Self-supervised against supervised sources", "",
              _verdict_count(self_supervised) + " (self-supervised minus supervised; \"own\": "
              "pretrained on the target's own train split without its labels).", "",
              format_markdown(_paired_table(self_supervised, (
                  "target", "size", "blocks", "self_supervised", "supervised", "strategies"))),
              ""]
  if spectral:
    lines += ["## Spectral against temporal transfer", "",
              _verdict_count(spectral) + " (spectral-only minus temporal-only).", "",
              format_markdown(_paired_table(spectral, ("target", "size", "source",
                                                       "temporal_blocks"))), ""]
  if reference is not None:
    lines += _against_lines(records, grids, *reference)
  lines += ["## Per target: classes and what transfer did", "",
            "The paper's claim that few-class targets gain most is read off this table; "
            "with three or four targets that differ in much else it cannot be tested. "
            "Where a pooled source includes the largest dataset, the source comparisons "
            "confound its size with its similarity (the design page beside this file "
            "gives the sizes).", "",
            format_markdown([{"target": t, "classes": classes[t], **_gains(g)}
                             for t, g in sorted(_by(transfer_rows, "target").items())]), "",
            "## Per adaptation size and strategy", "",
            "The paper's claim that transfer helps most with few labelled windows is read "
            "off this table.", "",
            format_markdown([{"size": n, "strategy": s, **_gains(g)} for (n, s), g in
                             sorted(_by(transfer_rows, "size", "strategy").items())]), ""]
  return "\n".join(lines), rows


# the fields in which a rerun of part of a study differs from it by construction
SUBSET_FIELDS = ("sweep.pairs", "sweep.sizes")


def _against_lines(records, grids, name: str, ref_records, ref_grids) -> list[str]:
  changed = {k: v for k, v in grids[BASELINE].items() if not k.startswith(SUBSET_FIELDS)}
  original = {k: v for k, v in ref_grids[BASELINE].items() if not k.startswith(SUBSET_FIELDS)}
  scores, gains = against_reference(seed_values(records), seed_values(ref_records), grids)
  # how long the runs trained: a setting that changes early stopping shows here first
  epochs = [seed_values(records, "epochs"), seed_values(ref_records, "epochs")]
  median_epochs = lambda r, side: int(np.median([epochs[side][k][s] for k in r["cell_keys"]
                                                 for s in r["seed_list"]]))
  table = lambda rows, pct: format_markdown([
      {"arm": r["arm"], "cells": r["cells"], "here": pct(r["here"]), "there": pct(r["there"]),
       "runs < ½ baseline here": r["below_half_here"],
       "runs < ½ baseline there": r["below_half_there"],
       "median epochs here": median_epochs(r, 0), "median epochs there": median_epochs(r, 1),
       "difference (95% CI)": _pts(r["diff"], r["ci95"]), "p (Holm)": _p(r["p_holm"]),
       "verdict": r["verdict"]} for r in rows])
  return [
      f"## Against the reference study `{name}`", "",
      "This study reruns cells of the reference with: "
      + (config_fields.describe_differences(changed, original, ("here", "there")) or "no setting changed")
      + ". On the cells both ran, per arm, each seed's values averaged over the cells, "
      f"then tested over the seeds ({stats.CORRECTION}-corrected within each table). "
      "Epochs: those each run trained (lp_ft: its fine-tuning phase).", "",
      "Micro-F1 in %, here minus there:", "", table(scores, _pct), "",
      "Gain over each study's own baseline, in points, here minus there:", "",
      table(gains, _pts), ""]


def _pct(value: float) -> str:
  return f"{100 * value:.1f}"


def plot_gains(rows: Sequence[Mapping], grids: Mapping[str, Mapping], path: Path) -> None:
  """A heatmap per target: every strategy arm (strategy, source, k; the pools as
  one) against the adaptation sizes, each cell's gain over the baseline in points
  of micro-F1, * where the corrected test calls it a win or a loss. One colour
  scale for the figure."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  transfer = [r for r in rows if r["source"] != BASELINE and r["micro_f1_gain"] is not None]
  arm = lambda r: arm_name({**r, "source": source_label(r["source"], r["target"])}, grids)
  targets = sorted({r["target"] for r in transfer})
  arms = sorted({arm(r) for r in transfer})
  sizes = sorted({r["size"] for r in rows})
  reach = 100 * max([abs(r["micro_f1_gain"]) for r in transfer] + [0.01])
  fig, axes = plt.subplots(1, max(1, len(targets)), squeeze=False, layout="constrained",
                           figsize=(2.0 + 2.2 * len(sizes) * max(1, len(targets)) / 2,
                                    1.2 + 0.32 * len(arms)))
  image = None
  for ax, target in zip(axes[0], targets):
    values = np.full((len(arms), len(sizes)), np.nan)
    cells = np.full(values.shape, None, dtype=object)
    for r in transfer:
      if r["target"] == target:
        values[arms.index(arm(r)), sizes.index(r["size"])] = 100 * r["micro_f1_gain"]
        cells[arms.index(arm(r)), sizes.index(r["size"])] = r
    image = ax.imshow(values, cmap="RdBu", vmin=-reach, vmax=reach, aspect="auto")
    report.annotate(ax, values, cells, -reach, reach, gains=True)
    ax.set_xticks(range(len(sizes)), [str(n) for n in sizes], fontsize=8)
    ax.set_yticks(range(len(arms)), arms if ax is axes[0, 0] else [""] * len(arms), fontsize=8)
    ax.set_xlabel("adaptation windows", fontsize=8)
    ax.set_title(target, fontsize=9)
  if image is not None:
    bar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.85)
    bar.set_label("gain over the baseline (points of micro-F1)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
  fig.suptitle("Gain over the baseline per strategy, source and k; * = significant "
               f"(paired t over seeds, {stats.CORRECTION}-corrected, alpha {stats.ALPHA})",
               fontsize=10)
  png = io.BytesIO()
  fig.savefig(png, dpi=130, bbox_inches="tight", format="png")
  plt.close(fig)
  write_bytes(path, png.getvalue())


def write(root: str | os.PathLike, out_dir: str | os.PathLike,
          reference_root: str | os.PathLike | None = None,
          design_path: str | os.PathLike | None = None) -> dict[str, str]:
  """out_dir/summary.md, out_dir/results.csv (a row per strategy's cell) and
  out_dir/gains.png; with reference_root, the summary compares the cells this study
  shares with the study there (named by its path relative to out_dir)."""
  records, grids = load(root)
  out = Path(out_dir)
  reference = None
  if reference_root is not None:
    reference = (os.path.relpath(reference_root, out), *load(reference_root))
  text, rows = summary_markdown(records, grids, source_models(root), reference,
                                read_design(root, design_path))
  out.mkdir(parents=True, exist_ok=True)
  paths = {"summary": out / "summary.md", "csv": out / "results.csv", "gains": out / "gains.png"}
  write_text(paths["summary"], text)
  report.write_csv(rows, paths["csv"])
  plot_gains(rows, grids, paths["gains"])
  return {k: str(v) for k, v in paths.items()}
