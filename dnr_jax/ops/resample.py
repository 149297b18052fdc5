"""Separable resampling with a static number of taps per output sample.

``jax.image.resize`` contracts dense (in, out) kernel matrices, which at camera sizes
costs O(H * W * w) (a 6000-px row to 1024 px: 74 GFLOP for one image). Here every
output sample gathers only the ``taps`` input samples its kernel covers, so the cost
is O(out * taps) and the memory O(out * taps) per axis, whatever the scale.

Kernels:
- ``linear``: the triangle filter, stretched by the scale factor when downscaling
  (antialiasing, as Pillow's BILINEAR and ``jax.image.resize(antialias=True)`` do);
- ``cubic``: Keys' cubic convolution (a = -0.5), the usual "bicubic", stretched
  likewise when downscaling.

:func:`sample_rows` is the same kernel at arbitrary per-row fractional positions: it
applies a full-resolution column map (seams + warp lifted from the working size);
:func:`sample_columns` the same with one map for every row (a crop or a warp).
All functions are pure and jit/vmap like any jnp code.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

_SUPPORT = {"linear": 1.0, "cubic": 2.0}


def _kernel(kind: str, t, xp=jnp):
  t = xp.abs(t)
  if kind == "linear":
    return xp.maximum(0.0, 1.0 - t)
  if kind == "cubic":  # Keys 1981, a = -0.5
    a = -0.5
    near = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
    far = ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a
    return xp.where(t <= 1.0, near, xp.where(t < 2.0, far, 0.0))
  raise ValueError(f"unknown kernel {kind!r}: linear or cubic")


def _taps(positions, size, kind: str, stretch, max_stretch: float, xp=jnp):
  """Indices (..., taps) and normalised weights for samples at ``positions``.

  ``size`` and ``stretch`` may be traced (padded arrays); the number of taps comes
  from the static ``max_stretch`` >= stretch (taps beyond the support weigh zero).
  ``xp``: ``jax.numpy`` (default) or ``numpy`` (the host twins below).
  """
  n = int(math.ceil(2 * _SUPPORT[kind] * max_stretch)) + 1
  support = _SUPPORT[kind] * stretch  # (a scalar, or an array shaped like positions)
  first = xp.floor(positions - support + 0.5).astype(xp.int32)
  idx = first[..., None] + xp.arange(n, dtype=xp.int32)
  per_tap = stretch[..., None] if getattr(stretch, "ndim", 0) else stretch
  w = _kernel(kind, (idx.astype(xp.float32) - positions[..., None]) / per_tap, xp)
  w = w / xp.maximum(xp.sum(w, axis=-1, keepdims=True), 1e-8)
  return xp.clip(idx, 0, size - 1), w.astype(xp.float32)


def resize_axis(x: jax.Array, axis: int, size: int, kind: str = "linear", *,
                in_valid=None, out_valid=None, max_stretch: float | None = None) -> jax.Array:
  """Resizes ``x`` along ``axis`` to ``size`` samples (half-pixel centres, edges clamped).

  Padded arrays (one compilation for many sizes): only the first ``in_valid`` input
  samples are real, and the result holds ``out_valid`` real samples followed by
  padding up to ``size``. Both may be traced; ``max_stretch`` (static) must then bound
  ``max(1, in_valid / out_valid)``.
  """
  n_in = x.shape[axis]
  if in_valid is None and out_valid is None and n_in == size:
    return x.astype(jnp.float32)
  n_src = n_in if in_valid is None else in_valid
  n_dst = size if out_valid is None else out_valid
  scale = jnp.asarray(n_src, jnp.float32) / n_dst
  if max_stretch is None:
    if in_valid is not None or out_valid is not None:
      raise ValueError("padded resizing needs a static max_stretch")
    max_stretch = max(1.0, n_in / size)
  pos = (jnp.arange(size, dtype=jnp.float32) + 0.5) * scale - 0.5
  idx, w = _taps(pos, n_src, kind, jnp.maximum(1.0, scale), max_stretch)
  xm = jnp.moveaxis(x, axis, 0).astype(jnp.float32)
  g = xm[idx]  # (size, taps, ...)
  out = jnp.einsum("st...,st->s...", g, w)
  return jnp.moveaxis(out, 0, axis)


def resize(image: jax.Array, out_hw: tuple[int, int], kind: str = "linear", *,
           in_valid=None) -> jax.Array:
  """(H, W, ...) -> (H', W', ...) float32: separable, antialiased when shrinking.

  ``in_valid`` = (rows, cols) (may be traced): ``image`` is padded and only its first
  rows x cols are the picture (see :func:`resize_axis`).
  """
  if in_valid is None:
    x = resize_axis(image, 0, out_hw[0], kind)
    return resize_axis(x, 1, out_hw[1], kind)
  bound = lambda a: max(1.0, image.shape[a] / out_hw[a])
  x = resize_axis(image, 0, out_hw[0], kind, in_valid=in_valid[0], max_stretch=bound(0))
  return resize_axis(x, 1, out_hw[1], kind, in_valid=in_valid[1], max_stretch=bound(1))


def resize_axis_host(x: np.ndarray, axis: int, size: int, kind: str = "linear") -> np.ndarray:
  """:func:`resize_axis` in NumPy on the host: the same kernel, taps and weights (equal
  up to float rounding), and no XLA compilation per image size. ``x`` may be uint8;
  the result is float32. Memory: the result plus one gathered tap."""
  xm = np.moveaxis(np.asarray(x), axis, 0)
  n_in = xm.shape[0]
  scale = n_in / size
  stretch = max(1.0, scale)
  pos = ((np.arange(size, dtype=np.float32) + 0.5) * np.float32(scale) - 0.5).astype(np.float32)
  idx, w = _taps(pos, n_in, kind, np.float32(stretch), stretch, xp=np)
  out = np.zeros((size,) + xm.shape[1:], np.float32)
  shape = (size,) + (1,) * (xm.ndim - 1)
  for t in range(idx.shape[1]):
    out += w[:, t].reshape(shape) * xm[idx[:, t]]
  return np.moveaxis(out, 0, axis)


def resize_host(image: np.ndarray, out_hw: tuple[int, int], kind: str = "linear",
                block: int = 256, add_to: np.ndarray | None = None) -> np.ndarray:
  """:func:`resize` in NumPy on the host (see :func:`resize_axis_host`): rows first,
  then the columns in blocks of ``block`` output rows, so the temporaries stay at
  O(block x W') whatever the image size. Returns (H', W', ...) float32; with
  ``add_to`` (float32, that shape) the result is added into it instead, in place, so
  no second full-size array is ever allocated."""
  rows = resize_axis_host(image, 0, out_hw[0], kind)
  shape = (out_hw[0], out_hw[1]) + rows.shape[2:]
  if add_to is not None and (add_to.shape != shape or add_to.dtype != np.float32):
    raise ValueError(f"add_to must be float32 {shape}, got {add_to.dtype} {add_to.shape}")
  out = np.empty(shape, np.float32) if add_to is None else add_to
  for r in range(0, out_hw[0], block):
    part = resize_axis_host(rows[r:r + block], 1, out_hw[1], kind)
    if add_to is None:
      out[r:r + block] = part
    else:
      out[r:r + block] += part
  return out


def _stretch_of(stretch, coords, max_stretch: float):
  """The kernel's widening per sample: 1 (none), or ``stretch`` clipped to [1, max]."""
  if stretch is None:
    return 1.0
  return jnp.clip(jnp.broadcast_to(stretch, coords.shape).astype(jnp.float32), 1.0,
                  max_stretch)


def sample_columns(image: jax.Array, coords: jax.Array, kind: str = "cubic",
                   width=None, stretch=None, max_stretch: float = 1.0) -> jax.Array:
  """out[y, x'] = image[y, coords[x']]: :func:`sample_rows` with one column map shared by
  every row (a crop, a warp: 1-D taps, one gather per tap). ``image`` (H, W, C),
  ``coords`` (W',); ``stretch`` (W',) as in :func:`sample_rows`; returns (H, W', C)
  float32."""
  w = image.shape[1]
  idx, wts = _taps(coords.astype(jnp.float32), w if width is None else width, kind,
                   _stretch_of(stretch, coords, max_stretch), max_stretch)
  out = jnp.zeros((image.shape[0], coords.shape[0], image.shape[2]), jnp.float32)
  for t in range(idx.shape[-1]):
    out = out + jnp.take(image, idx[:, t], axis=1).astype(jnp.float32) * wts[None, :, t, None]
  return out


def sample_rows(image: jax.Array, coords: jax.Array, kind: str = "cubic",
                width=None, stretch=None, max_stretch: float = 1.0) -> jax.Array:
  """out[y, x'] = image[y, coords[y, x']] interpolated along x.

  Args:
    image: (H, W, C).
    coords: (H, W') fractional source columns (pixel centres at integers).
    kind: the kernel.
    width: the real width (may be traced) when ``image`` is padded; default W.
    stretch: None (point sampling), or source pixels per output pixel, broadcastable
      to ``coords`` (e.g. (W',) for a warp): where > 1 the kernel is widened by it,
      as a resize does when it shrinks (antialiasing), up to the static
      ``max_stretch``, which fixes the number of taps.
  Returns:
    (H, W', C) float32.
  """
  w = image.shape[1]
  idx, wts = _taps(coords.astype(jnp.float32), w if width is None else width, kind,
                   _stretch_of(stretch, coords, max_stretch), max_stretch)
  # One gather per tap, accumulated: XLA fuses each into the sum, where gathering all
  # taps at once materialises an (H, W', taps, C) float array (3.5x slower on a CPU).
  out = jnp.zeros((*coords.shape, image.shape[2]), jnp.float32)
  for t in range(idx.shape[-1]):
    tap = jnp.take_along_axis(image, idx[..., t, None], axis=1)
    out = out + tap.astype(jnp.float32) * wts[..., t, None]
  return out
