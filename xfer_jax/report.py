"""The study's report from sweep records: Figure-2 heatmaps, a CSV, a summary.

  report/heatmaps.png           one heatmap per target (row) and source (column):
                                y = adaptation size, x = baseline then k blocks,
                                cells annotated with mean micro-F1 over seeds (%)
  report/heatmaps_<target>.png  one target's row
  report/results.csv            mean, std (over seeds, ddof=1) and n per cell
  report/summary.md             per pair: where transfer beats the baseline, by how much

The colour scale is shared by a target's heatmaps and runs from its
majority-class micro-F1 (the floor any classifier should clear) to its best cell.
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

from xfer_jax import results
from xfer_jax.console import format_markdown
from xfer_jax.data.atomic import write_bytes, write_text

METRICS = ("micro_f1", "macro_f1")


def aggregate(records: Sequence[Mapping]) -> list[dict]:
  """One row per (target, source, size, blocks): mean, std and n over seeds; a
  transfer cell's gain over the baseline of its target and size (difference of
  means) and the gain's std over paired seeds."""
  groups: dict[tuple, list[Mapping]] = defaultdict(list)
  by_seed: dict[int, dict[int, Mapping]] = {}  # id(row) -> its records by seed
  seen = set()
  for r in records:
    if results.record_id(r) in seen:  # an overlapping slice's duplicate: count once
      continue
    seen.add(results.record_id(r))
    groups[(r["target"], r["source"], r["size"], r["blocks"])].append(r)
  rows = []
  for (target, source, size, blocks), group in sorted(groups.items(), key=_order):
    row = {"target": target, "source": source or "baseline", "size": size, "blocks": blocks,
           "n": len(group), "seeds": sorted(r["seed"] for r in group)}
    for m in METRICS:
      values = np.array([r[m] for r in group])
      row[f"{m}_mean"] = float(values.mean())
      row[f"{m}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    row["majority_micro_f1"] = float(group[0]["majority_micro_f1"])
    row["majority_macro_f1"] = float(group[0]["majority_macro_f1"])
    # the epoch whose weights were kept: a baseline stuck near 0 never got going
    row["best_epoch_mean"] = float(np.mean([r["best_epoch"] for r in group]))
    rows.append(row)
    by_seed[id(row)] = {r["seed"]: r for r in group}
  baseline = {(r["target"], r["size"]): r for r in rows if r["source"] == "baseline"}
  for r in rows:
    base = baseline.get((r["target"], r["size"]))
    paired = base is not None and r["source"] != "baseline"
    seeds = sorted(set(by_seed[id(r)]) & set(by_seed[id(base)])) if paired else []
    for m in METRICS:
      r[f"{m}_gain"] = r[f"{m}_mean"] - base[f"{m}_mean"] if paired else None
      # seed s of a cell and of its baseline share the adaptation windows, so the
      # spread of the gain is that of the per-seed differences
      diffs = [by_seed[id(r)][s][m] - by_seed[id(base)][s][m] for s in seeds]
      r[f"{m}_gain_std"] = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None
  return rows


def _order(item):
  (target, source, size, blocks), _ = item
  return (target, size, source is not None, source or "", blocks)


def write_csv(rows: Sequence[Mapping], path: Path) -> None:
  columns = ["target", "source", "size", "blocks", "n", "micro_f1_mean", "micro_f1_std",
             "macro_f1_mean", "macro_f1_std", "micro_f1_gain", "micro_f1_gain_std",
             "macro_f1_gain", "macro_f1_gain_std", "majority_micro_f1", "majority_macro_f1",
             "best_epoch_mean"]
  out = io.StringIO()
  writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
  writer.writeheader()
  for r in rows:
    writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else ("" if v is None else v))
                     for k, v in r.items()})
  write_text(path, out.getvalue())


def _layout(rows: Sequence[Mapping]):
  targets = list(dict.fromkeys(r["target"] for r in rows))
  sources = sorted({r["source"] for r in rows if r["source"] != "baseline"})
  return targets, sources


def _grid(rows, target, source):
  """(sizes, columns, mean micro-F1 array) of one target-source heatmap."""
  mine = [r for r in rows if r["target"] == target and r["source"] in ("baseline", source)]
  sizes = sorted({r["size"] for r in mine})
  blocks = sorted({r["blocks"] for r in mine if r["source"] == source})
  columns = ["baseline"] + [f"{k}" for k in blocks]
  values = np.full((len(sizes), len(columns)), np.nan)
  for r in mine:
    j = 0 if r["source"] == "baseline" else 1 + blocks.index(r["blocks"])
    values[sizes.index(r["size"]), j] = r["micro_f1_mean"]
  return sizes, columns, values


