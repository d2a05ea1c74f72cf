"""Transfer rules, presets, freezing and the baseline."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xfer_jax import defaults, experiment, transfer
from xfer_jax.data import adaptation_rows, prepare
from xfer_jax.engine import checkpoints, programs
from xfer_jax.transfer import COPY, COPY_FREEZE, INIT, TransferError


def _default_paths(num_classes=8, **model_overrides):
  config = defaults.model_config()
  config.update(model_overrides)
  model = programs.build_model(config, num_classes, 25.0)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 100, 3))))
  return variables


def _group(path):
  if "/temporal/" in path:
    return path.split("/")[2]  # block_k
  if "/spectral/" in path:
    return "spectral"
  return "head" if path.startswith("head/") else "dense"


# (mode, k, branch) -> action per group of the default model (3 blocks)
PRESETS = [
    (("baseline", 2, "both"), dict(block_0=INIT, block_1=INIT, block_2=INIT, spectral=INIT,
                                   dense=INIT, head=INIT)),
    (("freeze_k_copy_rest", 0, "both"), dict(block_0=INIT, block_1=INIT, block_2=INIT,
                                             spectral=INIT, dense=INIT, head=INIT)),
    (("freeze_k_copy_rest", 1, "both"), dict(block_0=COPY_FREEZE, block_1=COPY, block_2=COPY,
                                             spectral=COPY_FREEZE, dense=COPY, head=INIT)),
    (("freeze_k_copy_rest", 3, "both"), dict(block_0=COPY_FREEZE, block_1=COPY_FREEZE,
                                             block_2=COPY_FREEZE, spectral=COPY_FREEZE,
                                             dense=COPY, head=INIT)),
    (("freeze_k_init_rest", 2, "both"), dict(block_0=COPY_FREEZE, block_1=COPY_FREEZE,
                                             block_2=INIT, spectral=COPY_FREEZE, dense=INIT,
                                             head=INIT)),
    (("finetune_all", 2, "both"), dict(block_0=COPY, block_1=COPY, block_2=COPY, spectral=COPY,
                                       dense=COPY, head=INIT)),
    (("discriminative", 2, "both"), dict(block_0=COPY, block_1=COPY, block_2=COPY,
                                         spectral=COPY, dense=COPY, head=INIT)),
    (("freeze_k_copy_rest", 2, "temporal"), dict(block_0=COPY_FREEZE, block_1=COPY_FREEZE,
                                                 block_2=INIT, spectral=INIT, dense=INIT,
                                                 head=INIT)),
    (("freeze_k_copy_rest", 2, "spectral"), dict(block_0=INIT, block_1=INIT, block_2=INIT,
                                                 spectral=COPY_FREEZE, dense=INIT, head=INIT)),
]


@pytest.mark.parametrize("preset,expected", PRESETS, ids=lambda p: str(p))
def test_presets_label_every_path(preset, expected):
  paths = list(transfer.flatten(_default_paths()["params"]))
  labels = transfer.label_paths(paths, transfer.preset_rules(*preset[:2], 3, preset[2]))
  assert set(labels) == set(paths)
  for path, action in labels.items():
    assert action == expected[_group(path)], path


@pytest.mark.parametrize("preset,expected", PRESETS, ids=lambda p: str(p))
def test_a_run_describes_what_its_rules_copy(preset, expected):
  """launch.adapt's line names k only where k decides what is copied or frozen."""
  mode, blocks, branch = preset
  words = transfer.describe({"mode": mode, "blocks": blocks, "branch": branch})
  # every block copied and none frozen: k plays no part
  whole = all(expected[g] == COPY for g in ("block_0", "block_1", "block_2", "spectral"))
  assert ("everything but the head" in words) == whole, words
  assert (f"{blocks} block(s)" in words) == (branch != "spectral" and not whole), words
  assert ("spectral branch" in words) == (branch == "spectral"), words


def test_rule_errors_list_paths():
  paths = list(transfer.flatten(_default_paths()["params"]))
  with pytest.raises(TransferError, match=r"no rule covers \d+ parameter path\(s\): \['dense_0/bias'"):
    transfer.label_paths(paths, [(r"tower_.*", COPY)])
  with pytest.raises(TransferError, match=r"rule\(s\) \[\('block_9/.\*', 'copy'\)\] match no"):
    transfer.label_paths(paths, [("block_9/.*", COPY), (".*", INIT)])
  with pytest.raises(TransferError, match="transfer.blocks=4, but the model has 3"):
    transfer.preset_rules("freeze_k_copy_rest", 4, 3)
  with pytest.raises(TransferError, match="unknown transfer mode 'freeze'"):
    transfer.preset_rules("freeze", 1, 3)


