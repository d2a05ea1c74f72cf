"""What a study's cells cost as its sweeps ran them: seed-epochs per second.

A record carries its cell's wall time (`wall_s`: every seed, compiling, validation,
checkpoints and the record included, measured by the process that finished the
cell) and its seed's epochs; a cell counts once per fold. The figure is what a
researcher waits for, beside the projection a sweep's --dry_run made before.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from xfer_jax.grid.records import Record


def cost_rows(records: Sequence[Record]) -> list[dict]:
  """Per arm (the record's grid in the study) and in all: cells, seed-epochs, the
  cells' wall time and seed-epochs per second of it; cells without a wall time are
  counted apart."""
  cells: dict[tuple, list[Record]] = defaultdict(list)
  for r in records:
    cells[(r.strategy, r.fold, r.cell)].append(r)
  arms: dict[str, list[list[Record]]] = defaultdict(list)
  for (strategy, _, _), group in sorted(cells.items(), key=lambda kv: str(kv[0])):
    arms[strategy or "grid"].append(group)
  rows = [_row(arm, groups) for arm, groups in arms.items()]
  if len(rows) > 1:
    rows.append(_row("all", [g for groups in arms.values() for g in groups]))
  return rows


def _row(arm: str, groups: list[list[Record]]) -> dict:
  timed = [g for g in groups if g[0].wall_s is not None]
  wall = sum(g[0].wall_s for g in timed)
  seed_epochs = sum(r.epochs for g in timed for r in g)
  return {"arm": arm, "cells": len(groups), "untimed cells": len(groups) - len(timed),
          "seed-epochs": seed_epochs, "wall (h)": f"{wall / 3600:.2f}",
          "median cell (s)": f"{np.median([g[0].wall_s for g in timed]):.0f}" if timed else "–",
          "seed-epochs / s": f"{seed_epochs / wall:.2f}" if wall else "–"}
