"""Seeds spread over several devices and processes train as on one device.

Fake CPU devices come from XLA_FLAGS=--xla_force_host_platform_device_count=N,
which must be set before JAX starts, so the runs happen in child processes.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

from xfer_jax import checkpoints, devices

REPO = Path(__file__).resolve().parents[1]

def _pretrain(workdir, smoke_config, *flags, env_update=None, processes=1):
  """launch.pretrain of the smoke config in `processes` child processes (several:
  joined by jax.distributed on localhost); returns their outputs."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env.update(PYTHONPATH=str(REPO), **(env_update or {}))
  command = [sys.executable, "-m", "launch.pretrain", "--config=configs/smoke.py",
             f"--workdir={workdir}", f"--config.data.cache_dir={smoke_config.data.cache_dir}",
             *flags]
  if processes > 1:
    with socket.socket() as s:
      s.bind(("localhost", 0))
      port = s.getsockname()[1]
    command += [f"--coordinator_address=localhost:{port}", f"--num_processes={processes}"]
  procs = [subprocess.Popen(command + ([f"--process_id={i}"] if processes > 1 else []),
                            env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True) for i in range(processes)]
  outputs = [p.communicate(timeout=900)[0] for p in procs]
  assert [p.returncode for p in procs] == [0] * processes, "".join(o[-3000:] for o in outputs)
  return outputs


def _same_seeds(single, other, epochs=6):
  """other's first `epochs` epochs (a checkpoint at epochs - 1, its seeds a
  superset) equal the single-device, single-process run's: metrics per epoch and
  seed, and every parameter at that checkpoint."""
  rows = lambda d: [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
  theirs = {(r["epoch"], r["seed"]): r for r in rows(other)}
  assert len(theirs) == len(rows(other))  # each row written once, not once per process
  mine = [r for r in rows(single) if r["epoch"] < epochs]
  assert {r["seed"] for r in mine} <= {seed for _, seed in theirs}
  for a in mine:
    b = theirs[a["epoch"], a["seed"]]
    np.testing.assert_allclose([b["train_loss"], b["val_loss"]], [a["train_loss"], a["val_loss"]],
                               rtol=1e-5, atol=1e-6)
  (tree_a, _), (tree_b, _) = (checkpoints.read(d, step=epochs - 1) for d in (single, other))
  num_seeds = len(jax.tree.leaves(tree_a["params"])[0])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(b[:num_seeds], a, rtol=1e-5, atol=1e-5),
               tree_a["params"], tree_b["params"])
  return {seed for _, seed in theirs}


def test_four_devices_in_two_processes_train_as_one(smoke_config, pretrained, tmp_path):
  """Two processes on localhost joined by jax.distributed, each with 2 (fake CPU)
  devices: 4 seeds on 4 devices, one each. Seeds 0 and 1 train as in the
  single-device, single-process `pretrained` run (whose engine runs one seed per
  call): per-epoch metrics and every parameter at a checkpoint; and only process 0
  writes the metrics. (One run covers both the 4-device mesh and the 2 processes:
  each costs minutes of compilation on a 2-core machine.)"""
  _pretrain(tmp_path, smoke_config, "--config.train.num_seeds=4", "--config.train.max_epochs=6",
            env_update={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}, processes=2)
  assert _same_seeds(pretrained, tmp_path) == {0, 1, 2, 3}


def test_mesh_sizes():
  assert devices.mesh_size(3, 1) == 1
  assert devices.mesh_size(8, 8) == 8
  assert devices.mesh_size(3, 8) == 3  # 5 devices idle
  assert devices.mesh_size(6, 4) == 3  # equal shards
  assert devices.mesh_size(5, 4) == 1


def test_launchers_ask_gpus_for_deterministic_ops_unless_xla_flags_decide():
  from xfer_jax.runtime import prefer_deterministic_gpu
  environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
  assert prefer_deterministic_gpu(environ)
  assert environ["XLA_FLAGS"] == ("--xla_force_host_platform_device_count=4 "
                                  "--xla_gpu_deterministic_ops=true")
  assert not prefer_deterministic_gpu(environ)  # once is enough
  chosen = {"XLA_FLAGS": "--xla_gpu_deterministic_ops=false"}
  assert not prefer_deterministic_gpu(chosen)
  assert chosen == {"XLA_FLAGS": "--xla_gpu_deterministic_ops=false"}
  fresh = {}
  prefer_deterministic_gpu(fresh)
  assert fresh == {"XLA_FLAGS": "--xla_gpu_deterministic_ops=true"}
