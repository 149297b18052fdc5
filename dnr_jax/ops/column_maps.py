"""Column maps: one static-shape representation for every width-changing operator.

A :class:`ColumnMap` says, for every output position (y, x'), which two source
columns of row y to blend and with what weight:

    out[y, x'] = (1 - weight1) * src[y, index0] + weight1 * src[y, index1].

Linear scaling, seam removal, grid warping (Eq. 3) and seam removal followed by
warping are all of this form, and the shapes depend only on (h, w, w'), never on
the data, so everything built from them jits once per (input, output) size.

Departure from ``shared/DESIGN.md``: the sketch keeps one fractional source
coordinate per output position. After seam removal, two neighbouring output
positions can come from source columns that are 2+ apart; interpolating the
*coordinate* between them would sample the removed seam. Two indices and a weight
interpolate the *values* of the kept columns instead, which is what composing
"remove seams, then warp" means.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp


class ColumnMap(NamedTuple):
  index0: jax.Array  # (h, w_out) int32
  index1: jax.Array  # (h, w_out) int32
  weight1: jax.Array  # (h, w_out) float32 in [0, 1]


def apply(x: jax.Array, cmap: ColumnMap) -> jax.Array:
  """Resamples (h, w, ...) to (h, w_out, ...) along axis 1."""
  chex.assert_equal_shape([cmap.index0, cmap.index1, cmap.weight1])
  h, w_out = cmap.index0.shape
  if x.shape[0] != h:
    raise ValueError(f"column map for {h} rows applied to an array of shape {x.shape}")
  extra = (1,) * (x.ndim - 2)
  full = (h, w_out) + x.shape[2:]
  g0 = jnp.take_along_axis(x, jnp.broadcast_to(cmap.index0.reshape((h, w_out) + extra), full), 1)
  g1 = jnp.take_along_axis(x, jnp.broadcast_to(cmap.index1.reshape((h, w_out) + extra), full), 1)
  t = cmap.weight1.reshape((h, w_out) + extra)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    g0, g1 = g0.astype(jnp.float32), g1.astype(jnp.float32)
  return g0 + t.astype(g0.dtype) * (g1 - g0)


def from_kept(kept: jax.Array, num_valid: jax.Array | int, coords: jax.Array) -> ColumnMap:
  """Samples the first ``num_valid`` kept columns at fractional positions ``coords``.

  Args:
    kept: (h, w) source column of each position after seam removal (int), or after
      seam insertion (float: a duplicated seam's copy sits at x + 0.5, see
      :func:`dnr_jax.ops.seams.insertion_coords`).
    num_valid: how many leading positions of ``kept`` are valid (traced OK).
    coords: (w_out,) or (h, w_out) float positions in [0, num_valid - 1].

  Between two neighbouring positions whose sources are at most one column apart (no
  seam removed between them) the *coordinate* is interpolated, which is exact for
  inserted half columns; across a removed seam the two kept columns' *values* are
  blended (see the module docstring). For integer ``kept`` both give the same map.
  """
  h = kept.shape[0]
  coords = jnp.broadcast_to(coords, (h, coords.shape[-1])).astype(jnp.float32)
  last = jnp.asarray(num_valid, jnp.int32) - 1
  c = jnp.clip(coords, 0.0, last.astype(jnp.float32))
  i0 = jnp.clip(jnp.floor(c).astype(jnp.int32), 0, last)
  i1 = jnp.minimum(i0 + 1, last)
  t = c - i0.astype(jnp.float32)
  if not jnp.issubdtype(kept.dtype, jnp.floating):
    return ColumnMap(jnp.take_along_axis(kept, i0, 1), jnp.take_along_axis(kept, i1, 1), t)
  k0 = jnp.take_along_axis(kept, i0, 1)
  k1 = jnp.take_along_axis(kept, i1, 1)
  x = k0 + t * (k1 - k0)  # adjacent: a coordinate
  base = jnp.floor(x)
  near = (k1 - k0) <= 1.0
  idx0 = jnp.where(near, base, jnp.floor(k0)).astype(jnp.int32)
  # (k1 <= the last source column, so ceil(k1) is a valid column >= x)
  idx1 = jnp.where(near, jnp.minimum(base + 1.0, jnp.ceil(k1)), jnp.floor(k1)).astype(jnp.int32)
  weight = jnp.where(near, x - base, t)
  return ColumnMap(idx0, idx1, weight)


def linear_coords(num_src: jax.Array | int, w_out: int) -> jax.Array:
  """Half-pixel-centred linear scale: output x' samples source (x'+0.5)*n/w' - 0.5."""
  x = jnp.arange(w_out, dtype=jnp.float32)
  return (x + 0.5) * (jnp.asarray(num_src, jnp.float32) / w_out) - 0.5


