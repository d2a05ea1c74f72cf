"""Library entry points: train a model on a dataset split, resumable, and score it.

`pretrain(config, workdir)` trains the source model of config.source (supervised,
or self-supervised on unlabelled windows: xfer_jax/pretext/); `adapt` reuses
`train_and_evaluate` with transferred weights and frozen partitions.
Workdir: config.json, metrics.jsonl, checkpoints/, result.json.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from xfer_jax import checkpoints, metrics, results, transfer
from xfer_jax.data import (
  DataError,
  Prepared,
  adaptation_subsets,
  inner_validation,
  pool,
  prepare,
  shots_per_class,
  window_samples,
)
from xfer_jax.data.atomic import write_text
from xfer_jax.errors import UserError
from xfer_jax.loop import LAST, STOP_ON, Checkpointer, FitState, MetricsWriter, ProgressBar, fit
from xfer_jax.models import MultiResNet
from xfer_jax.optim import make_optimizer
from xfer_jax.pretext import objectives, sources
from xfer_jax.runner import Batches, EvalSet, Runner, Settings, num_seeds_of
from xfer_jax.runtime import is_primary
from xfer_jax.step import SUPERVISED, Step, TrainState, seed_keys


def build_model(model_config: Mapping, num_classes: int, rate_hz: float,
                frozen_bn=()) -> MultiResNet:
  if model_config.get("dtype") == "float64" and not jax.config.jax_enable_x64:
    raise ValueError("config.model.dtype='float64' needs 64-bit JAX: set JAX_ENABLE_X64=1")
  return MultiResNet(num_classes=num_classes, rate_hz=rate_hz, frozen_bn=tuple(frozen_bn),
                     **{k: tuple(v) if isinstance(v, list) else v
                        for k, v in dict(model_config).items()})


class ConfigError(UserError, ValueError):
  """A config value out of its range; the message names the field and what it needs."""


BUDGETS = ("windows", "per_class")  # config.adapt.budget: size in all, or per class
# config.adapt.selection: what picks each seed's epoch (configs/paper.py)
ORACLE, INNER, FIXED = "oracle", "inner", "fixed"
SELECTIONS = (ORACLE, INNER, FIXED)


def check_config(config) -> None:
  """The training and model fields a run reads, each in its range, before any work."""
  tc, mc = config.train, config.model
  for field, value in (("num_seeds", tc.num_seeds), ("batch_size", tc.batch_size),
                       ("max_epochs", tc.max_epochs)):
    if not isinstance(value, int) or value < 1:
      raise ConfigError(f"config.train.{field}={value!r}: expected an integer >= 1")
  if tc.patience < 0:
    raise ConfigError(f"config.train.patience={tc.patience}: expected >= 0 (0 = no early stopping)")
  if tc.stop_on not in STOP_ON:
    raise ConfigError(f"config.train.stop_on={tc.stop_on!r}: expected one of {STOP_ON} (the "
                      "validation metric that picks each seed's best epoch and stops it early)")
  adapt = config.get("adapt") or {}
  if adapt.get("budget", "windows") not in BUDGETS:
    raise ConfigError(f"config.adapt.budget={adapt['budget']!r}: expected one of {BUDGETS}")
  if adapt.get("selection", ORACLE) not in SELECTIONS:
    raise ConfigError(f"config.adapt.selection={adapt['selection']!r}: expected one of "
                      f"{SELECTIONS}")
  if not 0 < adapt.get("inner_fraction", 0.2) < 1:
    raise ConfigError(f"config.adapt.inner_fraction={adapt['inner_fraction']}: expected the "
                      "share of a budget's windows that selects the epoch, in (0, 1)")
  window = window_samples(config.data)
  if mc.spectral_window > window:
    raise ConfigError(
        f"config.model.spectral_window={mc.spectral_window} samples is longer than a window "
        f"(config.data.window_s={config.data.window_s} s at {config.data.rate_hz} Hz = {window} "
        f"samples): the spectral branch would see no frame. Set model.spectral_window <= "
        f"{window} (and model.spectral_hop below it), or lengthen data.window_s")


def seeds(config) -> list[int]:
  """The run's seeds: seed s of a run is config.train.seed + s."""
  return [config.train.seed + s for s in range(config.train.num_seeds)]


