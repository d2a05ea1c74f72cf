"""Placing a run on the devices: seeds over a mesh, data replicated, results back.

One device (a laptop, one GPU) needs none of this: `mesh_for` returns None and
arrays stay where JAX puts them. With several devices -- a multi-GPU box, a TPU
host, or CPU with XLA_FLAGS=--xla_force_host_platform_device_count=4 -- a
vmapped call of S seeds runs on a one-axis ("seed") mesh under shard_map: every
device runs the single-device vmapped program on its own seeds, so a seed's
numbers do not depend on how many devices share the work. (Leaving the
partitioning to XLA's SPMD partitioner instead changed the logits of the
seed-batched grouped convolutions on XLA:CPU: docs/scaling.md.)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

SEED = "seed"
SEEDED, REPLICATED = PartitionSpec(SEED), PartitionSpec()


def mesh_size(num_seeds: int, num_devices: int) -> int:
  """Devices a call of num_seeds seeds uses: the most that divide the seeds
  evenly (shard_map needs equal shards); the rest stay idle."""
  return max(d for d in range(1, min(num_seeds, num_devices) + 1) if num_seeds % d == 0)


@functools.lru_cache(maxsize=32)
def _mesh(devices: tuple) -> Mesh:
  return Mesh(np.array(devices), (SEED,))


def mesh_for(num_seeds: int, devices: Sequence) -> Mesh | None:
  """The mesh of one vmapped call of num_seeds seeds; None when it is one device."""
  size = mesh_size(num_seeds, len(devices))
  return None if size == 1 else _mesh(tuple(devices)[:size])


def _put(tree, sharding: NamedSharding):
  def put(a):
    if isinstance(a, jax.Array):
      if a.sharding == sharding:
        return a
      if a.is_fully_addressable and not sharding.is_fully_addressable:
        # a process-local value (init, data, keys): every process computed the same
        # one, and each places the shards its own devices hold
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
          data = put(jax.random.key_data(a))
          return jax.random.wrap_key_data(data, impl=jax.random.key_impl(a))
        a = np.asarray(a)
    return jax.device_put(a, sharding)
  return jax.tree.map(put, tree)


def seeded(mesh: Mesh | None, tree):
  """Every leaf's leading (seed) axis split over the mesh."""
  if mesh is None:
    return tree
  return _put(tree, NamedSharding(mesh, SEEDED))


def replicated(mesh: Mesh | None, tree):
  """Every leaf whole on every device of the mesh (on the default device without
  one); host values are copied explicitly."""
  if mesh is None:
    return jax.device_put(tree)
  return _put(tree, NamedSharding(mesh, REPLICATED))


def to_host(tree):
  """numpy copies of device arrays (an explicit transfer, so jax.transfer_guard
  allows it); arrays spread over several processes are gathered first."""
  def fetch(a):
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
      if a.sharding.is_fully_replicated:
        return np.asarray(a.addressable_data(0))
      return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return np.asarray(jax.device_get(a))
  return jax.tree.map(fetch, tree)
