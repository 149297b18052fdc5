"""Deep Network Resizing end to end: one sequence of phases, batched by construction.

    plan (before any compute) -> downscale to the working size -> [order, two axes]
    -> prepare (features, the operator audition, Eq. 1-3, targets, init)
    -> Eq. 4 reconstruction chunks -> section 3.3 refinement chunks (optional)
    -> full resolution (lifted maps + low-frequency correction, :mod:`fullres`)

The working-size phases always run on a batch (a leading axis; one image is a batch
of one): :func:`working_phases` is that sequence, run by a :class:`Runner` that says
how (timed host chunks with progress, NaN checks and Ctrl-C; or one pure traced call).

- :func:`retarget_group`: images of one plan key as vmapped batches over the local
  devices (host); :func:`retarget` (one image, masks, object removal) and
  :mod:`dnr_jax.resizing.batching` (folders) both call it, so a photo gets the same
  image alone or in a batch.
- :func:`retarget_pure`: the same sequence as one pure function of arrays; ``jit``
  it once per (input size, output size) and ``vmap`` it over images.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, NamedTuple, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from dnr_jax.config import RetargetConfig
from dnr_jax.nn import vgg
from dnr_jax.resizing import audition
from dnr_jax.resizing import devices
from dnr_jax.resizing import fullres
from dnr_jax.resizing import mapping
from dnr_jax.resizing import masks as masks_lib
from dnr_jax.resizing import phases
from dnr_jax.resizing import plan as plan_lib
from dnr_jax.resizing import reconstruct
from dnr_jax.resizing.result import Result
from dnr_jax.resizing.result import make_result
from dnr_jax.resizing.result import to_uint8


class NumericalError(RuntimeError):
  """The loss became NaN or infinite."""


# progress(phase, done, total, info): info may hold "loss", "it_s", and "best", a
# thunk returning the best output so far (uint8, full resolution) once one exists:
# for retarget one image, for a batch the list of them.
ProgressFn = Callable[[str, int, int, dict], None]


class Runner(NamedTuple):
  """How :func:`working_phases` executes its phases."""

  phase: Callable[[str, Callable[[], Any]], Any]  # (name, thunk) -> value (timed)
  # (name, chunk_fn, state, steps, best) -> (state, losses (B, steps), stopped); ``best``
  # maps a state to the best outputs so far (for progress and Ctrl-C).
  optimise: Callable
  final: Callable  # batched ReconState -> (B, h', w', 3) best images
  place: Callable  # (B, ...) images -> placed for the batched phases
  unroll: bool  # unrolled chunks or rolled loops (reconstruct.default_unroll)


class Working(NamedTuple):
  """What the working-size phases produced for a batch (every leaf has axis 0)."""

  prep: phases.Prepared
  recon: Any  # (B, h', w', 3) the Eq. 4 result
  work_out: Any  # (B, h', w', 3) after the refinement
  recon_losses: Any  # (B, steps)
  refine_losses: Any  # (B, refine steps)
  stopped: bool  # interrupted (Ctrl-C): the best images so far


def working_phases(weights: vgg.VGGWeights, works, plan: plan_lib.Plan, cfg: RetargetConfig,
                   runner: Runner, keeps=None, removes=None,
                   finish: Callable | None = None) -> Working:
  """prepare -> Eq. 4 -> refinement on (B, h, w, 3) working-size images of one plan
  (its axis order resolved). ``finish(prep, outputs)`` maps (B, h', w', 3) working
  outputs to what the progress's "best" returns (the full-size outputs)."""
  finish = finish or (lambda prep, x: x)
  prep, state = runner.phase("prepare", lambda: phases.prepare_batch(
      weights, works, plan, cfg, keeps, removes))
  state, recon_losses, stopped = runner.optimise(
      "reconstruction",
      lambda st, n: phases.reconstruction_chunk_batch(weights, prep.targets, st, cfg, n,
                                                      runner.unroll),
      state, plan.steps, lambda st: finish(prep, runner.final(st)))
  recon = runner.final(state)
  work_out, refine_losses = recon, jnp.zeros((recon.shape[0], 0), jnp.float32)
  if plan.refine_steps and not stopped:
    placed = runner.place(recon)  # once, not once per refinement chunk
    rstate, refine_losses, stopped = runner.optimise(
        "refinement",
        lambda st, n: phases.refinement_chunk_batch(weights, prep.targets, placed, st, cfg, n,
                                                    runner.unroll),
        phases.refinement_init_batch(placed, cfg), plan.refine_steps,
        lambda st: finish(prep, phases.apply_refinement_batch(placed, st, cfg)))
    work_out = phases.apply_refinement_batch(placed, rstate, cfg)
  return Working(prep, recon, work_out, recon_losses, refine_losses, stopped)