def build_runner(config, num_classes: int, param_labels=None, frozen_bn=(),
                 objective=SUPERVISED) -> Runner:
  """A Runner for this model, optimiser, objective and run settings; the same
  arguments return the same Runner, so its compilations serve every run of that
  shape in this process. num_classes: the head's outputs."""
  labels = None if param_labels is None else tuple(
      sorted(traverse_util.flatten_dict(param_labels, sep="/").items()))
  return _cached_runner(json.dumps(
      [config.model.to_dict(), config.optim.to_dict(), config.data.rate_hz,
       window_samples(config.data), config.train.batch_size, num_classes, labels,
       sorted(frozen_bn), config.transfer.get("lr_scale") or 1.0], sort_keys=True, default=str),
      Settings.resolve(config.runtime), objective)


@functools.lru_cache(maxsize=64)
def _cached_runner(key: str, settings: Settings, objective) -> Runner:
  (model_config, optim_config, rate_hz, window, batch_size, num_classes, labels,
   frozen_bn, lr_scale) = json.loads(key)
  model = build_model(model_config, num_classes, rate_hz, frozen_bn)
  param_labels = None if labels is None else traverse_util.unflatten_dict(dict(labels), sep="/")
  tx = make_optimizer(optim_config, param_labels, lr_scale)
  step = Step(model, tx, optim_config["l2"], (window, 3), objective)
  return Runner(step, batch_size=batch_size, settings=settings)


def check_trainable(prepared: Prepared, batch_size: int, n_train: int | None = None,
                    supervised: bool = True) -> None:
  if supervised and not prepared.labelled:
    raise DataError(f"dataset {prepared.name!r} has no labels (an interchange file without "
                    "label_<i> keys): it can only be a self-supervised source, e.g. "
                    f"config.source='multitask:{prepared.name}' or 'simclr:{prepared.name}'")
  if supervised and prepared.num_classes < 2:
    raise DataError(f"dataset {prepared.name!r} has {prepared.num_classes} class "
                    f"{list(prepared.class_names)}; classification needs at least 2")
  if n_train is None and len(prepared.splits["train"]) < batch_size:
    raise DataError(f"dataset {prepared.name!r}: the train split has "
                    f"{len(prepared.splits['train'])} windows, fewer than batch_size={batch_size}; "
                    "lower --config.train.batch_size")


