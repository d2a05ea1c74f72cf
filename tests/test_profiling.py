"""Op families summed from a jax.profiler (perfetto) trace."""

import gzip
import json

import pytest

from xfer_jax.profiling import IDLE, op_family_times


def _write_trace(folder, events):
  trace = folder / "plugins" / "profile" / "run" / "perfetto_trace.json.gz"
  trace.parent.mkdir(parents=True)
  with gzip.open(trace, "wt") as f:
    json.dump({"traceEvents": events}, f)


def _op(pid, name, ts, dur, hlo_op=None, tid=1):
  return {"ph": "X", "pid": pid, "tid": tid, "name": name, "ts": ts, "dur": dur,
          "args": {"hlo_op": hlo_op} if hlo_op else {}}


def test_op_families_sum_numbered_ops_and_leave_out_the_runtime(tmp_path):
  events = [{"ph": "M", "pid": 7, "name": "process_name", "args": {"name": "/device:GPU:0"}},
            _op(7, "loop_select_fusion.1", 0, 300, "loop_select_fusion.1"),
            _op(7, "loop_select_fusion.12", 300, 200, "loop_select_fusion.12"),
            _op(7, "cutlass_kernel", 500, 500, "convolution.3"),
            _op(7, "PjRt::Execute", 0, 9000),  # runtime, no hlo_op
            _op(8, "dot.2", 0, 1000, "dot.2")]
  _write_trace(tmp_path, events)
  rows = op_family_times(tmp_path)
  assert [(r["process"], r["family"], r["ms"], r["count"]) for r in rows] == [
      ("/device:GPU:0", "loop_select_fusion", 0.5, 2), ("/device:GPU:0", "convolution", 0.5, 1),
      ("8", "dot", 1.0, 1)]
  assert [r["share"] for r in rows] == [0.5, 0.5, 1.0]
  with pytest.raises(FileNotFoundError, match="perfetto_trace.json.gz"):
    op_family_times(tmp_path / "plugins" / "profile" / "nothing")


def test_time_with_no_op_on_any_thread_is_a_row_of_its_own(tmp_path):
  # two threads: ops overlap on [100, 300), then nothing runs on [400, 1000)
  # (where XLA:CPU's convolutions do their work after their launch event) and
  # [1100, 1200)
  events = [_op(7, "convolution.1", 0, 300, "convolution.1", tid=1),
            _op(7, "add_fusion.1", 100, 300, "add_fusion.1", tid=2),
            _op(7, "add_fusion.2", 1000, 100, "add_fusion.2", tid=1),
            _op(7, "add_fusion.3", 1200, 200, "add_fusion.3", tid=2)]
  _write_trace(tmp_path, events)
  rows = {r["family"]: r for r in op_family_times(tmp_path)}
  assert rows[IDLE]["ms"] == 0.7 and rows[IDLE]["count"] == 2
  assert rows["add_fusion"]["ms"] == 0.6 and rows["convolution"]["ms"] == 0.3
  assert rows[IDLE]["share"] == pytest.approx(0.7 / 1.6)
