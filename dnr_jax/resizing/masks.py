"""Keep and remove masks: at the working size, feasibility, and object removal's size.

All host functions, run before the image is processed (a size the kept region cannot
reach stops the job before any work, with the largest feasible shrink).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dnr_jax.config import RetargetConfig
from dnr_jax.ops import resample
from dnr_jax.ops import seams
from dnr_jax.resizing import deep_carving
from dnr_jax.resizing import plan as plan_lib


class KeepInfeasible(ValueError):
  """The keep mask leaves too little to remove for the requested size."""


def working_mask(mask, work_hw: tuple[int, int]):
  """A full-size mask at the working size, conservatively: a working pixel is in the
  mask if any full-size pixel it covers is (float32 0/1; NumPy in, NumPy out, on the
  host; a jax array is resized with jax, for :func:`dnr_jax.retarget_pure`)."""
  if isinstance(mask, np.ndarray):
    m = mask.astype(bool)
    if tuple(m.shape) == tuple(work_hw):
      return m.astype(np.float32)
    small = resample.resize_host(m.astype(np.float32)[..., None], tuple(work_hw),
                                 "linear")[..., 0]
    return (small > 1e-3).astype(np.float32)
  m = (jnp.asarray(mask) != 0).astype(jnp.float32)
  if tuple(m.shape) == tuple(work_hw):
    return m
  return (resample.resize(m[..., None], tuple(work_hw), "linear")[..., 0] > 1e-3).astype(
      jnp.float32)


def keep_limits(keep: np.ndarray, image_hw: tuple[int, int], cfg: RetargetConfig
                ) -> tuple[int, int]:
  """The smallest (H, W) to which ``keep`` (H, W) can shrink the image: at the working
  size, the most disjoint 8-connected seams that avoid every block1 position that sees
  a kept pixel (the same DP and batching as the plan), per axis; scaled back. The warp
  adds nothing once those seams are gone: every remaining column then holds a kept
  pixel. Host function; one small compilation per working shape."""
  s = plan_lib.sizes(image_hw, image_hw, cfg.work_size, cfg.work_multiple)
  foot = deep_carving.block1_footprint(working_mask(np.asarray(keep), s.work) > 0)
  out = []
  for axis, full in ((0, image_hw[0]), (1, image_hw[1])):
    m = foot if axis == 1 else foot.T
    n = int(_free_seams(jax.device_put(m.astype(np.float32)),
                        batch=seams.default_batch(m.shape[1])))
    work_min = m.shape[1] - n
    out.append(min(full, int(np.ceil(work_min * full / m.shape[1]))))
  return tuple(out)


@functools.partial(jax.jit, static_argnames=("batch",))
def _free_seams(forbidden, batch):
  energy = forbidden * seams.FORBIDDEN
  w = forbidden.shape[1]
  return seams.carve_batched(energy, w - 1, w - 1, seams.fixed_energy_fn, batch,
                             limit=seams.FORBIDDEN_LIMIT).num_removed


def check_keep(keep, image_hw, out_hw, cfg: RetargetConfig) -> None:
  """:class:`KeepInfeasible` with the largest feasible shrink, if ``out_hw`` asks for
  more than ``keep`` allows (:func:`keep_limits`)."""
  if keep is None or not np.any(keep):
    return
  if out_hw[0] >= image_hw[0] and out_hw[1] >= image_hw[1]:
    return
  min_h, min_w = keep_limits(keep, tuple(image_hw), cfg)
  if out_hw[0] < min_h or out_hw[1] < min_w:
    h, w = image_hw
    raise KeepInfeasible(
        f"the keep mask allows shrinking {w}x{h} to at least "
        f"{min(w, max(min_w, out_hw[1]))}x{min(h, max(min_h, out_hw[0]))} for this job "
        f"(width >= {min_w} px = ratio {min_w / w:.3f}, height >= {min_h} px = ratio "
        f"{min_h / h:.3f}); asked for {out_hw[1]}x{out_hw[0]}")


def removal_size(remove: np.ndarray, image_hw: tuple[int, int], cfg: RetargetConfig
                 ) -> tuple[str, tuple[int, int]]:
  """(axis, size): the size to which object removal carves ``remove`` (H, W) out, along
  the axis that needs fewer seams (:func:`deep_carving.removal_seams` at the working
  size, scaled back to full resolution)."""
  s = plan_lib.sizes(image_hw, image_hw, cfg.work_size, cfg.work_multiple)
  axis, k = deep_carving.removal_seams(working_mask(np.asarray(remove), s.work) > 0)
  h, w = image_hw
  if axis == "width":
    return axis, (h, w - int(np.ceil(k * w / s.work[1])))
  return axis, (h - int(np.ceil(k * h / s.work[0])), w)


def stages(image_hw: tuple[int, int], out_hw: tuple[int, int], cfg: RetargetConfig,
           keep: np.ndarray | None = None, remove: np.ndarray | None = None
           ) -> tuple[str | None, list[tuple[tuple[int, int], tuple[int, int]]]]:
  """Every check of the masks that needs no compute on the image, made once per job:
  sizes, overlap, object removal's intermediate size, the keep mask's feasibility.
  Returns (the removal axis or None, the stages as (input size, output size)): object
  removal carves the remove mask out first (:func:`removal_size`), then a second stage
  retargets to ``out_hw``. ValueError (:class:`KeepInfeasible`) names the problem.
  (After a removal the kept region is unchanged and the image smaller: the keep limits
  of the input are a close bound for the second stage, which checks again with the
  moved mask.)"""
  image_hw, out_hw = tuple(image_hw), tuple(out_hw)
  for name, m in (("keep", keep), ("remove", remove)):
    if m is not None and tuple(m.shape) != image_hw:
      raise ValueError(f"the {name} mask is {m.shape[1] if m.ndim > 1 else '?'}x"
                       f"{m.shape[0]}, the image {image_hw[1]}x{image_hw[0]}: they must be "
                       "the same size")
  if keep is not None and remove is not None and np.any((keep != 0) & (remove != 0)):
    raise ValueError("the keep and remove masks overlap")
  axis, mid = None, image_hw
  if remove is not None and np.any(remove):
    axis, mid = removal_size(remove != 0, image_hw, cfg)
    if min(mid) < plan_lib.MIN_SIDE:
      raise ValueError(f"the remove mask spans the image: removing it leaves "
                       f"{mid[1]}x{mid[0]}")
    plan_lib.validate(mid, out_hw, cfg)
  keep_b = None if keep is None else keep != 0
  check_keep(keep_b, image_hw, mid, cfg)
  check_keep(keep_b, image_hw, out_hw, cfg)
  if axis is None:
    return None, [(image_hw, out_hw)]
  return axis, [(image_hw, mid)] + ([(mid, out_hw)] if mid != out_hw else [])
