"""Full resolution from a working-size plan: lifted column maps + low-frequency correction.

The deep operator (features, Eq. 1-3) and the reconstruction (Eq. 4) run at a working
size (long side ``RetargetConfig.work_size``); a 12 MP photo never goes through VGG.
The output is then rendered at the input's full resolution:

1. **Lifted maps.** The shallow layer's plan at the working size (kept columns of the
   seams, per row, and the Eq. 3 warp cells) is turned into a full-resolution
   fractional source column per output pixel. With ``s = W / w`` full-resolution
   pixels per working pixel, a working column j covers full columns [j s, (j+1) s):
   carved columns stay blocks of ``s`` pixels that keep their native detail, the
   warp (normalised cell coordinates) is evaluated at full resolution, and between
   working rows the source position is interpolated so a seam's staircase becomes a
   smooth diagonal. The full-resolution pixels are sampled with a cubic kernel,
   widened where the Eq. 3 warp squeezes a cell (:func:`lifted_scale`: antialiasing,
   as any resize does when it shrinks; the paper samples its maps at the working size
   only, where the question does not arise). A crop or warp (every row the same map)
   is sampled with one 1-D map (:func:`uniform_tile`), seams per row.
2. **Low-frequency correction.** What the reconstruction changed at the working size
   (``final - init``, both working-size images) is upsampled and added: the output is
   ``lifted(full) + up(final - init)`` = the reconstruction's colours and shapes at
   low frequencies plus the input's own high-frequency detail.

Each axis's lift runs on bands of rows of static size, padded to the width's
:func:`size_class`, with the plan padded to a square of its long side (:func:`pad_lift`):
one compilation per (width class, output class), whatever the photo's height or
working shape, so a folder of photos shares a handful. The correction is a small image
upsampled, done on the host (``resample.resize_host``, no compilation). The memory is
O(H W) with a small constant and no full-resolution tensor ever meets a convolution.
Height is the width code on transposed arrays, as for the plan.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dnr_jax.config import RetargetConfig
from dnr_jax.io import compilation
from dnr_jax.ops import column_maps
from dnr_jax.ops import resample
from dnr_jax.resizing import deep_carving


class AxisLift(NamedTuple):
  """A working-size width plan of the shallow (stride 1) layer, ready to lift.

  The arrays may be padded (:func:`pad_lift`): only the first ``work_hw`` rows and
  columns of ``kept`` and the first ``num_cells`` cell widths are real.
  """

  kept: jax.Array  # (h, w) int32: source column of each carved position, per working row
  num_valid: jax.Array  # () int32: carved width (w - seams removed)
  cell_widths: jax.Array  # (n_cells,) Eq. 3 output widths (normalised coordinates)
  work_hw: jax.Array  # (2,) int32: the real (h, w) of ``kept``
  num_cells: jax.Array  # () int32: the real number of cells


def pad_lift(lift: AxisLift, side: int | None = None) -> AxisLift:
  """``lift`` (host arrays) padded to a ``side`` x ``side`` plan and ``side`` cells
  (default: the :func:`size_class` of its long side), so every working shape with that
  long side shares one compilation of :func:`lifted_tile`."""
  kept = np.asarray(lift.kept)
  cells = np.asarray(lift.cell_widths)
  side = side or size_class(max(kept.shape))
  if side < max(kept.shape) or side < cells.shape[0]:
    raise ValueError(f"cannot pad a {kept.shape} plan with {cells.shape[0]} cells to {side}")
  padded_cells = np.zeros((side,), cells.dtype)
  padded_cells[:cells.shape[0]] = cells
  return AxisLift(pad_to(kept, (side, side)), np.asarray(lift.num_valid),
                  padded_cells, np.asarray(lift.work_hw, np.int32),
                  np.asarray(lift.num_cells, np.int32))


def lifted_coords(lift: AxisLift, rows: jax.Array, full_rows, full_cols, out_cols,
                  out_len: int | None = None) -> jax.Array:
  """Full-resolution source columns (len(rows), out_len) for full rows ``rows``.

  Args:
    lift: the working-size plan of one axis (possibly padded: see :func:`pad_lift`).
    rows: (r,) int32 full-resolution row indices.
    full_rows, full_cols: the full-resolution (rows, columns) of this axis's input.
    out_cols: the full-resolution output width.
    out_len: the static length of the result (>= out_cols; default out_cols). The
      sizes may then be traced, so one compilation serves a whole size class.
  """
  h = lift.work_hw[0]
  s = jnp.asarray(full_cols, jnp.float32) / lift.work_hw[1].astype(jnp.float32)
  n_valid = lift.num_valid.astype(jnp.float32)
  c = column_maps.warp_coords(lift.cell_widths, n_valid * s, out_cols, out_len,
                              num_cells=lift.num_cells)  # carved px
  edge = jnp.clip(c + 0.5, 0.0, n_valid * s - 1e-3)
  j = jnp.clip(jnp.floor(edge / s).astype(jnp.int32), 0, lift.num_valid - 1)
  offset = edge - j.astype(jnp.float32) * s
  hf = h.astype(jnp.float32)
  yw = jnp.clip((rows.astype(jnp.float32) + 0.5) * (hf / jnp.asarray(full_rows, jnp.float32))
                - 0.5, 0.0, hf - 1.0)
  y0 = jnp.floor(yw).astype(jnp.int32)
  y1 = jnp.minimum(y0 + 1, h - 1)
  t = (yw - y0.astype(jnp.float32))[:, None]
  # A carved position j covers full columns [j s, (j + 1) s) and shows its source
  # column's block; where the next position's source is less than one column on (an
  # inserted seam's half column, enlarging) the block is stretched to reach it, so
  # the lifted map is continuous there instead of repeating detail.
  nxt = jnp.minimum(j + 1, lift.kept.shape[1] - 1)
  last = j + 1 >= lift.num_valid
  width = lift.work_hw[1].astype(jnp.float32)

  def source(y):
    k = lift.kept[y][:, j].astype(jnp.float32)
    k_next = jnp.where(last, width, lift.kept[y][:, nxt].astype(jnp.float32))
    return k * s + offset * jnp.minimum(1.0, k_next - k) - 0.5

  return (1.0 - t) * source(y0) + t * source(y1)


def lifted_scale(lift: AxisLift, full_cols, out_cols, out_len: int | None = None):
  """(out_len,) source pixels per output pixel of the lifted map: the Eq. 3 warp's
  squeeze of each output column (the carved blocks keep their scale). The samplers
  widen their kernel by it (antialiasing: a warp cell squeezed 3x on a brick wall or
  grass would otherwise alias into sparkle and moire at 100%)."""
  s = jnp.asarray(full_cols, jnp.float32) / lift.work_hw[1].astype(jnp.float32)
  scale = column_maps.warp_scale(lift.cell_widths, lift.num_valid.astype(jnp.float32) * s,
                                 out_cols, out_len, num_cells=lift.num_cells)
  # Quantised to 1/64 px: a cell width's last-bit difference (a vmapped batch sums in
  # another order) must not move the kernel, or batch and single runs differ by a grey
  # level here and there.
  return jnp.round(scale * 64.0) / 64.0


# The kernel widens up to this squeeze (static: it fixes the taps, 4 * x + 1 for cubic);
# the host rounds a plan's largest squeeze up to one of these classes, so a few
# compilations serve every plan. The operator's cells squeeze at most 1 /
# min_cell_scale (5x by default).
STRETCH_CLASSES = (1.0, 1.5, 2.0, 3.0, 5.0, 8.0)


def stretch_class(largest: float) -> float:
  """The smallest of :data:`STRETCH_CLASSES` that holds ``largest`` (capped at the last)."""
  return next((c for c in STRETCH_CLASSES if largest <= c + 1e-3), STRETCH_CLASSES[-1])


def stretch_bound(cfg: RetargetConfig) -> float:
  """The static bound for a traced plan (the pure path): the operator's largest squeeze."""
  return stretch_class(1.0 / cfg.operator.min_cell_scale)