def train_and_evaluate(config, workdir: str | Path | None, prepared: Prepared, *, phase: str,
                       train_index_Sxn: np.ndarray | None = None, capacity: int | None = None,
                       runner: Runner | None = None,
                       init_state: Callable[[Runner, Any], TrainState] | None = None,
                       extra_meta: dict | None = None, progress: bool = True,
                       return_state: bool = False, objective=SUPERVISED,
                       selection: str = ORACLE, val_rows_Sxv: np.ndarray | None = None):
  """Trains config.train.num_seeds seeds on prepared's train split (or per-seed rows
  train_index_Sxn of it), early-stopping on its val split, resuming from
  workdir/checkpoints when present; returns per-seed test scores of the best
  parameters (and, with return_state, the final FitState). init_state(runner,
  keys) builds the initial state (transfer). objective: what is learnt (step.py;
  a self-supervised one scores its pretext accuracy instead of F1). selection:
  what picks each seed's epoch: ORACLE the val split, INNER each seed's rows
  val_rows_Sxv of the train split, FIXED nothing (every epoch trained, the last kept).
  workdir=None trains in memory only (a sweep's cells: their records are the output)."""
  tc = config.train
  check_config(config)
  supervised = objective is SUPERVISED
  check_trainable(prepared, tc.batch_size, None if train_index_Sxn is None else 1, supervised)
  runner = runner or build_runner(
      config, prepared.num_classes if supervised else objective.num_outputs, objective=objective)
  keys, run_seeds = seed_keys(tc.seed, tc.num_seeds), seeds(config)
  train, val, test = (prepared.splits[s] for s in ("train", "val", "test"))
  batches = Batches.create(train.x_NxWx3, train.y_N, tc.num_seeds, tc.batch_size,
                           train_index_Sxn, capacity)
  eval_batch = runner.settings.eval_batch_size
  selection_windows = (len(val.y_N) if selection == ORACLE else
                       int(val_rows_Sxv.shape[1]) if selection == INNER else 0)
  if selection == ORACLE:
    val_set = EvalSet.create(val.x_NxWx3, val.y_N, eval_batch)
  elif selection == INNER:
    union = np.unique(val_rows_Sxv)
    val_set = EvalSet.create(train.x_NxWx3[union], train.y_N[union], eval_batch,
                             np.stack([np.isin(union, rows) for rows in val_rows_Sxv]))
  else:
    val_set = None
  hooks = [ProgressBar(tc.max_epochs, phase)] if progress else []
  meta = {"phase": phase, "dataset": prepared.name, "class_names": list(prepared.class_names),
          "seeds": run_seeds, "config": json.loads(config.to_json_best_effort()),
          **(extra_meta or {})}
  state, ckpt = None, None
  if workdir is not None:
    workdir = Path(workdir)
    pin_config(workdir, config, phase, write=is_primary())
    ckpt = checkpoints.Checkpoints(workdir / "checkpoints")
    if ckpt.latest_step() is not None:
      state = _resume(ckpt, runner, meta)
    hooks += [MetricsWriter(workdir / "metrics.jsonl", phase),
              Checkpointer(lambda state: checkpoints.save_fit_state(ckpt, state, meta),
                           runner.settings.checkpoint_every, runner.settings.checkpoint_every_s)]
  if state is None:
    state = FitState.create(init_state(runner, keys) if init_state else runner.init(keys),
                            tc.patience, LAST if selection == FIXED else tc.stop_on)
  t0 = time.monotonic()
  try:
    state = fit(runner, state, batches, val_set, keys, max_epochs=tc.max_epochs, hooks=hooks,
                label=phase, seeds=run_seeds)
  finally:  # no checkpoint thread outlives an error
    if ckpt is not None:
      ckpt.close()
  test_set = EvalSet.create(test.x_NxWx3, test.y_N, eval_batch)
  predictions = runner.predict(state.best_params, state.best_batch_stats, test_set)
  per_seed = []
  for s, seed in enumerate(run_seeds):
    score = (metrics.scores(test.y_N, predictions[s], prepared.num_classes) if supervised
             else objectives.scores(objective, predictions[s]))
    per_seed.append({"seed": seed, "epochs": state.stopping.epochs[s],
                     "best_epoch": state.stopping.best_epoch[s],
                     "best_val_loss": state.stopping.best_loss[s], **score})
  headline = ("micro_f1", "macro_f1") if supervised else ("pretext_accuracy",)
  summary = {
      "phase": phase, "dataset": prepared.name,
      **({"num_classes": prepared.num_classes} if supervised else
         {"pretext_outputs": list(objective.score_names)}),
      "train_windows": int(batches.n_valid), "test_windows": int(len(test.y_N)),
      # what picked each seed's epoch, how many labelled windows per seed it read, and
      # the labelled windows per seed the cell's budget spent (training and selection)
      **({"selection": selection, "selection_windows": selection_windows,
          "labelled_windows": int(batches.n_valid) + (selection_windows if selection == INNER
                                                      else 0)} if supervised else {}),
      **({"majority": prepared.majority()} if supervised else {}),
      "per_seed": per_seed, "wall_s": time.monotonic() - t0,
      **{f"{k}_mean": float(np.mean([r[k] for r in per_seed])) for k in headline},
      **{f"{k}_std": float(np.std([r[k] for r in per_seed])) for k in headline}}
  if workdir is not None and is_primary():
    write_text(workdir / "result.json", json.dumps(summary, indent=2))
  return (summary, state) if return_state else summary


