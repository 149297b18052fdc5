"""A differentiable bilinear grid sampler (Jaderberg et al. 2015), used by section 3.3.

Coordinates are in pixel units of the source, ``(y, x)`` with (0, 0) the centre of
the top-left pixel. Border handling is explicit: ``"clamp"`` samples outside the
image as the nearest edge pixel (``map_coordinates(mode="nearest")`` agrees), and
``"zeros"`` treats the outside as 0 (``mode="constant"``).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def identity_grid(height: int, width: int) -> jax.Array:
  """(H, W, 2) float32 grid of (y, x) pixel coordinates."""
  y, x = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32),
                      jnp.arange(width, dtype=jnp.float32), indexing="ij")
  return jnp.stack([y, x], axis=-1)


def bilinear_sample(image: jax.Array, coords: jax.Array, border: str = "clamp") -> jax.Array:
  """Samples (H, W, C) at (..., 2) (y, x) coordinates -> (..., C), differentiable in both."""
  chex.assert_rank(image, 3)
  chex.assert_axis_dimension(coords, -1, 2)
  h, w = image.shape[:2]
  y, x = coords[..., 0], coords[..., 1]
  y0f, x0f = jnp.floor(y), jnp.floor(x)
  ty, tx = (y - y0f)[..., None], (x - x0f)[..., None]
  y0, x0 = y0f.astype(jnp.int32), x0f.astype(jnp.int32)

  def tap(yi, xi):
    v = image[jnp.clip(yi, 0, h - 1), jnp.clip(xi, 0, w - 1)]
    if border == "zeros":
      inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
      v = jnp.where(inside[..., None], v, 0)
    elif border != "clamp":
      raise ValueError(f"unknown border mode {border!r}: clamp or zeros")
    return v

  top = tap(y0, x0) * (1 - tx) + tap(y0, x0 + 1) * tx
  bottom = tap(y0 + 1, x0) * (1 - tx) + tap(y0 + 1, x0 + 1) * tx
  return top * (1 - ty) + bottom * ty