def _as_pixels(x: jax.Array) -> jax.Array:
  """0..255 floats -> the final uint8 pixels, on the device."""
  return jnp.clip(jnp.round(x), 0, 255).astype(jnp.uint8)


@functools.partial(jax.jit, static_argnames=("out_len", "kind", "as_uint8", "max_stretch"))
def lifted_tile(band: jax.Array, lift: AxisLift, start: jax.Array, full_hw, out_cols,
                out_len: int, kind: str = "cubic", as_uint8: bool = False,
                max_stretch: float = 1.0) -> jax.Array:
  """Rows [start, start + len(band)) (clamped) of the lifted map applied to the picture.

  ``band`` (r, W_pad, C) holds the picture's rows from ``start`` on (rows past its end
  are ignored) in its first ``full_hw[1]`` columns; pass the whole picture with
  ``start=0`` to lift it in one piece. The result is (r, out_len, C), whose first
  ``out_cols`` columns are real. Sizes are traced: one compilation per (r, W_pad,
  out_len, plan padding), whatever the photo's height (see :func:`size_class`).
  ``as_uint8``: the result rounded to uint8 on the device (a resampling's final pixels:
  a quarter of the transfer, and no float copy of a 12 MP picture on the host).
  ``max_stretch`` > 1: antialiased where the warp squeezes (:func:`lifted_scale`), up to
  that squeeze; 1 = point samples.
  """
  full_rows, full_cols = full_hw
  rows = jnp.clip(start + jnp.arange(band.shape[0], dtype=jnp.int32), 0, full_rows - 1)
  coords = lifted_coords(lift, rows, full_rows, full_cols, out_cols, out_len)
  stretch = lifted_scale(lift, full_cols, out_cols, out_len) if max_stretch > 1 else None
  out = resample.sample_rows(band[rows - start], coords, kind, width=full_cols,
                             stretch=stretch, max_stretch=max_stretch)
  return _as_pixels(out) if as_uint8 else out


