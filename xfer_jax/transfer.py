"""Transfer: copy parameter subtrees from a source model by rule; freeze some.

Rules are ordered (regex, action) pairs over "a/b/c" parameter paths: the first
rule whose regex fullmatches a path decides it, every path must be covered and
every rule must match something. Actions:
  copy         take the source's value, keep training it;
  copy_freeze  take the source's value, never update it (its own optax partition
               with set_to_zero, so it has no Adam state);
  init         keep the target model's fresh initialisation.
Batch-norm statistics follow the rule of their module's path; a frozen block's
statistics are "frozen" (inference-mode batch norm, unchanged) or "adapt"
(re-estimated on target batches, AdaBN-style) by config.transfer.bn_policy.

Presets (config.transfer.mode) for "k residual blocks transferred" (counted
from the input, in every tower; the spectral branch is one conv from the input,
so it belongs to depth 1 and is transferred with the first block):
  freeze_k_copy_rest  (default) copy everything but the head, freeze the first k
                      blocks: the paper's "all weights of the source model were
                      transferred ... some of them were frozen";
  freeze_k_init_rest  copy and freeze the first k blocks, initialise the rest;
  finetune_all        copy everything but the head, freeze nothing;
  discriminative      as finetune_all, but the copied leaves train at
                      lr x transfer.lr_scale (their own optax partition);
  lp_ft               linear probing, then fine-tuning: as finetune_all, in two
                      phases with their own early stopping: the head alone (every
                      copied leaf and its batch norm frozen), then everything at
                      lr x transfer.lr_scale from the first phase's best;
  baseline            nothing transferred (k = 0 means baseline in every mode).
config.transfer.branch = "temporal" / "spectral" transfers one branch only.

plan(config, ...) settles all of it for one adaptation before any training: a Plan
of the rules, the phases (each its labels, optimiser partition and frozen batch
norms) and where each target seed's copied values come from.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from xfer_jax.data import window_samples
from xfer_jax.engine import checkpoints
from xfer_jax.engine.optim import FROZEN, TRAINABLE, TRANSFERRED
from xfer_jax.engine.runner import num_seeds_of
from xfer_jax.engine.step import TrainState
from xfer_jax.errors import UserError
from xfer_jax.models.multiresnet import MASKED_LOGIT
from xfer_jax.pretext.sources import SUPERVISED

COPY, COPY_FREEZE, INIT = "copy", "copy_freeze", "init"
BASELINE = "baseline"  # the mode, and a study's arm, with nothing transferred
ACTIONS = (COPY, COPY_FREEZE, INIT)
MODES = ("freeze_k_copy_rest", "freeze_k_init_rest", "finetune_all", "discriminative",
         "lp_ft", BASELINE)
SCALED_MODES = ("discriminative", "lp_ft")  # the modes that read transfer.lr_scale
# the modes that copy every block and freeze none, whatever k (> 0) is
WHOLE_MODEL_MODES = ("finetune_all", "discriminative", "lp_ft")
BRANCHES = ("both", "temporal", "spectral")
BN_POLICIES = ("frozen", "adapt")
HEAD = "head"  # the output layer's module: never copied by a preset
HEAD_INITS = ("random", "zeros")
Rule = tuple[str, str]


class TransferError(UserError, ValueError):
  """A transfer that cannot be done; the message lists the offending paths."""


def flatten(tree) -> dict[str, object]:
  return traverse_util.flatten_dict(tree, sep="/") if tree else {}


def unflatten(flat: Mapping[str, object]):
  return traverse_util.unflatten_dict(dict(flat), sep="/")


def preset_rules(mode: str, blocks: int, num_blocks: int, branch: str = "both") -> list[Rule]:
  """The rules of a preset; blocks = k residual blocks transferred."""
  if mode not in MODES:
    raise TransferError(f"unknown transfer mode {mode!r}; modes are {MODES}")
  if branch not in BRANCHES:
    raise TransferError(f"unknown transfer branch {branch!r}; branches are {BRANCHES}")
  if not 0 <= blocks <= num_blocks:
    raise TransferError(f"transfer.blocks={blocks}, but the model has {num_blocks} residual "
                        f"blocks (0..{num_blocks})")
  if mode == "baseline" or blocks == 0:
    return [(r".*", INIT)]
  first_k = "|".join(str(b) for b in range(blocks))
  frozen_blocks = (rf"tower_\d+/temporal/block_({first_k})/.*", COPY_FREEZE)
  frozen_spectral = (r"tower_\d+/spectral/.*", COPY_FREEZE)
  if branch == "temporal":
    return [frozen_blocks, (r".*", INIT)]
  if branch == "spectral":
    return [frozen_spectral, (r".*", INIT)]
  if mode == "freeze_k_copy_rest":
    return [frozen_blocks, frozen_spectral, (r"head/.*", INIT), (r".*", COPY)]
  if mode == "freeze_k_init_rest":
    return [frozen_blocks, frozen_spectral, (r".*", INIT)]
  return [(r"head/.*", INIT), (r".*", COPY)]  # WHOLE_MODEL_MODES


def describe(transfer_config: Mapping) -> str:
  """What a transfer config copies, in words: "freeze_k_copy_rest, 2 block(s)",
  "discriminative, everything but the head", "freeze_k_init_rest, the spectral
  branch"."""
  mode, blocks, branch = (transfer_config["mode"], transfer_config["blocks"],
                          transfer_config.get("branch", "both"))
  if branch == "spectral":
    return f"{mode}, the spectral branch"
  if mode in WHOLE_MODEL_MODES and branch == "both":
    return f"{mode}, everything but the head"
  suffix = "" if branch == "both" else f" of the {branch} branch"
  return f"{mode}, {blocks} block(s){suffix}"


