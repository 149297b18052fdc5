"""Batches over devices: a 1-D mesh on the batch axis, sharded inputs, static batch shapes.

The batched phases take inputs placed with a ``NamedSharding`` over a ``Mesh`` of the
local devices on the batch axis: XLA partitions the batch over the devices, the same
code on one CPU, eight forced host devices or eight GPUs (no ``pmap``).
"""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

BATCH_AXIS = "batch"


def batch_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh over ``devices`` (default: this process's local devices)."""
  devices = list(jax.local_devices() if devices is None else devices)
  return Mesh(np.asarray(devices), (BATCH_AXIS,))


def batch_shape(n: int, batch_size: int, num_devices: int = 1) -> int:
  """The static batch a group of ``n`` <= ``batch_size`` images runs as.

  The smallest of the powers of two below ``batch_size`` and ``batch_size`` itself
  that holds ``n``, rounded up to a multiple of the device count (every device gets
  a slice): a bucket's last, partial batch reuses one of at most log2(batch_size) + 1
  compiled shapes, at the price of at most doubling that batch's work.
  """
  if not 1 <= n <= max(batch_size, 1):
    raise ValueError(f"{n} images do not fit a batch of {batch_size}")
  shape = batch_size
  p = 1
  while p < batch_size:
    if p >= n:
      shape = p
      break
    p *= 2
  return -(-shape // num_devices) * num_devices


def shard_batch(x: np.ndarray, mesh: Mesh) -> jax.Array:
  """(B, ...) host array -> a jax.Array split over the mesh on axis 0.

  ``B`` must be a multiple of the mesh size (see :func:`batch_shape`). Built with
  ``jax.make_array_from_process_local_data``, so it is also the process-local part of
  a global batch when the mesh spans several processes.
  """
  sharding = NamedSharding(mesh, P(BATCH_AXIS))
  return jax.make_array_from_process_local_data(sharding, np.ascontiguousarray(x))


def replicate(tree, mesh: Mesh):
  """Every leaf of ``tree`` (e.g. the VGG weights) copied to every device of the mesh."""
  return jax.device_put(tree, NamedSharding(mesh, P()))


def pad_batch(x: np.ndarray, size: int) -> np.ndarray:
  """(n, ...) -> (size, ...): repeats of the last entry fill the static batch."""
  return np.concatenate([x, np.repeat(x[-1:], size - x.shape[0], axis=0)])
