"""Placing a run on the devices: seeds (and batches) over a mesh, data replicated.

One device (a laptop, one GPU) needs none of this: `mesh_for` returns None and
arrays stay where JAX puts them. With several devices -- a multi-GPU box, a TPU
host, or CPU with XLA_FLAGS=--xla_force_host_platform_device_count=4 -- a
vmapped call of S seeds runs on a ("seed", "batch") mesh under shard_map, manual
over "seed": every seed group runs the single-device vmapped program on its own
seeds, so a seed's numbers do not depend on how many devices share the work.
(Leaving the seed axis to XLA's SPMD partitioner instead changed the logits of
the seed-batched grouped convolutions on XLA:CPU: docs/scaling.md.)

The "batch" axis (size `batch_devices`, 1 by default) splits each seed's batch
over the devices of its group. It stays an automatic axis: the programs mark
their batch as split (`split_batch`) and XLA partitions them, adding the
all-reduces that masked batch norm, the loss and the gradients need. The program
still means what it means on one device (the same batch statistics, the same
dropout masks: threefry draws do not depend on the partitioning), so it matches
a single device to rounding.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

SEED, BATCH = "seed", "batch"
SEEDED, REPLICATED = PartitionSpec(SEED), PartitionSpec()


def mesh_size(num_seeds: int, num_devices: int) -> int:
  """Devices a call of num_seeds seeds uses: the most that divide the seeds
  evenly (shard_map needs equal shards); the rest stay idle."""
  return max(d for d in range(1, min(num_seeds, num_devices) + 1) if num_seeds % d == 0)


@functools.lru_cache(maxsize=32)
def _mesh(devices: tuple, batch_devices: int) -> Mesh:
  # a seed's batch devices are neighbours in the device list: the same host
  return Mesh(np.array(devices).reshape(-1, batch_devices), (SEED, BATCH))


def mesh_for(num_seeds: int, devices: Sequence, batch_devices: int = 1) -> Mesh | None:
  """The mesh of one vmapped call of num_seeds seeds, each seed's batch split over
  batch_devices devices; None when that is one device."""
  if batch_devices < 1 or batch_devices > len(devices):
    raise ValueError(f"batch_devices={batch_devices}: expected 1 to the {len(devices)} devices "
                     "available")
  size = mesh_size(num_seeds, len(devices) // batch_devices)
  if size * batch_devices == 1:
    return None
  return _mesh(tuple(devices)[:size * batch_devices], batch_devices)


def split_batch(tree):
  """Marks every leaf's leading (row) axis as split over the mesh's "batch" axis,
  inside a program traced under such a mesh; anywhere else the tree as it is."""
  mesh = jax.sharding.get_abstract_mesh()
  if BATCH not in mesh.axis_names or mesh.shape[BATCH] == 1:
    return tree
  return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, PartitionSpec(BATCH)), tree)


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
