"""A user's own dataset as an interchange file: declared by name, prepared, vouched
for (units, gaps, clocks, classes, window length), and every bad input a clear
error naming the file or key."""

import logging
import os
import warnings

import numpy as np
import pytest

from xfer_jax.data import DataError, prepare, synthetic
from xfer_jax.data.readers import interchange


@pytest.fixture(scope="module")
def arrays(tmp_path_factory):
  """A valid interchange file's arrays: the smoke preset (3 subjects' sessions)."""
  path = tmp_path_factory.mktemp("own") / "mine.npz"
  interchange.write(path, synthetic.read("syn_smoke_a"))
  with np.load(path) as z:
    return {k: z[k] for k in z.files}


@pytest.fixture
def config(data_config, tmp_path):
  data_config.data_dir = str(tmp_path)
  data_config.datasets = {"mine": {"reader": "interchange", "path": "mine.npz",
                                   "options": {"name": "mine"}}}
  return data_config


def _write(config, arrays, **changes):
  out = {**arrays, **changes}
  np.savez(os.path.join(config.data_dir, "mine.npz"), **{k: v for k, v in out.items()
                                                         if v is not None})


def test_an_own_dataset_is_found_by_name_and_prepared(config, arrays):
  _write(config, arrays)
  mine = prepare("mine", config)
  assert mine.name == "mine" and mine.num_classes == len(synthetic.PRESETS["syn_smoke_a"].classes)
  assert mine.recordings == int(arrays["n_recordings"])
  assert all(len(mine.splits[s]) for s in ("train", "val", "test"))
  with pytest.raises(DataError, match=r"unknown dataset 'yours'.*declares \['mine'\]"):
    prepare("yours", config)


def test_the_cache_follows_the_file_contents(config, arrays):
  _write(config, arrays)
  first = prepare("mine", config)
  assert prepare("mine", config).from_cache
  corrected = {k: (v * 0.5 + 0.5 if k.startswith("acc_") else v) for k, v in arrays.items()}
  _write(config, corrected)  # the same path, new contents
  again = prepare("mine", config)
  assert not again.from_cache
  assert not np.array_equal(first.splits["train"].x_NxWx3, again.splits["train"].x_NxWx3)
  # a correction of the same size with its old modification time put back (cp -p,
  # rsync -t): still read again, not served from the stale cache
  path = os.path.join(config.data_dir, "mine.npz")
  stat = os.stat(path)
  restored = {k: (v * 0.25 + 0.75 if k.startswith("acc_") else v) for k, v in arrays.items()}
  _write(config, restored)
  assert os.stat(path).st_size == stat.st_size
  os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
  third = prepare("mine", config)
  assert not third.from_cache
  assert not np.array_equal(third.splits["train"].x_NxWx3, again.splits["train"].x_NxWx3)


@pytest.mark.parametrize("changes, message", [
    (dict(to_g_scale=np.float64(9.80665)), r"median \|acceleration\| outside .*to_g_scale"),
    (dict(to_g_scale=np.float64(0.0)), r"median \|acceleration\| outside"),
    (dict(sampling_rate_hz=np.float64(0.0)), r"'sampling_rate_hz' = 0.0: expected a positive"),
    (dict(sampling_rate_hz=np.float64(-50.0)), r"'sampling_rate_hz' = -50.0"),
    (dict(sampling_rate_hz=np.float64(np.nan)), r"'sampling_rate_hz' = nan"),
    (dict(subject_0=np.str_("S02")), r"'subject_0' holds 'S02'.*integer subject id"),
    (dict(subject_0=np.float64(1.5)), r"'subject_0' holds 1.5: expected one integer subject id"),
    (dict(label_0="walk"), r"'label_0' has dtype <U4: expected numbers"),
    (dict(label_names=np.array(["", ""])), r"'label_names' names no label"),
    (dict(n_recordings=np.int64(0)), r"'n_recordings' = 0: expected recordings"),
    (dict(acc_0=np.zeros((10, 2), np.float32), label_0=np.zeros(10, np.int16)),
     r"'acc_0' has shape \(10, 2\): expected \(T, 3\)"),
    (dict(acc_0=np.zeros((0, 3), np.float32), label_0=np.zeros(0, np.int16)),
     r"mine.npz:.*: the recording has no samples"),
    (dict(acc_0=np.full((10, 3), np.nan, np.float32), label_0=np.ones(10, np.int16)),
     r"mine.npz:.*: every sample is NaN or inf"),
])
def test_bad_input_is_an_error_naming_the_key(config, arrays, changes, message):
  _write(config, arrays, **changes)
  with pytest.raises(DataError, match=message):
    prepare("mine", config)


