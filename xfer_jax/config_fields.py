"""A config's science fields: what decides a run's numbers, read alike across the
config's history (a field added since a config was saved takes its default; one
moved out of the science is dropped)."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping

from xfer_jax import defaults

# A grid's key covers every config field but config.runtime (how it runs) and these:
# the coordinates a sweep sets per cell, and where files are read and cached.
CELL_FIELDS = ("source", "target", "adapt.size", "transfer.blocks")
LOCATION_FIELDS = ("data.cache_dir", "data.data_dir", "sweep.sources_dir")


def flat_fields(tree: Mapping, prefix: str = "") -> dict[str, object]:
  out = {}
  for key, value in tree.items():
    path = f"{prefix}{key}"
    if isinstance(value, Mapping):
      out.update(flat_fields(value, path + "."))
    else:
      out[path] = list(value) if isinstance(value, tuple) else value
  return out


def science_fields(config: Mapping | object) -> dict[str, object]:
  """The fields of a config (a ConfigDict, or one as saved in config.json) that
  decide a run's numbers: all but config.runtime and file locations, flattened
  'a.b' -> value, as today's config: a field added since it was saved takes its
  default, which reproduces what was computed before the field existed
  (xfer_jax/defaults.py); a field since removed or moved out of the science is dropped."""
  tree = config if isinstance(config, Mapping) else json.loads(config.to_json_best_effort())
  fields = flat_fields({k: v for k, v in tree.items() if k != "runtime"})
  if "runtime" not in tree:
    fields = upgrade_fields(fields)
  fields = current_fields(fields)
  return {k: v for k, v in sorted(fields.items()) if k not in LOCATION_FIELDS}


def grid_fields(config) -> dict[str, object]:
  """The fields of a config that decide a sweep's numbers: its science fields but
  the coordinates each cell sets."""
  return {k: v for k, v in science_fields(config).items() if k not in CELL_FIELDS}


# run settings that lived in config.train before config.runtime
_FORMER_TRAIN_RUNTIME = ("epoch_loop", "seed_chunk", "num_devices", "batch_devices",
                         "eval_batch_size", "checkpoint_every")
# fields that left the science: how a run computes, not what (model.conv is now
# config.runtime.conv; model.stack_towers was removed: docs/performance.md)
_NOT_SCIENCE = ("model.conv", "model.stack_towers")


@functools.cache
def default_fields() -> dict[str, object]:
  """Every science field at its default (xfer_jax/defaults.py), but the coordinates
  a sweep sets per cell and file locations, which a saved grid leaves out by design."""
  tree = json.loads(defaults.base_config().to_json_best_effort())
  fields = flat_fields({k: v for k, v in tree.items() if k != "runtime"})
  return {k: v for k, v in fields.items() if k not in CELL_FIELDS + LOCATION_FIELDS}


def current_fields(fields: Mapping[str, object]) -> dict[str, object]:
  """Saved fields as the same config's fields now: absent ones at their default,
  those that left the science dropped."""
  return {**default_fields(), **{k: v for k, v in fields.items() if k not in _NOT_SCIENCE}}


def upgrade_fields(fields: Mapping[str, object]) -> dict[str, object]:
  """Fields of a config saved before grid format 2 (a sweep.json, a config.json) as
  the same config's fields now."""
  fields = {k: v for k, v in fields.items()
            if k not in {f"train.{name}" for name in _FORMER_TRAIN_RUNTIME}}
  fields.pop("model.num_blocks", None)  # now len(model.filters)
  fields.pop("adapt.validation", None)  # was read nowhere: the target's val split selects
  return fields


def differing_fields(a: Mapping[str, object], b: Mapping[str, object]) -> list[str]:
  return sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))


def describe_differences(a: Mapping, b: Mapping, names=("this", "that")) -> str:
  return "; ".join(f"{k}: {names[0]} {a.get(k, '<absent>')!r} vs {names[1]} {b.get(k, '<absent>')!r}"
                   for k in differing_fields(a, b))
