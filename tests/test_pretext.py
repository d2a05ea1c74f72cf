"""Self-supervised pretraining: augmentations, pretext labels, unlabelled sources,
and an SSL source transferred by the supervised rules."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xfer_jax import checks, experiment, transfer
from xfer_jax.data import DataError, pool, prepare
from xfer_jax.data.readers import interchange
from xfer_jax.data.recording import UNLABELLED, DatasetSpec, RawDataset, Recording
from xfer_jax.engine import checkpoints
from xfer_jax.grid import sweep
from xfer_jax.pretext import augment, objectives, sources
from xfer_jax.pretext.objectives import PretextError

W = 100  # a 4 s window at 25 Hz


def _window(seed=0, length=W):
  return jax.random.normal(jax.random.key(seed), (length, 3), jnp.float32)


def _index_window(length=W):
  """A window whose every axis holds its sample's index: a transform's output then
  says which input sample each output sample came from (exact integers in float32)."""
  return jnp.tile(jnp.arange(length, dtype=jnp.float32)[:, None], (1, 3))


AUGMENTATIONS = {
    "reverse": lambda key, x: augment.reverse(x),
    "permute": lambda key, x: augment.permute(key, x, 4, 10),
    "time_warp": lambda key, x: augment.time_warp(key, x, 0.2, 4),
    "rotate": augment.rotate,
    "scale": lambda key, x: augment.scale(key, x, 0.1),
    "jitter": lambda key, x: augment.jitter(key, x, 0.05),
    "mask": lambda key, x: augment.mask_span(key, x, 0.2),
}


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_augmentation_keeps_shape_and_dtype_and_is_a_function_of_its_key(name):
  fn = jax.jit(AUGMENTATIONS[name])
  x = _window()
  out = fn(jax.random.key(1), x)
  assert out.shape == x.shape and out.dtype == x.dtype
  np.testing.assert_array_equal(out, fn(jax.random.key(1), x))
  assert not np.array_equal(out, x)
  if name != "reverse":  # the one deterministic transform
    assert not np.array_equal(out, fn(jax.random.key(2), x))


def test_rotation_keeps_every_samples_magnitude_and_is_a_rotation():
  x = _window()
  for seed in range(5):
    matrix = np.asarray(augment.random_rotation(jax.random.key(seed)), np.float64)
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(3), atol=1e-6)
    assert np.linalg.det(matrix) == pytest.approx(1.0, abs=1e-6)
    out = augment.rotate(jax.random.key(seed), x)
    # a 3 x 3 product per sample: no rounding accumulates over the window
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(x, axis=1), rtol=1e-5)


def test_reverse_plays_the_window_backwards():
  np.testing.assert_array_equal(augment.reverse(_index_window())[:, 0], np.arange(W)[::-1])


@pytest.mark.parametrize("seed", range(8))
def test_permutation_reorders_whole_segments_and_never_keeps_the_order(seed):
  segments, min_segment = 4, 10
  permute = jax.jit(augment.permute, static_argnums=(2, 3))
  source = np.asarray(permute(jax.random.key(seed), _index_window(), segments,
                              min_segment))[:, 0].astype(int)
  np.testing.assert_array_equal(np.sort(source), np.arange(W))  # the same samples, once each
  runs = np.split(source, np.flatnonzero(np.diff(source) != 1) + 1)
  assert 2 <= len(runs) <= segments  # contiguous pieces (two may happen to join)
  assert not np.array_equal(source, np.arange(W))
  # the key's segments (permute splits its key: the first half draws the bounds)
  bounds_key = jax.random.split(jax.random.key(seed))[0]
  bounds = np.asarray(augment.segment_bounds(bounds_key, W, segments, min_segment)).tolist()
  assert bounds[0] == 0 and bounds[-1] == W and min(np.diff(bounds)) >= min_segment
  # the output is the input's segments, each once, in another order
  segment_at = {start: stop for start, stop in zip(bounds[:-1], bounds[1:])}
  used, position = [], 0
  while position < W:
    start = int(source[position])
    stop = segment_at[start]  # a KeyError: a piece that starts inside a segment
    np.testing.assert_array_equal(source[position:position + stop - start], np.arange(start, stop))
    used.append(start)
    position += stop - start
  assert sorted(used) == bounds[:-1] and used != bounds[:-1]


def test_time_warp_keeps_the_ends_and_the_order_of_time():
  times = np.asarray(augment.warp_times(jax.random.key(0), W, 0.2, 4))
  assert times[0] == 0 and times[-1] == pytest.approx(W - 1)
  assert np.all(np.diff(times) > 0)
  assert not np.allclose(times, np.arange(W))
  out = np.asarray(augment.time_warp(jax.random.key(0), _index_window(), 0.2, 4))
  np.testing.assert_allclose(out[:, 0], times, rtol=1e-6)  # every axis at the warped times
  np.testing.assert_array_equal(out[:, 0], out[:, 2])
  constant = jnp.ones((W, 3))
  np.testing.assert_allclose(augment.time_warp(jax.random.key(0), constant, 0.2, 4), constant)


def test_scale_jitter_and_mask_do_what_they_say():
  x = _window()
  ratio = np.asarray(augment.scale(jax.random.key(0), x, 0.1)) / np.asarray(x)
  np.testing.assert_allclose(ratio, np.broadcast_to(ratio[0], ratio.shape), rtol=1e-5)
  noise = np.asarray(augment.jitter(jax.random.key(0), x, 0.05)) - np.asarray(x)
  assert 0.03 < noise.std() < 0.07
  masked = np.asarray(augment.mask_span(jax.random.key(0), x + 10.0, 0.2))
  zero_rows = np.flatnonzero(np.all(masked == 0, axis=1))
  assert len(zero_rows) == 20 and np.all(np.diff(zero_rows) == 1)  # one span ...
  assert not np.any(masked[np.setdiff1d(np.arange(W), zero_rows)] == 0)  # ... on every axis


def _multitask(tasks=objectives.TASKS, transform_prob=0.5):
  return objectives.Multitask(tuple(tasks), transform_prob, 4, 10, 0.2, 4)


def test_multitask_labels_say_which_transforms_were_applied():
  x = jax.vmap(_window)(jnp.arange(64))
  mask = jnp.ones(64, bool)
  # five programs that run once: compiled without LLVM's optimisation (as the engine's
  # run-once programs), two thirds of the compile time; what they compute is the same
  jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
  for t, task in enumerate(objectives.TASKS):  # one task alone: labels and transform agree
    views, applied, _ = jit(_multitask([task]).views)(jax.random.key(t), x, None, mask)
    applied = np.asarray(applied[:, 0])
    assert 10 < applied.sum() < 54
    changed = np.any(np.asarray(views) != np.asarray(x), axis=(1, 2))
    np.testing.assert_array_equal(changed, applied)
    if task == "arrow_of_time":
      np.testing.assert_array_equal(np.asarray(views)[applied], np.asarray(x)[applied][:, ::-1])
  views, applied, _ = jit(_multitask().views)(jax.random.key(9), x, None, mask)
  untouched = ~np.asarray(applied).any(1)
  np.testing.assert_array_equal(np.asarray(views)[untouched], np.asarray(x)[untouched])
  assert np.all(np.any(np.asarray(views)[~untouched] != np.asarray(x)[~untouched], axis=(1, 2)))


def test_multitask_scores_each_task_from_the_logits():
  task = _multitask()
  applied = jnp.array([[1, 0, 1], [0, 0, 1]], bool)
  logits = jnp.array([[3.0, -2.0, -1.0], [-1.0, 1.0, 2.0]])  # row 0: tasks 0, 1 right
  _, score, rows, bits = task.sums(logits, applied, jnp.array([True, True]))
  assert rows == 2 and score == pytest.approx((2 / 3 + 2 / 3) / 2 * 2)
  assert objectives.scores(task, np.asarray(bits)) == pytest.approx(
      {"pretext_accuracy": 4 / 6, "arrow_of_time_accuracy": 1.0, "permutation_accuracy": 0.5,
       "time_warp_accuracy": 0.5})


def _simclr(**changes):
  fields = dict(projection_dim=4, temperature=0.5, augment_prob=(("rotate", 1.0),),
                scale_sigma=0.1, jitter_sigma=0.05, warp_sigma=0.2, warp_knots=4,
                mask_fraction=0.2)
  return objectives.SimCLR(**{**fields, **changes})


def test_nt_xent_finds_each_views_partner_and_ignores_padding():
  simclr = _simclr()
  z = jnp.eye(4)[jnp.array([0, 1, 2, 3, 0, 1, 2, 3])]  # view 2 of window i = view 1 of i
  sums = jax.jit(simclr.sums)
  loss, score, rows, bits = sums(z, None, jnp.ones(8, bool))
  assert rows == 4 and score == 4 and np.all(np.asarray(bits) == 3)
  # two more windows of padding: no row's loss or score changes (one-hot logits are exact)
  padded = jnp.concatenate([z[:4], jnp.eye(4)[:2], z[4:], jnp.eye(4)[:2]])
  mask = jnp.array([True] * 4 + [False] * 2 + [True] * 4 + [False] * 2)
  padded_loss, padded_score, padded_rows, _ = sums(padded, None, mask)
  assert (padded_loss, padded_score, padded_rows) == (loss, score, rows)
  swapped = jnp.eye(4)[jnp.array([0, 1, 2, 3, 1, 0, 3, 2])]  # partners exchanged
  assert sums(swapped, None, jnp.ones(8, bool))[1] == 0


def test_simclr_views_are_two_augmentations_of_each_window():
  simclr = _simclr()
  x = jax.vmap(_window)(jnp.arange(6))
  views, _, mask = jax.jit(simclr.views)(jax.random.key(0), x, None,
                                         jnp.array([True] * 5 + [False]))
  assert views.shape == (12, W, 3)
  np.testing.assert_array_equal(mask, [True] * 5 + [False] + [True] * 5 + [False])
  norms = lambda a: np.linalg.norm(np.asarray(a), axis=-1)
  np.testing.assert_allclose(norms(views[:6]), norms(x), rtol=1e-5)  # rotations of x
  np.testing.assert_allclose(norms(views[6:]), norms(x), rtol=1e-5)
  assert not np.allclose(views[:6], views[6:])


def _pretext(**changes):
  from xfer_jax import defaults
  config = defaults.pretext_config()
  config.update(changes)
  return config


@pytest.mark.parametrize("objective,changes,message", [
    ("multitask", dict(transform_prob=1.5), r"config.pretext.transform_prob=1.5: expected a "
     r"probability in \[0, 1\]"),
    ("simclr", dict(augment_prob=dict(rotate=-0.1)), r"config.pretext.augment_prob.rotate=-0.1"),
    ("simclr", dict(augment_prob=dict(flip=0.5)), r"unknown augmentation\(s\) \['flip'\]"),
    ("multitask", dict(tasks=("arrow_of_time", "colour")), r"config.pretext.tasks=.*expected"),
    ("multitask", dict(segments=12), r"segments=12 .* do not fit a 100-sample window"),
    ("simclr", dict(temperature=0.0), r"config.pretext.temperature=0.0: expected a positive"),
    ("byol", {}, r"objective 'byol': expected one of \('multitask', 'simclr'\)"),
])
def test_bad_pretext_settings_are_one_line_errors(objective, changes, message):
  with pytest.raises(PretextError, match=message) as error:
    objectives.build(objective, _pretext(**changes), W, 25.0)
  assert "\n" not in str(error.value)


def test_a_short_window_is_refused_for_permutation_but_not_for_rotation():
  with pytest.raises(PretextError, match="do not fit a 30-sample window"):
    objectives.build("multitask", _pretext(), 30, 25.0)
  objectives.build("simclr", _pretext(), 30, 25.0)


def test_source_names_say_their_objective():
  assert sources.objective_of("hmp") == sources.objective_of("a+b") == "supervised"
  assert sources.objective_of("simclr:a+b") == "simclr"
  assert pool.members("multitask:a+b") == ["a", "b"]
  with pytest.raises(PretextError, match="unknown self-supervised objective 'simclrr'"):
    sources.objective_of("simclrr:hmp")


def test_a_self_supervised_source_may_pretrain_on_its_targets_train_split(smoke_config):
  config = smoke_config.copy_and_resolve_references()
  config.sweep.pairs = ("simclr:syn_smoke_b->syn_smoke_b", "multitask:syn_smoke_a->syn_smoke_b")
  assert sweep.pairs(config) == [("simclr:syn_smoke_b", "syn_smoke_b"),
                                 ("multitask:syn_smoke_a", "syn_smoke_b")]
  config.sweep.pairs = ("syn_smoke_b+syn_smoke_a->syn_smoke_b",)
  with pytest.raises(sweep.SweepError, match="the target is one of the pooled sources"):
    sweep.pairs(config)


def test_unlabelled_windows_come_from_train_splits_only(smoke_config):
  data = smoke_config.data
  windows = sources.unlabelled_windows("simclr:syn_smoke_a", data, "none", 0.2, 0)
  train = prepare("syn_smoke_a", data).splits["train"]
  held = {s: len(windows.splits[s]) for s in ("train", "val", "test")}
  assert held["val"] > 0 and held["test"] > 0
  # blocks next to held-out ones lose a window each: at most 2 per held-out block
  assert len(train) - 2 * 20 <= sum(held.values()) <= len(train)
  assert windows.class_names == (UNLABELLED,) and not windows.labelled
  every = np.concatenate([windows.splits[s].x_NxWx3 for s in ("train", "val", "test")])
  train_rows = {row.tobytes() for row in train.x_NxWx3}
  assert all(row.tobytes() in train_rows for row in every)  # no val or test window read
  with pytest.raises(PretextError, match="config.pretext.holdout=1.0"):
    sources.unlabelled_windows("simclr:syn_smoke_a", data, "none", 1.0, 0)


def test_equal_balance_takes_as_many_windows_of_each_dataset(smoke_config):
  parts = [prepare(name, smoke_config.data) for name in ("syn_smoke_a", "syn_smoke_b")]
  pooled = pool.pool(parts, "equal", 0)
  for split in ("train", "val", "test"):
    smallest = min(len(p.splits[split]) for p in parts)
    assert len(pooled.splits[split]) == 2 * smallest
  assert len(pool.pool(parts).splits["train"]) == sum(len(p.splits["train"]) for p in parts)
  with pytest.raises(DataError, match="config.pool.balance='most'"):
    pool.pool(parts, "most", 0)


def _unlabelled_file(path, recordings=6, rate=25.0):
  rng = np.random.default_rng(0)
  recs = []
  for i in range(recordings):
    acc = rng.normal(0, 0.3, (int(rate * 60), 3)).astype(np.float32)
    acc[:, 2] += 1.0
    recs.append(Recording(acc_Tx3=acc, labels_T=np.zeros(len(acc), np.int32), subject=i,
                          recording_id=f"r{i}", rate_hz=rate, source_units="g"))
  interchange.write(path, RawDataset(DatasetSpec("free_living", {0: UNLABELLED}, rate_hz=rate),
                                     recs))
  with np.load(path) as z:
    assert not any(k.startswith("label_") for k in z.files)  # written without labels


def test_an_unlabelled_file_is_an_ssl_source_and_refused_as_a_supervised_one(smoke_config,
                                                                             tmp_path):
  _unlabelled_file(tmp_path / "free_living.npz")
  config = smoke_config.copy_and_resolve_references()
  config.data.datasets = {"free_living": {"reader": "interchange",
                                          "path": str(tmp_path / "free_living.npz")}}
  prepared = prepare("free_living", config.data)
  assert not prepared.labelled
  with pytest.raises(DataError, match="'free_living' has no labels .* self-supervised source, "
                     "e.g. config.source='multitask:free_living'"):
    checks.check_trainable(prepared, 8)
  assert len(sources.unlabelled_windows("multitask:free_living", config.data, "none", 0.2, 0)
             .splits["train"]) > 0
  config.data.datasets = {"free_living": {"reader": "interchange", "options": {"keep": [0]},
                                          "path": str(tmp_path / "free_living.npz")}}
  with pytest.raises(PretextError, match=r"config.data.datasets.free_living.options.keep: "
                     "selects classes"):
    sources.unlabelled_windows("multitask:free_living", config.data, "none", 0.2, 0)


@pytest.fixture(scope="module")
def ssl_config(smoke_config):
  config = smoke_config.copy_and_resolve_references()
  config.source = "multitask:syn_smoke_a"
  config.train.max_epochs = 4
  config.runtime.checkpoint_every = 2
  return config


@pytest.fixture(scope="module")
def ssl_source(ssl_config, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("ssl_source")
  return workdir, experiment.pretrain(ssl_config, workdir, progress=False)


def test_ssl_pretrain_scores_its_pretext_and_records_what_it_read(ssl_config, ssl_source):
  workdir, summary = ssl_source
  assert summary["pretext_outputs"] == list(objectives.TASKS) and "majority" not in summary
  for seed in summary["per_seed"]:
    assert 0 <= seed["pretext_accuracy"] <= 1 and "arrow_of_time_accuracy" in seed
    assert seed["epochs"] == 4
  meta = checkpoints.read_meta(workdir)
  assert meta["objective"] == "multitask" and meta["datasets"] == ["syn_smoke_a"]
  assert meta["pretext"]["splits_read"] == ["train"]
  tree, _ = checkpoints.read(workdir)
  assert tree["best_params"]["head"]["kernel"].shape[-1] == len(objectives.TASKS)


def test_ssl_source_transfers_by_the_same_rules(ssl_config, ssl_source, tmp_path):
  """Adapted with the first block copied and frozen: those leaves are the source's,
  bit for bit; the pretext head is gone (the target's head has its classes)."""
  workdir, _ = ssl_source
  config = ssl_config.copy_and_resolve_references()
  config.transfer.blocks = 1
  config.train.max_epochs = 2
  summary = experiment.adapt(config, tmp_path, workdir, progress=False)
  assert 0 <= summary["micro_f1_mean"] <= 1
  source, _ = checkpoints.read(workdir)
  adapted, meta = checkpoints.read(tmp_path)
  frozen = [p for p, a in meta["transfer"]["labels"].items() if a == transfer.COPY_FREEZE]
  assert frozen and all("block_0" in p or "spectral" in p for p in frozen)
  flat_source, flat_adapted = (transfer.flatten(t["best_params"]) for t in (source, adapted))
  for path in frozen:
    np.testing.assert_array_equal(flat_adapted[path], flat_source[path])
  num_classes = prepare(config.target, config.data).num_classes
  assert flat_adapted["head/kernel"].shape[-1] == num_classes != len(objectives.TASKS)


def test_ssl_pretrain_resumes_to_the_uninterrupted_numbers(ssl_config, ssl_source, tmp_path,
                                                           monkeypatch):
  workdir, summary = ssl_source
  save = checkpoints.Checkpoints.save

  def save_then_die(self, step, tree, meta):
    save(self, step, tree, meta)
    raise KeyboardInterrupt  # killed right after its first checkpoint

  monkeypatch.setattr(checkpoints.Checkpoints, "save", save_then_die)
  with pytest.raises(KeyboardInterrupt):
    experiment.pretrain(ssl_config, tmp_path, progress=False)
  monkeypatch.setattr(checkpoints.Checkpoints, "save", save)
  resumed = experiment.pretrain(ssl_config, tmp_path, progress=False)
  assert resumed["per_seed"] == summary["per_seed"]
  assert ((tmp_path / "metrics.jsonl").read_text() == (workdir / "metrics.jsonl").read_text())
  a, _ = checkpoints.read(workdir)
  b, _ = checkpoints.read(tmp_path)
  jax.tree.map(np.testing.assert_array_equal, a["best_params"], b["best_params"])


def test_inspect_names_the_objective_and_its_data(ssl_source):
  from xfer_jax import inspection
  report = inspection.tree_report(ssl_source[0])
  assert report["objective"] == "multitask"
  assert report["pretext"]["outputs"] == list(objectives.TASKS)
  assert report["datasets"] == ["syn_smoke_a"]
