"""The pipeline end to end: synthetic presets, cache, real data, bad input."""

import numpy as np
import pytest

from xfer_jax.data import DataError, prepare, synthetic


def test_cache_round_trip(data_config, tmp_path):
  first = prepare("syn_smoke_a", data_config)
  again = prepare("syn_smoke_a", data_config)
  assert not first.from_cache and again.from_cache
  for split in ("train", "val", "test"):
    np.testing.assert_array_equal(first.splits[split].x_NxWx3, again.splits[split].x_NxWx3)
    np.testing.assert_array_equal(first.splits[split].y_N, again.splits[split].y_N)
  assert first.splits["train"].x_NxWx3.shape[1:] == (100, 3)
  files = list((tmp_path / "cache").iterdir())
  assert len(files) == 1 and not any(f.name.startswith(".") for f in files)
  data_config.step_s = 1.0  # another preprocessing config is another cache entry
  assert len(prepare("syn_smoke_a", data_config).splits["train"]) > len(first.splits["train"])


def test_interrupted_cache_write_leaves_nothing(data_config, tmp_path, monkeypatch):
  from xfer_jax.data import cache

  def explode(*args, **kwargs):
    raise KeyboardInterrupt

  monkeypatch.setattr(cache.np, "savez", explode)
  with pytest.raises(KeyboardInterrupt):
    prepare("syn_smoke_a", data_config)
  assert not list((tmp_path / "cache").iterdir())


def test_unknown_dataset_lists_known(data_config):
  with pytest.raises(DataError, match=r"unknown dataset 'pamap3'; built-in datasets: \[.*'pamap2'"):
    prepare("pamap3", data_config)


def test_missing_folder_is_named(data_config, tmp_path):
  data_config.data_dir = str(tmp_path)
  with pytest.raises(DataError, match="PAMAP2_Dataset/Protocol: no such folder"):
    prepare("pamap2", data_config)


def test_real_datasets_prepare(data_config):
  from tests.conftest import shared_file
  shared_file("actrectut_arm.npz")
  act = prepare("actrectut", data_config)
  assert act.split_rule == "occurrence" and act.num_classes == 17
  assert act.class_names[0] == "NULL"
  hmp = prepare("hmp", data_config)
  assert hmp.split_rule == "subject" and hmp.num_classes == 14


def test_presets_mirror_the_papers_datasets():
  assert synthetic.PRESETS["syn_skoda"].num_subjects == 1
  assert len(synthetic.PRESETS["syn_skoda"].classes) == 10
  assert synthetic.PRESETS["syn_jsifos"].rate_hz == 50 and len(synthetic.PRESETS["syn_jsifos"].classes) == 8
  assert synthetic.PRESETS["syn_pamap2"].rate_hz == 100 and synthetic.PRESETS["syn_pamap2"].num_subjects == 9
  assert synthetic.PRESETS["syn_opportunity"].num_subjects == 4


def test_simulator_is_seeded_and_physical():
  a = synthetic.read("syn_smoke_a", seed=1)
  b = synthetic.read("syn_smoke_a", seed=1)
  c = synthetic.read("syn_smoke_a", seed=2)
  np.testing.assert_array_equal(a.recordings[0].acc_Tx3, b.recordings[0].acc_Tx3)
  assert not np.array_equal(a.recordings[0].acc_Tx3[:100], c.recordings[0].acc_Tx3[:100])
  acc = np.concatenate([r.acc_Tx3 for r in a.recordings])
  assert 0.9 < np.median(np.linalg.norm(acc, axis=1)) < 1.2  # gravity
  # postures differ by orientation, locomotion by its dynamics
  labels = np.concatenate([r.labels_T for r in a.recordings])
  names = a.spec.label_names
  sit = acc[labels == [k for k, v in names.items() if v == "sit"][0]]
  run = acc[labels == [k for k, v in names.items() if v == "run"][0]]
  assert run.std(0).mean() > 3 * sit.std(0).mean()


def test_synthetic_is_not_trivially_separable(data_config):
  """A linear model on simple window features must not reach 100 %."""
  from sklearn.linear_model import LogisticRegression
  p = prepare("syn_jsifos", data_config)

  def features(x):
    return np.concatenate([x.mean(1), x.std(1)], axis=1)

  train, test = p.splits["train"], p.splits["test"]
  clf = LogisticRegression(max_iter=2000).fit(features(train.x_NxWx3), train.y_N)
  accuracy = clf.score(features(test.x_NxWx3), test.y_N)
  assert 0.3 < accuracy < 0.97


def test_scores_equal_sklearns_bit_for_bit():
  """metrics computes sklearn's F1s itself (sklearn.metrics takes 1.6 s to import);
  the numbers must be sklearn's exactly, not approximately: records written before
  and after the change are compared with ==."""
  from sklearn.metrics import confusion_matrix, f1_score

  from xfer_jax import metrics
  rng = np.random.default_rng(0)
  for trial in range(200):
    num_classes = int(rng.integers(2, 9))
    n = int(rng.integers(1, 60))
    # some classes never occur, in truth or prediction or both
    y_true = rng.integers(0, max(1, num_classes - trial % 3), n)
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, num_classes, n))
    got = metrics.scores(y_true, y_pred, num_classes)
    labels, present = np.arange(num_classes), np.union1d(y_true, y_pred)
    assert got["micro_f1"] == float(f1_score(y_true, y_pred, average="micro"))
    assert got["macro_f1"] == float(f1_score(y_true, y_pred, labels=present, average="macro",
                                             zero_division=0))
    assert got["per_class_f1"] == f1_score(y_true, y_pred, labels=labels, average=None,
                                           zero_division=0).tolist()
    assert got["confusion"] == confusion_matrix(y_true, y_pred, labels=labels).tolist()
    y_train = rng.integers(0, num_classes, 30)
    majority = metrics.majority_baseline(y_train, y_true, num_classes)
    predicted = np.full_like(y_true, majority["class"])
    assert majority["micro_f1"] == float(f1_score(y_true, predicted, average="micro"))
    assert majority["macro_f1"] == float(f1_score(y_true, predicted, labels=np.unique(y_true),
                                                  average="macro", zero_division=0))


def test_the_majority_baseline_says_a_class_the_test_split_holds():
  """HMP's case: the train split's most frequent class never occurs in its test split;
  the baseline then says the most frequent of the classes the test split holds."""
  from xfer_jax import metrics
  y_train = np.array([0, 0, 0, 0, 1, 1, 2])
  y_test = np.array([1, 1, 2, 2, 2])
  majority = metrics.majority_baseline(y_train, y_test, 3)
  assert majority["class"] == 1 and majority["micro_f1"] == pytest.approx(0.4)
  assert metrics.majority_baseline(y_train, np.array([0, 1]), 3)["class"] == 0
