"""Receptive fields between two VGG layers, as used by Eq. 2.

A VGG conv is 3x3, stride 1, SAME: position j of its output sees [j-1, j+1] of its
input. A pool is 2x2, stride 2, VALID: j sees [2j, 2j+1]. Composing these along the
actual layer path between a shallow and a deep layer gives, for every deep position,
the rectangle of shallow positions that feed it. Here the composition is done on
masks: a boolean map of deep positions (the removed seams) is pushed back layer by
layer (pool: repeat 2x and pad to the odd size the floor dropped; conv: 3x3
dilation), which is exact and independent of the image size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dnr_jax.nn import vgg


def dilate3(mask: jax.Array) -> jax.Array:
  """3x3 binary dilation (what one 3x3 SAME conv's receptive field does to a mask)."""
  m = mask.astype(jnp.float32)
  out = jax.lax.reduce_window(m, -jnp.inf, jax.lax.max, (3, 3), (1, 1), "SAME")
  return out > 0.5


def receptive_field_mask(deep_mask: jax.Array, shallow: str, deep: str,
                         shallow_hw: tuple[int, int], arch: str = "vgg19") -> jax.Array:
  """Positions of layer ``shallow`` inside the receptive field of any True of ``deep_mask``.

  Args:
    deep_mask: (h_deep, w_deep) bool mask at layer ``deep``.
    shallow_hw: (h, w) of layer ``shallow``'s map.
  Returns:
    (h, w) bool mask at layer ``shallow``.
  """
  kinds = vgg.path_between(shallow, deep, arch)
  # sizes[i] is the map size *before* applying kinds[i].
  sizes = [tuple(shallow_hw)]
  for kind in kinds:
    h, w = sizes[-1]
    sizes.append((h // 2, w // 2) if kind == "pool" else (h, w))
  if deep_mask.shape != sizes[-1]:
    raise ValueError(f"deep mask {deep_mask.shape} does not match {deep} size {sizes[-1]}")
  mask = deep_mask.astype(bool)
  for kind, size in zip(reversed(kinds), reversed(sizes[:-1])):
    if kind == "pool":
      mask = jnp.repeat(jnp.repeat(mask, 2, axis=0), 2, axis=1)
      mask = jnp.pad(mask, ((0, size[0] - mask.shape[0]), (0, size[1] - mask.shape[1])))
    else:
      mask = dilate3(mask)
  return mask


def receptive_interval(j: int, shallow: str, deep: str, arch: str = "vgg19") -> tuple[int, int]:
  """Closed interval [lo, hi] of shallow positions feeding deep position j (unclipped)."""
  lo = hi = j
  for kind in reversed(vgg.path_between(shallow, deep, arch)):
    if kind == "pool":
      lo, hi = 2 * lo, 2 * hi + 1
    else:
      lo, hi = lo - 1, hi + 1
  return lo, hi