def test_mismatched_source_lists_paths():
  target = _default_paths()["params"]
  wider = _default_paths(filters=(16, 32, 128))["params"]
  fewer = _default_paths(filters=(16, 32))["params"]
  labels = transfer.label_paths(list(transfer.flatten(target)),
                                transfer.preset_rules("freeze_k_copy_rest", 1, 3), log=False)
  with pytest.raises(TransferError, match=r"shape differs.*block_2/conv_0/kernel: source \(5, 32, 128\)"
                                          r" vs target \(5, 32, 64\)"):
    transfer.merge(target, wider, labels)
  with pytest.raises(TransferError, match=r"missing in source: \[.*tower_0/temporal/block_2/"):
    transfer.merge(target, fewer, labels)


def test_adaptation_freezes_exactly_the_frozen_leaves(pretrained, adapted):
  config, workdir, summary = adapted
  assert len(summary["per_seed"]) == config.train.num_seeds == 2
  src, _ = checkpoints.read(pretrained)
  out, meta = checkpoints.read(workdir)
  labels = meta["transfer"]["labels"]
  target_classes = prepare(config.target, config.data).num_classes
  # the smoke datasets share a class count (one compiled engine); the head is the target's own
  assert out["best_params"]["head"]["kernel"].shape[-1] == target_classes
  assert labels["head/kernel"] == INIT
  for tree in ("params", "batch_stats"):  # the final state, every seed
    source_flat = transfer.flatten(src[f"best_{tree}"])
    for path, value in transfer.flatten(out[tree]).items():
      label = labels[path] if tree == "params" else _stats_label(path, labels)
      if label == COPY_FREEZE:
        np.testing.assert_array_equal(value, source_flat[path], err_msg=path)
      elif label == COPY and tree == "params":
        assert not np.array_equal(value, source_flat[path]), path  # copied, then trained
  frozen = [p for p, a in labels.items() if a == COPY_FREEZE]
  assert frozen and all("block_0" in p or "spectral" in p for p in frozen)
  # the optimiser holds no Adam moments for frozen leaves
  adam = out["opt_state"]["inner_states"]["trainable"]["inner_state"]["0"]
  mu = transfer.flatten(adam["mu"])
  assert not any(p in mu for p in frozen)
  assert all(p in mu for p, a in labels.items() if a != COPY_FREEZE)


def _stats_label(path, labels):
  module = path.rsplit("/", 1)[0]
  return next(a for p, a in labels.items() if p.rsplit("/", 1)[0] == module)


def test_baseline_equals_plain_training_on_the_subset(smoke_config, tmp_path):
  config = smoke_config
  baseline = experiment.adapt(config, tmp_path / "baseline", None, progress=False)
  prepared = prepare(config.target, config.data)
  rows = adaptation_rows(prepared.splits["train"].y_N, config.adapt.size,
                         config.adapt.subset_seed, config.train.num_seeds)
  plain = experiment.train_and_evaluate(config, tmp_path / "plain", prepared, phase="adapt",
                                        train_index_Sxn=rows, progress=False)
  assert [r["micro_f1"] for r in baseline["per_seed"]] == [r["micro_f1"] for r in plain["per_seed"]]
  assert [r["confusion"] for r in baseline["per_seed"]] == [r["confusion"] for r in plain["per_seed"]]


def test_discriminative_trains_copied_leaves_at_the_scaled_rate(smoke_config, pretrained, tmp_path):
  """One Adam step (20 windows: one batch): Adam's first step moves each leaf by
  about its learning rate, so copied leaves move by at most lr x lr_scale and the
  re-initialised head by about lr."""
  config = smoke_config.copy_and_resolve_references()
  config.transfer.mode = "discriminative"
  config.transfer.lr_scale = 0.1
  config.train.max_epochs = 1
  config.adapt.size = 20
  experiment.adapt(config, tmp_path, pretrained, progress=False)
  out, meta = checkpoints.read(tmp_path)
  labels = meta["transfer"]["labels"]
  start, _ = checkpoints.read(pretrained)
  source = transfer.flatten(start["best_params"])
  lr = config.optim.learning_rate
  moved = {p: float(np.abs(v - source[p]).max()) for p, v in transfer.flatten(out["params"]).items()
           if labels[p] == COPY}
  assert moved and max(moved.values()) <= 1.01 * lr * 0.1
  assert max(moved.values()) > 0.5 * lr * 0.1  # and they do train
  partitions = out["opt_state"]["inner_states"]
  assert set(transfer.flatten(partitions["transferred"]["inner_state"]["0"]["mu"])) == set(moved)


