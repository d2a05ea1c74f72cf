"""Shared fixtures: the real data of ../shared/data (skipped where absent)."""

import fcntl
import json
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("XFER_JAX_SHARED_DATA", REPO.parent / "shared" / "data"))
RAW = SHARED_DATA / "raw_excerpts"


def shared_file(relative: str) -> Path:
  path = SHARED_DATA / relative
  if not path.exists():
    pytest.skip(f"real data not present: {relative}")
  return path


@pytest.fixture
def data_config(tmp_path):
  from xfer_jax import defaults
  config = defaults.data_config()
  config.cache_dir = str(tmp_path / "cache")
  config.data_dir = str(SHARED_DATA)
  return config


def pytest_configure(config):
  # as the launchers: compiled programs are reused across the tests' processes (and
  # later runs; every small program too: runtime.enable_compilation_cache), and freed
  # host memory within each (before JAX starts its threads)
  from xfer_jax.engine.runtime import enable_compilation_cache, reuse_freed_host_memory
  reuse_freed_host_memory()
  enable_compilation_cache()


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
  """Each module's compiled programs are let go after it: a worker holding every
  module's would grow past 3 GB, and a later module that needs one again loads it
  from the persistent compilation cache."""
  yield
  import jax

  from xfer_jax.engine import programs
  programs.clear_cache()
  jax.clear_caches()


@pytest.fixture(scope="session")
def smoke_config(tmp_path_factory):
  from configs import smoke
  config = smoke.get_config()
  config.data.cache_dir = str(tmp_path_factory.mktemp("cache"))
  return config


def made_once(tmp_path_factory, name: str, make) -> Path:
  """The folder `name`, made by make(folder) once per test session and read by
  every test after (each copies what it changes). Under pytest-xdist every worker
  shares it: the first to ask makes it, holding a lock the others wait on, so the
  suite trains it once rather than once per worker."""
  base = tmp_path_factory.getbasetemp()
  root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
  folder, made = root / name, root / f"{name}.made"
  with open(root / f"{name}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not made.exists():
      shutil.rmtree(folder, ignore_errors=True)  # a worker that died making it
      make(folder)
      made.touch()
  return folder


@pytest.fixture(scope="session")
def pretrained(smoke_config, tmp_path_factory):
  """A smoke source model (2 seeds), trained once per test session."""
  from xfer_jax import experiment
  return made_once(tmp_path_factory, "source",
                   lambda workdir: experiment.pretrain(smoke_config, workdir, progress=False))


@pytest.fixture(scope="session")
def adapted(smoke_config, pretrained, tmp_path_factory):
  """The smoke target adapted from `pretrained` with 1 block transferred and frozen:
  (config, workdir, its result.json)."""
  from xfer_jax import experiment
  config = smoke_config.copy_and_resolve_references()
  config.transfer.blocks = 1
  workdir = made_once(tmp_path_factory, "adapted",
                      lambda workdir: experiment.adapt(config, workdir, pretrained, progress=False))
  return config, workdir, json.loads((workdir / "result.json").read_text())
