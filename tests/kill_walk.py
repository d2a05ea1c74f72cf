"""Kill -9 anywhere loses nothing: each job is killed at spread points of its run
(imports, compiling, training, checkpoint saves, evaluation, result writes), rerun
to the end, and compared with its uninterrupted run.

  python -m tests.kill_walk [--kills=6] [--jobs=pretrain,lp_ft,sweep] [--out=DIR]

Not collected by pytest (one walk is minutes of training); the suite holds each
mechanism's own test. Prints a markdown table: job, when it was killed, what the
workdir held then, the rerun's exit status, and whether the rerun's results equal
the uninterrupted run's (pretrain and adapt: result.json's per-seed scores and
metrics.jsonl; a sweep: every record but its timing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMOKE = ["--config=configs/smoke.py", "--config.runtime.checkpoint_every=1"]


def _jobs(root: Path) -> dict[str, list[str]]:
  source = root / "source"
  return {
      "pretrain": ["pretrain", *SMOKE],
      "lp_ft": ["adapt", *SMOKE, f"--source_checkpoint={source}",
                "--config.transfer.mode=lp_ft", "--config.transfer.lr_scale=0.1"],
      "sweep": ["sweep", *SMOKE, "--report=false"],
  }


def _start(args: list[str], workdir: Path, env: dict) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, "-m", f"launch.{args[0]}", *args[1:],
                           f"--workdir={workdir}"], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True)


def _run(args, workdir, env) -> tuple[int, str]:
  proc = _start(args, workdir, env)
  out, err = proc.communicate(timeout=1200)
  return proc.returncode, err


def _outcome(workdir: Path, job: str):
  """What a finished run's results are, less what may differ between processes."""
  if job == "sweep":
    path = workdir / "results.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    for r in records:
      for field in ("wall_s", "task"):
        r.pop(field, None)
    return sorted(records, key=lambda r: json.dumps(r, sort_keys=True))
  result = workdir / "result.json"
  metrics = workdir / "metrics.jsonl"
  return (json.loads(result.read_text())["per_seed"] if result.exists() else None,
          metrics.read_text() if metrics.exists() else None)


def _held(workdir: Path) -> str:
  """What a killed run left: its checkpoint steps and records."""
  steps = [p for p in workdir.rglob("checkpoints/*") if p.name.isdigit()]
  parts = [f"{len(steps)} checkpoint step(s)"]
  records = workdir / "results.jsonl"
  if records.exists():
    parts.append(f"{len(records.read_text().splitlines())} records")
  if (workdir / "result.json").exists():
    parts.append("result.json")
  leftovers = [p.name for p in workdir.rglob("*") if ".tmp" in p.name or "orbax-checkpoint-tmp"
               in p.name]
  if leftovers:
    parts.append(f"{len(leftovers)} temporary")
  return ", ".join(parts)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--kills", type=int, default=6, help="kill points per job")
  parser.add_argument("--jobs", default="pretrain,lp_ft,sweep")
  parser.add_argument("--out", default=None, help="folder for the walk (default: a temporary one)")
  flags = parser.parse_args()
  root = Path(flags.out or tempfile.mkdtemp(prefix="kill_walk_"))
  root.mkdir(parents=True, exist_ok=True)
  env = {**os.environ, "XFER_JAX_CACHE": str(root / "cache"), "PYTHONPATH": str(REPO)}
  jobs = _jobs(root)
  code, err = _run(jobs["pretrain"], root / "source", env)  # lp_ft's source
  assert code == 0, err[-2000:]
  rows, failures = [], 0
  for job in flags.jobs.split(","):
    reference = root / f"{job}_reference"
    code, err = _run(jobs[job], reference, env)
    assert code == 0, err[-2000:]
    # the kill points spread over a run whose programs are cached, as the killed ones are
    started = time.perf_counter()
    code, err = _run(jobs[job], root / f"{job}_timed", env)
    wall = time.perf_counter() - started
    assert code == 0, err[-2000:]
    expected = _outcome(reference, job)
    for i in range(flags.kills):
      at = wall * (i + 0.5) / flags.kills
      workdir = root / f"{job}_killed_{i}"
      proc = _start(jobs[job], workdir, env)
      try:
        proc.wait(timeout=at)
        held = "finished before the kill"
      except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        held = _held(workdir) if workdir.exists() else "no workdir yet"
      code, err = _run(jobs[job], workdir, env)
      equal = code == 0 and _outcome(workdir, job) == expected
      failures += not equal
      tail = "" if code == 0 else err.strip().splitlines()[-1][:200]
      rows.append(f"| {job} | {at:.1f} s of {wall:.1f} | {held} | {code}{' ' + tail if tail else ''}"
                  f" | {'yes' if equal else '**no**'} |")
      print(rows[-1], flush=True)
      shutil.rmtree(workdir, ignore_errors=True)
  print("\n| job | killed at | the workdir held | rerun exit | rerun equals the uninterrupted "
        "run |\n|---|---|---|---|---|")
  print("\n".join(rows))
  if not flags.out:
    shutil.rmtree(root, ignore_errors=True)
  sys.exit(1 if failures else 0)


if __name__ == "__main__":
  main()