def test_a_zero_head_predicts_uniformly_so_the_first_step_leaves_copied_layers_alone(
    smoke_config, pretrained, tmp_path):
  """finetune_all for one Adam step: with transfer.head_init="zeros" the head starts
  at zeros, so the loss sends no gradient into the copied layers, which keep the
  source's values exactly (only the L2-penalised dense kernels move), and the head
  moves by about the learning rate; a random head is far larger."""
  config = smoke_config.copy_and_resolve_references()
  config.transfer.mode = "finetune_all"
  config.train.max_epochs = 1
  config.adapt.size = 20
  source = transfer.flatten(checkpoints.read(pretrained)[0]["best_params"])
  lr = config.optim.learning_rate
  heads = {}
  for head_init in ("random", "zeros"):
    config.transfer.head_init = head_init
    experiment.adapt(config, tmp_path / head_init, pretrained, progress=False)
    params = transfer.flatten(checkpoints.read(tmp_path / head_init)[0]["params"])
    heads[head_init] = max(float(np.abs(v).max()) for p, v in params.items()
                           if p.startswith("head/"))
  assert heads["zeros"] <= 1.01 * lr < 10 * lr < heads["random"]
  untouched = [p for p in params if p.startswith("tower_") or p.endswith("/bias")]
  assert untouched and all(p.startswith("head/") or np.array_equal(params[p], source[p])
                           for p in untouched)
  assert any(not np.array_equal(params[p], source[p]) for p in params
             if p.startswith("dense_") and p.endswith("/kernel"))  # L2 still moves these
  # a head the rules copy is the source's, zeros or not
  tree = {"head": {"kernel": np.ones(2)}, "dense_0": {"kernel": np.ones(2)}}
  kept = transfer.zero_head(tree, {"head/kernel": COPY, "dense_0/kernel": INIT})
  assert kept["head"]["kernel"].tolist() == [1.0, 1.0]
  zeroed = transfer.zero_head(tree, {"head/kernel": INIT, "dense_0/kernel": INIT})
  assert zeroed["head"]["kernel"].tolist() == [0.0, 0.0] and zeroed["dense_0"]["kernel"].sum() == 2
  with pytest.raises(transfer.TransferError, match=r"head_init='xavier': expected one of"):
    transfer.check_config({"mode": "finetune_all", "head_init": "xavier"})


@pytest.mark.parametrize("mode,scale,match", [
    ("freeze_k_copy_rest", 0.1, "lr_scale=0.1 is used only by modes"),
    ("discriminative", None, "lr_scale=None: mode 'discriminative'"),
    ("discriminative", 2.0, "expected 0 < lr_scale <= 1"),
    ("lp_ft", None, "lr_scale=None: mode 'lp_ft'")])
def test_a_strategy_field_out_of_place_is_an_error(mode, scale, match):
  with pytest.raises(transfer.TransferError, match=match):
    transfer.check_config({"mode": mode, "lr_scale": scale})


def _lp_ft_config(smoke_config):
  config = smoke_config.copy_and_resolve_references()
  config.transfer.mode = "lp_ft"
  config.transfer.lr_scale = 0.1
  config.train.max_epochs = 4
  config.runtime.checkpoint_every = 2
  return config


def test_lp_ft_probes_the_head_then_fine_tunes_everything(smoke_config, pretrained, tmp_path):
  summary = experiment.adapt(_lp_ft_config(smoke_config), tmp_path, pretrained, progress=False)
  # the record says how long each phase trained: a probe at the epoch cap shows
  probed = json.loads((tmp_path / "linear_probe" / "result.json").read_text())["per_seed"]
  written = json.loads((tmp_path / "result.json").read_text())["per_seed"]
  for seeds in (summary["per_seed"], written):
    assert [(s["probe_epochs"], s["probe_best_epoch"]) for s in seeds] == [
        (s["epochs"], s["best_epoch"]) for s in probed]
  source, _ = checkpoints.read(pretrained)
  src = {t: transfer.flatten(source[f"best_{t}"]) for t in ("params", "batch_stats")}
  probe, probe_meta = checkpoints.read(tmp_path / "linear_probe")
  assert probe_meta["phase"] == "adapt_lp"
  copied = [p for p, a in probe_meta["transfer"]["labels"].items() if a == COPY_FREEZE]
  assert copied and all(not p.startswith("head/") for p in copied)
  for tree in ("params", "batch_stats"):  # phase 1: every copied leaf, and its statistics, as copied
    for path, value in transfer.flatten(probe[tree]).items():
      if not path.startswith("head/"):
        np.testing.assert_array_equal(value, src[tree][path], err_msg=path)
  assert set(transfer.flatten(probe["opt_state"]["inner_states"]["trainable"]["inner_state"]["0"]
                              ["mu"])) == {"head/kernel", "head/bias"}
  final, meta = checkpoints.read(tmp_path)
  assert meta["phase"] == "adapt"
  partitions = final["opt_state"]["inner_states"]
  assert set(transfer.flatten(partitions["transferred"]["inner_state"]["0"]["mu"])) == set(
      transfer.flatten(final["params"]))  # phase 2: every leaf at lr x lr_scale
  moved = [p for p, v in transfer.flatten(final["params"]).items()
           if not p.startswith("head/") and not np.array_equal(v, src["params"][p])]
  assert moved  # and the copies now train


