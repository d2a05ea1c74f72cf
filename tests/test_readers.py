"""Every reader on real bytes where we have them, on documented-format files otherwise."""

import shutil

import numpy as np
import pytest
import scipy.io

from tests.conftest import RAW, shared_file
from xfer_jax.data import DataError
from xfer_jax.data.readers import hmp, interchange, opportunity, pamap2, skoda, wisdm2019


def test_wisdm_raw_excerpt(tmp_path):
  excerpt = shared_file("raw_excerpts/wisdm2019_watch/data_1600_accel_watch.txt.first2000lines")
  shutil.copy(excerpt, tmp_path / "data_1600_accel_watch.txt")
  ds = wisdm2019.read(tmp_path)
  assert {r.subject for r in ds.recordings} == {1600}
  first = ds.recordings[0]
  # the first line: 7.091625,-0.5916671,8.195502 m/s^2
  np.testing.assert_allclose(first.acc_Tx3[0], np.array([7.091625, -0.5916671, 8.195502]) / 9.80665,
                             rtol=1e-6)
  assert first.labels_T[0] == 0 and ds.spec.label_names[0] == "walking"
  np.testing.assert_allclose(np.median(np.diff(first.t_s)), 0.05, atol=0.002)
  magnitude = np.linalg.norm(np.concatenate([r.acc_Tx3 for r in ds.recordings]), axis=1)
  assert 0.8 < np.median(magnitude) < 1.3  # gravity is 1 g


def test_wisdm_bad_line_names_file_and_line(tmp_path):
  bad = tmp_path / "data_1600_accel_watch.txt"
  bad.write_text("1600,A,1,0.1,0.2,9.8;\n1600,A,2,0.1,9.8;\n")
  with pytest.raises(DataError, match=r"data_1600_accel_watch.txt, line 2"):
    wisdm2019.read(tmp_path)
  bad.write_text("1600,A,1,0.1,0.2,9.8;\n16x0,A,2,0.1,0.2,9.8;\n")
  with pytest.raises(DataError, match=r"line 2: not a number .*integer subject"):
    wisdm2019.read(tmp_path)


def test_hmp_raw_trials(tmp_path):
  for name in ("Walk__Accelerometer-2011-03-24-09-51-07-walk-f1.txt",
               "Brush_teeth__Accelerometer-2011-04-11-13-28-18-brush_teeth-f1.txt"):
    src = shared_file(f"raw_excerpts/hmp_wrist/{name}")
    folder, file = name.split("__")
    (tmp_path / folder).mkdir()
    shutil.copy(src, tmp_path / folder / file)
  ds = hmp.read(tmp_path)
  assert sorted(ds.spec.label_names[int(r.labels_T[0])] for r in ds.recordings) == [
      "brush_teeth", "walk"]
  walk = next(r for r in ds.recordings if r.labels_T[0] == 14)
  np.testing.assert_allclose(walk.acc_Tx3[0], -1.5 + np.array([32, 47, 40]) * 3 / 63, rtol=1e-6)
  assert walk.rate_hz == 32.0


def test_hmp_unknown_primitive(tmp_path):
  (tmp_path / "Fly").mkdir()
  (tmp_path / "Fly" / "Accelerometer-2011-03-24-09-51-07-fly-f1.txt").write_text("1 2 3\n")
  with pytest.raises(DataError, match="unknown motion primitive 'fly'"):
    hmp.read(tmp_path)


def _pamap2_rows(n, activity, rate=100.0):
  table = np.full((n, 54), 1.0)
  table[:, 0] = np.arange(n) / rate
  table[:, 1] = activity
  table[:, 4:7] = [0.0, 0.0, 9.80665]
  return table


def test_pamap2_documented_format(tmp_path):
  folder = tmp_path / "Protocol"
  folder.mkdir()
  table = np.concatenate([_pamap2_rows(300, 0), _pamap2_rows(500, 4)])
  table[350:353, 4:7] = np.nan  # a dropped packet
  np.savetxt(folder / "subject105.dat", table, fmt="%.6f")
  ds = pamap2.read(folder)
  (rec,) = ds.recordings
  assert rec.subject == 105 and rec.rate_hz == 100.0
  np.testing.assert_allclose(np.nanmean(rec.acc_Tx3, axis=0), [0, 0, 1], atol=1e-6)
  assert np.isnan(rec.acc_Tx3[350]).all()  # left for the gap policy
  classes = ds.spec.class_ids(rec.labels_T, "x")
  assert (classes[:300] == -1).all() and ds.spec.class_names[classes[400]] == "walking"


