"""Many images at once: buckets of equal working shapes, vmapped phases, device meshes.

A folder of photos of mixed sizes is grouped by its *working* shapes, (working input,
working output) from :func:`dnr_jax.pipeline.sizes`: every photo whose long side
exceeds ``work_size`` runs at that size, and ``RetargetConfig.work_multiple`` rounds
the working sides so that photos of nearly the same aspect ratio share a shape. Each
bucket runs in batches of ``batch_size``:

1. per image, :func:`pipeline.downscale` to the working size (NumPy, no compilation);
2. the working-size phases (:func:`pipeline.prepare_batch` with the Eq. 4 loop's
   initial state, the Eq. 4 chunks, the refinement) as vmapped jits over the batch,
   whose arrays carry a ``NamedSharding`` over a ``Mesh`` of the local devices on the
   batch axis: XLA partitions the batch over the devices, the same code on one CPU,
   eight forced host devices or eight GPUs (no ``pmap``). Only the small results
   (maps, importance, images) come back to the host; the target features stay on the
   devices;
3. per image, :func:`pipeline.full_resolution` in row bands (bounded memory, one
   compilation per width class).

Two compilations per bucket and batch shape (prepare, chunk) instead of a dozen per
image size, and the per-image results match the one-image path (the same phase
functions; the tests state the tolerance).

Several hosts: every process calls ``jax.distributed.initialize()`` (the CLI's
``--distributed``), takes its share of the files (:func:`process_share`) and runs its
batches on its own local devices. The images are independent, so nothing has to
cross hosts; the launcher (SLURM, ``mpirun``, a Kubernetes job) starts one process per
host and JAX's coordinator numbers them.
"""

from __future__ import annotations

import functools
import time
from typing import Callable, NamedTuple, Sequence

import jax
import numpy as np
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from dnr_jax import compilation
from dnr_jax import deep_carving
from dnr_jax import pipeline
from dnr_jax import reconstruct
from dnr_jax import vgg
from dnr_jax import config as config_lib
from dnr_jax.config import RetargetConfig

BATCH_AXIS = "batch"


class BucketKey(NamedTuple):
  work: tuple[int, int]
  work_out: tuple[int, int]
  steps: int  # the Eq. 4 steps (pipeline.reconstruction_steps: 0 for a lifted resampling)


def bucket_key(s: pipeline.Sizes, config: RetargetConfig = RetargetConfig()) -> BucketKey:
  return BucketKey(tuple(s.work), tuple(s.work_out), pipeline.reconstruction_steps(s, config))


def plan_batches(job_sizes: Sequence[pipeline.Sizes], batch_size: int,
                 config: RetargetConfig = RetargetConfig()) -> list[list[int]]:
  """Indices of the jobs grouped by :func:`bucket_key` (working shapes and Eq. 4
  steps under ``config``), split into batches of ``batch_size``.

  Buckets come in the order of their first job; inside a bucket the jobs keep their
  order. Deterministic, so every process of a multi-host run plans alike.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be at least 1, got {batch_size}")
  groups: dict[BucketKey, list[int]] = {}
  for i, s in enumerate(job_sizes):
    groups.setdefault(bucket_key(s, config), []).append(i)
  return [idx[k:k + batch_size] for idx in groups.values()
          for k in range(0, len(idx), batch_size)]


def process_share(count: int, process_index: int, process_count: int) -> list[int]:
  """The job indices one process of ``process_count`` takes: every ``process_count``-th.

  Round robin keeps the shares within one image of each other and mixes sizes evenly.
  """
  if not 0 <= process_index < process_count:
    raise ValueError(f"process index {process_index} is not in [0, {process_count})")
  return list(range(process_index, count, process_count))


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

  ``B`` must be a multiple of the mesh size (see :func:`padded_batch`). Built with
  ``jax.make_array_from_process_local_data``, so it is also the process-local part of
  a global batch when the mesh spans several processes.
  """
  sharding = NamedSharding(mesh, P(BATCH_AXIS))
  return jax.make_array_from_process_local_data(sharding, np.ascontiguousarray(x))


def replicate(tree, mesh: Mesh):
  """Every leaf of ``tree`` (e.g. the VGG weights) copied to every device of the mesh."""
  return jax.device_put(tree, NamedSharding(mesh, P()))


def _take(tree, i: int):
  return jax.tree_util.tree_map(lambda x: x[i], tree)


