"""Plain-text tables and progress lines for the launchers."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence


def format_table(rows: Sequence[dict], columns: Sequence[str] | None = None,
                 floatfmt: str = ".3f") -> str:
  """An aligned text table of dict rows (numbers right-aligned)."""
  if not rows:
    return "(empty)"
  columns = list(columns or rows[0].keys())

  def cell(v):
    if isinstance(v, float):
      return format(v, floatfmt)
    return str(v)

  body = [[cell(r.get(c, "")) for c in columns] for r in rows]
  widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(columns)]
  numeric = [all(isinstance(r.get(c), (int, float)) for r in rows) for c in columns]

  def line(cells):
    return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(cells, widths, numeric))

  return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, body)])


def format_markdown(rows: Sequence[dict], columns: Sequence[str] | None = None,
                    floatfmt: str = ".3f") -> str:
  """A Markdown table of dict rows."""
  if not rows:
    return "(empty)"
  columns = list(columns or rows[0].keys())
  cell = lambda v: format(v, floatfmt) if isinstance(v, float) else str(v)
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
  return "\n".join(lines)


class Progress:
  """A one-line progress bar with ETA on stderr."""

  def __init__(self, total: int, label: str = "", stream=None, done: int = 0):
    """done: the steps already behind it (a resumed run): its pace counts only the
    steps taken since."""
    self.total, self.label, self.done, self.first = max(total, 1), label, done, done
    self.start = self.last = time.monotonic()
    self.fastest = float("inf")  # the quickest step so far: one that compiled nothing
    self.stream = stream or sys.stderr

  def update(self, done: int | None = None, info: str = "", fewest_left: int | None = None) -> None:
    """fewest_left: the fewest steps that may remain (early stopping's), where the run
    can end before total: the ETA is then a range, from those steps to total. Without
    it the ETA ranges from the fastest step so far (the first steps compile) to the
    mean step so far, once they differ."""
    now = time.monotonic()
    previous, self.done = self.done, self.done + 1 if done is None else done
    if self.done > previous:
      self.fastest = min(self.fastest, (now - self.last) / (self.done - previous))
    self.last = now
    elapsed = now - self.start
    taken = self.done - self.first
    per_step = elapsed / taken if taken else float("nan")
    left = self.total - self.done
    eta = _clock(per_step * left)
    if fewest_left is not None and self.done + fewest_left < self.total:
      eta = f"{_clock(per_step * fewest_left)} to {eta}"
    elif fewest_left is None and left and self.fastest < 0.9 * per_step:
      eta = f"{_clock(self.fastest * left)} to {eta}"
    filled = int(24 * self.done / self.total)
    bar = "#" * filled + "." * (24 - filled)
    self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} "
                      f"{_clock(elapsed)} elapsed, ETA {eta} {info}".rstrip() + " ")
    if self.done >= self.total:
      self.stream.write("\n")
    self.stream.flush()


def _clock(seconds: float) -> str:
  if seconds != seconds:  # NaN
    return "--:--"
  m, s = divmod(int(seconds), 60)
  h, m = divmod(m, 60)
  return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def seed_table(summary: dict) -> list[dict]:
  """A run's result per seed: epochs and test scores (F1, or a pretext's
  accuracies); then mean ± std."""
  scores = [k for k in summary["per_seed"][0]
            if k == "micro_f1" or k == "macro_f1" or k.endswith("accuracy")]
  rows = [{"seed": r["seed"], "epochs": r["epochs"], **{k: r[k] for k in scores}}
          for r in summary["per_seed"]]
  mean = lambda k: sum(r[k] for r in rows) / len(rows)
  std = lambda k: (sum((r[k] - mean(k)) ** 2 for r in rows) / len(rows)) ** 0.5
  rows.append({"seed": "mean±std", "epochs": "", **{k: f"{mean(k):.3f}±{std(k):.3f}"
                                                     for k in scores}})
  return rows
