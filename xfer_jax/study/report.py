"""The study's report from sweep records: Figure-2 heatmaps, a CSV, a summary.

  report/heatmaps.png           one heatmap per target (row) and source (column):
                                y = adaptation size, x = baseline then k blocks,
                                cells annotated with mean micro-F1 over seeds (%)
  report/heatmaps_<target>.png  one target's row (where the grid has several)
  report/gain_heatmaps.png      the same layout: each transfer cell's gain over the
                                baseline (points of micro-F1, a diverging scale
                                centred on 0); * marks a significant win or loss
  report/results.csv            mean, std (over seeds, ddof=1), 95 % interval and n
                                per cell; paired gain, its interval, p and Holm's p
  report/summary.md             significant wins and losses per pair, the best cells

Each figure has one colour scale; the F1 scale runs from the lowest majority-class
micro-F1 (the floor any classifier should clear) to the best cell. Statistics:
xfer_jax/study/stats.py (paired t over seeds, Holm-corrected over the grid's transfer
cells).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from xfer_jax.console import format_markdown
from xfer_jax.data.atomic import write_bytes, write_text
from xfer_jax.grid import results
from xfer_jax.grid.records import METRICS, Record
from xfer_jax.study import stats
from xfer_jax.transfer import BASELINE


def aggregate(records: Sequence[Record]) -> list[dict]:
  """One row per (target, source, size, blocks), and strategy where records name
  one (several grids read together: xfer_jax/study/): mean, std and n over
  seeds; a transfer cell's gain over the baseline of its target and size
  (difference of means) and the gain's std over paired seeds."""
  groups: dict[tuple, list[Mapping]] = defaultdict(list)
  by_seed: dict[int, dict[int, Record]] = {}  # id(row) -> its records by seed
  seen = set()
  for r in records:
    record = (r.strategy, r.fold, *r.id)
    if record in seen:  # an overlapping slice's duplicate: count once
      continue
    seen.add(record)
    groups[(r.target, r.strategy, r.source, r.size, r.blocks)].append(r)
  rows = []
  for (target, strategy, source, size, blocks), group in sorted(groups.items(), key=_order):
    row = {"target": target, "source": source or BASELINE, "size": size, "blocks": blocks,
           "n": len(group), "seeds": sorted(r.seed for r in group)}
    if strategy is not None:
      row["strategy"] = strategy
    for m in METRICS:
      values = np.array([r.metric(m) for r in group])
      row[f"{m}_mean"], row[f"{m}_ci95"] = stats.mean_ci(values)
      row[f"{m}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    row["majority_micro_f1"] = float(group[0].majority_micro_f1)
    row["majority_macro_f1"] = float(group[0].majority_macro_f1)
    # the epoch whose weights were kept: a baseline stuck near 0 never got going
    row["best_epoch_mean"] = float(np.mean([r.best_epoch for r in group]))
    rows.append(row)
    by_seed[id(row)] = {r.replicate: r for r in group}
  baseline = {(r["target"], r["size"]): r for r in rows if r["source"] == BASELINE}
  for r in rows:
    base = baseline.get((r["target"], r["size"]))
    paired = base is not None and r["source"] != BASELINE
    seeds = sorted(set(by_seed[id(r)]) & set(by_seed[id(base)])) if paired else []
    for m in METRICS:
      # seed s of a cell and of its baseline share the adaptation windows, so the
      # gain is the mean of the per-seed differences, over the replicates both ran
      # (a study still running has some folds of a cell, and all of its baseline's)
      treated = [by_seed[id(r)][s].metric(m) for s in seeds]
      control = [by_seed[id(base)][s].metric(m) for s in seeds]
      diffs = np.subtract(treated, control)
      r[f"{m}_gain"] = float(np.mean(diffs)) if len(diffs) else None
      r[f"{m}_gain_std"] = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None
      r[f"{m}_gain_ci95"] = stats.mean_ci(diffs)[1] if len(diffs) else None
      r[f"{m}_p"] = stats.paired_p(treated, control)
  for m in METRICS:  # one family: every transfer cell of the grid
    for r, p in zip(rows, stats.holm([r[f"{m}_p"] for r in rows])):
      r[f"{m}_p_holm"] = p
      r[f"{m}_verdict"] = stats.verdict(r[f"{m}_gain"], p)
  return rows


def _order(item):
  (target, strategy, source, size, blocks), _ = item
  return (target, size, source is not None, strategy or "", source or "", blocks)


def write_csv(rows: Sequence[Mapping], path: Path) -> None:
  columns = ["target", "source", "size", "blocks", "n", "micro_f1_mean", "micro_f1_std",
             "micro_f1_ci95", "macro_f1_mean", "macro_f1_std", "macro_f1_ci95", "micro_f1_gain",
             "micro_f1_gain_std", "micro_f1_gain_ci95", "micro_f1_p", "micro_f1_p_holm",
             "micro_f1_verdict", "macro_f1_gain", "macro_f1_gain_std", "macro_f1_gain_ci95",
             "macro_f1_p", "macro_f1_p_holm", "macro_f1_verdict", "majority_micro_f1",
             "majority_macro_f1", "best_epoch_mean"]
  if any("strategy" in r for r in rows):
    columns.insert(1, "strategy")
  out = io.StringIO()
  writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
  writer.writeheader()
  for r in rows:
    writer.writerow({k: (format(v, ".3g" if k.endswith(("_p", "_p_holm")) else ".4f")
                         if isinstance(v, float) else ("" if v is None else v))
                     for k, v in r.items()})
  write_text(path, out.getvalue())


def _layout(rows: Sequence[Mapping]):
  targets = list(dict.fromkeys(r["target"] for r in rows))
  sources = sorted({r["source"] for r in rows if r["source"] != BASELINE})
  return targets, sources


def _grid(rows, target, source, key="micro_f1_mean"):
  """(sizes, columns, rows' values of key as an array, the rows) of one
  target-source heatmap."""
  mine = [r for r in rows if r["target"] == target and r["source"] in (BASELINE, source)]
  sizes = sorted({r["size"] for r in mine})
  blocks = sorted({r["blocks"] for r in mine if r["source"] == source})
  columns = [BASELINE] + [f"{k}" for k in blocks]
  values = np.full((len(sizes), len(columns)), np.nan)
  cells = np.full((len(sizes), len(columns)), None, dtype=object)
  for r in mine:
    j = 0 if r["source"] == BASELINE else 1 + blocks.index(r["blocks"])
    values[sizes.index(r["size"]), j] = np.nan if r.get(key) is None else r[key]
    cells[sizes.index(r["size"]), j] = r
  return sizes, columns, values, cells


def grid_title(records: Sequence[Record], grid: Mapping) -> str:
  """What a figure shows: the grid's key, strategy, batch-norm momentum and seeds."""
  seeds = sorted({r.seed for r in records})
  modes = sorted({r.mode for r in records if r.mode != BASELINE})
  key = records[0].config_key if records else "-"
  momentum = grid.get("model.bn_momentum", "?")
  return (f"grid {key}: {', '.join(modes) or 'baseline only'}; bn momentum {momentum}; "
          f"{len(seeds)} seeds")


def annotate(ax, values: np.ndarray, cells: np.ndarray, vmin: float, vmax: float,
             gains: bool) -> None:
  """Writes each heatmap cell's value (a gain with * where the corrected test calls
  it a win or a loss), "not run" where a cell has no records, a dash where it has
  no value (the baseline column of a gain figure)."""
  for (y, x), v in np.ndenumerate(values):
    if np.isfinite(v):
      shade = (v - vmin) / (vmax - vmin)
      dark = not 0.25 < shade < 0.75 if gains else shade <= 0.6
      mark = "*" if gains and cells[y, x]["micro_f1_verdict"] else ""
      ax.text(x, y, f"{v:+.0f}{mark}" if gains else f"{v:.0f}", ha="center", va="center",
              fontsize=8, color="white" if dark else "black")
    elif cells[y, x] is None:  # a cell with no records (a grid still running, a slice)
      ax.text(x, y, "not run", ha="center", va="center", fontsize=7, color="0.45")
    else:
      ax.text(x, y, "\u2014", ha="center", va="center", fontsize=8, color="0.45")


def plot(rows: Sequence[Mapping], path: Path, targets: Sequence[str] | None = None,
         gains: bool = False, title: str = "") -> None:
  """Figure 2's layout: a row of heatmaps per target, one per source; the mean
  micro-F1 of every cell, or (gains) each transfer cell's gain over the baseline
  with * where the corrected paired test calls it a win or a loss. One colour
  scale for the figure."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  all_targets, sources = _layout(rows)
  targets = list(targets or all_targets)
  by_target = {t: [s for s in sources if any(r["target"] == t and r["source"] == s for r in rows)]
               for t in targets}
  ncols = max(1, max(len(v) for v in by_target.values()))
  shown = [r for r in rows if r["target"] in targets]
  if gains:
    reach = max([abs(r["micro_f1_gain"]) for r in shown if r["micro_f1_gain"] is not None],
                default=0.0)
    vmin, vmax, cmap = -100 * max(reach, 0.01), 100 * max(reach, 0.01), "RdBu"
  else:
    vmin = 100 * min(r["majority_micro_f1"] for r in shown)
    vmax = 100 * max(max(r["micro_f1_mean"] for r in shown), vmin / 100 + 0.05)
    cmap = "viridis"
  fig, axes = plt.subplots(len(targets), ncols, figsize=(2.4 + 2.6 * ncols, 0.9 + 2.9 * len(targets)),
                           squeeze=False, layout="constrained")
  image = None
  for i, target in enumerate(targets):
    majority = next(r["majority_micro_f1"] for r in shown if r["target"] == target)
    for j in range(ncols):
      ax = axes[i, j]
      if j >= len(by_target[target]):
        ax.axis("off")
        continue
      source = by_target[target][j]
      sizes, columns, values, cells = _grid(rows, target, source,
                                            "micro_f1_gain" if gains else "micro_f1_mean")
      values = 100 * values
      image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
      annotate(ax, values, cells, vmin, vmax, gains)
      ax.set_xticks(range(len(columns)), columns, fontsize=8)
      ax.set_yticks(range(len(sizes)), [str(s) for s in sizes], fontsize=8)
      ax.set_title(f"{target} \u2190 {source}\n(majority-class F1 {100 * majority:.0f}%)",
                   fontsize=9)
      if j == 0:
        ax.set_ylabel("adaptation windows", fontsize=8)
      ax.set_xlabel("transferred blocks", fontsize=8)
  if image is not None:
    bar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.85)
    bar.set_label("gain over the baseline (points of micro-F1)" if gains else "micro-F1 (%)",
                  fontsize=8)
    bar.ax.tick_params(labelsize=7)
  what = (f"Gain over the baseline (points of mean micro-F1); * = significant, paired t over "
          f"seeds, {stats.CORRECTION}-corrected, alpha {stats.ALPHA}" if gains else
          "Mean micro-F1 (%) over seeds: baseline vs k transferred blocks")
  fig.suptitle(f"{what}\n{title}" if title else what, fontsize=10)
  png = io.BytesIO()
  fig.savefig(png, dpi=130, bbox_inches="tight", format="png")
  plt.close(fig)
  write_bytes(path, png.getvalue())  # an unchanged figure is not rewritten


def pair_summaries(rows: Sequence[Mapping]) -> list[dict]:
  """Per (target, source): the best transfer cell vs the baseline at its size."""
  out = []
  targets, sources = _layout(rows)
  for target in targets:
    for source in sources:
      cells = [r for r in rows if r["target"] == target and r["source"] == source
               and r["micro_f1_gain"] is not None]
      if not cells:
        continue
      best = max(cells, key=lambda r: r["micro_f1_gain"])
      small = [r for r in cells if r["size"] == min(c["size"] for c in cells)]
      verdicts = [r["micro_f1_verdict"] for r in cells]
      out.append({
          "target": target, "source": source,
          "significant_wins": verdicts.count("win"), "significant_losses": verdicts.count("loss"),
          "cells": len(cells),
          "best_gain_points": _points(best["micro_f1_gain"], best["micro_f1_gain_std"]),
          "best_macro_gain_points": _points(best["macro_f1_gain"], best["macro_f1_gain_std"]),
          "at_size": best["size"], "at_blocks": best["blocks"],
          "best_p_holm": "" if best["micro_f1_p_holm"] is None else f"{best['micro_f1_p_holm']:.3g}",
          "best_micro_f1": f"{100 * best['micro_f1_mean']:.1f}±{100 * best['micro_f1_std']:.1f}",
          "gain_smallest_size_points": 100 * max(r["micro_f1_gain"] for r in small),
      })
  return out


def _points(value: float, std: float | None) -> str:
  return f"{100 * value:.1f}" + (f"±{100 * std:.1f}" if std is not None else "")


def power_lines(transfer_rows: Sequence[Mapping]) -> list[str]:
  """What a family of transfer cells (rows of `aggregate`) can detect, and how many
  pass uncorrected against how many would by chance: markdown lines."""
  tested = [r for r in transfer_rows if r["micro_f1_p"] is not None]
  if not tested:
    return []
  m = len(tested)
  detectable = [100 * stats.smallest_detectable(r["micro_f1_gain_std"], r["n"], m) for r in tested]
  raw = [r["micro_f1_gain"] for r in tested if r["micro_f1_p"] < stats.ALPHA]
  uncorrected = (f"Uncorrected, {len(raw)} of the {m} cells have p < {stats.ALPHA} "
                 f"({sum(g > 0 for g in raw)} higher, {sum(g < 0 for g in raw)} lower), against "
                 f"{stats.ALPHA * m:.1f} expected by chance alone.")
  if np.median(detectable) > 100:  # F1 cannot gain more than 100 points
    return [f"This family cannot detect anything: with {tested[0]['n']} seeds per cell and "
            f"each cell's own spread of per-seed gains, {stats.CORRECTION}'s first test of its "
            f"{m} cells (p < {stats.ALPHA}/{m}) would need a mean gain of more than 100 points "
            f"in most cells, which F1 cannot reach: run more seeds. {uncorrected}", ""]
  return [f"How large a gain this family can detect: {stats.CORRECTION} tests the most "
          f"promising of its {m} cells at p < {stats.ALPHA}/{m}, which with each cell's own "
          f"spread of per-seed gains takes a mean gain of at least "
          f"{np.median(detectable):.1f} points (median over the cells; "
          f"{min(detectable):.1f} to {max(detectable):.1f}). {uncorrected}", ""]


def labels_spent(grid: Mapping) -> str:
  """What a grid's cells read of the target's labels (config.adapt), in a sentence."""
  budget = grid.get("adapt.budget", "windows")
  size = "k labelled windows of every class" if budget == "per_class" else "n labelled windows"
  if budget == "per_class" and grid.get("adapt.short_classes") == "all":
    size += " (all of a class that has fewer)"
  selection = grid.get("adapt.selection", "oracle")
  picks = {"oracle": "the target's whole validation split, labels beyond the budget (oracle "
                     "selection)",
           "inner": f"{grid.get('adapt.inner_fraction', 0.2):.0%} of each seed's own budget, "
                    "which does not train (every label inside the budget)",
           "fixed": "nothing: every epoch trained, the last kept (every label inside the "
                    "budget)"}[selection]
  return f"Each cell adapts on {size}; each seed's epoch is picked by {picks}."


def summary_markdown(rows: Sequence[Mapping], records: Sequence[Record], grid: Mapping) -> str:
  pairs = pair_summaries(rows)
  seeds = sorted({r.seed for r in records})
  lines = ["# Transfer vs baseline", "",
           f"{len(records)} records, {len(rows)} cells, seeds {seeds}; config key "
           f"`{records[0].config_key if records else '-'}`. {labels_spent(grid)}",
           "Gains are points of micro-F1 (macro-F1 beside it) of the mean over seeds, "
           "against the baseline trained on the same adaptation windows; ± is the std of "
           "the per-seed gains. A win or loss is significant where the paired t-test over "
           f"seeds, {stats.CORRECTION}-corrected over the grid's "
           f"{sum(r['micro_f1_p'] is not None for r in rows)} transfer cells, gives p < "
           f"{stats.ALPHA} (report/results.csv: each cell's p and corrected p). best_epoch: "
           "the epoch whose weights were kept (mean over seeds).", ""]
  if pairs:
    wins = sum(p["significant_wins"] for p in pairs)
    losses = sum(p["significant_losses"] for p in pairs)
    cells = sum(p["cells"] for p in pairs)
    lines += [f"**Significant wins: {wins}; significant losses: {losses}; of {cells} transfer "
              f"cells** (micro-F1, {stats.CORRECTION}-corrected paired t, alpha {stats.ALPHA}).",
              "", *power_lines([r for r in rows if r["source"] != BASELINE])]
    if wins + losses == 0:
      lines += [f"No transfer cell differs significantly from its baseline: with {len(seeds)} "
                "seed(s) per cell, every gain and loss here is within what the seed-to-seed "
                "spread allows. Read the heatmaps as noise, or run more seeds.", ""]
    lines += ["## Per pair: significant wins and losses, and the best transfer cell", "",
              format_markdown(pairs, floatfmt=".1f"), ""]
  baselines = [r for r in rows if r["source"] == BASELINE]
  if baselines:
    lines += ["## Baseline (no transfer) per target and size", "",
              format_markdown([{"target": r["target"], "size": r["size"],
                                "micro_f1": f"{100 * r['micro_f1_mean']:.1f}±{100 * r['micro_f1_std']:.1f}",
                                "macro_f1": f"{100 * r['macro_f1_mean']:.1f}±{100 * r['macro_f1_std']:.1f}",
                                "majority_micro_f1": f"{100 * r['majority_micro_f1']:.1f}",
                                "best_epoch": f"{r['best_epoch_mean']:.1f}",
                                "seeds": r["n"]} for r in baselines]), ""]
  incomplete = [r for r in rows if r["n"] < len(seeds)]
  overlaps = results.check_overlap(records)
  if incomplete or overlaps:
    lines += ["## Warnings", ""]
    lines += [f"- incomplete: {r['target']} <- {r['source']}, n={r['size']}, k={r['blocks']}: "
              f"{r['n']} of {len(seeds)} seeds" for r in incomplete]
    lines += [f"- duplicate (overlapping task slices): {o}" for o in overlaps]
    lines.append("")
  if grid:
    lines += ["## Grid config", "", "```json", json.dumps(grid, indent=1, sort_keys=True), "```", ""]
  return "\n".join(lines)


def write(out_dir: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> dict[str, str]:
  """Reads results files / sweep workdirs and writes out_dir/report/; returns the paths."""
  records, grid = results.load(inputs)
  if not records:
    raise results.ResultsError(f"no records in {list(map(str, inputs))}")
  rows = aggregate(records)
  report_dir = Path(out_dir) / "report"
  report_dir.mkdir(parents=True, exist_ok=True)
  paths = {"heatmaps": report_dir / "heatmaps.png", "gains": report_dir / "gain_heatmaps.png",
           "csv": report_dir / "results.csv", "summary": report_dir / "summary.md"}
  title = grid_title(records, grid)
  plot(rows, paths["heatmaps"], title=title)
  if any(r["micro_f1_gain"] is not None for r in rows):
    plot(rows, paths["gains"], gains=True, title=title)
  else:
    del paths["gains"]
  targets = _layout(rows)[0]
  for target in targets if len(targets) > 1 else ():  # one target: heatmaps.png is its row
    plot(rows, report_dir / f"heatmaps_{target}.png", [target], title=title)
  write_csv(rows, paths["csv"])
  write_text(paths["summary"], summary_markdown(rows, records, grid))
  return {k: str(v) for k, v in paths.items()}