def test_units_check_can_be_overridden(config, arrays):
  _write(config, arrays, to_g_scale=np.float64(0.1))  # gravity-free data would read ~0.1 g
  with pytest.raises(DataError, match="check_units=False"):
    prepare("mine", config)
  config.check_units = False
  assert prepare("mine", config).num_classes > 1


def test_a_damaged_member_is_named(config, arrays):
  _write(config, arrays)
  path = os.path.join(config.data_dir, "mine.npz")
  data = bytearray(open(path, "rb").read())
  start = data.index(b"acc_0.npy") + 100  # inside the member's header
  data[start:start + 64] = os.urandom(64)
  open(path, "wb").write(bytes(data))
  with pytest.raises(DataError, match="mine.npz: not a readable interchange .npz"):
    prepare("mine", config)


def test_declared_classes_must_occur(config, arrays):
  labels = {k: np.ones_like(v) for k, v in arrays.items()
            if k.startswith("label_") and k != "label_names"}
  _write(config, arrays, **labels)  # every sample the class with id 1
  with pytest.raises(DataError, match=r"never occur in its recordings"):
    prepare("mine", config)


def test_inf_is_missing_data_and_a_clock_reset_cuts(config, arrays, caplog):
  acc = arrays["acc_0"].copy()
  acc[100:110] = np.inf  # 0.2 s at 50 Hz: interpolated like NaN
  t_ms = np.arange(len(acc)) * 20
  t_ms[len(acc) // 2:] -= 30_000  # the clock jumps back 30 s
  _write(config, arrays, acc_0=acc, t_ms_0=t_ms.astype(np.int32))
  with caplog.at_level(logging.WARNING):
    mine = prepare("mine", config)
  assert np.isfinite(mine.splits["train"].x_NxWx3).all()
  assert any("time goes backwards" in r.getMessage() and "mine.npz" in r.getMessage()
             for r in caplog.records)
  pieces = [a for a in mine.assignment if f":{arrays['session_0']}#" in a["recording"]]
  assert len(pieces) >= 2  # cut at the reset, not interleaved


def test_a_class_lost_to_the_window_length_is_refused(config, arrays):
  _write(config, arrays, **_lose_the_last_class(arrays))
  with pytest.raises(DataError, match=r"4.0 s windows.*lose every window of class\(es\) "
                                      r"\{'train': \['cycle'\].*cycle: \d+ run\(s\), median "
                                      r"1.0 s, longest 1.0 s. A window of at most 1 s .*"
                                      r"allow_lost_classes=True"):
    prepare("mine", config)
  config.allow_lost_classes = True
  lossy = prepare("mine", config)
  assert lossy.losses["train"]["classes_lost"] == ["cycle"]
  assert "cycle" in lossy.losses["train"]["classes_in_samples"]
  assert "classes cycle" in lossy.summary()["lost_train"]
  config.window_s, config.step_s = 1.0, 0.5  # the window the error suggests keeps it
  assert prepare("mine", config).losses["train"]["classes_lost"] == []


def _lose_the_last_class(arrays):
  """Labels whose last class occurs only in 1 s bursts: no 4 s window is mostly it."""
  last = max(i for i, n in enumerate(arrays["label_names"]) if n)
  labels = {}
  for k, v in arrays.items():
    if k.startswith("label_") and k != "label_names":
      v = np.where(v == last, 1, v)
      v[1000:1050] = v[6000:6050] = last
      labels[k] = v
  return labels


def test_a_loss_the_dataset_declares_is_logged_not_warned(config, arrays, caplog):
  """A built-in dataset's documented loss (Berkeley MHAD's short trials, declared in
  its entry) used to open a user's own-data prepare with warnings that read as the
  user's; a loss the user allows in config.data is still warned, once."""
  _write(config, arrays, **_lose_the_last_class(arrays))
  config.allow_lost_classes = True
  with caplog.at_level(logging.INFO):
    assert prepare("mine", config).losses["train"]["classes_lost"] == ["cycle"]
  warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
  assert any("classes lost: ['cycle']" in r.getMessage() for r in warned)
  caplog.clear()
  config.allow_lost_classes = False
  config.datasets["mine"]["preprocess"] = {"allow_lost_classes": True}
  config.window_s = 4.5  # another cache entry: prepared again, not served from the cache
  with caplog.at_level(logging.INFO):
    assert prepare("mine", config).losses["train"]["classes_lost"] == ["cycle"]
  assert any("classes lost: ['cycle']" in r.getMessage() for r in caplog.records)
  assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_labelled_majority_keeps_short_gestures():
  from xfer_jax.data.preprocess import make_windows
  classes = np.full(400, -1, np.int32)  # dropped null, with two 1.5 s gestures at 25 Hz
  classes[50:88], classes[250:288] = 0, 1
  acc = np.zeros((400, 3), np.float32)
  _, y_majority = make_windows(acc, classes, 100, 50, "majority")
  _, y_labelled = make_windows(acc, classes, 100, 50, "labelled_majority", min_labelled=0.25)
  assert len(y_majority) == 0
  assert sorted(set(y_labelled.tolist())) == [0, 1]
  _, y_strict = make_windows(acc, classes, 100, 50, "labelled_majority", min_labelled=0.5)
  assert len(y_strict) == 0


def test_a_dataset_cannot_set_the_models_input_length(config, arrays):
  _write(config, arrays)
  config.datasets.mine.preprocess = {"window_s": 2.0}
  with pytest.raises(DataError, match=r"preprocess sets \['window_s'\].*shape the model's input"):
    prepare("mine", config)


def test_preprocessing_fields_out_of_range_are_named(config, arrays):
  _write(config, arrays)
  config.rate_hz = 0.0
  with pytest.raises(DataError, match=r"config.data.rate_hz=0.0 \(dataset 'mine'\): expected a "
                                      "positive rate"):
    prepare("mine", config)


def test_a_sweep_into_an_own_dataset_plans_like_a_built_in_one(smoke_config, arrays, tmp_path):
  from xfer_jax.grid import sweep
  np.savez(tmp_path / "mine.npz", **arrays)
  config = smoke_config.copy_and_resolve_references()
  config.data.data_dir = str(tmp_path)
  config.data.datasets = {"mine": {"reader": "interchange", "path": "mine.npz"}}
  config.sweep.pairs = ("syn_smoke_b->mine",)
  plan = sweep.plan(config, calibrate=False)
  assert plan["cells"] == len(config.sweep.sizes) * (1 + len(config.sweep.blocks))
  assert sweep.datasets(config) == ["mine", "syn_smoke_b"]


def test_a_sample_beyond_the_sensors_range_is_named_by_file_recording_and_time(config, arrays):
  """One sample of 1e30 g used to pass prepare with a numpy overflow warning and stop
  training later with a NaN loss naming nothing; now prepare names where it is."""
  acc = arrays["acc_1"].copy()
  acc[250] = [0.1, 1e30, 0.2]
  _write(config, arrays, acc_1=acc)
  with pytest.raises(DataError, match=r"mine.npz: recording .*: at 5.00 s \(sample 250\) the "
                     r"acceleration reads .*beyond config.data.max_abs_g=1000 g"):
    prepare("mine", config)
  config.max_abs_g = 0.0  # no check: prepared as before, and without a numpy overflow warning
  with warnings.catch_warnings():
    warnings.simplefilter("error", RuntimeWarning)
    assert len(prepare("mine", config).splits["train"])


def test_pieces_shorter_than_a_window_that_lose_no_class_are_not_warned(config, arrays, caplog):
  """A 2 s recording gives no 4 s window, but loses no class: logged, not a warning
  (a user's prepare used to open with such warnings about every dataset)."""
  n = int(arrays["n_recordings"])
  short = {f"acc_{n}": arrays["acc_0"][:100], f"label_{n}": arrays["label_0"][:100],
           f"subject_{n}": arrays["subject_0"], f"session_{n}": np.str_("short"),
           "n_recordings": np.int64(n + 1)}
  _write(config, arrays, **short)
  with caplog.at_level(logging.INFO):
    mine = prepare("mine", config)
  assert sum(len(loss["pieces_without_windows"]) for loss in mine.losses.values()) >= 1
  assert any("give no window" in r.getMessage() and r.levelno == logging.INFO
             for r in caplog.records)
  assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_rate_ten_times_too_high_is_refused(config, arrays):
  """50 Hz data declared as 500 Hz used to prepare without a word (its windows held
  0.4 s of motion each); its motion then sits above 12.5 Hz, which a wrist's does not."""
  _write(config, arrays, sampling_rate_hz=np.float64(500.0))
  with pytest.raises(DataError, match=r"mine.npz: its recordings put \d+% of their motion's "
                     r"power above 12.5 Hz .* Declared \[500.0\] Hz"):
    prepare("mine", config)
  config.check_units = False  # the override the message names
  assert len(prepare("mine", config).splits["train"])