def plot(rows: Sequence[Mapping], path: Path, targets: Sequence[str] | None = None) -> None:
  """Figure 2's layout: a row of heatmaps per target, one per source."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  all_targets, sources = _layout(rows)
  targets = list(targets or all_targets)
  by_target = {t: [s for s in sources if any(r["target"] == t and r["source"] == s for r in rows)]
               for t in targets}
  ncols = max(1, max(len(v) for v in by_target.values()))
  fig, axes = plt.subplots(len(targets), ncols, figsize=(2.2 + 2.6 * ncols, 0.6 + 2.9 * len(targets)),
                           squeeze=False, layout="constrained")
  for i, target in enumerate(targets):
    target_rows = [r for r in rows if r["target"] == target]
    majority = target_rows[0]["majority_micro_f1"]
    best = max(r["micro_f1_mean"] for r in target_rows)
    vmin, vmax = 100 * majority, 100 * max(best, majority + 0.05)
    image = None
    for j in range(ncols):
      ax = axes[i, j]
      if j >= len(by_target[target]):
        ax.axis("off")
        continue
      source = by_target[target][j]
      sizes, columns, values = _grid(rows, target, source)
      values = 100 * values
      image = ax.imshow(values, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
      for (y, x), v in np.ndenumerate(values):
        if np.isfinite(v):
          light = (v - vmin) / (vmax - vmin) > 0.6
          ax.text(x, y, f"{v:.0f}", ha="center", va="center", fontsize=8,
                  color="black" if light else "white")
        else:  # a cell with no records (a grid still running, or a task's slice)
          ax.text(x, y, "not run", ha="center", va="center", fontsize=7, color="0.45")
      ax.set_xticks(range(len(columns)), columns, fontsize=8)
      ax.set_yticks(range(len(sizes)), [str(s) for s in sizes], fontsize=8)
      ax.set_title(f"{target} \u2190 {source}\n(majority-class F1 {100 * majority:.0f}%)", fontsize=9)
      if j == 0:
        ax.set_ylabel("adaptation windows", fontsize=8)
      ax.set_xlabel("transferred blocks", fontsize=8)
    if image is not None:
      bar = fig.colorbar(image, ax=axes[i, :].tolist(), shrink=0.85)
      bar.set_label("micro-F1 (%)", fontsize=8)
      bar.ax.tick_params(labelsize=7)
  fig.suptitle("Mean micro-F1 (%) over seeds: baseline vs k transferred blocks", fontsize=10)
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
      wins = [r for r in cells if r["micro_f1_gain"] > 0]
      small = [r for r in cells if r["size"] == min(c["size"] for c in cells)]
      out.append({
          "target": target, "source": source,
          "best_gain_points": _points(best["micro_f1_gain"], best["micro_f1_gain_std"]),
          "best_macro_gain_points": _points(best["macro_f1_gain"], best["macro_f1_gain_std"]),
          "at_size": best["size"], "at_blocks": best["blocks"],
          "best_micro_f1": f"{100 * best['micro_f1_mean']:.1f}±{100 * best['micro_f1_std']:.1f}",
          "cells_transfer_wins": f"{len(wins)}/{len(cells)}",
          "gain_smallest_size_points": 100 * max(r["micro_f1_gain"] for r in small),
      })
  return out


def _points(value: float, std: float | None) -> str:
  return f"{100 * value:.1f}" + (f"±{100 * std:.1f}" if std is not None else "")


def summary_markdown(rows: Sequence[Mapping], records: Sequence[Mapping], grid: Mapping) -> str:
  pairs = pair_summaries(rows)
  seeds = sorted({r["seed"] for r in records})
  lines = ["# Transfer vs baseline", "",
           f"{len(records)} records, {len(rows)} cells, seeds {seeds}; config key "
           f"`{records[0]['config_key'] if records else '-'}`.",
           "Gains are points of micro-F1 (macro-F1 beside it) of the mean over seeds, "
           "against the baseline trained on the same adaptation windows; ± is the std of "
           "the per-seed gains. best_epoch: the epoch whose weights were kept (mean over "
           "seeds).", ""]
  if pairs:
    lines += ["## Per pair: best transfer cell", "",
              format_markdown(pairs, floatfmt=".1f"), ""]
  baselines = [r for r in rows if r["source"] == "baseline"]
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
  paths = {"heatmaps": report_dir / "heatmaps.png", "csv": report_dir / "results.csv",
           "summary": report_dir / "summary.md"}
  plot(rows, paths["heatmaps"])
  for target in _layout(rows)[0]:
    plot(rows, report_dir / f"heatmaps_{target}.png", [target])
  write_csv(rows, paths["csv"])
  write_text(paths["summary"], summary_markdown(rows, records, grid))
  return {k: str(v) for k, v in paths.items()}
