"""launch.benchmark end to end on the smoke network: what it reports holds together."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO
from xfer_jax import benchmark


@pytest.fixture(scope="module")
def profile_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("profile")


@pytest.fixture(scope="module")
def report(profile_dir):
  done = subprocess.run(
      # one block of one layer (as tests/test_runner.py): what the report says holds
      # together whatever the network, at about half the smoke network's compile time
      [sys.executable, "-m", "launch.benchmark", "--config=configs/smoke.py",
       "--config.model.filters=(8,)", "--config.model.layers_per_block=1",
       "--config.model.dense_units=(16,)", "--seeds=2",
       "--steps=2", "--repeats=2", "--eval_windows=64", "--cell_size=20", "--cell_epochs=3", "--json",
       f"--profile_dir={profile_dir}"],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
  return json.loads(done.stdout.strip().splitlines()[-1])


def test_training_rows_compare_with_one_seed_and_the_matmul_rate(report):
  rows = report["training"]
  # one seed; 2 seeds in the engine's chunks (one per call on CPU); 2 in one vmapped call
  assert [(r["seeds"], r["seed_chunks"]) for r in rows] == [(1, 1), (2, 2), (2, 1)]
  assert report["train_flops_per_window"] > 1e5 and report["matmul_gflops"] > 0
  assert report["timed_repeats"] == 2
  for r in rows:
    assert r["compiles_in_timed_epoch"] == 0 and r["transfer_guard"] == "ok"
    # rates are of the fastest timed epoch of 2 batches per seed
    assert 0 < r["epoch_s"] <= r["epoch_s_median"]
    assert r["windows_per_s"] == pytest.approx(r["seeds"] * 2 * report["batch_size"] / r["epoch_s"])
    assert r["windows_per_s"] == pytest.approx(r["seeds"] * r["per_seed_windows_per_s"])
    assert r["gflops"] == pytest.approx(r["windows_per_s"] * report["train_flops_per_window"] / 1e9)
    assert r["of_matmul_rate"] == pytest.approx(r["gflops"] / report["matmul_gflops"])
    assert r["vs_1_seed"] == pytest.approx(r["windows_per_s"] / rows[0]["windows_per_s"])
  assert report["S_seeds_vs_1_seed"] == rows[1]["vs_1_seed"]


def test_the_cell_is_timed_together_and_as_single_seed_runs(report):
  assert report["cell_windows"] == 20 and report["cell_seeds"] == 2
  epochs = report["cell_epochs_per_seed"]
  assert len(epochs) == 2 and report["cell_epochs"] == max(epochs) <= 3
  # the cell as launch.adapt runs it: every epoch, through a workdir
  assert report["user_cell_s"] > 0 and report["user_cell_first_s"] > 0
  assert report["user_cell_seed_epochs_per_s"] == pytest.approx(
      2 * report["cell_epochs"] / report["user_cell_s"])
  assert report["cell_speedup_vs_single_runs"] == pytest.approx(
      report["cell_single_seed_runs_s"] / report["cell_s"])
  assert report["eval_windows"] == 64 and report["eval_windows_per_s_per_seed"] > 0
  # the timed pass evaluates every seed: the rate per seed counts each seed's windows
  assert report["eval_windows_per_s_per_seed"] == pytest.approx(
      report["eval_windows"] * report["eval_seeds"] / report["eval_s"])


def test_each_training_row_is_profiled(report, profile_dir):
  for r in report["training"]:
    trace = profile_dir / f"train_{r['seeds']}_seeds_{r['seed_chunks']}_chunks"
    assert list(trace.glob("**/perfetto_trace.json.gz")), trace
    shares = [p["share"] for p in r["profile"]]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1 + 1e-9
    assert all(p["ms"] > 0 and p["count"] > 0 for p in r["profile"])


def test_the_table_prints_every_measurement(report):
  text = benchmark.format_report(report)
  assert f"batch {report['batch_size']}" in text
  reused = "reused" if report["host_memory_reused"] else "returned to the system"
  assert f"freed host memory {reused}" in text
  assert "vs_1_seed" in text and "transfer_guard" in text
  assert f"per seed {report['cell_epochs_per_seed']}" in text
  assert "profile, 2 seed(s) in 1 chunk(s): " in text
