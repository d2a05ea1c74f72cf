"""Where a profiled program's time goes: op families summed from a jax.profiler trace.

  with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
    ...
  op_family_times(trace_dir)  # [{"process", "family", "ms", "share", "count"}, ...]

Only events of XLA ops count (those whose arguments name an `hlo_op`), so the
shares are of op time, without the runtime and Python around them. An op's
family is its HLO name up to the first dot: XLA names fusions by kind and number
("loop_select_fusion.12"), so the numbered instances of one kind add up. Rows
are per profiled process (the host on CPU, each GPU elsewhere), largest first.
"""

from __future__ import annotations

import collections
import gzip
import json
from pathlib import Path


def _perfetto_trace(trace_dir: Path) -> Path:
  traces = sorted(Path(trace_dir).glob("**/perfetto_trace.json.gz"))
  if not traces:
    raise FileNotFoundError(f"{trace_dir}: no perfetto_trace.json.gz; expected a "
                            "jax.profiler.trace(..., create_perfetto_trace=True) folder")
  return traces[-1]


def op_family_times(trace_dir: str | Path, top: int = 12) -> list[dict]:
  """The `top` op families of each process by summed duration (see the module)."""
  with gzip.open(_perfetto_trace(Path(trace_dir)), "rt") as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  processes = {e["pid"]: e["args"]["name"] for e in events
               if e.get("ph") == "M" and e.get("name") == "process_name"}
  micros = collections.defaultdict(collections.Counter)
  counts = collections.defaultdict(collections.Counter)
  for e in events:
    op = (e.get("args") or {}).get("hlo_op")
    if e.get("ph") != "X" or not op:
      continue
    process = processes.get(e.get("pid"), str(e.get("pid")))
    family = op.split(".")[0]
    micros[process][family] += e.get("dur", 0)
    counts[process][family] += 1
  rows = []
  for process, families in micros.items():
    total = sum(families.values())
    rows += [{"process": process, "family": family, "ms": us / 1e3, "share": us / total,
              "count": counts[process][family]} for family, us in families.most_common(top)]
  return rows