def test_pamap2_declares_the_protocol_activities_and_the_optional_ones_with_their_folder(
    tmp_path):
  """Protocol/ holds the 12 protocol activities: they are the classes (the 6 optional
  ones used to be declared too, so real Protocol/ files were refused as "never
  occur"); with Optional/ beside it, its files are read and its activities join."""
  protocol, optional = tmp_path / "Protocol", tmp_path / "Optional"
  protocol.mkdir()
  np.savetxt(protocol / "subject101.dat", np.concatenate(
      [_pamap2_rows(200, a) for a in pamap2.PROTOCOL]), fmt="%.6f")
  spec = pamap2.read(protocol).spec
  assert sorted(spec.class_names) == sorted(pamap2.LABEL_NAMES[a] for a in pamap2.PROTOCOL)
  optional.mkdir()
  np.savetxt(optional / "subject101.dat", np.concatenate(
      [_pamap2_rows(200, a) for a in (9, 10, 11, 18, 19, 20)]), fmt="%.6f")
  ds = pamap2.read(protocol)
  assert len(ds.spec.class_names) == 18 and len(ds.recordings) == 2
  assert {r.recording_id for r in ds.recordings} == {"Protocol/subject101.dat",
                                                      "Optional/subject101.dat"}
  assert len(pamap2.read(protocol, optional=False).spec.class_names) == 12


def test_pamap2_timestamp_jumps_cut_the_recording(tmp_path):
  from xfer_jax.data import preprocess
  table = np.concatenate([_pamap2_rows(800, 4), _pamap2_rows(800, 4)])
  table[800:, 0] += 30.0  # 30 s left out between the two halves
  np.savetxt(tmp_path / "subject101.dat", table, fmt="%.6f")
  (rec,) = pamap2.read(tmp_path).recordings
  pieces = preprocess.apply_gap_policy(rec, max_interp_gap_s=0.5)
  assert [p.num_samples for p in pieces] == [800, 800]


def test_a_regular_30hz_stream_is_anti_aliased():
  """OPPORTUNITY's ~30 Hz timestamps: a 14 Hz tone (above 25 Hz's Nyquist) must not
  alias into the 25 Hz signal; it would keep most of its amplitude at 11 Hz."""
  from xfer_jax.data import preprocess
  from xfer_jax.data.recording import Recording
  t = np.arange(3000) / 30.0 + np.random.default_rng(0).uniform(-1e-3, 1e-3, 3000)
  acc = np.stack([np.sin(2 * np.pi * 14.0 * t), np.zeros_like(t), np.ones_like(t)], -1)
  rec = Recording(acc.astype(np.float32), np.zeros(3000, np.int32), 1, "opp", 30.0, "g", t - t[0])
  out, _ = preprocess.resample(rec, np.zeros(3000, np.int32), 25.0)
  amplitude = np.sqrt(2) * np.sqrt(np.mean(out[200:-200, 0] ** 2))
  assert amplitude < 0.1  # splined straight onto the 25 Hz grid: about 0.7


def test_pamap2_missing_column(tmp_path):
  np.savetxt(tmp_path / "subject101.dat", _pamap2_rows(10, 1)[:, :20], fmt="%.3f")
  with pytest.raises(DataError, match=r"subject101.dat, line 1: 20 columns, expected at least 54"):
    pamap2.read(tmp_path)


def test_opportunity_documented_format(tmp_path):
  docs = shared_file("raw_excerpts/opportunity_docs_only")
  for name in ("column_names.txt", "label_legend.txt"):
    shutil.copy(docs / name, tmp_path / name)
  columns = opportunity.parse_columns(tmp_path / "column_names.txt")
  assert columns["Accelerometer RWR accX"] == 22 and columns["ML_Both_Arms"] == 249
  table = np.zeros((90, 250))
  table[:, 0] = np.arange(90) * 33.0
  table[:, 22:25] = [0.0, 1000.0, 0.0]  # milli-g
  table[:, 249] = 406516  # "Open Door 1" in ML_Both_Arms
  table[5, 23] = np.nan
  data = tmp_path / "dataset"
  data.mkdir()
  np.savetxt(data / "S2-ADL3.dat", table, fmt="%g")
  ds = opportunity.read(data, docs_dir=tmp_path)
  (rec,) = ds.recordings
  assert rec.subject == 2
  np.testing.assert_allclose(rec.acc_Tx3[0], [0, 1, 0])
  assert ds.spec.label_names[406516] == "Open Door 1"
  assert ds.spec.class_names[ds.spec.class_ids(rec.labels_T, "x")[0]] == "Open Door 1"
  with pytest.raises(DataError, match="unknown label track 'Gestures'"):
    opportunity.read(data, docs_dir=tmp_path, label_track="Gestures")
  with pytest.raises(DataError, match="accelerometers are"):
    opportunity.read(data, docs_dir=tmp_path, sensor="Accelerometer WRIST")