def check_config(transfer_config: Mapping) -> None:
  """A strategy's fields: lr_scale belongs to the modes that scale a learning rate,
  which need it; head_init is one of HEAD_INITS."""
  head_init = transfer_config.get("head_init", "random")
  if head_init not in HEAD_INITS:
    raise TransferError(f"config.transfer.head_init={head_init!r}: expected one of {HEAD_INITS}")
  mode, scale = transfer_config["mode"], transfer_config.get("lr_scale")
  if mode in SCALED_MODES:
    if scale is None or not 0 < scale <= 1:
      raise TransferError(f"config.transfer.lr_scale={scale}: mode {mode!r} trains at "
                          "lr x lr_scale; expected 0 < lr_scale <= 1")
  elif scale is not None:
    raise TransferError(f"config.transfer.lr_scale={scale} is used only by modes "
                        f"{SCALED_MODES}, not {mode!r}: remove it or choose one of them")


def rules_from_config(transfer_config: Mapping, num_blocks: int, has_source: bool) -> list[Rule]:
  check_config(transfer_config)
  if not has_source:
    return preset_rules("baseline", 0, num_blocks)
  if transfer_config.get("rules"):
    return [tuple(r) for r in transfer_config["rules"]]
  return preset_rules(transfer_config["mode"], transfer_config["blocks"], num_blocks,
                      transfer_config.get("branch", "both"))


def label_paths(paths: Sequence[str], rules: Sequence[Rule], check_rules: bool = True,
                log: bool = True) -> dict[str, str]:
  """path -> action by the first fullmatching rule; uncovered paths and rules that
  match nothing are errors listing them."""
  for pattern, action in rules:
    if action not in ACTIONS:
      raise TransferError(f"rule ({pattern!r}, {action!r}): action must be one of {ACTIONS}")
  compiled = [(re.compile(p), a) for p, a in rules]
  labels, used, uncovered = {}, set(), []
  for path in paths:
    for k, (regex, action) in enumerate(compiled):
      if regex.fullmatch(path):
        labels[path] = action
        used.add(k)
        if log:
          logging.info("transfer: %-55s %-12s (rule %r)", path, action, rules[k][0])
        break
    else:
      uncovered.append(path)
  if uncovered:
    raise TransferError(f"no rule covers {len(uncovered)} parameter path(s): {uncovered}")
  unused = [rules[k] for k in range(len(rules)) if k not in used]
  if check_rules and unused:
    raise TransferError(f"rule(s) {unused} match no parameter path; paths are {list(paths)}")
  return labels


def frozen_bn_parts(labels: Mapping[str, str], bn_policy: str) -> tuple[str, ...]:
  """Branch parts ("temporal/block_k", "spectral") whose batch norm stays in
  inference mode: the frozen ones, under the "frozen" policy."""
  if bn_policy not in BN_POLICIES:
    raise TransferError(f"unknown bn_policy {bn_policy!r}; policies are {BN_POLICIES}")
  if bn_policy == "adapt":
    return ()
  parts = set()
  for path, action in labels.items():
    if action == COPY_FREEZE:
      match = re.match(r"tower_\d+/(temporal/block_\d+|spectral)/", path)
      if match:
        parts.add(match[1])
  return tuple(sorted(parts))


def optimizer_labels(labels: Mapping[str, str], discriminative: bool = False):
  """The multi_transform partition: FROZEN for copy_freeze, TRANSFERRED for copy in
  discriminative fine-tuning, TRAINABLE otherwise."""
  part = {COPY_FREEZE: FROZEN, COPY: TRANSFERRED if discriminative else TRAINABLE,
          INIT: TRAINABLE}
  return unflatten({p: part[a] for p, a in labels.items()})


def all_transferred(labels: Mapping[str, str]):
  """The partition of lp_ft's second phase: every leaf at lr x lr_scale."""
  return unflatten({p: TRANSFERRED for p in labels})