class WorkdirError(UserError, ValueError):
  """A workdir that holds another run than the one asked for (names the fields)."""


# config groups a phase does not read: a rerun may change them
UNREAD = {"pretrain": ("target", "adapt.", "transfer.", "sweep.", "datasets"),
          "adapt": ("source", "sweep.", "datasets", "pretext.", "pool.")}


def run_fields(config, phase: str) -> dict[str, object]:
  """The science fields (results.science_fields) that a phase's numbers depend on."""
  return {k: v for k, v in results.science_fields(config).items()
          if not k.startswith(UNREAD[phase.split("_")[0]])}


def pin_config(workdir: Path, config, phase: str, write: bool = True) -> None:
  """Writes workdir/config.json, or checks that the one there describes a run with
  the same numbers: a rerun may change config.runtime (and file locations, and
  groups the phase does not read), never the science. config.json always says how
  the workdir's model was trained."""
  path = workdir / "config.json"
  if not path.exists():
    if write:
      workdir.mkdir(parents=True, exist_ok=True)
      write_text(path, config.to_json_best_effort(indent=2))
    return
  try:
    saved = run_fields(json.loads(path.read_text()), phase)
  except (json.JSONDecodeError, AttributeError) as e:
    raise WorkdirError(f"{path}: not a config saved by a run ({e}); use a fresh workdir") from e
  given = run_fields(config, phase)
  if saved != given:
    raise WorkdirError(
        f"{path}: this workdir holds a run of another config ("
        f"{results.describe_differences(saved, given, ('saved', 'given'))}); rerun with the "
        "saved config to resume it, or give a fresh --workdir. Only config.runtime may change")


def _resume(ckpt: checkpoints.Checkpoints, runner: Runner, meta: dict) -> FitState:
  """The newest intact checkpoint of this run; damaged newer steps are set aside."""
  phase, run_seeds = meta["phase"], meta["seeds"]
  state, saved, skipped = checkpoints.restore_fit_state(ckpt.directory,
                                                        runner.abstract_state(len(run_seeds)))
  if saved.get("phase") != phase or saved.get("seeds") != run_seeds:
    raise checkpoints.CheckpointError(
        f"{ckpt.directory}: holds phase {saved.get('phase')!r} seeds {saved.get('seeds')}, "
        f"not {phase!r} seeds {run_seeds}; use a fresh workdir")
  source = meta.get("transfer", {}).get("source")
  if saved.get("transfer", {}).get("source") != source:
    raise checkpoints.CheckpointError(
        f"{ckpt.directory}: adapted from source {saved.get('transfer', {}).get('source')!r}, "
        f"not {source!r}; use a fresh workdir")
  for step, why in skipped:
    ckpt.set_aside(step, why)
  logging.info("resuming %s from epoch %d", phase, state.epoch)
  return state


def pretrain(config, workdir: str | Path, progress: bool = True) -> dict:
  """Trains the source model of config.source: one dataset or several pooled
  ("a+b": xfer_jax/data/pool.py), supervised, or self-supervised on their unlabelled
  train windows ("multitask:a+b", "simclr:a": xfer_jax/pretext/sources.py). Its
  checkpoint feeds transfer and records the objective, which datasets, and which of
  them each class, came from."""
  prepared, objective, extra = source_data(config, config.source)
  return train_and_evaluate(config, workdir, prepared, phase="pretrain", extra_meta=extra,
                            progress=progress, objective=objective)