def identity_kept(h: int, w: int) -> jax.Array:
  return jnp.broadcast_to(jnp.arange(w, dtype=jnp.int32), (h, w))


def linear_scale(h: int, w: int, w_out: int) -> ColumnMap:
  """Column map of a uniform 1-D linear scale from width w to w_out."""
  return from_kept(identity_kept(h, w), w, linear_coords(w, w_out))


# ----------------------------------------------------------------------------- warping


def warp_cell_widths(cell_importance: jax.Array, width_in: jax.Array, width_out: jax.Array,
                     min_scale: float = 0.2, iterations: int = 60,
                     protected: jax.Array | None = None, power: float = 1.0) -> jax.Array:
  """Output widths of equal input column cells, proportional to importance (Eq. 3).

  Eq. 3 sets sigma_i = (w'/w_G) * mu_i / sum(mu), i.e. each cell's new width is
  proportional to its importance and the widths sum to w'. The paper also states
  sigma_i in [0, 1]; Eq. 3 alone does not guarantee that (an important cell could be
  widened while the image shrinks, an empty one could vanish). Departure: widths are
  t * mu_i clipped to [min_scale, 1] x the input cell width, with t found by bisection
  so that they sum to w' (water-filling), then rescaled for an exact sum.

  Enlarging (``width_out > width_in``, traced) is the same water-filling on 1 / mu_i
  clipped to [1, 1 / min_scale] x the input cell width: the least important cells
  stretch most and no cell shrinks. ``protected`` (n,) bool cells (keep masks) keep
  their input width exactly whenever the others can absorb the change.

  ``power`` (static): the importance is raised to it first (mu_i / mean(mu))^power.
  Departure, measured (docs/history/LAB_LOG.md, "A sharper warp"): a cell's importance is the
  column mean of the Eq. 1 maps, which varies little across an image, so with Eq. 3's
  proportional widths a 25% shrink squeezed the subject nearly as much as the
  background; above 1 the least important cells take the squeeze and the important
  ones keep their width. 1 = Eq. 3 as written.

  Args:
    cell_importance: (n,) non-negative importance of each input cell.
    width_in: total input width (cells are width_in / n each).
    width_out: total output width.
  Returns:
    (n,) float32 output widths summing to width_out.
  """
  mu = jnp.maximum(cell_importance.astype(jnp.float32), 1e-6)
  if power != 1.0:
    mu = jnp.maximum((mu / jnp.mean(mu)) ** power, 1e-6)
  n = mu.shape[0]
  a = jnp.asarray(width_in, jnp.float32) / n
  target = jnp.asarray(width_out, jnp.float32)
  enlarge = target > jnp.asarray(width_in, jnp.float32)
  mu = jnp.where(enlarge, 1.0 / mu, mu)
  lo = jnp.where(enlarge, a, min_scale * a)
  hi = jnp.where(enlarge, a / min_scale, a)
  if protected is not None:
    lo = jnp.where(protected, a, lo)
    hi = jnp.where(protected, a, hi)
  base = a / jnp.mean(mu)

  def total(log_t):
    return jnp.sum(jnp.clip(base * jnp.exp(log_t) * mu, lo, hi))

  def bisect(_, bounds):
    l, u = bounds
    m = 0.5 * (l + u)
    too_big = total(m) > target
    return jnp.where(too_big, l, m), jnp.where(too_big, m, u)

  l, u = jax.lax.fori_loop(0, iterations, bisect, (jnp.float32(-30.0), jnp.float32(30.0)))
  widths = jnp.clip(base * jnp.exp(0.5 * (l + u)) * mu, lo, hi)
  if protected is None:
    return widths * (target / jnp.sum(widths))
  # The exact sum is taken from the free cells where they can give it.
  free = ~jnp.broadcast_to(protected, widths.shape)
  excess = jnp.sum(widths) - target
  free_sum = jnp.sum(jnp.where(free, widths, 0.0))
  ok = (free_sum > 1e-6) & (free_sum - excess > 0.0)
  scaled_free = jnp.where(free, widths * ((free_sum - excess) / jnp.maximum(free_sum, 1e-6)),
                          widths)
  return jnp.where(ok, scaled_free, widths * (target / jnp.sum(widths)))


