"""What a run compiles: the model, its Runner and its variables' shapes, each built
once per shape in a process, so a sweep's cells of one shape share their programs."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping

import jax
import jax.numpy as jnp
from flax import traverse_util

from xfer_jax.data import window_samples
from xfer_jax.engine.optim import make_optimizer
from xfer_jax.engine.runner import Runner, Settings
from xfer_jax.engine.step import SUPERVISED, Step
from xfer_jax.models import MultiResNet


def build_model(model_config: Mapping, num_classes: int, rate_hz: float,
                frozen_bn=(), conv: str = "xla", head_outputs: int = 0) -> MultiResNet:
  """The Multi-ResNet of config.model; conv: how its convolutions run, head_outputs:
  a padded head's width (config.runtime)."""
  if model_config.get("dtype") == "float64" and not jax.config.jax_enable_x64:
    raise ValueError("config.model.dtype='float64' needs 64-bit JAX: set JAX_ENABLE_X64=1")
  return MultiResNet(num_classes=num_classes, rate_hz=rate_hz, frozen_bn=tuple(frozen_bn), conv=conv,
                     head_outputs=head_outputs,
                     **{k: tuple(v) if isinstance(v, list) else v
                        for k, v in dict(model_config).items()})


def head_outputs(config, num_classes: int) -> int:
  """The head's width: num_classes, rounded up to a multiple of config.runtime.pad_classes
  where that is set (a supervised model's padded outputs are masked: MultiResNet)."""
  multiple = int(config.runtime.get("pad_classes", 0) or 0)
  if multiple < 0:
    raise ValueError(f"config.runtime.pad_classes={multiple}: expected 0 (off) or a positive "
                     "multiple of classes")
  return -(-num_classes // multiple) * multiple if multiple else num_classes


def _model_key(config, num_classes: int, outputs: int = 0) -> list:
  """What fixes a model's program: its fields, classes and outputs, rate and window
  length. Padded to one width, only the classes tell models apart, and they enter
  the program as the mask's bound alone."""
  return [config.model.to_dict(), num_classes, outputs, config.data.rate_hz,
          window_samples(config.data)]


def _json(value) -> str:
  """A hashable key for lru_cache: ConfigDicts are not hashable, their JSON is."""
  return json.dumps(value, sort_keys=True, default=str)


def build_runner(config, num_classes: int, param_labels=None, frozen_bn=(),
                 objective=SUPERVISED) -> Runner:
  """A Runner for this model, optimiser, objective and run settings; the same
  arguments return the same Runner, so its compilations serve every run of that
  shape in this process. num_classes: the classes (a supervised objective), or the
  head's outputs (a self-supervised one)."""
  labels = None if param_labels is None else tuple(
      sorted(traverse_util.flatten_dict(param_labels, sep="/").items()))
  outputs = head_outputs(config, num_classes) if objective is SUPERVISED else num_classes
  key = _json([_model_key(config, num_classes, outputs), config.optim.to_dict(),
               config.train.batch_size, labels, sorted(frozen_bn),
               config.transfer.get("lr_scale") or 1.0])
  return _runner(key, Settings.resolve(config.runtime), objective)


@functools.lru_cache(maxsize=64)
def _runner(key: str, settings: Settings, objective) -> Runner:
  ((model_config, num_classes, outputs, rate_hz, window), optim_config, batch_size, labels,
   frozen_bn, lr_scale) = json.loads(key)
  model = build_model(model_config, num_classes, rate_hz, frozen_bn, settings.conv, outputs)
  param_labels = None if labels is None else traverse_util.unflatten_dict(dict(labels), sep="/")
  tx = make_optimizer(optim_config, param_labels, lr_scale)
  step = Step(model, tx, optim_config["l2"], (window, 3), objective)
  # the programs that do not train (init, evaluation, the epoch's order) are the same
  # for every optimiser and every frozen_bn, which only a training pass reads (a
  # frozen batch norm normalises by its running statistics, as every one does
  # outside training): a grid's frozen partitions share them
  model_key = _json([model_config, num_classes, outputs, rate_hz, window])
  return Runner(step, batch_size=batch_size, settings=settings,
                identity=repr((key, settings, objective)),
                model_identity=repr((model_key, batch_size, settings, objective)))


def clear_cache() -> None:
  """Lets go of every Runner (and so its compiled programs) and traced shape."""
  _runner.cache_clear()
  _abstract_variables.cache_clear()


def abstract_variables(config, num_classes: int) -> dict:
  """Shapes of a supervised model's variables (tracing the model takes seconds)."""
  return _abstract_variables(_json(_model_key(config, num_classes,
                                              head_outputs(config, num_classes))))


@functools.lru_cache(maxsize=16)
def _abstract_variables(key: str) -> dict:
  model_config, num_classes, outputs, rate_hz, window = json.loads(key)
  model = build_model(model_config, num_classes, rate_hz, head_outputs=outputs)
  return jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, window, 3)))
