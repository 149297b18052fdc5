"""Importance maps (Eq. 1) and the effective importance map of section 4.1."""

from __future__ import annotations

from typing import Mapping

import chex
import jax
import jax.numpy as jnp


def importance_map(feature: jax.Array) -> jax.Array:
  """Eq. 1: S_l(i, j) = ||F_l(I)(i, j, *)||_2, the L2 norm over channels.

  Args:
    feature: (..., h, w, c) activations.
  Returns:
    (..., h, w) float32 importance.
  """
  f = feature.astype(jnp.float32)
  return jnp.sqrt(jnp.sum(f * f, axis=-1))


def normalise(s: jax.Array, axis=(-2, -1), eps: float = 1e-8) -> jax.Array:
  """Divides a map by its mean, so maps of different layers can be summed."""
  return s / (jnp.mean(s, axis=axis, keepdims=True) + eps)


def effective_importance(maps: Mapping[str, jax.Array], height: int, width: int) -> jax.Array:
  """Section 4.1: the sum of every layer's map, each upsampled to the image size.

  Departure from the paper: each map is first divided by its mean. Raw activation
  norms differ by orders of magnitude between layers, so an unnormalised sum would
  be the deepest layer alone.

  Args:
    maps: {layer: (h_l, w_l)} importance maps.
  Returns:
    (height, width) map with mean ~ the number of layers.
  """
  total = jnp.zeros((height, width), jnp.float32)
  for s in maps.values():
    chex.assert_rank(s, 2)
    total = total + jax.image.resize(normalise(s), (height, width), "linear")
  return total


# One compilation per set of map shapes (the debug pictures of a batch share it).
effective_importance_jit = jax.jit(effective_importance, static_argnums=(1, 2))
