"""Leak-free splits: disjoint subjects, whole occurrences, windows inside one split."""

import numpy as np
import pytest

from tests.conftest import shared_file
from xfer_jax.data import DataError, DatasetSpec, RawDataset, Recording, prepare
from xfer_jax.data.readers import interchange
from xfer_jax.data.splits import assign_splits, occurrences, split_by_occurrence


def test_wisdm_subject_split_shares(data_config):
  ds = interchange.read(shared_file("wisdm2019_watch.npz"))
  rule, pieces = assign_splits(ds, "auto", (0.4, 0.1, 0.5), seed=0)
  assert rule == "subject"
  subjects = {s: {ds.recordings[p.recording].subject for p in pieces if p.split == s}
              for s in ("train", "val", "test")}
  assert not subjects["train"] & subjects["val"] and not subjects["train"] & subjects["test"]
  assert not subjects["val"] & subjects["test"]
  total = sum(r.duration_s for r in ds.recordings)
  for split, target in (("train", 0.4), ("val", 0.1), ("test", 0.5)):
    share = sum(ds.recordings[p.recording].duration_s for p in pieces if p.split == split) / total
    assert abs(share - target) < 0.05, (split, share)
  _, again = assign_splits(ds, "auto", (0.4, 0.1, 0.5), seed=0)
  assert again == pieces  # deterministic for a seed


def _one_subject(seed=0):
  rng = np.random.default_rng(seed)
  runs = []
  for _ in range(60):
    runs.append(np.zeros(rng.integers(20, 80), np.int32))  # null
    runs.append(np.full(rng.integers(100, 200), rng.integers(1, 4), np.int32))
  labels = np.concatenate(runs)
  rec = Recording(acc_Tx3=rng.normal(size=(len(labels), 3)).astype(np.float32), labels_T=labels,
                  subject=1, recording_id="one", rate_hz=25.0, source_units="g")
  spec = DatasetSpec("one", {0: "null", 1: "a", 2: "b", 3: "c"}, null_label=0)
  return RawDataset(spec, [rec])


def test_occurrence_split_keeps_label_segments_whole():
  ds = _one_subject()
  rule, pieces = assign_splits(ds, "auto", (0.4, 0.1, 0.5), seed=1)
  assert rule == "occurrence"
  split_of = np.empty(ds.recordings[0].num_samples, object)
  for p in pieces:
    split_of[p.start:p.stop] = p.split
  assert all(split_of != None)  # noqa: E711 - every sample is assigned
  labels = ds.recordings[0].labels_T
  change = np.flatnonzero(np.diff(labels)) + 1
  for start, stop in zip(np.r_[0, change], np.r_[change, len(labels)]):
    assert len(set(split_of[start:stop])) == 1  # no label segment is cut
  for label in (1, 2, 3):  # and each class lands in every split near its share
    seconds = {s: np.sum((labels == label) & (split_of == s)) for s in ("train", "val", "test")}
    assert all(v > 0 for v in seconds.values())


def test_occurrences_attach_preceding_null():
  labels = np.array([0, 0, 1, 1, 0, 2, 2, 0], np.int32)
  assert occurrences(labels, 0) == [(0, 4, 1), (4, 8, 2)]
  assert split_by_occurrence(_one_subject(), (0.4, 0.1, 0.5), 0)


def test_subject_split_needs_three_subjects():
  with pytest.raises(DataError, match="has 1 subject"):
    assign_splits(_one_subject(), "subject", (0.4, 0.1, 0.5), 0)
  with pytest.raises(DataError, match="unknown split rule 'random'"):
    assign_splits(_one_subject(), "random", (0.4, 0.1, 0.5), 0)


@pytest.mark.parametrize("name", ["syn_skoda", "syn_jsifos"])
def test_no_window_crosses_a_split_or_recording(name, data_config):
  prepared = prepare(name, data_config)
  window = 100
  step = 50
  seen = {}
  for split, data in prepared.splits.items():
    for recording in np.unique(data.recording_N):
      seen.setdefault(int(recording), set()).add(split)
  if prepared.split_rule == "subject":  # whole recordings per split
    assert all(len(s) == 1 for s in seen.values())
    subjects = [set(prepared.splits[s].subject_N.tolist()) for s in ("train", "val", "test")]
    assert not (subjects[0] & subjects[1] or subjects[0] & subjects[2] or subjects[1] & subjects[2])
  # every window's samples come from one piece of the assignment: windows are
  # built per piece, so the piece sample counts bound the window counts
  for piece in prepared.assignment:
    samples_25hz = (piece["stop"] - piece["start"]) * 25 / (96 if name == "syn_skoda" else 50)
    assert piece["windows"] <= max(0, (samples_25hz - window) // step + 1) + 1


def _subjects(count, seed=0):
  """count subjects, one recording each, of different lengths."""
  rng = np.random.default_rng(seed)
  recordings = []
  for s in range(count):
    acc = (rng.normal(0, 0.1, (25 * int(rng.integers(60, 200)), 3)) + [0, 0, 1]).astype(np.float32)
    recordings.append(Recording(acc_Tx3=acc, labels_T=np.zeros(len(acc), np.int32), subject=s,
                                recording_id=f"s{s}", rate_hz=25.0, source_units="g"))
  return RawDataset(DatasetSpec("folded", {0: "walk"}, rate_hz=25.0), recordings)


def test_subject_folds_are_disjoint_and_test_every_subject_once():
  ds = _subjects(7)
  tested = []
  for fold in range(5):
    rule, pieces = assign_splits(ds, "subject", (0.4, 0.1, 0.5), 0, folds=5, fold=fold)
    by_split = {s: {ds.recordings[p.recording].subject for p in pieces if p.split == s}
                for s in ("train", "val", "test")}
    assert all(by_split.values())  # every split holds subjects
    assert not (by_split["train"] & by_split["val"] or by_split["train"] & by_split["test"]
                or by_split["val"] & by_split["test"])
    tested.append(by_split["test"])
  assert sorted(s for group in tested for s in group) == list(range(7))  # each once
  # without folds the split is the one it always was
  assert assign_splits(ds, "subject", (0.4, 0.1, 0.5), 0) == assign_splits(
      ds, "subject", (0.4, 0.1, 0.5), 0, folds=0, fold=3)


@pytest.mark.parametrize("folds,fold,message", [
    (8, 0, r"config.data.folds=8: dataset 'folded' has 7 subjects, so at most 7"),
    (2, 0, r"config.data.folds=2: a fold set needs at least 3 groups"),
    (4, 4, r"config.data.fold=4: expected 0..3"),
])
def test_impossible_folds_are_one_line_errors(folds, fold, message):
  with pytest.raises(DataError, match=message):
    assign_splits(_subjects(7), "subject", (0.4, 0.1, 0.5), 0, folds=folds, fold=fold)


def test_real_target_folds_rotate_its_test_subjects(data_config):
  shared_file("hmp_wrist.npz")
  data_config.folds = 4
  tested = []
  for fold in range(4):
    data_config.fold = fold
    prepared = prepare("hmp", data_config)
    subjects = {s: set(np.unique(prepared.splits[s].subject_N)) for s in ("train", "val", "test")}
    assert not subjects["train"] & subjects["test"] and not subjects["val"] & subjects["test"]
    tested.append(subjects["test"])
  assert len(set().union(*tested)) == 16  # HMP's 16 volunteers, each tested once
  assert sum(len(t) for t in tested) == 16