# ----------------------------------------------------------------------------- host


def _host_phase(timings: dict, progress: ProgressFn | None) -> Callable:
  """A phase timed into ``timings`` (seconds by name), announced to ``progress``."""

  def phase(name, thunk):
    if progress:
      progress(name, 0, 1, {})
    t0 = time.perf_counter()
    value = jax.block_until_ready(thunk())
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
    if progress:
      progress(name, 1, 1, {})
    return value

  return phase


def _host_runner(timings: dict, progress: ProgressFn | None, chunk: int, n: int,
                 failures: dict, mesh, unroll: bool) -> Runner:
  """Timed phases with progress; Eq. 4 in host-looped jitted chunks with a NaN check
  per image (``failures``: index in the batch -> NumericalError; the others go on,
  all stop when all failed) and Ctrl-C keeping the best images so far."""

  def optimise(name, chunk_fn, state, steps, best):
    losses = []
    done = 0
    if progress and steps:  # the first chunk also compiles: show the phase now; the
      # starting point (e.g. the seams init) is already the best image so far
      progress(name, 0, steps, {"best": functools.partial(best, state)})
    t0 = time.perf_counter()
    stopped = False
    try:
      while done < steps and len(failures) < n:
        k = min(chunk, steps - done)
        tc = time.perf_counter()
        state, chunk_losses = chunk_fn(state, k)
        chunk_losses = np.asarray(chunk_losses)  # one host transfer per chunk
        dt = time.perf_counter() - tc
        for i in range(n):
          if i not in failures and not np.all(np.isfinite(chunk_losses[i])):
            bad = done + int(np.argmin(np.isfinite(chunk_losses[i])))
            failures[i] = NumericalError(
                f"{name}: the loss became {chunk_losses[i, bad - done]} at step {bad}; try a "
                "lower learning rate")
        losses.append(chunk_losses)
        done += k
        if progress:
          progress(name, done, steps, {"loss": float(np.mean(chunk_losses[:n, -1])),
                                       "it_s": k / dt, "best": functools.partial(best, state)})
    except KeyboardInterrupt:
      stopped = True
    if steps:  # (no phase to time when the plan runs no steps)
      timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
    rows = state.step.shape[0]
    return state, (np.concatenate(losses, axis=1) if losses
                   else np.zeros((rows, 0), np.float32)), stopped

  return Runner(_host_phase(timings, progress), optimise, phases.final_image_batch,
                lambda x: devices.shard_batch(np.asarray(x), mesh), unroll)


def _full_size(image, prep_i, work_final, plan: plan_lib.Plan, cfg, progress=None):
  """The output at the input's size: the working-size result when the method ran at the
  input's size, else (and always for a resampling: no Eq. 4, the input's own pixels
  through the plan's map) the lift of :mod:`fullres`."""
  s = plan.sizes
  if not s.full_resolution and not plan.resampling:
    return work_final
  return fullres.full_resolution_tiled(image, prep_i, work_final, s, cfg, plan.shallow,
                                       progress, correct=not plan.resampling)


def _take(tree, i: int):
  return jax.tree_util.tree_map(lambda x: x[i], tree)


