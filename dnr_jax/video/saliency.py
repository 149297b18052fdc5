"""Column importance of frames: Eq. 1 per VGG19 layer, summed over layers (section 4.1).

Each layer's map S_l = ||F_l||_2 over channels is divided by its mean (as in
:func:`dnr_jax.ops.importance.effective_importance`), averaged over the rows, resampled to
the frame's columns and summed: a (N, W) profile per batch of frames, at the small
working height ``VideoConfig.work_height`` (importance only; the pixels stay full size).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from dnr_jax.nn import vgg
from dnr_jax.ops import importance


def work_size(in_hw: tuple[int, int], work_height: int) -> tuple[int, int]:
  """The working (h, w): ``work_height`` rows (never more than the input), aspect kept."""
  h, w = in_hw
  wh = min(h, work_height)
  return wh, max(32, round(w * wh / h))


def thumbnail(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
  """(h, w, 3) float32 RGB in 0..255 at the working size (Pillow's area filter)."""
  im = Image.fromarray(np.asarray(image)[..., :3])
  return np.asarray(im.resize(size_hw[::-1], Image.BOX), np.float32)


@functools.partial(jax.jit, static_argnames=("layers", "axis", "out_length"))
def column_profiles(weights: vgg.VGGWeights, frames: jax.Array, layers: tuple[str, ...],
                    axis: int, out_length: int) -> jax.Array:
  """(N, out_length) float32: Eq. 1 maps of ``layers``, mean-normalised, averaged across
  ``axis`` (1: a profile over the columns, 0: over the rows) and summed.

  ``frames`` (N, h, w, 3) RGB in 0..255, upright. Each layer's profile is resampled
  linearly to ``out_length`` (the input's length along the changing axis).
  """
  feats = vgg.features(weights, frames, layers)
  total = jnp.zeros((frames.shape[0], out_length), jnp.float32)
  for f in feats.values():
    s = importance.normalise(importance.importance_map(f))  # (N, h_l, w_l)
    col = s.mean(axis=1 if axis == 1 else 2)
    total = total + jax.image.resize(col, (col.shape[0], out_length), "linear")
  return total
