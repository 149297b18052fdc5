"""Retargeting methods behind one interface, for the evaluation (section 4, Table 1).

Every method is ``fn(image uint8 (H, W, 3), out_hw, ctx) -> uint8 (H', W', 3)``:

- ``linear``: uniform scale with Pillow's LANCZOS filter (antialiased).
- ``crop``: centre crop.
- ``seam_carving`` / ``seam_carving_forward``: image-space seam carving with backward
  (gradient) and forward energy (ours, jitted; width first, then height); seam
  insertion where the size grows.
- ``feature_seams_in_image``: section 4.2 / Figure 10 -- the seams (and warp) the deep
  operator chose at block1, applied to the input pixels, with no reconstruction.
- ``dnr_no_refine`` and ``dnr``: Deep Network Resizing without / with refinement.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from dnr_jax.ops import column_maps
from dnr_jax import resizing
from dnr_jax.ops import seams
from dnr_jax.nn import vgg
from dnr_jax.config import RetargetConfig


@dataclasses.dataclass(frozen=True)
class Context:
  weights: vgg.VGGWeights
  config: RetargetConfig = RetargetConfig()


def linear(image, out_hw, ctx=None):
  del ctx
  return np.asarray(Image.fromarray(image).resize((out_hw[1], out_hw[0]), Image.LANCZOS))


def crop(image, out_hw, ctx=None):
  del ctx
  h, w = image.shape[:2]
  y, x = (h - out_hw[0]) // 2, (w - out_hw[1]) // 2
  return image[y:y + out_hw[0], x:x + out_hw[1]].copy()


def carve_width_map(image: jax.Array, num_seams: int, energy: str = "backward",
                    batch: int | None = None) -> jax.Array:
  """Image-space seam carving of (h, w, 3) float to (h, w - num_seams, 3) (pure, jittable).

  ``batch``: seams per DP pass (None = :func:`seams.default_batch`, 1 = classic).
  """
  res = seams.carve_image(image, num_seams, energy, batch)
  w_out = image.shape[1] - num_seams
  cmap = column_maps.from_kept(res.kept, w_out, jnp.arange(w_out, dtype=jnp.float32))
  return column_maps.apply(image, cmap)


def insert_width_map(image: jax.Array, num_seams: int, energy: str = "backward",
                     batch: int | None = None) -> jax.Array:
  """Image-space seam insertion (Avidan & Shamir 2007, section 3.4) of (h, w, 3) float to
  (h, w + num_seams, 3): the ``num_seams`` seams removal would take, each duplicated
  once (its copy the average with its right neighbour; pure, jittable)."""
  w = image.shape[1]
  res = seams.carve_image(image, num_seams, energy, batch)
  coords = seams.insertion_coords(res, w, w + num_seams)
  cmap = column_maps.from_kept(coords, w + num_seams,
                               jnp.arange(w + num_seams, dtype=jnp.float32))
  return column_maps.apply(image, cmap)


_carve_width = jax.jit(carve_width_map, static_argnames=("num_seams", "energy", "batch"))
_insert_width = jax.jit(insert_width_map, static_argnames=("num_seams", "energy", "batch"))


def _resize_width(x: jax.Array, width: int, energy: str) -> jax.Array:
  if width < x.shape[1]:
    return _carve_width(x, num_seams=x.shape[1] - width, energy=energy)
  if width > x.shape[1]:
    return _insert_width(x, num_seams=width - x.shape[1], energy=energy)
  return x


def seam_carve(image: np.ndarray, out_hw, energy: str = "backward") -> np.ndarray:
  """Image-space seam carving (or insertion, to enlarge) to (H', W'): width first, then
  height on the transpose."""
  x = _resize_width(jnp.asarray(image, jnp.float32), out_hw[1], energy)
  x = jnp.swapaxes(_resize_width(jnp.swapaxes(x, 0, 1), out_hw[0], energy), 0, 1)
  return np.clip(np.round(np.asarray(x)), 0, 255).astype(np.uint8)


def seam_carving(image, out_hw, ctx=None):
  del ctx
  return seam_carve(image, out_hw, "backward")


def seam_carving_forward(image, out_hw, ctx=None):
  del ctx
  return seam_carve(image, out_hw, "forward")


def feature_seams_in_image(image, out_hw, ctx: Context):
  """The seams-initialisation image: block1's column maps applied to the pixels."""
  cfg = dataclasses.replace(ctx.config, reconstruction=dataclasses.replace(
      ctx.config.reconstruction, init="seams", steps=0), refinement=dataclasses.replace(
          ctx.config.refinement, steps=0))
  return resizing.retarget(ctx.weights, image, tuple(out_hw), cfg).initial


def dnr(image, out_hw, ctx: Context):
  return resizing.retarget(ctx.weights, image, tuple(out_hw), ctx.config).output


def dnr_no_refine(image, out_hw, ctx: Context):
  cfg = dataclasses.replace(ctx.config, refinement=dataclasses.replace(
      ctx.config.refinement, steps=0))
  return resizing.retarget(ctx.weights, image, tuple(out_hw), cfg).output


METHODS: dict[str, Callable] = {
    "linear": linear,
    "crop": crop,
    "seam_carving": seam_carving,
    "seam_carving_forward": seam_carving_forward,
    "feature_seams_in_image": feature_seams_in_image,
    "dnr_no_refine": dnr_no_refine,
    "dnr": dnr,
}
