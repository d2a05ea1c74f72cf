"""Where a profiled program's time goes: op families summed from a jax.profiler trace.

  with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
    ...
  op_family_times(trace_dir)  # [{"process", "family", "ms", "share", "count"}, ...]

Only events of XLA ops count (those whose arguments name an `hlo_op`), so the
shares are of op time, without the runtime and Python around them. An op's
family is its HLO name up to the first dot: XLA names fusions by kind and number
("loop_select_fusion.12"), so the numbered instances of one kind add up. Rows
are per profiled process (the host on CPU, each GPU elsewhere), largest first.

Each process also gets a row IDLE: the time between its first op and its last
during which no op ran on any of its threads (the host's dispatch between
programs and the profiler's own overhead are in it too). On a GPU that is the
card waiting for launches. On XLA:CPU it is also work the trace cannot see: a
convolution (and some dots) only launches Eigen's contraction on the intra-op
pool, so its event is the launch, and its arithmetic runs in the gaps after it
(docs/performance.md#where-the-cpu-time-goes).
"""

from __future__ import annotations

import collections
import gzip
import json
from pathlib import Path

IDLE = "(no op running)"


def _perfetto_trace(trace_dir: Path) -> Path:
  traces = sorted(Path(trace_dir).glob("**/perfetto_trace.json.gz"))
  if not traces:
    raise FileNotFoundError(f"{trace_dir}: no perfetto_trace.json.gz; expected a "
                            "jax.profiler.trace(..., create_perfetto_trace=True) folder")
  return traces[-1]


def _idle(intervals: list[tuple[float, float]]) -> tuple[float, int]:
  """(summed length, count) of the gaps between the union of (start, end) intervals."""
  intervals = sorted(intervals)
  idle, gaps, busy_until = 0.0, 0, intervals[0][1]
  for start, end in intervals[1:]:
    if start > busy_until:
      idle, gaps = idle + start - busy_until, gaps + 1
    busy_until = max(busy_until, end)
  return idle, gaps


def op_family_times(trace_dir: str | Path, top: int = 12) -> list[dict]:
  """The `top` op families of each process by summed duration, IDLE among them
  (see the module)."""
  with gzip.open(_perfetto_trace(Path(trace_dir)), "rt") as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  processes = {e["pid"]: e["args"]["name"] for e in events
               if e.get("ph") == "M" and e.get("name") == "process_name"}
  micros = collections.defaultdict(collections.Counter)
  counts = collections.defaultdict(collections.Counter)
  intervals = collections.defaultdict(list)
  for e in events:
    op = (e.get("args") or {}).get("hlo_op")
    if e.get("ph") != "X" or not op:
      continue
    process = processes.get(e.get("pid"), str(e.get("pid")))
    family = op.split(".")[0]
    micros[process][family] += e.get("dur", 0)
    counts[process][family] += 1
    intervals[process].append((e.get("ts", 0), e.get("ts", 0) + e.get("dur", 0)))
  rows = []
  for process, families in micros.items():
    idle, gaps = _idle(intervals[process])
    if gaps:
      families[IDLE], counts[process][IDLE] = idle, gaps
    total = sum(families.values())
    rows += [{"process": process, "family": family, "ms": us / 1e3, "share": us / total,
              "count": counts[process][family]} for family, us in families.most_common(top)]
  return rows