@functools.partial(jax.jit, static_argnames=("out_len",))
def lifted_row(lift: AxisLift, full_hw, out_cols, out_len: int):
  """(coords, scale), each (out_len,): the lifted map of a plan whose rows all carve the
  same columns (a crop, a warp, or both: :func:`row_uniform`), which every full row
  then shares, and its squeeze (:func:`lifted_scale`, the same for any plan)."""
  full_rows, full_cols = full_hw
  coords = lifted_coords(lift, jnp.zeros((1,), jnp.int32), full_rows, full_cols, out_cols,
                         out_len)[0]
  return coords, lifted_scale(lift, full_cols, out_cols, out_len)


@functools.partial(jax.jit, static_argnames=("kind", "as_uint8", "max_stretch"))
def uniform_tile(band: jax.Array, coords: jax.Array, stretch: jax.Array, full_cols,
                 kind: str = "cubic", as_uint8: bool = False,
                 max_stretch: float = 1.0) -> jax.Array:
  """:func:`lifted_tile` for a row-uniform plan: ``band``'s rows through the one map
  ``coords`` (from :func:`lifted_row`): 1-D taps, no per-row map to compute (with the
  uint8 result, a 12 MP crop + warp lifts in 0.13 s instead of ~1 s). ``stretch``
  (out_len,) (the scale of :func:`lifted_row`) and ``max_stretch``: the antialiasing,
  as in :func:`lifted_tile`."""
  out = resample.sample_columns(band, coords, kind, width=full_cols,
                                stretch=stretch if max_stretch > 1 else None,
                                max_stretch=max_stretch)
  return _as_pixels(out) if as_uint8 else out


def row_uniform(lift: AxisLift) -> bool:
  """Whether every real working row of ``lift`` (host arrays) keeps the same columns."""
  kept = np.asarray(lift.kept)[:int(lift.work_hw[0])]
  return bool(np.all(kept == kept[:1]))


# The correction is an upsampling (working -> full size); rounding working sides to a
# multiple (RetargetConfig.work_multiple) can make it a slight downsampling of small
# images, never by more than this.
_MAX_CORRECTION_STRETCH = 1.5


@functools.partial(jax.jit, static_argnames=("out_len", "tile", "kind"))
def upsampled_tile(small: jax.Array, out_hw, start: jax.Array, tile: int,
                   out_len: tuple[int, int], kind: str = "cubic") -> jax.Array:
  """Rows [start, start + tile) (clamped) of ``small`` (h, w, C) resized to ``out_hw``.

  Returns (tile, out_len[1], C) whose first ``out_hw[1]`` columns are real; ``out_hw``
  may be traced (one compilation per size class).
  """
  h = small.shape[0]
  oh, ow = out_hw
  rows = jnp.clip(start + jnp.arange(tile, dtype=jnp.int32), 0, oh - 1)
  pos = (rows.astype(jnp.float32) + 0.5) * (h / jnp.asarray(oh, jnp.float32)) - 0.5
  coords = jnp.broadcast_to(pos[:, None], (tile, small.shape[1]))
  # Sample rows by treating the transposed image's columns as the sampled axis.
  col_major = jnp.swapaxes(small, 0, 1)  # (w, h, C)
  cols = resample.sample_rows(col_major, coords.T, kind)  # (w, tile, C)
  return resample.resize_axis(jnp.swapaxes(cols, 0, 1), 1, out_len[1], kind, out_valid=ow,
                              max_stretch=_MAX_CORRECTION_STRETCH)


