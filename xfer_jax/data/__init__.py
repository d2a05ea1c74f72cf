"""Data: readers -> recordings -> 25 Hz windows -> splits -> adaptation subsets."""

from xfer_jax.data import pool
from xfer_jax.data.pipeline import Prepared, Split, prepare, window_samples
from xfer_jax.data.recording import DataError, DatasetSpec, RawDataset, Recording
from xfer_jax.data.subsets import (
  adaptation_rows,
  adaptation_subsets,
  cap_sizes,
  inner_validation,
  shots_per_class,
)

__all__ = ["DataError", "DatasetSpec", "Prepared", "RawDataset", "Recording", "Split",
           "adaptation_rows", "adaptation_subsets", "cap_sizes", "inner_validation", "pool", "prepare",
           "shots_per_class", "window_samples"]