def source_data(config, source: str) -> tuple[Prepared, Any, dict]:
  """(the windows a source model trains on, its objective, what its checkpoint
  meta says of them)."""
  names = pool.members(source)
  balance, seed = config.pool.balance, config.data.split_seed
  objective_name = sources.objective_of(source)
  extra = {"datasets": names, "objective": objective_name}
  if len(names) > 1:
    extra["pool_balance"] = balance
  if objective_name == sources.SUPERVISED:
    parts = [prepare(name, config.data) for name in names]
    extra["class_sources"] = pool.class_sources(parts)
    return (parts[0] if len(parts) == 1 else pool.pool(parts, balance, seed)), SUPERVISED, extra
  objective = objectives.build(objective_name, config.pretext, window_samples(config.data),
                               config.data.rate_hz)
  prepared = sources.unlabelled_windows(source, config.data, balance, config.pretext.holdout,
                                        seed)
  extra["pretext"] = {"objective": objective_name, "splits_read": ["train"],
                      "outputs": list(objective.score_names),
                      "windows": {s: len(prepared.splits[s]) for s in ("train", "val", "test")}}
  return prepared, objective, extra


def adaptation_rows(y_train: np.ndarray, size: int, subset_seed: int, num_seeds: int,
                    budget: str = "windows", prepared: Prepared | None = None) -> np.ndarray:
  """(S, n) labelled rows of the target's train split: seed s's nested subset drawn
  with subset_seed + s, stratified (budget "windows": n = size) or size of each
  class (budget "per_class": n = size x classes)."""
  if budget == "per_class":
    names, name = (prepared.class_names, prepared.name) if prepared else ((), "")
    return np.stack([shots_per_class(y_train, size, subset_seed + s, names, name)
                     for s in range(num_seeds)])
  return np.stack([adaptation_subsets(y_train, [size], subset_seed + s)[size]
                   for s in range(num_seeds)])


def load_source(source_dir: str | Path) -> tuple[dict, dict, dict]:
  """(best params, best batch stats, meta) of a pretrained checkpoint, numpy, seed axis first."""
  tree, meta = checkpoints.read(source_dir)
  return tree["best_params"], tree["best_batch_stats"], meta


def abstract_variables(config, num_classes: int) -> dict:
  """Shapes of the model's variables (tracing the model takes seconds; a sweep's
  cells ask for the same few)."""
  return _abstract_variables(json.dumps([config.model.to_dict(), num_classes,
                                         config.data.rate_hz, window_samples(config.data)],
                                        default=str))


@functools.lru_cache(maxsize=16)
def _abstract_variables(key: str) -> dict:
  model_config, num_classes, rate_hz, window = json.loads(key)
  model = build_model(model_config, num_classes, rate_hz)
  # as users, checkpoints and transfer rules see them: one tower_i subtree per tower
  user = lambda variables: {k: model.to_user_layout(v) for k, v in variables.items()}
  return jax.eval_shape(lambda key, x: user(model.init(key, x)), jax.random.key(0),
                        jnp.zeros((1, window, 3)))


