"""Op families summed from a jax.profiler (perfetto) trace."""

import gzip
import json

import pytest

from xfer_jax.profiling import op_family_times


def test_op_families_sum_numbered_ops_and_leave_out_the_runtime(tmp_path):
  def op(pid, name, dur, hlo_op=None):
    return {"ph": "X", "pid": pid, "tid": 1, "name": name, "ts": 0, "dur": dur,
            "args": {"hlo_op": hlo_op} if hlo_op else {}}
  events = [{"ph": "M", "pid": 7, "name": "process_name", "args": {"name": "/device:GPU:0"}},
            op(7, "loop_select_fusion.1", 300, "loop_select_fusion.1"),
            op(7, "loop_select_fusion.12", 200, "loop_select_fusion.12"),
            op(7, "cutlass_kernel", 500, "convolution.3"),
            op(7, "PjRt::Execute", 9000),  # runtime, no hlo_op
            op(8, "dot.2", 1000, "dot.2")]
  trace = tmp_path / "plugins" / "profile" / "run" / "perfetto_trace.json.gz"
  trace.parent.mkdir(parents=True)
  with gzip.open(trace, "wt") as f:
    json.dump({"traceEvents": events}, f)
  rows = op_family_times(tmp_path)
  assert [(r["process"], r["family"], r["ms"], r["count"]) for r in rows] == [
      ("/device:GPU:0", "loop_select_fusion", 0.5, 2), ("/device:GPU:0", "convolution", 0.5, 1),
      ("8", "dot", 1.0, 1)]
  assert [r["share"] for r in rows] == [0.5, 0.5, 1.0]
  with pytest.raises(FileNotFoundError, match="perfetto_trace.json.gz"):
    op_family_times(tmp_path / "plugins" / "profile" / "nothing")
