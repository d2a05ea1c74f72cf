"""Multi-source pretraining: pooled datasets, their splits, transfer from the pool."""

import numpy as np
import pytest

from configs import real_loo
from xfer_jax import experiment, inspection, transfer
from xfer_jax.data import DataError, pool, prepare
from xfer_jax.engine import checkpoints
from xfer_jax.grid import sweep


@pytest.fixture(scope="module")
def parts(smoke_config):
  return [prepare(name, smoke_config.data) for name in ("syn_smoke_a", "syn_smoke_c")]


def test_pooled_splits_keep_each_dataset_disjoint_and_its_labels(parts):
  pooled = pool.pool(parts)
  assert pooled.name == "syn_smoke_a+syn_smoke_c"
  assert pooled.class_names == ("sit", "stand", "walk", "run", "cycle", "rope_jump", "kneel")
  subjects = {}
  for split in ("train", "val", "test"):
    got, offset = pooled.splits[split], 0
    for part in parts:
      n = len(part.splits[split])
      np.testing.assert_array_equal(got.x_NxWx3[offset:offset + n], part.splits[split].x_NxWx3)
      names = [pooled.class_names[y] for y in got.y_N[offset:offset + n]]
      assert names == [part.class_names[y] for y in part.splits[split].y_N]
      subjects[part.name, split] = set(got.subject_N[offset:offset + n].tolist())
      offset += n
    assert offset == len(got)
  for part in parts:  # each dataset's splits stay subject-disjoint, as prepared
    assert not subjects[part.name, "train"] & subjects[part.name, "test"]
  a, c = (set().union(*(subjects[p.name, s] for s in ("train", "val", "test"))) for p in parts)
  assert not a & c  # and no subject id is shared across datasets
  assert pool.class_sources(parts)["sit"] == ["syn_smoke_a", "syn_smoke_c"]


def test_transfer_from_a_pooled_source(smoke_config, tmp_path):
  config = smoke_config.copy_and_resolve_references()
  config.source = "syn_smoke_a+syn_smoke_c"
  config.train.max_epochs = 2
  experiment.pretrain(config, tmp_path / "src", progress=False)
  report = inspection.tree_report(tmp_path / "src")
  assert report["datasets"] == ["syn_smoke_a", "syn_smoke_c"]
  assert report["class_sources"]["rope_jump"] == ["syn_smoke_c"] and len(report["class_names"]) == 7
  summary = experiment.adapt(config, tmp_path / "adapted", tmp_path / "src", progress=False)
  assert summary["dataset"] == "syn_smoke_b" and len(summary["per_seed"]) == 2
  _, meta = checkpoints.read(tmp_path / "adapted")
  assert meta["transfer"]["source_dataset"] == "syn_smoke_a+syn_smoke_c"
  # a target among the pooled sources is refused
  config.target = "syn_smoke_c"
  with pytest.raises(transfer.TransferError, match="among the source model's datasets"):
    experiment.adapt(config, None, tmp_path / "src", progress=False)


def test_pooled_source_names_and_pairs_are_checked():
  assert pool.members("a+b") == ["a", "b"] and pool.members(("a", "b")) == ["a", "b"]
  for bad in ("a+a", "a++b", "+a"):
    with pytest.raises(DataError, match="distinct dataset names"):
      pool.members(bad)
  config = real_loo.get_config()
  assert sweep.pairs(config)[0] == ("hmp+actrectut+berkeley_mhad", "wisdm2019")
  assert sweep.datasets(config) == sorted(config.datasets)
  config.sweep.pairs = ("hmp+wisdm2019->wisdm2019",)
  with pytest.raises(sweep.SweepError, match="the target is one of the pooled sources"):
    sweep.pairs(config)