def adapt(config, workdir: str | Path | None, source_dir: str | Path | None = None, *,
          size: int | None = None, capacity: int | None = None, progress: bool = True,
          prepared: Prepared | None = None, source: tuple | None = None) -> dict:
  """Adapts a target model (config.target) on an adaptation subset of its train
  split, starting from the source checkpoint's blocks by config.transfer; without
  a source, trains the baseline. Seed s of the target starts from source seed
  s mod (source seeds). capacity: pad the subset to this many rows, so that every
  size of a sweep shares one compilation (sizes under one batch: see Batches.create)."""
  tc = config.train
  check_config(config)
  prepared = prepared or prepare(config.target, config.data)
  size = size or config.adapt.size
  budget, selection = config.adapt.get("budget", "windows"), config.adapt.get("selection", ORACLE)
  if budget == "windows" and size > len(prepared.splits["train"]):
    raise DataError(f"adaptation size {size} (config.adapt.size) is larger than {prepared.name!r}'s "
                    f"train split ({len(prepared.splits['train'])} windows); a sweep caps its sizes "
                    "to the smallest train split (xfer_jax/sweep.py)")
  rows = adaptation_rows(prepared.splits["train"].y_N, size, config.adapt.subset_seed,
                         tc.num_seeds, budget, prepared)
  labelled = rows.shape[1]  # every label the cell reads: its training and its selection
  val_rows = None
  if selection == INNER:  # the budget's own windows select the epoch; they do not train
    rows, val_rows = inner_validation(prepared.splits["train"].y_N, rows,
                                      config.adapt.inner_fraction, config.adapt.subset_seed)
  if source is None and source_dir is not None:
    source = load_source(source_dir)
  if source is not None:
    trained_on = source[2].get("datasets") or [source[2]["dataset"]]
    # a self-supervised source read its datasets' train splits only, unlabelled
    self_supervised = source[2].get("objective", sources.SUPERVISED) != sources.SUPERVISED
    if prepared.name in trained_on and not self_supervised:
      raise transfer.TransferError(
          f"the target {prepared.name!r} is among the source model's datasets {trained_on}: "
          "its windows (the test split included) would reach the target through the source")
  abstract = abstract_variables(config, prepared.num_classes)
  rules = transfer.rules_from_config(config.transfer, len(config.model.filters),
                                     source is not None)
  labels = transfer.label_paths(list(transfer.flatten(abstract["params"])), rules)
  stats_labels = transfer.batch_stats_labels(abstract["batch_stats"], rules)
  mode = config.transfer.mode if source is not None else "baseline"
  if mode == "lp_ft":  # the rules copy everything but the head; phase 1 freezes the copies
    labels_lp = {p: transfer.COPY_FREEZE if a == transfer.COPY else a for p, a in labels.items()}
    stats_lp = {p: transfer.COPY_FREEZE if a == transfer.COPY else a
                for p, a in stats_labels.items()}
    phases = [("adapt_lp", labels_lp, stats_lp, transfer.optimizer_labels(labels_lp),
               transfer.frozen_bn_parts(labels_lp, config.transfer.bn_policy)),
              ("adapt", labels, stats_labels, transfer.all_transferred(labels), ())]
  else:
    any_frozen = any(a == transfer.COPY_FREEZE for a in labels.values())
    param_labels = (transfer.optimizer_labels(labels, mode == "discriminative")
                    if any_frozen or mode == "discriminative" else None)
    phases = [("adapt", labels, stats_labels, param_labels,
               transfer.frozen_bn_parts(labels, config.transfer.bn_policy))]
  if source is not None:
    src_params, src_stats, _ = source
    num_src = num_seeds_of(src_params)
    seed_map = np.arange(tc.num_seeds) % num_src
    first = lambda tree: jax.tree.map(lambda a: a[0], tree)
    # check the fit on one seed, so errors show the model's own shapes
    try:
      transfer.merge(abstract["params"], first(src_params), labels)
    except transfer.TransferError as e:
      clearer = _window_mismatch(source[2], config, e)
      if clearer is None:
        raise
      raise clearer from e
    transfer.merge(abstract["batch_stats"], first(src_stats), stats_labels, "batch stats")
  workdir = None if workdir is None else Path(workdir)
  state = None
  probe = None
  for number, (phase, phase_labels, phase_stats, param_labels, frozen_bn) in enumerate(phases):
    runner = build_runner(config, prepared.num_classes, param_labels, frozen_bn)
    extra = {"budget": {"budget": budget, "size": size, "labelled_windows": labelled,
                        "selection": selection},
             "transfer": {"labels": phase_labels, "rules": [list(r) for r in rules],
                          "frozen_bn": list(frozen_bn), "size": size, "phase": phase,
                          "source": str(source_dir) if source_dir else None,
                          "source_dataset": source[2]["dataset"] if source else None}}
    last = number == len(phases) - 1
    # lp_ft's first phase lives in its own folder; the final model in workdir itself
    phase_dir = workdir if workdir is None or last else workdir / "linear_probe"
    summary, state = train_and_evaluate(
        config, phase_dir, prepared, phase=phase, train_index_Sxn=rows, capacity=capacity,
        runner=runner, init_state=_start(source, seed_map if source else None, phase_labels,
                                         phase_stats, state, config.transfer.head_init),
        extra_meta=extra, progress=progress, return_state=True, selection=selection,
        val_rows_Sxv=val_rows)
    if not last:
      probe = summary
  if probe is not None:
    # lp_ft: the final phase's record also says how long the probe trained (it too
    # can stop at the epoch cap, and how long it ran shapes what is fine-tuned)
    for mine, probed in zip(summary["per_seed"], probe["per_seed"]):
      mine.update(probe_epochs=probed["epochs"], probe_best_epoch=probed["best_epoch"])
    if workdir is not None and is_primary():
      write_text(workdir / "result.json", json.dumps(summary, indent=2))
  return summary