def retarget_group(weights: vgg.VGGWeights, images: Sequence[np.ndarray],
                   plans: Sequence[plan_lib.Plan], cfg: RetargetConfig, mesh=None,
                   progress: ProgressFn | None = None, padded_size: int | None = None,
                   keeps: Sequence[np.ndarray] | None = None,
                   removes: Sequence[np.ndarray] | None = None,
                   unroll: bool | None = None) -> list:
  """Images whose plans share :attr:`Plan.batch_key` as vmapped batches (host).

  ``keeps`` / ``removes``: full-size masks per image (plans with ``keep`` / ``remove``).
  ``padded_size``: the static batch (repeats of the last image fill it; default
  ``len(images)`` rounded up to the device count). Two-axis plans under
  ``axis_order="auto"`` first run the order phase on the whole group; the images that
  chose the same order then run together. Returns one :class:`Result` per image, or
  the exception that stopped that image (e.g. :class:`NumericalError`) while the others
  went on. The results' ``timings`` are the group's (shared) phase times.
  """
  n = len(images)
  if n == 0 or n != len(plans):
    raise ValueError(f"need one plan per image, got {n} images and {len(plans)} plans")
  keys = {p.batch_key for p in plans}
  if len(keys) != 1:
    raise ValueError(f"a batch needs one working shape and step count, got {sorted(keys)}; "
                     "group the images with plan_batches first")
  plan = plans[0]
  mesh = devices.batch_mesh() if mesh is None else mesh
  ndev = mesh.devices.size
  padded = devices.batch_shape(n, n, ndev) if padded_size is None else padded_size
  if padded < n or padded % ndev:
    raise ValueError(f"padded_size {padded} must hold {n} images and split over {ndev} "
                     "devices")
  rep_weights = devices.replicate(weights.replace(compute_dtype=plan.compute_dtype), mesh)
  unroll = reconstruct.default_unroll() if unroll is None else unroll
  timings: dict[str, float] = {}
  phase = _host_phase(timings, progress)
  work_hw = plan.sizes.work
  works = phase("downscale", lambda: np.stack(
      [np.asarray(phases.downscale(im, work_hw, on_host=True)) for im in images]))
  to_work = lambda ms: None if ms is None else np.stack(  # noqa: E731
      [masks_lib.working_mask(np.asarray(m), work_hw) for m in ms])
  keeps_w, removes_w = to_work(keeps), to_work(removes)
  place = lambda x, idx, size: None if x is None else devices.shard_batch(  # noqa: E731
      devices.pad_batch(x[idx], size), mesh)

  orders, order_scores = [plan.axis_order] * n, [{} for _ in range(n)]
  if plan.axis_order == "auto":  # the one decision that looks at the pixels
    everyone = np.arange(n)
    scores = np.asarray(phase("prepare", lambda: phases.order_scores_batch(
        rep_weights, place(works, everyone, padded), plan,
        place(keeps_w, everyone, padded))))
    orders = [audition.order_from_scores(scores[i]) for i in range(n)]
    order_scores = [{"width_first": float(scores[i, 0]), "height_first": float(scores[i, 1])}
                    for i in range(n)]

  results: list = [None] * n
  failures: dict[int, Exception] = {}
  for order in dict.fromkeys(orders):  # (in the order of their first image)
    idx = np.asarray([i for i in range(n) if orders[i] == order])
    size = padded if len(idx) == n else devices.batch_shape(len(idx), padded, ndev)
    sub_plan = plan.with_order(order)
    local: dict[int, Exception] = {}
    runner = _host_runner(timings, progress, cfg.reconstruction.chunk, len(idx), local, mesh,
                          unroll)

    def finish(prep, finals, idx=idx, order=order):
      prep_host, finals = _host_prep(prep), np.asarray(finals)
      return [to_uint8(_full_size(images[i], _take(prep_host, k), finals[k],
                                  plans[i].with_order(order), cfg))
              for k, i in enumerate(idx)]

    working = working_phases(rep_weights, place(works, idx, size), sub_plan, cfg, runner,
                             place(keeps_w, idx, size), place(removes_w, idx, size), finish)
    failures.update({int(idx[k]): e for k, e in local.items()})
    _results_of(working, images, plans, idx, sub_plan, cfg, timings, failures, progress,
                results, order_scores)
  for r in results:
    if isinstance(r, Result):
      r.timings = dict(timings)
      r.batch_size = n
      if not plan.sizes.full_resolution:  # nothing was downscaled
        r.timings.pop("downscale", None)
        if not plan.resampling:  # and nothing lifted
          r.timings.pop("full resolution", None)
  return results


def _host_prep(prep: phases.Prepared) -> phases.Prepared:
  """What the host needs of a batched :class:`Prepared` (maps, importance, init), in
  one transfer: not the target features, which stay on the devices (~100 MB each)."""
  return jax.device_get(prep._replace(targets={}, plan=prep.plan._replace(targets={})))