def test_skoda_mat(tmp_path):
  n = 200
  data = np.zeros((n, 1 + 70))
  data[:, 0] = np.where(np.arange(n) < 100, 32, 49)
  for k in range(10):
    data[:, 1 + 7 * k] = k + 1  # sensor ids 1..10
  data[:, 2:5] = [0.0, 0.0, 1000.0]  # sensor 1, calibrated axes
  scipy.io.savemat(tmp_path / "right_classall_clean.mat", {"right_classall_clean": data})
  ds = skoda.read(tmp_path)
  (rec,) = ds.recordings
  np.testing.assert_allclose(rec.acc_Tx3[0], [0, 0, 1])
  classes = ds.spec.class_ids(rec.labels_T, "x")
  assert ds.spec.num_subjects == 1 and len(ds.spec.class_names) == 10
  assert (classes[:100] == -1).all() and ds.spec.class_names[classes[150]] == "open hood"
  scipy.io.savemat(tmp_path / "other.mat", {"x": data})
  with pytest.raises(DataError, match="no variable 'right_classall_clean'"):
    skoda.read(tmp_path / "other.mat")


def test_skoda_short_gestures_label_windows_under_the_preset(data_config, tmp_path):
  """1.5 s gestures between 3 s of null (dropped), as in Skoda: the preset's
  labelled-majority rule labels windows with them, the majority rule none."""
  from xfer_jax.data import prepare
  rate, rng = 98.0, np.random.default_rng(0)
  rows = []
  for _ in range(8):
    for gesture in range(48, 58):
      for label, seconds in ((32, 3.0), (gesture, 1.5)):
        n = int(seconds * rate)
        block = np.zeros((n, 71))
        block[:, 0] = label
        block[:, 1::7] = np.arange(1, 11)
        # a wrist's slow motion (white noise would read as a rate ten times too high)
        t = np.arange(n)[:, None] / rate
        block[:, 2:5] = [0.0, 0.0, 1000.0] + 100 * np.sin(2 * np.pi * 1.5 * t
                                                          + rng.uniform(0, 2 * np.pi, 3))
        rows.append(block)
  folder = tmp_path / "SkodaMiniCP"
  folder.mkdir()
  scipy.io.savemat(folder / "right_classall_clean.mat", {"right_classall_clean": np.concatenate(rows)})
  data_config.data_dir = str(tmp_path)
  skoda_windows = prepare("skoda", data_config)
  assert skoda_windows.num_classes == 10 and len(skoda_windows.splits["train"]) >= 30
  data_config.datasets = {"skoda_majority": {
      "reader": "skoda", "path": "SkodaMiniCP", "preprocess": {"label_rule": "majority"}}}
  with pytest.raises(DataError, match="no windows in split"):
    prepare("skoda_majority", data_config)


def test_interchange_real_file_and_round_trip(tmp_path):
  ds = interchange.read(shared_file("berkeley_mhad_wrist.npz"), clip_g=2.0)
  assert len({r.subject for r in ds.recordings}) == 12
  assert all(r.t_s is not None for r in ds.recordings)
  assert max(float(np.abs(r.acc_Tx3).max()) for r in ds.recordings) <= 2.0
  small = type(ds)(ds.spec, ds.recordings[:5])
  interchange.write(tmp_path / "mine.npz", small)
  again = interchange.read(tmp_path / "mine.npz")
  for a, b in zip(small.recordings, again.recordings):
    np.testing.assert_allclose(a.acc_Tx3, b.acc_Tx3)
    np.testing.assert_array_equal(a.labels_T, b.labels_T)
    np.testing.assert_allclose(a.t_s, b.t_s, atol=1e-3)
  assert again.spec.label_names == ds.spec.label_names


def test_interchange_units_to_g():
  ds = interchange.read(shared_file("hmp_wrist.npz"))
  magnitude = np.linalg.norm(np.concatenate([r.acc_Tx3 for r in ds.recordings[:50]]), axis=1)
  assert 0.9 < np.median(magnitude) < 1.15


def test_interchange_bad_inputs(tmp_path):
  with pytest.raises(DataError, match="no such interchange file"):
    interchange.read(tmp_path / "absent.npz")
  (tmp_path / "text.npz").write_text("hello")
  with pytest.raises(DataError, match="not a readable interchange .npz"):
    interchange.read(tmp_path / "text.npz")
  np.savez(tmp_path / "partial.npz", n_recordings=1, label_names=np.array(["", "a"]))
  with pytest.raises(DataError, match=r"missing key\(s\) \['sampling_rate_hz'"):
    interchange.read(tmp_path / "partial.npz")
  np.savez(tmp_path / "labels.npz", n_recordings=1, label_names=np.array(["", "a"]),
           sampling_rate_hz=25.0, to_g_scale=1.0, to_g_offset=0.0,
           acc_0=np.zeros((10, 3), np.float32), label_0=np.full(10, 7, np.int16), subject_0=1)
  with pytest.raises(DataError, match=r"label id\(s\) \[7\] are not in the label map"):
    interchange.read(tmp_path / "labels.npz")


def test_raw_excerpts_exist_for_every_real_reader():
  # guards the tests above against silently skipping everything in CI
  if not RAW.exists():
    pytest.skip("real data not present")
  assert (RAW / "wisdm2019_watch").is_dir() and (RAW / "hmp_wrist").is_dir()
