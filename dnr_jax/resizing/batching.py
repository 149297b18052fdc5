"""Many images at once: buckets of equal working shapes, vmapped phases, device meshes.

A folder of photos of mixed sizes is grouped by its *working* shapes, (working input,
working output) from :func:`dnr_jax.resizing.plan.sizes`: every photo whose long side
exceeds ``work_size`` runs at that size, and ``RetargetConfig.work_multiple`` rounds
the working sides so that photos of nearly the same aspect ratio share a shape. Each
bucket runs in batches of ``batch_size``:

1. per image, :func:`phases.downscale` to the working size (NumPy, no compilation);
2. the working-size phases (:func:`phases.prepare_batch` with the Eq. 4 loop's
   initial state, the Eq. 4 chunks, the refinement) as vmapped jits over the batch,
   whose arrays carry a ``NamedSharding`` over a ``Mesh`` of the local devices on the
   batch axis: XLA partitions the batch over the devices, the same code on one CPU,
   eight forced host devices or eight GPUs (no ``pmap``). Only the small results
   (maps, importance, images) come back to the host; the target features stay on the
   devices;
3. per image, :func:`fullres.full_resolution` in row bands (bounded memory, one
   compilation per width class).

Two compilations per bucket and batch shape (prepare, chunk) instead of a dozen per
image size. The one-image path is this path with a batch of one
(:func:`run.retarget_group`), so a photo gets the same image alone or in a batch.

Several hosts: every process calls ``jax.distributed.initialize()`` (the CLI's
``--distributed``), takes its share of the files (:func:`process_share`) and runs its
batches on its own local devices. The images are independent, so nothing has to
cross hosts; the launcher (SLURM, ``mpirun``, a Kubernetes job) starts one process per
host and JAX's coordinator numbers them.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from jax.sharding import Mesh

from dnr_jax.config import RetargetConfig
from dnr_jax.io import compilation
from dnr_jax.nn import vgg
from dnr_jax.resizing import plan as plan_lib
from dnr_jax.resizing import run
from dnr_jax.resizing.devices import BATCH_AXIS  # noqa: F401  (public names of the batch API)
from dnr_jax.resizing.devices import batch_mesh
from dnr_jax.resizing.devices import batch_shape
from dnr_jax.resizing.devices import replicate  # noqa: F401
from dnr_jax.resizing.devices import shard_batch  # noqa: F401


def bucket_key(s: plan_lib.Sizes, config: RetargetConfig = RetargetConfig(),
               masked: bool = False) -> plan_lib.BatchKey:
  """The :attr:`Plan.batch_key` of a job of sizes ``s`` (working shapes, steps, order)."""
  return plan_lib.plan_of_sizes(s, config, keep=masked).batch_key


def plan_batches(job_plans: Sequence, batch_size: int,
                 config: RetargetConfig = RetargetConfig()) -> list[list[int]]:
  """Indices of the jobs grouped by :attr:`Plan.batch_key` (working shapes, Eq. 4
  steps, axis-order rule, masks), split into batches of ``batch_size``. ``job_plans``:
  :class:`Plan` s, or :class:`Sizes` (planned here with ``config``).

  Buckets come in the order of their first job; inside a bucket the jobs keep their
  order. Deterministic, so every process of a multi-host run plans alike.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be at least 1, got {batch_size}")
  groups: dict[tuple, list[int]] = {}
  for i, p in enumerate(job_plans):
    key = p.batch_key if isinstance(p, plan_lib.Plan) else bucket_key(p, config)
    groups.setdefault(key, []).append(i)
  return [idx[k:k + batch_size] for idx in groups.values()
          for k in range(0, len(idx), batch_size)]


def process_share(count: int, process_index: int, process_count: int) -> list[int]:
  """The job indices one process of ``process_count`` takes: every ``process_count``-th.

  Round robin keeps the shares within one image of each other and mixes sizes evenly.
  """
  if not 0 <= process_index < process_count:
    raise ValueError(f"process index {process_index} is not in [0, {process_count})")
  return list(range(process_index, count, process_count))


def retarget_batch(weights: vgg.VGGWeights, images: Sequence[np.ndarray],
                   out_hws: Sequence[tuple[int, int]], config: RetargetConfig = RetargetConfig(),
                   mesh: Mesh | None = None,
                   progress: run.ProgressFn | None = None,
                   unroll: bool | None = None, padded_size: int | None = None) -> list:
  """Retargets images that share a plan key as one vmapped batch
  (:func:`run.retarget_group` of their plans).

  Args:
    weights: VGG weights (replicated over the mesh).
    images: (H_i, W_i, 3) uint8 arrays; sizes may differ as long as their working
      shapes agree (one bucket of :func:`plan_batches`).
    out_hws: the output size of each image.
    config: as for :func:`dnr_jax.retarget`.
    mesh: devices to split the batch over (default: all local devices).
    progress: ``progress(phase, done, total, info)``; during the optimisation
      ``info["best"]`` returns the list of best outputs so far (uint8, full size).
    unroll: unrolled Adam chunks or rolled loops; default
      :func:`reconstruct.default_unroll` (unrolled on CPU, rolled on accelerators).
    padded_size: the static batch the images run as (see :func:`batch_shape`).

  Returns:
    One entry per image: a :class:`Result`, or the exception that stopped that image
    (e.g. :class:`run.NumericalError`) while the others went on.
  """
  if len(images) == 0 or len(images) != len(out_hws):
    raise ValueError(f"need one output size per image, got {len(images)} images and "
                     f"{len(out_hws)} sizes")
  plans = [plan_lib.make_plan(im.shape[:2], o, config, weights.arch)
           for im, o in zip(images, out_hws)]
  return run.retarget_group(weights, images, plans, config, mesh, progress, padded_size,
                            unroll=unroll)


def retarget_many(weights: vgg.VGGWeights, images: Sequence[np.ndarray],
                  out_hws: Sequence[tuple[int, int]], config: RetargetConfig = RetargetConfig(),
                  batch_size: int = 8, mesh: Mesh | None = None,
                  progress: Callable | None = None) -> list:
  """Any list of images: planned, bucketed by plan key, then vmapped batches of up to
  ``batch_size`` (:func:`run.retarget_group`). ``retarget_many([image], [size])[0]``
  is :func:`dnr_jax.retarget` of that image.

  Returns one Result (or exception) per image, in the input order. Between buckets the
  compiled programs are dropped if the process nears its limit on memory mappings
  (:func:`compilation.release_if_crowded`: many sizes would otherwise abort it).
  """
  plans = [plan_lib.make_plan(im.shape[:2], o, config, weights.arch)
           for im, o in zip(images, out_hws)]
  out: list = [None] * len(images)
  mesh = batch_mesh() if mesh is None else mesh
  for idx in plan_batches(plans, batch_size):
    compilation.release_if_crowded()
    res = run.retarget_group(weights, [images[i] for i in idx], [plans[i] for i in idx],
                             config, mesh, progress,
                             padded_size=batch_shape(len(idx), batch_size, mesh.devices.size))
    for i, r in zip(idx, res):
      out[i] = r
  return out