def size_class(n: int) -> int:
  """``n`` rounded up to a multiple of 2^(floor(log2 n) - 3) (at least 32): at most
  12.5% larger, and only ~8 classes per octave, so photos of many sizes share the
  compilations of the full-resolution functions."""
  q = max(32, 1 << max(0, n.bit_length() - 4))
  return -(-n // q) * q


def pad_to(x: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
  """``x`` (H, W, ...) zero-padded at the bottom and right to ``hw`` (host)."""
  if tuple(x.shape[:2]) == tuple(hw):
    return np.asarray(x)
  out = np.zeros((*hw, *x.shape[2:]), x.dtype)
  out[:x.shape[0], :x.shape[1]] = x
  return out


def tiled(fn, rows: int, tile: int, cols: int, channels: int = 3, progress=None,
          dtype=np.float32) -> np.ndarray:
  """Host loop: ``fn(start)`` -> (tile, cols, C) for each tile; returns (rows, cols, C)."""
  out = np.empty((rows, cols, channels), dtype)
  for start in range(0, rows, tile):
    n = min(tile, rows - start)
    out[start:start + n] = np.asarray(fn(np.int32(start)))[:n]
    if progress:
      progress(start + n, rows)
  return out


def tile_rows(cols: int, in_cols: int, budget_bytes: int = 64 << 20) -> int:
  """Rows per tile so that one tile's gathers (taps x columns x 3 float32) fit the budget."""
  per_row = (max(cols, in_cols) * 3 * 4) * 6  # 5 cubic taps + the output row
  return int(max(8, min(1024, budget_bytes // per_row)))


# ----------------------------------------------------------------------------- the phase


def _lift(plan: deep_carving.AxisPlan, shallow: str) -> AxisLift:
  kept = plan.kept[shallow]
  source_hw = plan.importance[shallow].shape  # (kept is wider when enlarging)
  return AxisLift(kept, plan.num_valid[shallow], plan.cell_widths,  # (NumPy sizes:
                          np.asarray(source_hw, np.int32),  # no eager op)
                          plan.num_cells if isinstance(plan.num_cells, jax.Array)  # (traced
                          else np.asarray(plan.num_cells, np.int32))  # in retarget_pure)


@functools.partial(jax.jit, static_argnames=("out_len", "tile"))
def _correction_tile(final, init, out_hw, start, tile, out_len):
  return upsampled_tile(final - init, out_hw, start, tile, out_len)


def full_resolution(image: jax.Array, prep, work_final: jax.Array, s,
                    cfg: RetargetConfig, shallow: str, tile: int | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    correct: bool = True):
  """The output at full resolution: lifted maps on the full pixels + ``up(final - init)``
  (``correct=False``: the lifted maps alone, for a plan that ran no Eq. 4).

  ``tile=None`` computes everything in one piece (pure, jit/vmap-able, returns a jax
  array); an integer runs host loops over row tiles of that many rows (memory bounded
  by the tile) on arrays padded to :func:`size_class` sizes (one compilation
  per size class, not per photo size) and returns a NumPy array. Both return float32
  0..255, (H', W', 3), except the host path of a resampling (``correct=False``), which
  returns the final uint8 pixels (rounded on the device).
  """
  (h, w), (oh, ow) = s.image, s.out
  plan, init = prep.plan, prep.init
  if deep_carving.height_first(plan):
    total = w + oh + oh
  else:
    total = (h if plan.width is not None else 0) + (ow if plan.height is not None else 0) + oh
  done = [0]
  host = tile is not None
  as_uint8 = host and not correct  # the lifts are then the final pixels
  cls = size_class if host else (lambda n: n)

  def run(fn, rows, cols, length):
    """``fn(start, n)`` -> rows [start, start + n) of a (rows, length, 3) result whose
    first ``cols`` columns are real; returns (rows, cols, 3)."""
    if not host:
      return fn(np.int32(0), rows)[:, :cols]
    report = (lambda d, _: progress(done[0] + d, total)) if progress else None
    out = tiled(lambda start: fn(start, tile), rows, tile, length, progress=report,
                dtype=np.uint8 if as_uint8 else np.float32)
    done[0] += rows
    return out[:, :cols]

  def lift_axis(src, axis_plan, out_cols):
    """``src`` (R, C, 3) -> (R, out_cols, 3) through one axis's lifted plan."""
    rows, cols = src.shape[:2]
    lift, length = _lift(axis_plan, shallow), cls(out_cols)
    size = (np.int32(rows), np.int32(cols))
    if not host:
      bound = stretch_bound(cfg)
      return run(lambda st, n: lifted_tile(src, lift, st, size, np.int32(out_cols),
                                           length, max_stretch=bound), rows, out_cols, length)
    # Host: each call sees one band of rows padded to the width's size class, and the
    # plan padded to a square of its long side, so the compilation depends on neither
    # the photo's height nor the working shape (a folder of photos shares it).
    src = np.asarray(src)
    lift = pad_lift(jax.device_get(lift))
    band = lambda st: jax.device_put(pad_to(src[st:st + tile], (tile, cls(cols))))
    coords, scale = compilation.call(lifted_row, lift, size, np.int32(out_cols),
                                     out_len=length)
    # The plan's largest squeeze, rounded up to a class: the taps the samplers need.
    bound = stretch_class(float(np.max(np.asarray(scale)[:out_cols])))
    if row_uniform(lift):  # a crop / warp: one map for all rows (the result is the same)
      return run(lambda st, n: compilation.call(uniform_tile, band(int(st)), coords, scale,
                                                size[1], as_uint8=as_uint8,
                                                max_stretch=bound),
                 rows, out_cols, length)
    return run(lambda st, n: compilation.call(lifted_tile, band(int(st)), lift, st, size,
                                              np.int32(out_cols), out_len=length,
                                              as_uint8=as_uint8, max_stretch=bound),
               rows, out_cols, length)

  xp = np if host else jnp
  if cfg.reconstruction.init == "seams":
    base = image
    steps = [(plan.width, False, ow), (plan.height, True, oh)]
    if deep_carving.height_first(plan):
      steps.reverse()
    for axis_plan, transposed, n_out in steps:
      if axis_plan is None:
        continue
      if transposed:
        base = xp.swapaxes(lift_axis(xp.swapaxes(base, 0, 1), axis_plan, n_out), 0, 1)
      else:
        base = lift_axis(base, axis_plan, n_out)
  elif cfg.reconstruction.init == "linear":
    base = _resize(image, (oh, ow), "linear")
  else:  # noise init: the input's detail has no place to go; upsample the result
    base = _resize(init, (oh, ow), "cubic")
  if not correct:
    if progress:
      progress(total, total)
    if as_uint8 and base is not image:
      return base
    return xp.clip(xp.asarray(base, xp.float32), 0.0, 255.0)
  if not host:
    out_size = (np.int32(oh), np.int32(ow))
    corr = run(lambda st, n: _correction_tile(work_final, init, out_size, st, n, (oh, ow)),
               oh, ow, ow)
    return jnp.clip(base + corr, 0.0, 255.0)
  # Host: the low-frequency correction is a small image upsampled: NumPy, no compilation.
  fresh = base is not image and isinstance(base, np.ndarray) and base.flags.writeable
  out = base if fresh and base.dtype == np.float32 else np.array(base, np.float32)
  resample.resize_host(np.asarray(work_final, np.float32) - np.asarray(init, np.float32),
                       (oh, ow), "cubic", add_to=out)
  if progress:
    progress(total, total)
  return np.clip(out, 0.0, 255.0, out=out)


def full_resolution_tiled(image, prep, work_final, s, cfg: RetargetConfig,
                          shallow: str, progress: Callable[[int, int], None] | None = None,
                          correct: bool = True) -> np.ndarray:
  """:func:`full_resolution` in row tiles sized for a 64 MB budget (the host path)."""
  cls = size_class
  tile = tile_rows(max(cls(s.out[1]), cls(s.image[1])), cls(s.image[1]))
  return full_resolution(np.asarray(image), prep, jax.device_put(work_final), s, cfg, shallow,
                         tile=tile, progress=progress, correct=correct)


@functools.partial(jax.jit, static_argnames=("out_hw", "kind"))
def _resize(image, out_hw, kind):
  return resample.resize(image, out_hw, kind)
