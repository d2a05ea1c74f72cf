"""Stored executables: a fresh process runs a program without tracing it, gets the
same numbers, and never stores what it cannot run back."""

import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from tests.conftest import REPO
from xfer_jax.engine import executables

# A child process: the program f (traces counted), run plainly through jit, through a
# StoredProgram under an identity, or plainly and then stored ("plain, then IDENTITY");
# prints its traces and result
_CHILD = """
import sys
import jax, jax.numpy as jnp
from xfer_jax.engine import executables, runtime
runtime.enable_compilation_cache(sys.argv[1])
traces = []
def f(x, y):
  traces.append(1)
  return (jnp.tanh(x) @ y).sum(0)
program = jax.jit(f)
x = jnp.linspace(-1.0, 1.0, 64 * 64).reshape(64, 64)
*plain_first, identity = sys.argv[2].split(", then ")
if plain_first:
  program(x, x.T)
if identity != "plain":
  program = executables.stored(program, "f", identity)
result = program(x, x.T)
print(len(traces), float(result.sum()))
"""


def _child(cache, how):
  done = subprocess.run([sys.executable, "-c", _CHILD, str(cache), how], cwd=REPO,
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  traces, total = done.stdout.split()
  return int(traces), float(total)


def test_a_fresh_process_runs_a_stored_program_untraced_with_the_same_numbers(tmp_path):
  """The persistent cache holds f already (a user's warm cache), which the store
  must not re-serialise: an executable loaded from that cache serialises into one
  that fails when run. The second StoredProgram process loads f without tracing and
  computes what jit computes; another identity is another program."""
  cache = tmp_path / "cache"
  plain = _child(cache, "plain")
  assert plain[0] == 1
  assert _child(cache, "model A") == plain  # traced, compiled and stored
  assert len(list((cache / "executables").glob("f-*.pkl.zlib"))) == 1
  assert _child(cache, "model A") == (0, plain[1])  # loaded whole: no trace
  assert _child(cache, "model B")[0] == 1


def test_an_executable_this_process_loaded_from_the_compilation_cache_is_not_stored(tmp_path):
  """jit keeps each lowered program's executable in memory: f run plainly first (its
  executable loaded from the persistent cache) hands that executable to the store's
  compile without compiling, and it must not be serialised. A later process that
  compiles f for real stores it, and the next loads and runs it."""
  cache = tmp_path / "cache"
  plain = _child(cache, "plain")
  assert _child(cache, "plain, then model A") == plain  # one trace, shared
  assert not list((cache / "executables").glob("f-*.pkl.zlib"))
  assert _child(cache, "model A") == plain
  assert _child(cache, "model A") == (0, plain[1])


_CACHE_HITS_CHILD = """
import sys
import jax, jax.numpy as jnp
from jax import monitoring
from xfer_jax.engine import runtime
runtime.enable_compilation_cache(sys.argv[1])
hits = []
monitoring.register_event_listener(
    lambda event, **kw: hits.append(event) if event.endswith("/cache_hits") else None)
jax.jit(lambda x: jnp.tanh(x).sum())(jnp.ones(8)).block_until_ready()
print(len(hits))
"""


def test_a_program_that_compiles_in_a_moment_is_read_back_by_the_next_process(tmp_path):
  """The persistent cache keeps every program, not only those over JAX's default
  second (runtime.enable_compilation_cache): a grid's runners that differ in what
  they freeze share their small programs through it."""
  env = {k: v for k, v in os.environ.items() if k != "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"}
  hits = [subprocess.run([sys.executable, "-c", _CACHE_HITS_CHILD, str(tmp_path)], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=300)
          for _ in range(2)]
  assert all(h.returncode == 0 for h in hits), hits[-1].stderr[-3000:]
  first, second = (int(h.stdout) for h in hits)
  assert first == 0 and second > 0  # the program (and jnp.ones' own) read back


def _new_constant() -> int:
  """A constant no earlier run compiled: the persistent cache (tests/conftest.py)
  does not hold a program that adds it."""
  return time.time_ns() % 1_000_003


def test_an_executable_loaded_from_the_compilation_cache_is_not_stored(tmp_path):
  directory = tmp_path / "store"
  c = _new_constant()
  f = jax.jit(lambda x: x * 2 + c)

  # one call site (the key under which the store compiles includes the call stack):
  # the first pass compiles and stores; the store emptied, the second pass finds the
  # program in the persistent cache (tests/conftest.py) and stores nothing
  stored_after = []
  for _ in range(2):
    program = executables.StoredProgram(f, "twice", "test", directory)
    np.testing.assert_array_equal(program(jnp.arange(8)), np.arange(8) * 2 + c)
    stored_after.append(len(list(directory.glob("twice-*.pkl.zlib"))))
    for path in directory.glob("twice-*.pkl.zlib"):
      path.unlink()
    jax.clear_caches()
  assert stored_after == [1, 0]


def test_an_unreadable_stored_executable_is_compiled_again(tmp_path, caplog):
  directory = tmp_path / "store"
  c = _new_constant()
  f = jax.jit(lambda x: x + c)
  x = jnp.arange(4)
  executables.StoredProgram(f, "plus", "test", directory)(x)
  [stored] = directory.glob("plus-*.pkl.zlib")
  stored.write_bytes(stored.read_bytes()[:100])  # a truncated file
  jax.clear_caches()
  np.testing.assert_array_equal(executables.StoredProgram(f, "plus", "test", directory)(x),
                                np.arange(4) + c)
  assert "unreadable stored executable" in caplog.text and str(stored) in caplog.text


def test_each_argument_signature_is_its_own_program(tmp_path):
  traces, c = [], _new_constant()

  def f(x, scale):
    traces.append(x.shape)
    return x * scale + c

  program = executables.StoredProgram(jax.jit(f, static_argnums=1), "scaled", "test",
                                      tmp_path, static_argnums=(1,))
  ones = lambda n: jnp.ones(n, jnp.int32)
  np.testing.assert_array_equal(program(ones(3), 2), [2 + c] * 3)
  np.testing.assert_array_equal(program(ones(3), 2), [2 + c] * 3)
  np.testing.assert_array_equal(program(ones(5), 2), [2 + c] * 5)
  np.testing.assert_array_equal(program(ones(3), 3), [3 + c] * 3)
  assert traces == [(3,), (5,), (3,)]
  assert len(list(tmp_path.glob("scaled-*.pkl.zlib"))) == 3
