"""Process-level settings of xfer_jax.runtime that change how XLA:CPU runs."""

import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from xfer_jax.engine.runtime import reuse_freed_host_memory

# Runs a program whose 64 MiB temporary buffer XLA:CPU mallocs and frees on every
# call, and prints the minor page faults of each call.
_PROBE = """
import json, resource, sys
from xfer_jax.engine import runtime
applied = sys.argv[1] == "reuse" and runtime.reuse_freed_host_memory()
import jax, jax.numpy as jnp

@jax.jit
def f(x, w):  # the product's operand is a temporary that XLA cannot fuse away
  return ((x + 1) @ w).sum()

x, w = jnp.ones((4096, 4096)), jnp.ones(4096)
temp = f.lower(x, w).compile().memory_analysis().temp_size_in_bytes
faults = []
for _ in range(16):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  f(x, w).block_until_ready()
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"applied": applied, "temp_pages": temp / resource.getpagesize(),
                  "faults": faults}))
"""


def _page_faults_per_call(mode: str) -> dict:
  environ = {k: v for k, v in os.environ.items()
             if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
  done = subprocess.run([sys.executable, "-c", _PROBE, mode], cwd=REPO, env=environ,
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="the setting is glibc's")
def test_freed_host_memory_is_reused_instead_of_faulted_in_again():
  system = _page_faults_per_call("system")
  reused = _page_faults_per_call("reuse")
  assert reused["applied"] and not system["applied"]
  pages = system["temp_pages"]
  assert pages >= 16384  # above glibc's largest mmap threshold (32 MiB)
  # glibc's default: a fresh mmap per call, every page zero-filled on first touch
  assert np.median(system["faults"]) >= 0.9 * pages
  # reused: once the heap holds the buffer, a call maps no new page
  # (the first calls grow the heap; a freed block is sometimes nibbled at)
  assert np.median(reused["faults"][4:]) < 0.01 * pages


def test_a_malloc_setting_in_the_environment_is_left_alone():
  assert not reuse_freed_host_memory({"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"})
  assert not reuse_freed_host_memory({"MALLOC_ARENA_MAX": "2"})


def test_a_launcher_imports_no_library_a_run_does_not_use():
  """A fresh launch.adapt reaches its first result sooner without sklearn.metrics,
  scipy.signal (only resampling uses it, never a cached run), plotting, statistics
  or TensorBoard writing: together 2-3 s of a process's imports (docs/performance.md)."""
  heavy = ("sklearn", "scipy.signal", "scipy.stats", "matplotlib", "statsmodels", "pandas",
           "tensorboardX")
  done = subprocess.run(
      [sys.executable, "-c", "import sys, launch.adapt, xfer_jax.grid.sweep; "
       f"print([m for m in {heavy!r} if m in sys.modules])"],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.strip().splitlines()[-1] == "[]"


def test_tensorboard_curves_do_not_import_pytorch_where_it_is_installed(tmp_path):
  """tensorboardX imports PyTorch, where installed, only to accept its tensors:
  seconds of every launcher's start on a researcher's machine that has it. A stand-in
  `torch` that says when it is imported: the writer leaves it alone, and the user's
  own `import torch` afterwards still finds it."""
  (tmp_path / "torch").mkdir()
  (tmp_path / "torch" / "__init__.py").write_text("print('torch imported')\nTensor = object\n")
  script = (
      "from xfer_jax.engine import tensorboard\n"
      f"tensorboard.write_cell({str(tmp_path / 'tb')!r}, 'cell', {{'size': 20}}, {{'f1': 0.5}})\n"
      "print('written')\n"
      "import torch\n")
  done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"},
                        timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.split() == ["written", "torch", "imported"]
  assert list((tmp_path / "tb" / "cell").rglob("events.out.tfevents.*"))
