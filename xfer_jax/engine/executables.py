"""Compiled programs kept whole on disk, so that a fresh process neither traces nor
lowers them.

The persistent compilation cache spares XLA's compile, but finds its entry by the
lowered program: every process still traces and lowers each program first, seconds
of a fresh launch before its first step (docs/performance.md#stored-executables).
A `StoredProgram` keys the executable instead by what fixes the program without
tracing it: its caller's description of what built it (a Runner's configuration),
the arguments' structure, shapes and dtypes, xfer_jax's source, and JAX, the
backend and the flags it compiles under. Stored beside the compilation cache
(`runtime.enable_compilation_cache`); off where that is off, and in multi-process
runs.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import pickle
import time
import zlib
from pathlib import Path

import jax
import numpy as np

LOAD_EVENT = "/xfer_jax/executables/load_duration"  # runtime.CompileCounter counts it
_PACKAGE = Path(__file__).resolve().parents[1]


@functools.lru_cache(maxsize=1)
def _environment() -> str:
  """What a program's executable depends on beside its own key: this package's
  source (any edit may change a traced program), JAX, the backend and its flags."""
  source = hashlib.sha256()
  for path in sorted(_PACKAGE.rglob("*.py")):
    source.update(path.relative_to(_PACKAGE).as_posix().encode())
    source.update(path.read_bytes())
  device = jax.devices()[0]
  return repr((source.hexdigest(), jax.__version__, jax.lib.__version__, device.platform,
               device.device_kind, device.client.platform_version,
               os.environ.get("XLA_FLAGS", ""), jax.config.jax_enable_x64,
               jax.config.jax_default_matmul_precision))


def store_directory() -> Path | None:
  """Where executables are kept: beside the persistent compilation cache, when it is
  on and this is the only process."""
  cache = jax.config.jax_compilation_cache_dir
  if not cache or jax.process_count() > 1:
    return None
  return Path(cache) / "executables"


def _aval(leaf) -> tuple:
  return (np.shape(leaf), np.result_type(leaf) if not hasattr(leaf, "dtype") else leaf.dtype,
          bool(getattr(leaf, "weak_type", False)))


class StoredProgram:
  """A jitted function whose executables are looked up by argument signature: in
  this process, then on disk, and only then traced, lowered and compiled (and
  stored). identity names what built the function: two programs with the same
  identity and signature must be the same program."""

  def __init__(self, jitted, name: str, identity: str, directory: Path,
               static_argnums: tuple[int, ...] = ()):
    self.jitted, self.name, self.identity = jitted, name, identity
    self.directory, self.static_argnums = directory, static_argnums
    self._compiled = {}

  def __call__(self, *args):
    static = tuple(args[i] for i in self.static_argnums)
    dynamic = tuple(a for i, a in enumerate(args) if i not in self.static_argnums)
    leaves, treedef = jax.tree.flatten(dynamic)
    signature = (treedef, static, tuple(map(_aval, leaves)))
    compiled = self._compiled.get(signature)
    if compiled is None:
      compiled = self._compiled[signature] = self._load_or_compile(args, signature)
    return compiled(*dynamic)

  def lower(self, *args):
    return self.jitted.lower(*args)

  def _load_or_compile(self, args, signature):
    key = hashlib.sha256(repr((self.name, self.identity, str(signature[0]), repr(signature[1]),
                               signature[2], _environment())).encode()).hexdigest()
    path = self.directory / f"{self.name}-{key}.pkl.zlib"
    if path.exists():
      start = time.perf_counter()
      try:
        compiled = _load(path)
      except Exception as error:  # a partial or foreign file: compile as if it were absent
        logging.warning("%s: unreadable stored executable %s (%s: %s); compiling it again",
                        self.name, path, type(error).__name__, error)
      else:
        jax.monitoring.record_event_duration_secs(LOAD_EVENT, time.perf_counter() - start,
                                                 fun_name=self.name)
        return compiled
    lowered = self.jitted.trace(*args).lower()
    # An executable the persistent cache loaded serialises into one that fails when
    # run ("Function ... not found", XLA:CPU): compile this one under the cache's
    # other key (debug locations included), which a program stored here has never
    # been compiled under, and store it only if XLA compiled it here and then: jit
    # hands back the executable it already holds for this lowering, which may have
    # come from that cache, without asking the cache again
    before = dict(_cache_events)
    with _metadata_in_cache_key():
      compiled = lowered.compile()
    if (_cache_events[_ASKED] > before[_ASKED]) and _cache_events[_HIT] == before[_HIT]:
      _store(compiled, path)
    return compiled


_ASKED = "/jax/compilation_cache/compile_requests_use_cache"  # XLA asked to compile
_HIT = "/jax/compilation_cache/cache_hits"  # ... and the cache answered
_cache_events = {_ASKED: 0, _HIT: 0}


def _count_cache_events(event: str, **kwargs) -> None:
  if event in _cache_events:
    _cache_events[event] += 1


jax.monitoring.register_event_listener(_count_cache_events)


@contextlib.contextmanager
def _metadata_in_cache_key():
  before = jax.config.jax_compilation_cache_include_metadata_in_key
  jax.config.update("jax_compilation_cache_include_metadata_in_key", True)
  try:
    yield
  finally:
    jax.config.update("jax_compilation_cache_include_metadata_in_key", before)


def _load(path: Path):
  from jax.experimental import serialize_executable
  payload, in_tree, out_tree = pickle.loads(zlib.decompress(path.read_bytes()))
  return serialize_executable.deserialize_and_load(payload, in_tree, out_tree)


def _store(compiled, path: Path) -> None:
  """Writes the executable atomically; one that cannot be serialised (a program with
  captured constants, a pytree node pickle cannot name) is only not stored."""
  from jax.experimental import serialize_executable
  try:
    # compressed as the compilation cache compresses its entries: a fifth of the bytes
    blob = zlib.compress(pickle.dumps(serialize_executable.serialize(compiled)), 1)
  except Exception as error:
    logging.info("%s not stored (%s: %s)", path.name, type(error).__name__, error)
    return
  path.parent.mkdir(parents=True, exist_ok=True)
  temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  try:
    temporary.write_bytes(blob)
    os.replace(temporary, path)
  except OSError as error:  # a full or read-only cache costs the next process a trace
    logging.warning("could not store %s: %s", path, error)
    temporary.unlink(missing_ok=True)


def stored(jitted, name: str, identity: str | None, static_argnums: tuple[int, ...] = ()):
  """jitted as a StoredProgram where executables are stored and identity is known;
  otherwise jitted itself."""
  directory = store_directory()
  if directory is None or identity is None:
    return jitted
  return StoredProgram(jitted, name, identity, directory, static_argnums)