def _output_cells(cell_widths: jax.Array, w_out, length: int | None, num_cells):
  """(n, normalised cell edges (n + 1,), output positions v in (0, 1), the cell of each)."""
  n = cell_widths.shape[0] if num_cells is None else num_cells
  edges = jnp.concatenate([jnp.zeros(1), jnp.cumsum(cell_widths)])
  edges = edges / edges[-1]
  v = (jnp.arange(w_out if length is None else length, dtype=jnp.float32) + 0.5) / w_out
  # The cell holding each v: how many inner edges lie at or below it (a comparison
  # matrix: cells are few, and it traces and compiles much faster than searchsorted).
  cell = jnp.clip(jnp.sum(edges[None, 1:] <= v[:, None], axis=1), 0, n - 1)
  return n, edges, v, cell


def warp_coords(cell_widths: jax.Array, num_src: jax.Array | int, w_out,
                length: int | None = None, num_cells=None) -> jax.Array:
  """Source positions (w_out,) of a piecewise-linear column-cell warp.

  The source domain [0, num_src) is cut into n equal cells; cell i becomes
  ``cell_widths[i] / sum(cell_widths)`` of the output. Coordinates are normalised,
  so the same widths drive every layer, whatever its resolution. ``length`` (static)
  pads the result for a traced ``w_out`` (positions past ``w_out`` are meaningless);
  ``num_cells`` (may be traced) is n when ``cell_widths`` is zero-padded past it.
  """
  n, edges, v, cell = _output_cells(cell_widths, w_out, length, num_cells)
  frac = (v - edges[cell]) / jnp.maximum(edges[cell + 1] - edges[cell], 1e-12)
  u = (cell.astype(jnp.float32) + jnp.clip(frac, 0.0, 1.0)) / jnp.asarray(n, jnp.float32)
  return u * jnp.asarray(num_src, jnp.float32) - 0.5


def warp_scale(cell_widths: jax.Array, num_src: jax.Array | int, w_out,
               length: int | None = None, num_cells=None) -> jax.Array:
  """Source pixels per output pixel (w_out,) of :func:`warp_coords`' warp, per output
  position (constant within a cell): > 1 where a cell is squeezed. A sampler widens
  its kernel by it there (antialiasing); arguments as :func:`warp_coords`."""
  n, edges, _, cell = _output_cells(cell_widths, w_out, length, num_cells)
  out_px = jnp.maximum(edges[cell + 1] - edges[cell], 1e-12) * jnp.asarray(w_out, jnp.float32)
  return jnp.asarray(num_src, jnp.float32) / jnp.asarray(n, jnp.float32) / out_px


def cell_profile(column_importance: jax.Array, num_valid: jax.Array | int, num_cells: int,
                 samples_per_cell: int = 8) -> jax.Array:
  """Mean of a column profile's valid part over ``num_cells`` equal normalised cells.

  Works for coarse profiles (fewer columns than cells: linear interpolation) and fine
  ones (many columns per cell: averaged over ``samples_per_cell`` points).
  """
  n = jnp.asarray(num_valid, jnp.float32)
  u = (jnp.arange(num_cells * samples_per_cell, dtype=jnp.float32) + 0.5) / (
      num_cells * samples_per_cell)
  p = jnp.clip(u * n - 0.5, 0.0, n - 1.0)
  i0 = jnp.floor(p).astype(jnp.int32)
  i1 = jnp.minimum(i0 + 1, jnp.asarray(num_valid, jnp.int32) - 1)
  t = p - i0
  vals = column_importance[i0] * (1 - t) + column_importance[i1] * t
  return vals.reshape(num_cells, samples_per_cell).mean(axis=1)


def cells_holding(columns: jax.Array, num_valid: jax.Array | int, num_cells: int) -> jax.Array:
  """(num_cells,) bool: the equal normalised cells of the first ``num_valid`` positions
  that overlap a True of ``columns`` (w,) bool (a position straddling two cells marks
  both): exact, unlike a sampled :func:`cell_profile`."""
  n = jnp.asarray(num_valid, jnp.float32)
  j = jnp.arange(columns.shape[0], dtype=jnp.float32)
  live = columns & (j < n)
  first = jnp.clip(jnp.floor(j * num_cells / n), 0, num_cells - 1).astype(jnp.int32)
  last = jnp.clip(jnp.ceil((j + 1) * num_cells / n) - 1, 0, num_cells - 1).astype(jnp.int32)
  cells = jnp.zeros((num_cells,), bool).at[first].max(live)
  return cells.at[last].max(live)
