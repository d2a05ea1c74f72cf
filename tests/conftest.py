"""Shared fixtures: the real data of ../shared/data (skipped where absent)."""

import os
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
  from configs import common
  config = common.data_config()
  config.cache_dir = str(tmp_path / "cache")
  config.data_dir = str(SHARED_DATA)
  return config


def pytest_configure(config):
  # compiled programs are reused across the tests' processes (and later runs)
  from xfer_jax.runtime import enable_compilation_cache
  enable_compilation_cache()