def _results_of(working: Working, images, plans, idx, plan, cfg, timings, failures,
                progress, results, order_scores) -> None:
  """Per image of a sub-batch: full resolution (row tiles) and the host-side result."""
  prep = working.prep
  target_shapes = {l: tuple(t.shape[1:]) for l, t in prep.plan.targets.items()}
  prep_host = _host_prep(prep)
  recon, work_out = np.asarray(working.recon), np.asarray(working.work_out)
  recon_losses, refine_losses = np.asarray(working.recon_losses), np.asarray(
      working.refine_losses)
  total_rows = sum(plans[i].sizes.out[0] for i in idx
                   if plans[i].sizes.full_resolution or plans[i].resampling)
  rows_done = [0]
  t0 = time.perf_counter()
  for k, i in enumerate(idx):
    i = int(i)
    if i in failures:
      results[i] = failures[i]
      continue
    s, p_k = plans[i].sizes, _take(prep_host, k)

    def report(d, t, base=rows_done[0], rows=s.out[0]):
      if progress:
        progress("full resolution", base + int(d * rows / max(t, 1)), total_rows, {})

    output = _full_size(images[i], p_k, work_out[k], plans[i].with_order(plan.axis_order),
                        cfg, report)
    if s.full_resolution or plans[i].resampling:
      rows_done[0] += s.out[0]
    res = make_result(s, p_k, recon[k], output, [float(x) for x in recon_losses[k]],
                      [float(x) for x in refine_losses[k]], {}, working.stopped,
                      target_shapes, operator_names=plan.operators)
    res.order_scores = order_scores[i]
    if plan.keep:
      res.keep_held = float(p_k.kept_held)
    results[i] = res
  if total_rows:
    timings["full resolution"] = timings.get("full resolution", 0.0) + time.perf_counter() - t0


# ----------------------------------------------------------------------------- one image


def _one(results: list):
  """The single result of a group of one, or its exception raised."""
  if isinstance(results[0], Exception):
    raise results[0]
  return results[0]


def _single_progress(progress: ProgressFn | None) -> ProgressFn | None:
  """A batch's progress (whose "best" returns a list) for one image."""
  if progress is None:
    return None

  def one(phase, done, total, info):
    if "best" in info:
      info = {**info, "best": functools.partial(lambda b: b()[0], info["best"])}
    progress(phase, done, total, info)

  return one


def retarget_stage(weights: vgg.VGGWeights, image: np.ndarray, out_hw: tuple[int, int],
                   config: RetargetConfig, progress: ProgressFn | None = None, keep=None,
                   remove=None) -> Result:
  """One stage of :func:`retarget` (masks already checked): its plan, then
  :func:`retarget_group` of a batch of one."""
  plan = plan_lib.make_plan(image.shape[:2], out_hw, config, weights.arch,
                            keep is not None, remove is not None)
  return _one(retarget_group(weights, [image], [plan], config,
                             progress=_single_progress(progress),
                             keeps=None if keep is None else [keep],
                             removes=None if remove is None else [remove]))


def retarget(weights: vgg.VGGWeights, image: np.ndarray, out_hw: tuple[int, int],
             config: RetargetConfig = RetargetConfig(),
             progress: ProgressFn | None = None, keep: np.ndarray | None = None,
             remove: np.ndarray | None = None) -> Result:
  """Retargets one RGB uint8 image (H, W, 3) to ``out_hw`` = (H', W').

  Each axis shrinks or enlarges (up to 2x: seam insertion in feature space). Inputs
  larger than ``config.work_size`` run at that size and are delivered at full
  resolution (:mod:`dnr_jax.resizing.fullres`), in row tiles so the memory stays
  bounded. The same sequence as a batch (:func:`retarget_group`), with a batch of one.

  Masks, (H, W), nonzero = masked:
    keep: a hard constraint: no seam at any layer crosses a position that sees a kept
      pixel and the warp does not resize the cells that hold them; kept pixels are
      copied and held fixed by the reconstruction. :class:`masks.KeepInfeasible` (before
      any compute) when the size asks for more than :func:`masks.keep_limits` allows.
    remove: object removal: first the masked region is carved out (seams only, along
      the axis that needs fewer, :func:`masks.removal_size`), then the result is
      retargeted to ``out_hw`` (enlarging back if needed). ``Result.stages`` has both.

  Raises:
    ValueError: sizes/config/masks the method cannot run (message names them).
    NumericalError: the loss became NaN/Inf.
  """
  image = np.asarray(image)
  chex.assert_rank(image, 3)
  chex.assert_axis_dimension(image, 2, 3)
  out_hw = (int(out_hw[0]), int(out_hw[1]))
  keep = None if keep is None else np.asarray(keep) != 0
  remove = None if remove is None else np.asarray(remove) != 0
  if remove is not None and not remove.any():
    remove = None  # nothing to carve out: one stage
  axis, job_stages = masks_lib.stages(image.shape[:2], out_hw, config, keep, remove)
  if axis is None:
    return retarget_stage(weights, image, out_hw, config, progress, keep)
  (_, mid_hw), rest = job_stages[0], job_stages[1:]
  first = retarget_stage(weights, image, mid_hw, config, progress, keep, remove)
  first.removal_axis = axis
  first.stage_input = image
  if first.interrupted or not rest:
    return first
  keep_mid = None if keep is None else mapping.map_labels(first, keep.astype(np.uint8)) > 0
  masks_lib.check_keep(keep_mid, mid_hw, out_hw, config)
  second = retarget_stage(weights, first.output, out_hw, config, progress, keep_mid)
  second.stages = first.stages + second.stages
  second.removal_axis = axis
  second.stage_input = first.output
  second.timings = {k: first.timings.get(k, 0.0) + second.timings.get(k, 0.0)
                    for k in {**first.timings, **second.timings}}
  second.seams_removed = {"removal": first.seams_removed, **second.seams_removed}
  return second