def _window_mismatch(source_meta: Mapping, config, error: Exception) -> Exception | None:
  """A clearer error where the copy failed because the windows differ in length (the
  dense layers' input grows with it); None where they do not."""
  source_data = source_meta.get("config", {}).get("data", {})
  if not source_data:
    return None
  source_window, window = window_samples(source_data), window_samples(config.data)
  if source_window == window:
    return None
  return transfer.TransferError(
      f"the source model saw {source_data['window_s']} s windows ({source_window} samples at "
      f"{source_data['rate_hz']} Hz), this target {config.data.window_s} s ({window} samples): "
      f"mode {config.transfer.mode!r} copies the dense layers, whose input size follows the "
      "window length. Modes that copy only the convolutions work across window lengths: "
      "freeze_k_init_rest, or transfer.branch='temporal' / 'spectral'. "
      f"({error})")


def _start(source, seed_map, labels, stats_labels, previous, head_init: str = "random"):
  """init_state of an adaptation phase: the previous phase's best parameters and
  statistics, or the source's merged into fresh ones by the labels, the head
  zeroed if head_init says so (None: the baseline's fresh ones)."""
  if previous is not None:
    def init_state(runner, keys):
      params = jax.tree.map(jnp.copy, previous.best_params)
      return TrainState(params, jax.tree.map(jnp.copy, previous.best_batch_stats),
                        runner.init_opt_state(params))
    return init_state
  if source is None:
    return None
  src_params, src_stats, _ = source

  def init_state(runner, keys):
    fresh = runner.init(keys)
    pick = lambda tree: jax.tree.map(lambda a: a[seed_map], tree)
    params = transfer.merge(fresh.params, pick(src_params), labels)
    if head_init == "zeros":
      params = transfer.zero_head(params, labels)
    stats = transfer.merge(fresh.batch_stats, pick(src_stats), stats_labels, "batch stats")
    in_dtype = lambda tree, like: jax.tree.map(lambda a, b: jnp.asarray(a, b.dtype), tree, like)
    params, stats = in_dtype(params, fresh.params), in_dtype(stats, fresh.batch_stats)
    return TrainState(params, stats, runner.init_opt_state(params))
  return init_state


def seed_table(summary: dict) -> list[dict]:
  """Per seed: epochs and test scores (F1, or a pretext's accuracies); then mean ± std."""
  scores = [k for k in summary["per_seed"][0]
            if k == "micro_f1" or k == "macro_f1" or k.endswith("accuracy")]
  rows = [{"seed": r["seed"], "epochs": r["epochs"], **{k: r[k] for k in scores}}
          for r in summary["per_seed"]]
  spread = lambda k: (f"{np.mean([r[k] for r in rows]):.3f}±"
                      f"{np.std([r[k] for r in rows]):.3f}")
  rows.append({"seed": "mean±std", "epochs": "", **{k: spread(k) for k in scores}})
  return rows

