"""docs/results/FINDINGS.md: what each committed study found, recomputed from its
records, newest first; every claim with its contrast, estimate, interval and verdict.

A study is listed in STUDIES with where its records are and how it asks its
questions: declared contrasts (a design.json: contrasts.analyse, one Holm family per
metric) or, for a grid that declared none, every transfer cell against its baseline
(report.aggregate: paired t over seeds, Holm over the grid's cells), which is
exploratory and said so.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from xfer_jax import study
from xfer_jax.console import format_markdown
from xfer_jax.grid import results
from xfer_jax.study import contrasts, report, stats


@dataclasses.dataclass(frozen=True)
class Study:
  title: str
  folder: str  # below docs/results/
  # "declared": ROOT/<strategy>/ grids and a design; "cells": one grid's records
  kind: str
  design: str = "design.json"  # the declared questions, relative to the folder
  when: str = "declared before the first record"
  grids: tuple[tuple[str, str], ...] = ()  # cells: (label, records file or folder)
  status: str = ""


STUDIES = (
    Study("Few labels counted honestly, subjects rotated, self-supervised sources", "real_v3",
          "declared", status="running: its grids are not complete (`real_v3/summary.md` "
          "counts the cells run and declared), so each contrast is an interim estimate "
          "over the cells recorded so far, and one with an arm still to run reads \"no "
          "records yet\""),
    Study("Self-supervised sources on the target's own unlabelled windows", "real_ssl",
          "declared", status="running: its grid is not complete, and every contrast "
          "with an arm still to run reads \"no records yet\""),
    Study("Fine-tuning strategies, pooled sources and branches", "real_v2", "declared",
          design="reanalysis.json",
          when="declared after the records (post hoc: read as a reanalysis, not a test "
               "planned in advance)"),
    Study("The paper's protocol on four real wrist datasets", "real", "cells",
          grids=(("batch-norm momentum 0.99 (as published)", "results.jsonl"),
                 ("batch-norm momentum 0.9 (a baseline that trains)",
                  "bn_momentum_0.9/results.jsonl"))),
)


def _pts(value: float | None, ci: float | None) -> str:
  if value is None:
    return ""
  return f"{value:+.1f} ± {ci:.1f}" if ci is not None else f"{value:+.1f}"


def _p(p: float | None) -> str:
  return "" if p is None else f"{p:.3g}"


def declared_section(root: Path, entry: Study) -> list[str]:
  design = study.read_design(root, root / entry.design)
  records, grids = study.load(root)
  rows = contrasts.analyse(records, design)
  table = [{"contrast": r["contrast"], "metric": r["metric"].replace("_", "-"),
            "cells": r["cells"], "replicates": r["replicates"],
            "difference, points (95% CI)": _pts(r["estimate"], r["ci95"]),
            "p (Holm)": _p(r["p_holm"]), "p equivalence (Holm)": _p(r["p_equivalence_holm"]),
            "verdict": r["verdict"]} for r in rows]
  verdicts = [r["verdict"] for r in rows if r["metric"] == "micro_f1"]
  counts = ", ".join(f"{verdicts.count(v)} {v}" for v in dict.fromkeys(verdicts))
  cells = [r for r in report.aggregate(records) if r["micro_f1_gain"] is not None]
  wins, losses = (sum(r["micro_f1_verdict"] == v for r in cells) for v in ("win", "loss"))
  return [f"{len(records)} records in {len(grids)} grids; {len(design.contrasts)} contrasts "
          f"{entry.when} (`{entry.folder}/{entry.design}`), margin ±{design.margin:g} points, "
          f"alpha {design.alpha}. Micro-F1: {counts}. Cell by cell (exploratory: paired t "
          f"over seeds, Holm over all {len(cells)} transfer cells), {wins} significant wins "
          f"and {losses} significant losses against the baseline.", "",
          "Each contrast over every cell it spans: a mixed model with crossed random effects "
          "for cell and replicate (seed, or fold and seed), Satterthwaite's t, Holm over the "
          "contrasts of a metric; *equivalent*: both one-sided tests against the margin "
          "reject; *inconclusive*: the study could not tell.", "",
          format_markdown(table), ""]


def cells_section(root: Path, entry: Study) -> list[str]:
  lines = ["No question was declared before these records: every transfer cell is tested "
           "against the baseline trained on the same windows (paired t over seeds, Holm over "
           "the grid's transfer cells). Exploratory.", ""]
  table = []
  for label, path in entry.grids:
    records, _ = results.load([root / path])
    rows = [r for r in report.aggregate(records) if r["micro_f1_gain"] is not None]
    tested = [r for r in rows if r["micro_f1_p"] is not None]
    gains = [100 * r["micro_f1_gain"] for r in rows]
    best = max(rows, key=lambda r: r["micro_f1_gain"])
    detectable = [100 * stats.smallest_detectable(r["micro_f1_gain_std"], r["n"], len(tested))
                  for r in tested]
    table.append({
        "grid": label, "records": len(records), "transfer cells": len(rows),
        "seeds": len({r.seed for r in records}),
        "gain > 0": sum(g > 0 for g in gains),
        "significant wins / losses": f"{sum(r['micro_f1_verdict'] == 'win' for r in rows)} / "
                                     f"{sum(r['micro_f1_verdict'] == 'loss' for r in rows)}",
        "gains, points": f"{min(gains):+.1f} to {max(gains):+.1f}",
        "best cell (95% CI)": f"{best['target']} <- {best['source']}, n={best['size']}, "
                              f"k={best['blocks']}: "
                              f"{_pts(100 * best['micro_f1_gain'], _ci(best))}"
                              f" ({best['micro_f1_verdict'] or 'not significant'})",
        "median detectable gain, points": f"{np.median(detectable):.1f}" if detectable else ""})
  return lines + [format_markdown(table), ""]


def _ci(row) -> float | None:
  ci = row["micro_f1_gain_ci95"]
  return None if ci is None else 100 * ci


def markdown(results_dir: str | Path) -> str:
  """FINDINGS.md for the studies of STUDIES found below results_dir."""
  results_dir = Path(results_dir)
  lines = ["# Findings", "",
           "Generated by `python -m launch.findings` from the records below this folder; "
           "every number recomputes from them. Newest study first. Micro-F1 in points "
           "(macro-F1 beside it where a study declared its questions).", ""]
  for entry in STUDIES:
    root = results_dir / entry.folder
    if not root.exists():
      continue
    lines += [f"## {entry.title}", "", f"Records: [`{entry.folder}/`]({entry.folder}/)"
              + (f"; {entry.status}" if entry.status else "") + ".", ""]
    lines += (declared_section if entry.kind == "declared" else cells_section)(root, entry)
  return "\n".join(lines)