def merge(target, source, labels: Mapping[str, str], what: str = "params"):
  """Target tree with the source's values where the label copies; a copied path
  missing from the source or of another shape is an error listing every one."""
  flat_t, flat_s = flatten(target), flatten(source)
  missing = [p for p, a in labels.items() if a != INIT and p not in flat_s]
  shapes = [f"{p}: source {tuple(np.shape(flat_s[p]))} vs target {tuple(np.shape(flat_t[p]))}"
            for p, a in labels.items()
            if a != INIT and p in flat_s and np.shape(flat_s[p]) != np.shape(flat_t[p])]
  copied_prefixes = {p.rsplit("/", 1)[0] for p, a in labels.items() if a != INIT}
  extra = [p for p in flat_s if p not in flat_t and p.rsplit("/", 1)[0] in copied_prefixes]
  if missing or shapes or extra:
    raise TransferError(
        f"the source model does not fit the target ({what}): "
        + "; ".join(f"{name}: {items}" for name, items in
                    (("missing in source", missing), ("shape differs", shapes),
                     ("only in source", extra)) if items))
  return unflatten({p: flat_s[p] if labels.get(p, INIT) != INIT else v for p, v in flat_t.items()})


def batch_stats_labels(batch_stats, rules: Sequence[Rule]) -> dict[str, str]:
  return label_paths(list(flatten(batch_stats)), rules, check_rules=False, log=False)


def zero_head(params, labels: Mapping[str, str]):
  """params with every leaf of the head that the rules initialise set to zeros (a
  transferred model then predicts uniformly at its first step, whatever the copied
  features are); a copied head is left as it is."""
  flat = flatten(params)
  # a padded head's masked outputs keep their bias (models.multiresnet.MASKED_LOGIT)
  zeros = lambda value: np.where(np.asarray(value) <= MASKED_LOGIT, value, 0).astype(value.dtype)
  return unflatten({path: (zeros(value) if path.split("/")[0] == HEAD
                           and labels.get(path) == INIT
                           else value) for path, value in flat.items()})


@dataclasses.dataclass(frozen=True)
class Phase:
  """One training phase of an adaptation: what each leaf does, the optimiser's
  partition (None: one for all), which batch norms stay in inference mode, and the
  workdir subfolder it trains in ("": the workdir itself, the final model's)."""

  name: str
  labels: Mapping[str, str]
  stats_labels: Mapping[str, str]
  param_labels: Any
  frozen_bn: tuple[str, ...]
  folder: str = ""


def phases(transfer_config: Mapping, labels: Mapping[str, str],
           stats_labels: Mapping[str, str], has_source: bool) -> list[Phase]:
  """An adaptation's phases: one, or lp_ft's linear probe (every copied leaf and its
  batch norm frozen) then its fine-tuning of everything at lr x lr_scale."""
  mode, bn_policy = transfer_config["mode"], transfer_config.get("bn_policy", "frozen")
  if has_source and mode == "lp_ft":
    freeze = lambda tree: {p: COPY_FREEZE if a == COPY else a for p, a in tree.items()}
    probe = freeze(labels)
    return [Phase("adapt_lp", probe, freeze(stats_labels), optimizer_labels(probe),
                  frozen_bn_parts(probe, bn_policy), folder="linear_probe"),
            Phase("adapt", labels, stats_labels, all_transferred(labels), ())]
  discriminative = has_source and mode == "discriminative"
  any_frozen = any(a == COPY_FREEZE for a in labels.values())
  param_labels = (optimizer_labels(labels, discriminative)
                  if any_frozen or discriminative else None)
  return [Phase("adapt", labels, stats_labels, param_labels,
                frozen_bn_parts(labels, bn_policy))]


def check_fit(abstract: Mapping, source_params, source_stats, labels, stats_labels) -> None:
  """Copies one source seed into the target's shapes, so that a misfit is an error
  naming the model's own paths and shapes before any training."""
  merge(abstract["params"], source_params, labels)
  merge(abstract["batch_stats"], source_stats, stats_labels, "batch stats")


def window_mismatch(source_data: Mapping, data: Mapping, mode: str) -> TransferError | None:
  """Why a copy failed where the source's windows are of another length than the
  target's (the dense layers' input follows it); None where they are not."""
  source_window, window = window_samples(source_data), window_samples(data)
  if source_window == window:
    return None
  return TransferError(
      f"the source model saw {source_data['window_s']} s windows ({source_window} samples at "
      f"{source_data['rate_hz']} Hz), this target {data['window_s']} s ({window} samples): "
      f"mode {mode!r} copies the dense layers, whose input size follows the window length. "
      "Modes that copy only the convolutions work across window lengths: freeze_k_init_rest, "
      "or transfer.branch='temporal' / 'spectral'.")