# ----------------------------------------------------------------------------- pure


def _pure_runner() -> Runner:
  def optimise(name, chunk_fn, state, steps, best):
    del name, best
    if not steps:
      return state, jnp.zeros((state.step.shape[0], 0), jnp.float32), False
    state, losses = chunk_fn(state, steps)
    return state, losses, False

  return Runner(phase=lambda name, thunk: thunk(), optimise=optimise,
                final=jax.vmap(reconstruct.final_image), place=lambda x: x, unroll=False)


def retarget_pure(weights: vgg.VGGWeights, image: jax.Array, out_hw: tuple[int, int],
                  config: RetargetConfig = RetargetConfig(),
                  keep: jax.Array | None = None) -> tuple[jax.Array, dict]:
  """The whole method as one pure function: (H, W, 3) 0..255 -> (H', W', 3) float32.

  ``jax.jit(retarget_pure, static_argnames=("out_hw", "config"))`` compiles once per
  (input size, output size); ``jax.vmap`` over ``image`` retargets a batch. The same
  plan and phases as :func:`retarget`, with rolled loops and the full resolution in one
  piece (device memory grows with the pixel count; :func:`retarget` tiles instead).
  ``keep`` (H, W), nonzero = keep, traces and vmaps like the image (object removal
  changes the size with the data, so it is host-only). A two-axis job under
  ``axis_order="auto"`` goes width first here: a traced function cannot choose a
  static order by the data (fix the order to get the host call's choice).
  Returns the output and a dict of scalars (final loss, seams removed per axis).
  """
  image = jnp.asarray(image)
  chex.assert_rank(image, 3)
  plan = plan_lib.make_plan(image.shape[:2], out_hw, config, weights.arch, keep is not None)
  if plan.axis_order == "auto":
    plan = plan.with_order("width_first")
  s = plan.sizes
  weights = weights.replace(compute_dtype=plan.compute_dtype)
  work = phases.downscale(image, s.work)[None]
  keep_w = None if keep is None else masks_lib.working_mask(keep, s.work)[None]
  working = working_phases(weights, work, plan, config, _pure_runner(), keep_w)
  prep = _take(working.prep, 0)
  output = working.work_out[0]
  if s.full_resolution or plan.resampling:
    output = fullres.full_resolution(image, prep, output, s, config, plan.shallow,
                                     correct=not plan.resampling)
  aux = {"loss": reconstruct.feature_loss(weights, working.work_out[0], prep.targets,
                                          dict(config.reconstruction.loss_layers))}
  if prep.plan.width is not None:
    aux["seams_width"] = prep.plan.width.num_removed
  if prep.plan.height is not None:
    aux["seams_height"] = prep.plan.height.num_removed
  return jnp.clip(output, 0, 255), aux


def choose_order(weights: vgg.VGGWeights, image, out_hw: tuple[int, int],
                 cfg: RetargetConfig, keep=None) -> tuple[str, dict]:
  """The order phase of one (working-size) image, as the run makes it: (order,
  {order: semantic score}) for a two-axis job under ``axis_order="auto"``, else the
  plan's order and {} (:func:`audition.order_scores`)."""
  plan = plan_lib.make_plan(tuple(image.shape[:2]), out_hw,
                            dataclasses.replace(cfg, work_size=0), weights.arch,
                            keep is not None)
  if plan.axis_order != "auto":
    return plan.axis_order, {}
  w = weights.replace(compute_dtype=plan.compute_dtype)
  scores = np.asarray(phases.order_scores_batch(
      w, jnp.asarray(image, jnp.float32)[None], plan,
      None if keep is None else jnp.asarray(keep, jnp.float32)[None]))[0]
  return audition.order_from_scores(scores), {"width_first": float(scores[0]),
                                              "height_first": float(scores[1])}