def retarget_batch(weights: vgg.VGGWeights, images: Sequence[np.ndarray],
                   out_hws: Sequence[tuple[int, int]], config: RetargetConfig = RetargetConfig(),
                   mesh: Mesh | None = None,
                   progress: pipeline.ProgressFn | None = None,
                   unroll: bool | None = None, padded_size: int | None = None) -> list:
  """Retargets images that share working shapes as one vmapped batch.

  Args:
    weights: VGG weights (replicated over the mesh here).
    images: (H_i, W_i, 3) uint8 arrays; sizes may differ as long as their working
      shapes agree (one bucket of :func:`plan_batches`).
    out_hws: the output size of each image.
    config: as for :func:`pipeline.retarget`.
    mesh: devices to split the batch over (default: all local devices).
    progress: ``progress(phase, done, total, info)``; during the optimisation
      ``info["best"]`` returns the list of best outputs so far (uint8, full size).
    unroll: unrolled Adam chunks or rolled loops; default
      :func:`reconstruct.default_unroll` (unrolled on CPU, rolled on accelerators).
    padded_size: the static batch the images run as (repeats of the last image fill
      it; see :func:`batch_shape`); default: ``len(images)`` rounded up to a multiple
      of the mesh size.

  Returns:
    One entry per image: a :class:`pipeline.Result`, or the exception that stopped
    that image (e.g. :class:`pipeline.NumericalError`) while the others went on. The
    results' ``timings`` are the batch's (shared) phase times.
  """
  n = len(images)
  unroll = reconstruct.default_unroll() if unroll is None else unroll
  if n == 0 or n != len(out_hws):
    raise ValueError(f"need one output size per image, got {n} images and {len(out_hws)} sizes")
  arch = weights.arch
  job_sizes = [pipeline.validate(tuple(im.shape[:2]), tuple(o), config, arch)
               for im, o in zip(images, out_hws)]
  keys = {bucket_key(s, config) for s in job_sizes}
  if len(keys) != 1:
    raise ValueError(f"a batch needs one working shape and step count, got {sorted(keys)}; "
                     "group the images with plan_batches first")
  key = keys.pop()
  mesh = batch_mesh() if mesh is None else mesh
  dtype = config_lib.resolve_compute_dtype(config.compute_dtype, jax.default_backend())
  rep_weights = replicate(weights.replace(compute_dtype=dtype), mesh)
  cfg = config  # (the argument keeps the library's public name)
  timings: dict[str, float] = {}
  shallow = deep_carving.sort_layers(cfg.operator.layers, arch)[0]

  def timed(name, thunk, total=1):
    if progress:
      progress(name, 0, total, {})
    t0 = time.perf_counter()
    value = jax.block_until_ready(thunk())
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
    if progress:
      progress(name, total, total, {})
    return value

  # 1. working-size inputs, per image (one jit per input size, cheap), then one batch
  works = timed("downscale", lambda: np.stack(
      [np.asarray(pipeline.downscale(im, key.work, size_classes=True)) for im in images]))
  padded = batch_shape(n, n, mesh.devices.size) if padded_size is None else padded_size
  if padded < n or padded % mesh.devices.size:
    raise ValueError(f"padded_size {padded} must hold {n} images and split over "
                     f"{mesh.devices.size} devices")
  works = np.concatenate([works, np.repeat(works[-1:], padded - n, axis=0)])
  batch = shard_batch(works, mesh)

  # 2. the working-size phases, vmapped over the sharded batch
  prep, init_state = timed("prepare", lambda: pipeline.prepare_batch(rep_weights, batch,
                                                                     key.work_out, cfg))
  # One transfer of what the host needs (maps, importance, init): not the target
  # features, which stay on the devices for the loss (~100 MB per image).
  target_shapes = {l: tuple(t.shape[1:]) for l, t in prep.plan.targets.items()}
  prep_host = jax.device_get(prep._replace(targets={}, plan=prep.plan._replace(targets={})))
  failures: dict[int, Exception] = {}

  def finish_all(work_finals):
    out = []
    for i in range(n):
      p_i = _take(prep_host, i)
      fin = work_finals[i]
      if job_sizes[i].full_resolution:
        fin = _full_res(images[i], p_i, fin, job_sizes[i], cfg, shallow)
      out.append(pipeline.to_uint8(fin))
    return out

  def optimise(name, chunk_fn, state, steps, finals):
    losses = np.zeros((padded, 0), np.float32)
    done = 0
    best = lambda st: finish_all(np.asarray(finals(st)))
    if progress and steps:
      progress(name, 0, steps, {"best": functools.partial(best, state)})
    t0 = time.perf_counter()
    try:
      while done < steps:
        k = min(cfg.reconstruction.chunk, steps - done)
        tc = time.perf_counter()
        state, chunk_losses = chunk_fn(state, k)
        chunk_losses = np.asarray(chunk_losses)
        dt = time.perf_counter() - tc
        for i in range(n):
          if i not in failures and not np.all(np.isfinite(chunk_losses[i])):
            bad = done + int(np.argmin(np.isfinite(chunk_losses[i])))
            failures[i] = pipeline.NumericalError(
                f"{name}: the loss became {chunk_losses[i, bad - done]} at step {bad}; try a "
                "lower learning rate")
        losses = np.concatenate([losses, chunk_losses], axis=1)
        done += k
        if progress:
          progress(name, done, steps, {"loss": float(np.mean(chunk_losses[:n, -1])),
                                       "it_s": k / dt, "best": functools.partial(best, state)})
      stopped = False
    except KeyboardInterrupt:
      stopped = True
    if steps:  # (no phase to time when reconstruction_steps is 0)
      timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
    return state, losses, stopped

  state, recon_losses, stopped = optimise(
      "reconstruction",
      lambda st, k: pipeline.reconstruction_chunk_batch(rep_weights, prep.targets, st, cfg, k,
                                                        unroll),
      init_state, key.steps,
      pipeline.final_image_batch)
  recon = pipeline.final_image_batch(state)  # host
  work_out = recon
  refine_losses = np.zeros((padded, 0), np.float32)
  if cfg.refinement.steps and not stopped:
    recon_dev = shard_batch(recon, mesh)  # once, not once per refinement chunk
    rstate, refine_losses, stopped = optimise(
        "refinement",
        lambda st, k: pipeline.refinement_chunk_batch(rep_weights, prep.targets, recon_dev, st,
                                                      cfg, k, unroll),
        pipeline.refinement_init_batch(recon_dev, cfg), cfg.refinement.steps,
        lambda st: pipeline.apply_refinement_batch(recon_dev, st, cfg))
    work_out = pipeline.apply_refinement_batch(recon_dev, rstate, cfg)

  # 3. per image: full resolution (row tiles) and the host-side result
  recon_np, work_out_np = np.asarray(recon), np.asarray(work_out)
  results: list = []
  total_rows = sum(s.out[0] for s in job_sizes if s.full_resolution)
  rows_done = [0]
  t0 = time.perf_counter()
  for i in range(n):
    if i in failures:
      results.append(failures[i])
      continue
    s, p_i = job_sizes[i], _take(prep_host, i)
    output = work_out_np[i]
    if s.full_resolution:
      def report(d, t, base=rows_done[0], rows=s.out[0]):
        if progress:
          progress("full resolution", base + int(d * rows / max(t, 1)), total_rows, {})
      output = _full_res(images[i], p_i, output, s, cfg, shallow, report)
      rows_done[0] += s.out[0]
    results.append(pipeline.make_result(
        s, p_i, recon_np[i], output, [float(x) for x in recon_losses[i]],
        [float(x) for x in refine_losses[i]], dict(timings), stopped, target_shapes,
        operator_names=pipeline.operator_names(s, cfg, arch=arch)))
  if total_rows:
    timings["full resolution"] = time.perf_counter() - t0
  for r in results:
    if isinstance(r, pipeline.Result):
      r.timings = dict(timings)
      r.batch_size = n
  return results