def initial_state(phase: Phase, source, seed_map, previous=None, head_init: str = "random"):
  """A phase's init_state(runner, keys): the previous phase's best parameters and
  statistics, or the source's (params, batch stats) merged into fresh ones by the
  phase's labels, seed s from source seed seed_map[s], the head zeroed if head_init
  says so; None (fresh ones) without either."""
  if previous is not None:
    def from_previous(runner, keys):
      params = jax.tree.map(jnp.copy, previous.best_params)
      return TrainState(params, jax.tree.map(jnp.copy, previous.best_batch_stats),
                        runner.init_opt_state(params))
    return from_previous
  if source is None:
    return None
  src_params, src_stats = source

  def from_source(runner, keys):
    fresh = runner.init(keys)
    pick = lambda tree: jax.tree.map(lambda a: a[seed_map], tree)
    params = merge(fresh.params, pick(src_params), phase.labels)
    if head_init == "zeros":
      params = zero_head(params, phase.labels)
    stats = merge(fresh.batch_stats, pick(src_stats), phase.stats_labels, "batch stats")
    in_dtype = lambda tree, like: jax.tree.map(lambda a, b: jnp.asarray(a, b.dtype), tree, like)
    params, stats = in_dtype(params, fresh.params), in_dtype(stats, fresh.batch_stats)
    return TrainState(params, stats, runner.init_opt_state(params))
  return from_source


def load_source(source_dir: str | os.PathLike) -> tuple[dict, dict, dict]:
  """(best params, best batch stats, meta) of a pretrained checkpoint, numpy, seed axis first."""
  tree, meta = checkpoints.read(source_dir)
  return tree["best_params"], tree["best_batch_stats"], meta


def check_source(meta: dict, target: str) -> None:
  """A supervised source trained on the target's windows (its test split included)
  is refused; a self-supervised one read train splits only, unlabelled."""
  trained_on = meta.get("datasets") or [meta["dataset"]]
  if target in trained_on and meta.get("objective", SUPERVISED) == SUPERVISED:
    raise TransferError(
        f"the target {target!r} is among the source model's datasets {trained_on}: "
        "its windows (the test split included) would reach the target through the source")


@dataclasses.dataclass(frozen=True)
class Plan:
  """An adaptation's transfer, settled before any training: its rules, its phases in
  order, and the source's (params, batch stats), seed axis first, with the source
  seed each target seed starts from (seed_map). No source: the baseline."""

  rules: list[Rule]
  phases: list[Phase]
  head_init: str = "random"
  source: tuple | None = None
  seed_map: np.ndarray | None = None
  source_dir: str | None = None
  source_dataset: str | None = None

  def initial_state(self, phase: Phase, previous=None):
    """The phase's init_state(runner, keys): from the previous phase's best, or the source."""
    return initial_state(phase, self.source, self.seed_map, previous, self.head_init)

  def meta(self, phase: Phase, size: int) -> dict:
    """What the phase's checkpoint says of its transfer (python -m launch.inspect)."""
    return {"labels": phase.labels, "rules": [list(r) for r in self.rules],
            "frozen_bn": list(phase.frozen_bn), "size": size, "phase": phase.name,
            "source": self.source_dir, "source_dataset": self.source_dataset}


def plan(config, abstract: Mapping, target: str, source: tuple | None = None,
         source_dir: str | os.PathLike | None = None) -> Plan:
  """config.transfer into a model of abstract's shapes (programs.abstract_variables)
  for the dataset target, from source (load_source's triple) or the checkpoint at
  source_dir; neither: the baseline. Every refusal comes here, before any training:
  a supervised source that saw the target, rules that miss a path or match none, a
  source whose shapes do not fit."""
  if source is None and source_dir is not None:
    source = load_source(source_dir)
  has_source = source is not None
  if has_source:
    check_source(source[2], target)
  rules = rules_from_config(config.transfer, len(config.model.filters), has_source)
  labels = label_paths(list(flatten(abstract["params"])), rules)
  stats_labels = batch_stats_labels(abstract["batch_stats"], rules)
  steps = phases(config.transfer, labels, stats_labels, has_source)
  if not has_source:
    return Plan(rules, steps, config.transfer.head_init)
  params, stats, meta = source
  first = lambda tree: jax.tree.map(lambda a: a[0], tree)
  try:
    check_fit(abstract, first(params), first(stats), labels, stats_labels)
  except TransferError as e:
    clearer = window_mismatch(meta.get("config", {}).get("data") or config.data, config.data,
                              config.transfer.mode)
    if clearer is None:
      raise
    raise TransferError(f"{clearer} ({e})") from e
  seed_map = np.arange(config.train.num_seeds) % num_seeds_of(params)
  return Plan(rules, steps, config.transfer.head_init, (params, stats), seed_map,
              str(source_dir) if source_dir else None, meta["dataset"])
