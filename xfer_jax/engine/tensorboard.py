"""Training curves for TensorBoard (through tensorboardX: no TensorFlow or PyTorch):
one run per seed of a workdir's run, and one per cell of a sweep with its
coordinates as hyperparameters. metrics.jsonl and results.jsonl stay the record;
these files only draw it. Off with config.runtime.tensorboard=False.

  tensorboard --logdir=WORKDIR/tensorboard
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from xfer_jax.engine.loop import Hook
from xfer_jax.engine.runtime import is_primary

_NOT_SCALARS = ("phase", "epoch", "seed", "best")


def _summary_writer_class():
  """tensorboardX's SummaryWriter, imported where used (launchers start faster) and
  without PyTorch: tensorboardX imports it, where it is installed, only to accept its
  tensors, and that import is seconds of a launcher's start; we write floats."""
  if "torch" in sys.modules:  # already paid for, or already blocked
    from tensorboardX import SummaryWriter
    return SummaryWriter
  sys.modules["torch"] = None  # makes `import torch` raise ImportError, which it expects
  try:
    from tensorboardX import SummaryWriter
  finally:
    del sys.modules["torch"]  # the user's own `import torch` still works
  return SummaryWriter


def _writer(directory: Path, purge_step: int | None = None):
  return _summary_writer_class()(str(directory), purge_step=purge_step, flush_secs=30)


class TensorBoardWriter(Hook):
  """Each epoch's metric rows as scalars <phase>/<metric> at step epoch, in
  DIRECTORY/seed_<s>/ (the primary process only). A resumed run drops the steps it
  trains again, so the curves end as an uninterrupted run's would."""

  def __init__(self, directory: str | Path, phase: str):
    self.directory, self.phase, self.writers, self.first = Path(directory), phase, {}, 0

  def start(self, state):
    self.first = state.epoch

  def epoch_end(self, state, rows):
    if not is_primary():
      return
    for row in rows:
      seed = row["seed"]
      if seed not in self.writers:
        self.writers[seed] = _writer(self.directory / f"seed_{seed}", purge_step=self.first)
      for name, value in row.items():
        if name not in _NOT_SCALARS and isinstance(value, (int, float)):
          self.writers[seed].add_scalar(f"{self.phase}/{name}", value, row["epoch"])

  def end(self, state):
    for writer in self.writers.values():
      writer.close()
    self.writers = {}


def write_cell(directory: str | Path, name: str, hparams: Mapping, metrics: Mapping) -> None:
  """One sweep cell as a run of TensorBoard's hyperparameter dashboard."""
  if not is_primary():
    return
  writer = _writer(Path(directory) / name)
  try:
    writer.add_hparams({k: ("" if v is None else v) for k, v in hparams.items()}, dict(metrics),
                       name=".")
  finally:
    writer.close()