def _full_res(image, prep, work_final, s, cfg, shallow, progress=None):
  return pipeline.full_resolution_tiled(image, prep, work_final, s, cfg, shallow, progress)


def retarget_many(weights: vgg.VGGWeights, images: Sequence[np.ndarray],
                  out_hws: Sequence[tuple[int, int]], config: RetargetConfig = RetargetConfig(),
                  batch_size: int = 8, mesh: Mesh | None = None,
                  progress: Callable | None = None) -> list:
  """Any list of images: bucketed by working shape, then :func:`retarget_batch` each.

  Returns one Result (or exception) per image, in the input order. Between buckets the
  compiled programs are dropped if the process nears its limit on memory mappings
  (:func:`compilation.release_if_crowded`: many sizes would otherwise abort it).
  """
  job_sizes = [pipeline.validate(tuple(im.shape[:2]), tuple(o), config, weights.arch)
               for im, o in zip(images, out_hws)]
  out: list = [None] * len(images)
  mesh = batch_mesh() if mesh is None else mesh
  for idx in plan_batches(job_sizes, batch_size, config):
    compilation.release_if_crowded()
    res = retarget_batch(weights, [images[i] for i in idx], [out_hws[i] for i in idx], config,
                         mesh, progress,
                         padded_size=batch_shape(len(idx), batch_size, mesh.devices.size))
    for i, r in zip(idx, res):
      out[i] = r
  return out
