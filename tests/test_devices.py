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
import pytest

from xfer_jax.engine import checkpoints, devices

REPO = Path(__file__).resolve().parents[1]
# one block of one layer (as tests/test_runner.py): every kind of layer, about half
# the smoke network's compile time in each child
ONE_BLOCK = ("--config.model.filters=(8,)", "--config.model.layers_per_block=1",
             "--config.model.dense_units=(16,)")


def _pretrain(workdir, smoke_config, *flags, env_update=None, processes=1):
  """launch.pretrain of the smoke config in `processes` child processes (several:
  joined by jax.distributed on localhost); returns their outputs."""
  env = _child_env(**(env_update or {}))
  command = [sys.executable, "-m", "launch.pretrain", "--config=configs/smoke.py",
             f"--workdir={workdir}", f"--config.data.cache_dir={smoke_config.data.cache_dir}",
             *ONE_BLOCK, *flags]
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


# Both runs compute in float64 (config.model.dtype), where two differently compiled
# programs agree to ~1e-12: a real error (batch statistics over half a batch, a seed
# given another's data) moves parameters by ~1e-3 (tests/test_runner.py)
FLOAT64 = ("--config.model.dtype=float64",)
X64 = {"JAX_ENABLE_X64": "1"}
TOL = 1e-9


EPOCHS = 2  # the smoke config checkpoints after the last epoch: step EPOCHS - 1


@pytest.fixture(scope="module")
def reference(smoke_config, tmp_path_factory):
  """The smoke source's first epochs on one device, one process, in float64 (the
  host loop: one program call per step)."""
  workdir = tmp_path_factory.mktemp("reference64")
  _pretrain(workdir, smoke_config, f"--config.train.max_epochs={EPOCHS}", *FLOAT64,
            env_update=X64)
  return workdir


def _same_seeds(single, other):
  """other's epochs (its seeds a superset) equal the single-device, single-process
  run's: metrics per epoch and seed, and every parameter at the last checkpoint."""
  rows = lambda d: [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
  theirs = {(r["epoch"], r["seed"]): r for r in rows(other)}
  assert len(theirs) == len(rows(other))  # each row written once, not once per process
  mine = rows(single)
  assert len(mine) == EPOCHS * 2 and {r["seed"] for r in mine} <= {seed for _, seed in theirs}
  for a in mine:
    b = theirs[a["epoch"], a["seed"]]
    np.testing.assert_allclose([b["train_loss"], b["val_loss"]], [a["train_loss"], a["val_loss"]],
                               rtol=TOL, atol=TOL)
  with jax.enable_x64(True):  # else float64 arrays are read back as float32
    (tree_a, _), (tree_b, _) = (checkpoints.read(d, step=EPOCHS - 1) for d in (single, other))
  num_seeds = len(jax.tree.leaves(tree_a["params"])[0])
  assert jax.tree.leaves(tree_a["params"])[0].dtype == np.float64
  jax.tree.map(lambda a, b: np.testing.assert_allclose(b[:num_seeds], a, rtol=TOL, atol=TOL),
               tree_a["params"], tree_b["params"])
  return {seed for _, seed in theirs}


def test_four_devices_in_two_processes_train_as_one(smoke_config, reference, tmp_path):
  """Two processes on localhost joined by jax.distributed, each with 2 (fake CPU)
  devices: 4 seeds on 4 devices, one each. Seeds 0 and 1 train as in the
  single-device, single-process `reference` run (whose runner runs one seed per
  call): per-epoch metrics and every parameter at a checkpoint; and only process 0
  writes the metrics. (One run covers both the 4-device mesh and the 2 processes:
  each costs minutes of compilation on a 2-core machine.)"""
  _pretrain(tmp_path, smoke_config, "--config.train.num_seeds=4",
            f"--config.train.max_epochs={EPOCHS}", *FLOAT64, processes=2,
            env_update={"XLA_FLAGS": "--xla_force_host_platform_device_count=2", **X64})
  assert _same_seeds(reference, tmp_path) == {0, 1, 2, 3}


def test_a_seed_batch_split_over_two_devices_trains_as_on_one(smoke_config, reference, tmp_path):
  """config.runtime.batch_devices=2 on 2 (fake CPU) devices, with the one-call epoch
  (the loop GPUs and TPUs run, where splitting a batch pays): each seed's batches are
  split over both devices (XLA adds the batch norm's and the gradients'
  all-reduces), and the seeds train as in the single-device, host-loop `reference`."""
  dump = tmp_path / "hlo"
  [output] = _pretrain(
      tmp_path / "run", smoke_config, "--config.runtime.batch_devices=2",
      "--config.runtime.epoch_loop=device", f"--config.train.max_epochs={EPOCHS}",
      "--verbosity=0", *FLOAT64,
      # a compilation cache of its own, so that the epoch compiles and XLA dumps it
      env_update={"XLA_FLAGS": f"--xla_force_host_platform_device_count=2 --xla_dump_to={dump} "
                               "--xla_dump_hlo_module_re=.*device_epoch.*",
                  "XFER_JAX_COMPILATION_CACHE": str(tmp_path / "compiled"), **X64})
  assert "device_epoch: seeds over 1 device(s), each seed's batch over 2" in output
  assert _same_seeds(reference, tmp_path / "run") == {0, 1}
  # and the devices did split the batch rather than each compute all of it: the
  # partitioned epoch convolves 32 of the 64 rows per device and all-reduces
  [compiled] = dump.glob("*device_epoch*after_optimizations.txt")
  step = compiled.read_text()
  assert "all-reduce(" in step and "f64[32,100,8]" in step and "f64[64,100,8]" not in step


def _child_env(**update) -> dict:
  """This process's environment for a child, without our XLA_FLAGS, plus update."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env.update(PYTHONPATH=str(REPO), **update)
  return env


def test_mesh_sizes():
  assert devices.mesh_size(3, 1) == 1
  assert devices.mesh_size(8, 8) == 8
  assert devices.mesh_size(3, 8) == 3  # 5 devices idle
  assert devices.mesh_size(6, 4) == 3  # equal shards
  assert devices.mesh_size(5, 4) == 1
  assert devices.mesh_for(3, jax.devices()[:1]) is None  # one device: no mesh
  with pytest.raises(ValueError, match="batch_devices=2: expected 1 to the 1 devices"):
    devices.mesh_for(3, jax.devices()[:1], batch_devices=2)


def test_launchers_ask_gpus_for_deterministic_ops_unless_xla_flags_decide():
  from xfer_jax.engine.runtime import prefer_deterministic_gpu
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
