"""A clip in two streamed passes: the plan pass, then the render pass.

Plan pass (:func:`plan_clip`): every frame's colour signature (for the cuts, 4 bytes a
frame are kept), Eq. 1 column importance of every ``sample_every``-th frame and of both
frames around each cut candidate, batched through VGG19 at the small working height;
then :func:`dnr_jax.video.plan.make_plan`. Render pass (:func:`render_frames`): each
frame resampled by its crop start and Eq. 3 cell widths, ``batch`` frames per jitted,
vmapped call (static shapes: one compilation per clip size). Memory is bounded by a
batch of frames, whatever the clip's length.

Every output position is a :class:`dnr_jax.ops.column_maps.ColumnMap` of the input
frame, as for the images; where the warp squeezes a cell more than 1x the map is
averaged over three taps spread over the squeezed source step (a box prefilter: no
aliasing shimmer on moving texture).
"""

from __future__ import annotations

import functools
from typing import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from dnr_jax.config import VideoConfig
from dnr_jax.nn import vgg
from dnr_jax.ops import column_maps
from dnr_jax.video import plan as plan_lib
from dnr_jax.video import saliency
from dnr_jax.video import shots

Progress = Callable[[str, int, int], None]


def plan_clip(frames: Iterable[np.ndarray], in_hw: tuple[int, int], out_hw: tuple[int, int],
              fps: float, weights: vgg.VGGWeights, cfg: VideoConfig, total: int = 0,
              progress: Progress | None = None) -> plan_lib.ClipPlan:
  """The plan pass over upright frames (h, w, 3|4) uint8; ``total`` frames expected
  (for the progress only; 0 = unknown)."""
  _, axis = plan_lib.content_aware_size(in_hw, out_hw)
  length = in_hw[axis]
  wk = saliency.work_size(in_hw, cfg.work_height)
  d: list[float] = []
  sample_t: list[int] = []
  profiles: list[np.ndarray] = []
  pending: list[tuple[int, np.ndarray]] = []
  prev_sig = prev_image = None
  sampled = set()

  def queue(t, image):  # the thumbnail only for sampled frames (most are not)
    if t not in sampled:
      sampled.add(t)
      pending.append((t, saliency.thumbnail(image, wk)))

  def flush(force=False):
    while len(pending) >= cfg.batch or (force and pending):
      chunk, pending[:] = pending[:cfg.batch], pending[cfg.batch:]
      x = np.stack([th for _, th in chunk])
      pad = cfg.batch - len(chunk)
      if pad:
        x = np.concatenate([x, np.repeat(x[-1:], pad, 0)])
      prof = np.asarray(saliency.column_profiles(weights, jnp.asarray(x), cfg.layers,
                                                 axis, length))
      sample_t.extend(t for t, _ in chunk)
      profiles.extend(prof[:len(chunk)])

  t = -1
  for t, image in enumerate(frames):
    if tuple(image.shape[:2]) != tuple(in_hw):
      raise ValueError(f"frame {t} is {image.shape[1]}x{image.shape[0]}, the clip "
                       f"{in_hw[1]}x{in_hw[0]}")
    sig = shots.signature(image)
    d.append(0.0 if prev_sig is None else shots.distance(sig, prev_sig))
    if t % cfg.sample_every == 0:
      queue(t, image)
    if d[-1] > shots.FLOOR:  # a cut candidate: both sides are sampled
      queue(t - 1, prev_image)
      queue(t, image)
    prev_sig, prev_image = sig, image
    flush()
    if progress:
      progress("plan", t + 1, total)
  if t < 0:
    raise ValueError("the clip has no frame")
  queue(t, prev_image)
  flush(force=True)
  order = np.argsort(sample_t)
  starts = shots.shot_starts(np.asarray(d))
  return plan_lib.make_plan(in_hw, out_hw, t + 1, starts, np.asarray(sample_t)[order],
                            np.stack(profiles)[order], fps, cfg)


@functools.partial(jax.jit, static_argnames=("axis", "crop", "out_length", "out_hw",
                                             "min_scale", "power"))
def render_batch(frames: jax.Array, starts: jax.Array, cells: jax.Array, *, axis: int,
                 crop: int, out_length: int, out_hw: tuple[int, int], min_scale: float,
                 power: float) -> jax.Array:
  """(B, H, W, C) uint8 frames -> (B, H', W', C) uint8: crop at ``starts`` (B,), Eq. 3
  warp of the window's cells (B, n) to ``out_length``, then a linear scale to ``out_hw``
  if the content-aware size differs from it."""
  x = frames if axis == 1 else jnp.swapaxes(frames, 1, 2)
  h, length = x.shape[1], x.shape[2]
  kept = column_maps.identity_kept(h, length)

  def one(frame, start, mu):
    widths = column_maps.warp_cell_widths(mu, crop, out_length, min_scale=min_scale,
                                          power=power)
    u = start + column_maps.warp_coords(widths, crop, out_length)
    step = jnp.maximum(jnp.gradient(u) if out_length > 1 else jnp.ones_like(u), 1.0)
    taps = [column_maps.apply(frame, column_maps.from_kept(kept, length, u + k * step / 3))
            for k in (-1, 0, 1)]
    return (taps[0] + taps[1] + taps[2]) / 3.0

  out = jax.vmap(one)(x, starts, cells)
  if axis == 0:
    out = jnp.swapaxes(out, 1, 2)
  if tuple(out.shape[1:3]) != tuple(out_hw):
    out = jax.image.resize(out, (out.shape[0], *out_hw, out.shape[3]), "linear",
                           antialias=True)
  return jnp.clip(jnp.round(out), 0, 255).astype(jnp.uint8)


def render_frames(frames: Iterable[np.ndarray], plan: plan_lib.ClipPlan, cfg: VideoConfig,
                  progress: Progress | None = None) -> Iterator[np.ndarray]:
  """The render pass: yields the output frames (H', W', C) uint8 in order."""
  out_length = plan.aspect_hw[plan.axis]
  kw = dict(axis=plan.axis, crop=plan.crop, out_length=out_length, out_hw=plan.out_hw,
            min_scale=cfg.min_cell_scale, power=cfg.warp_power)
  batch: list[np.ndarray] = []
  done = 0

  def run(batch, t0):
    n = len(batch)
    x = np.stack(batch + [batch[-1]] * (cfg.batch - n))
    idx = np.minimum(np.arange(t0, t0 + cfg.batch), plan.frames - 1)
    out = render_batch(jnp.asarray(x), jnp.asarray(plan.starts[idx]),
                       jnp.asarray(plan.cells[idx]), **kw)
    return np.asarray(out[:n])

  for t, image in enumerate(frames):
    if t >= plan.frames:
      raise ValueError(f"the clip has more frames than planned ({plan.frames})")
    batch.append(np.asarray(image))
    if len(batch) == cfg.batch:
      yield from run(batch, done)
      done += len(batch)
      batch = []
      if progress:
        progress("render", done, plan.frames)
  if batch:
    yield from run(batch, done)
    if progress:
      progress("render", plan.frames, plan.frames)


def retarget_clip(open_frames: Callable[[], Iterable[np.ndarray]], in_hw: tuple[int, int],
                  out_hw: tuple[int, int], fps: float, weights: vgg.VGGWeights,
                  cfg: VideoConfig = VideoConfig()) -> Iterator[np.ndarray]:
  """The library entry: ``open_frames()`` is called twice (plan pass, render pass) and
  must give the same frames; yields the retargeted frames."""
  clip_plan = plan_clip(open_frames(), in_hw, out_hw, fps, weights, cfg)
  return render_frames(open_frames(), clip_plan, cfg)
