"""Refinement with a learned sampling grid (section 3.3).

The reconstructed image O is kept fixed; a grid sampler G is placed in front of the
network and its sampling positions are optimised with the same loss (Eq. 4). The
output is G(O): pixels of O moved by sub-pixel amounts and re-interpolated, which
can push checkerboard and noise artifacts onto nearby edges but cannot invent new
colours.

Parameterisation: the displacement lives on a coarse control grid (``control_cell``
px), is bounded by ``max_shift * tanh``, and is upsampled bilinearly to every pixel;
a smoothness term penalises squared differences between neighbouring controls,
weighted relative to the loss at the start so the weight is unit-free.

Measured (docs/history/LAB_LOG.md, ``scripts/study_refinement.py``): after the default
reconstruction, no parameterisation tried (cells 4/8/16, smoothness 0-1, shifts 1-3
px) changed the loss by more than 0.34% or moved pixels by more than 0.04 px on
average, so refinement is off by default (``RefinementConfig.steps = 0``).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from dnr_jax.ops import grid_sampler
from dnr_jax.config import RefinementConfig


def control_shape(height: int, width: int, cell: int) -> tuple[int, int, int]:
  return (math.ceil(height / cell) + 1, math.ceil(width / cell) + 1, 2)


def displacement(theta: jax.Array, height: int, width: int, max_shift: float) -> jax.Array:
  """(gh, gw, 2) controls -> (H, W, 2) per-pixel (dy, dx) displacement in pixels."""
  d = max_shift * jnp.tanh(theta)
  return jax.image.resize(d, (height, width, 2), "linear", antialias=False)


def warp_image(image: jax.Array, theta: jax.Array, max_shift: float) -> jax.Array:
  """G(O): samples O at identity + displacement (edges clamped)."""
  h, w = image.shape[:2]
  coords = grid_sampler.identity_grid(h, w) + displacement(theta, h, w, max_shift)
  return grid_sampler.bilinear_sample(image, coords, border="clamp")


def smoothness(theta: jax.Array, max_shift: float) -> jax.Array:
  d = max_shift * jnp.tanh(theta)
  return (jnp.mean(jnp.square(d[1:] - d[:-1])) + jnp.mean(jnp.square(d[:, 1:] - d[:, :-1])))


def make_loss(feature_loss: Callable[[jax.Array], jax.Array], image: jax.Array,
              cfg: RefinementConfig) -> Callable[[jax.Array], jax.Array]:
  """Loss of the grid parameters theta: Eq. 4 on G(O) + relative smoothness."""
  scale = jax.lax.stop_gradient(feature_loss(image))

  def loss(theta):
    return (feature_loss(warp_image(image, theta, cfg.max_shift))
            + cfg.smoothness * scale * smoothness(theta, cfg.max_shift))

  return loss