def test_a_killed_lp_ft_run_resumes_in_its_phase(smoke_config, pretrained, tmp_path, monkeypatch):
  config = _lp_ft_config(smoke_config)
  experiment.adapt(config, tmp_path / "whole", pretrained, progress=False)
  save = checkpoints.Checkpoints.save

  def die_in_phase_2(self, step, tree, meta):
    save(self, step, tree, meta)
    if meta["phase"] == "adapt":
      raise KeyboardInterrupt

  monkeypatch.setattr(checkpoints.Checkpoints, "save", die_in_phase_2)
  with pytest.raises(KeyboardInterrupt):
    experiment.adapt(config, tmp_path / "killed", pretrained, progress=False)
  monkeypatch.setattr(checkpoints.Checkpoints, "save", save)
  assert checkpoints.read_meta(tmp_path / "killed")["phase"] == "adapt"  # killed in phase 2
  experiment.adapt(config, tmp_path / "killed", pretrained, progress=False)
  for name in ("result.json", "metrics.jsonl", "linear_probe/metrics.jsonl"):
    whole, killed = ((tmp_path / d / name).read_text() for d in ("whole", "killed"))
    if name == "result.json":
      whole, killed = (json.loads(t)["per_seed"] for t in (whole, killed))
    assert killed == whole, name


def test_transfer_across_window_lengths_names_both_and_the_modes_that_work(
    smoke_config, pretrained, tmp_path):
  config = smoke_config.copy_and_resolve_references()
  config.data.window_s, config.data.step_s = 2.0, 1.0  # the source saw 4 s windows
  config.transfer.blocks = 1
  config.train.max_epochs = 1
  with pytest.raises(TransferError, match=r"4.0 s windows \(100 samples.*this target 2.0 s "
                                          r"\(50 samples\).*freeze_k_init_rest"):
    experiment.adapt(config, None, pretrained, progress=False)
  config.transfer.mode = "freeze_k_init_rest"  # copies convolutions only: it works
  summary = experiment.adapt(config, None, pretrained, progress=False)
  assert len(summary["per_seed"]) == config.train.num_seeds


@pytest.mark.parametrize("field, value, match", [
    ("train.num_seeds", 0, r"config.train.num_seeds=0: expected an integer >= 1"),
    ("train.batch_size", 0, r"config.train.batch_size=0: expected an integer >= 1"),
    ("data.window_s", 1.0, r"spectral_window=32 samples is longer than a window "
                           r"\(config.data.window_s=1.0 s at 25.0 Hz = 25 samples\)"),
    ("adapt.size", 100000, r"adaptation size 100000 .* larger than 'syn_smoke_b'"),
])
def test_out_of_range_fields_are_named_before_any_work(smoke_config, field, value, match):
  config = smoke_config.copy_and_resolve_references()
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(ValueError, match=match):
    experiment.adapt(config, None, None, progress=False)


def test_a_plan_maps_every_target_seed_to_a_source_seed_and_names_its_source(smoke_config):
  """Three target seeds from a two-seed source start from source seeds 0, 1, 0; the
  plan's phases carry the preset's labels; its meta says where the copies came from."""
  config = smoke_config.copy_and_resolve_references()
  config.train.num_seeds, config.transfer.blocks = 3, 1
  abstract = programs.abstract_variables(config, 4)
  two_seeds = lambda tree: jax.tree.map(lambda a: np.zeros((2, *a.shape), a.dtype), tree)
  source = (two_seeds(abstract["params"]), two_seeds(abstract["batch_stats"]),
            {"dataset": "elsewhere", "config": {"data": config.data.to_dict()}})
  plan = transfer.plan(config, abstract, "here", source, "runs/elsewhere")
  np.testing.assert_array_equal(plan.seed_map, [0, 1, 0])
  [phase] = plan.phases
  assert {a for p, a in phase.labels.items() if p.startswith("head/")} == {INIT}
  assert COPY_FREEZE in phase.labels.values() and phase.frozen_bn
  meta = plan.meta(phase, size=20)
  assert (meta["source"], meta["source_dataset"], meta["size"]) == ("runs/elsewhere",
                                                                    "elsewhere", 20)
  baseline = transfer.plan(config, abstract, "here")
  assert baseline.seed_map is None and baseline.initial_state(baseline.phases[0]) is None
  assert set(baseline.phases[0].labels.values()) == {INIT}
  with pytest.raises(TransferError, match="among the source model's datasets"):
    transfer.plan(config, abstract, "elsewhere", source)
