"""Vertical seams by dynamic programming, jit-compiled, with static shapes.

A seam is one column per row, 8-connected (|dx| <= 1 between rows), of minimum
total energy (Avidan & Shamir 2007). The cumulative-energy pass and the
backtracking are each one ``lax.scan`` over rows, vectorised across the width.

Carving k seams keeps every array at the input width: after each removal the rows
are shifted left (a gather) and the last columns become invalid (+inf energy), and
``kept[y, j]`` records which source column now sits at position j. ``k`` may be a
traced value (the threshold stop of the deep multi-operator); the loop is a
``lax.while_loop`` bounded by a static maximum.

Energies:
- a fixed map (feature-space importance, Eq. 1/2): removing a seam does not change
  the other positions' importance, so the map is only shifted;
- image-space ``backward`` energy (gradient magnitude, recomputed after every
  removal) and ``forward`` energy (Rubinstein, Shamir & Avidan 2008: the cost of the
  new edges a removal creates), both from the current carved image.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

INF = float("inf")  # a Python float: no device array at import (jax.distributed needs that)
# Energy of positions no seam may use (keep masks): far above any importance sum, finite
# so the dynamic programme still orders the paths. A seam whose total reaches
# FORBIDDEN_LIMIT crosses at least one such position.
FORBIDDEN = 1e12
FORBIDDEN_LIMIT = 0.5e12


class StepCosts(NamedTuple):
  """Extra cost of reaching (i, j) from (i-1, j-1), (i-1, j), (i-1, j+1); (h, w) each."""

  left: jax.Array
  up: jax.Array
  right: jax.Array


_STEP_OFFSETS = np.array([0, -1, 1], np.int32)  # the column offset of each DP candidate


def tie_priority(width: int) -> jax.Array:
  """(width,) float32 in [0, 1): the order in which columns of equal cost are taken.

  The fractional parts of ``j x (golden ratio - 1)`` spread any run of columns evenly
  (each new column lands in the largest gap left), so equal-cost seams (a flat sky)
  are taken across the whole run instead of from its left end.
  """
  j = np.arange(width, dtype=np.float64)
  return jnp.asarray(np.mod(j * 0.6180339887498949, 1.0), jnp.float32)


def _cheapest_columns(cost: jax.Array) -> jax.Array:
  """Column indices of ``cost`` (w,), cheapest first, equal costs in
  :func:`tie_priority` order."""
  return jnp.lexsort((tie_priority(cost.shape[0]), cost)).astype(jnp.int32)


def cumulative_energy(energy: jax.Array, costs: StepCosts | None = None
                      ) -> tuple[jax.Array, jax.Array]:
  """Dynamic programming pass: M(i,j) = e(i,j) + min_d [M(i-1, j+d) + cost_d(i,j)].

  Args:
    energy: (h, w) float; +inf marks columns a seam may not use.
    costs: optional forward-energy step costs.
  Returns:
    M: (h, w) cumulative minimum energy; choice: (h, w) int32 in {-1, 0, 1}, the
    column offset of the best parent (row 0's is 0).
  """
  chex.assert_rank(energy, 2)
  e = energy.astype(jnp.float32)
  h, w = e.shape
  if costs is None:
    zeros = jnp.zeros_like(e)
    costs = StepCosts(zeros, zeros, zeros)
  inf_col = jnp.full((1,), INF)

  def row(m_prev, xs):
    e_row, c_l, c_u, c_r = xs
    from_left = jnp.concatenate([inf_col, m_prev[:-1]]) + c_l
    from_up = m_prev + c_u
    from_right = jnp.concatenate([m_prev[1:], inf_col]) + c_r
    # "up" first: an exact tie (a flat colour, as in graphics or a clipped sky) keeps
    # the seam straight. With "left" first every tie moved the seam one column left per
    # row, so seams through a flat area ran diagonally into the left border (rare on
    # photos: the diagonal tears of the seams there have another cause, RESULTS).
    cand = jnp.stack([from_up, from_left, from_right])
    best = jnp.argmin(cand, axis=0)
    m = e_row + jnp.min(cand, axis=0)
    return m, (m, jnp.asarray(_STEP_OFFSETS)[best])

  m0 = e[0]
  _, (m_rest, choice_rest) = jax.lax.scan(
      row, m0, (e[1:], costs.left[1:], costs.up[1:], costs.right[1:]))
  m_all = jnp.concatenate([m0[None], m_rest])
  choice = jnp.concatenate([jnp.zeros((1, w), jnp.int32), choice_rest])
  return m_all, choice


def backtrack(m_all: jax.Array, choice: jax.Array) -> jax.Array:
  """The minimal seam (h,) int32 ending at argmin of the last row of M."""
  end = m_all[-1]
  last = jnp.argmin(jnp.where(end == jnp.min(end), tie_priority(end.shape[0]), 2.0))
  last = last.astype(jnp.int32)

  def step(j, choice_row):
    return j + choice_row[j], j

  first, rest = jax.lax.scan(step, last, choice[1:], reverse=True)
  return jnp.concatenate([first[None], rest])


def find_seam(energy: jax.Array, costs: StepCosts | None = None) -> tuple[jax.Array, jax.Array]:
  """Minimum-cost vertical seam: returns (seam (h,) int32, total cost scalar)."""
  m_all, choice = cumulative_energy(energy, costs)
  seam = backtrack(m_all, choice)
  return seam, jnp.min(m_all[-1])


def remove_seam(x: jax.Array, seam: jax.Array) -> jax.Array:
  """Removes one position per row from (h, w, ...) keeping the shape (last column repeats)."""
  h, w = x.shape[:2]
  j = jnp.arange(w)[None, :]
  src = jnp.minimum(j + (j >= seam[:, None]), w - 1)
  src = src.reshape(src.shape + (1,) * (x.ndim - 2))
  return jnp.take_along_axis(x, jnp.broadcast_to(src, (h, w) + x.shape[2:]), axis=1)


class CarveResult(NamedTuple):
  kept: jax.Array  # (h, w) int32: source column at each position; first w - num_removed valid
  num_removed: jax.Array  # () int32
  seams: jax.Array  # (max_seams, h) int32: removed seams in *source* columns, in order
  seam_means: jax.Array  # (max_seams,) float32: each seam's mean energy (inf if not carved)


EnergyFn = Callable[[object, jax.Array], tuple[jax.Array, StepCosts | None]]


def carve(payload, num_seams: jax.Array | int, max_seams: int,
          energy_fn: EnergyFn,
          stop_threshold: jax.Array | float | None = None,
          stop_energy_fn: Callable[[object, jax.Array], jax.Array] | None = None,
          limit: float | None = None, force_first: bool = True) -> CarveResult:
  """Removes up to ``num_seams`` (traced OK, <= ``max_seams``) seams, with static shapes.

  Args:
    payload: pytree of (h, w, ...) arrays shifted with each removal (energy, image...).
    num_seams: how many seams to remove.
    max_seams: static upper bound (array sizes).
    energy_fn: (payload, valid_width) -> (energy (h, w) with +inf past valid_width, costs).
    stop_threshold: if given, the first seam is always removed (unless not
      ``force_first``) and each further one only while its mean energy is <= this
      value (the deep multi-operator's stop).
    stop_energy_fn: (payload, seam) -> mean energy compared with the threshold
      (default: the seam's mean of ``energy_fn``'s energy).
    limit: if given, a seam whose total energy reaches it is never taken, and carving
      stops there (hard constraints: positions of energy :data:`FORBIDDEN` are
      never carved with ``limit=FORBIDDEN_LIMIT``).
  """
  leaves = jax.tree_util.tree_leaves(payload)
  h, w = leaves[0].shape[:2]
  max_seams = int(min(max_seams, w - 1))
  num_seams = jnp.clip(jnp.asarray(num_seams, jnp.int32), 0, max_seams)
  rows = jnp.arange(h)

  def cond(state):
    i, _, _, _, _, done = state
    return (i < num_seams) & ~done

  def body(state):
    i, kept, pay, seams, means, _ = state
    energy, costs = energy_fn(pay, w - i)
    seam, total = find_seam(energy, costs)
    if stop_energy_fn is None:
      mean = jnp.mean(energy[rows, seam])
    else:
      mean = stop_energy_fn(pay, seam)
    accept = ((i == 0) & force_first) if stop_threshold is not None else jnp.bool_(True)
    if stop_threshold is not None:
      accept = accept | (mean <= stop_threshold)
    if limit is not None:
      accept = accept & (total < limit)
    new_kept = remove_seam(kept, seam)
    new_pay = jax.tree_util.tree_map(lambda a: remove_seam(a, seam), pay)
    sel = lambda new, old: jnp.where(accept, new, old)  # noqa: E731
    seams = seams.at[i].set(jnp.where(accept, kept[rows, seam], seams[i]))
    means = means.at[i].set(jnp.where(accept, mean, means[i]))
    return (i + accept.astype(jnp.int32), sel(new_kept, kept),
            jax.tree_util.tree_map(sel, new_pay, pay), seams, means, ~accept)

  init = (jnp.int32(0), jnp.broadcast_to(jnp.arange(w, dtype=jnp.int32), (h, w)), payload,
          jnp.zeros((max(max_seams, 1), h), jnp.int32),
          jnp.full((max(max_seams, 1),), INF), jnp.bool_(False))
  n, kept, _, seams, means, _ = jax.lax.while_loop(cond, body, init)
  return CarveResult(kept, n, seams, means)


def _mask_invalid(e: jax.Array, valid_width: jax.Array) -> jax.Array:
  return jnp.where(jnp.arange(e.shape[1])[None, :] < valid_width, e, INF)


def fixed_energy_fn(pay, valid_width):
  """Energy function for a payload that *is* the (h, w) energy map (feature space)."""
  return _mask_invalid(pay, valid_width), None


def _neighbours(img: jax.Array, valid_width: jax.Array):
  """Left/right/up/down neighbours of every pixel, clamped to the valid region.

  Shifted slices and one select at the right border (no gathers: this runs once per
  carving pass over the whole image).
  """
  j = jnp.arange(img.shape[1]).reshape((1, -1) + (1,) * (img.ndim - 2))
  left = jnp.concatenate([img[:, :1], img[:, :-1]], axis=1)
  right = jnp.concatenate([img[:, 1:], img[:, -1:]], axis=1)
  right = jnp.where(j >= valid_width - 1, img, right)
  up = jnp.concatenate([img[:1], img[:-1]], axis=0)
  down = jnp.concatenate([img[1:], img[-1:]], axis=0)
  return left, right, up, down


def _gray(img: jax.Array) -> jax.Array:
  return img if img.ndim == 2 else jnp.mean(img, axis=-1)


def backward_energy_fn(img, valid_width):
  """Classic seam-carving energy |dI/dx| + |dI/dy| of the brightness (central differences).

  ``img`` is (h, w) brightness or (h, w, C) (averaged over channels first), as liblqr
  and the ``seam-carving`` package do.
  """
  left, right, up, down = _neighbours(_gray(img), valid_width)
  e = (jnp.abs(right - left) + jnp.abs(down - up)) * 0.5
  return _mask_invalid(e, valid_width), None


def forward_energy_fn(img, valid_width):
  """Forward energy: the intensity jumps that removing (i, j) creates (Rubinstein 2008)."""
  gray = _gray(img)
  left, right, up, _ = _neighbours(gray, valid_width)
  c_u = jnp.abs(right - left)
  c_l = c_u + jnp.abs(up - left)
  c_r = c_u + jnp.abs(up - right)
  zero = jnp.zeros_like(gray)
  return _mask_invalid(zero, valid_width), StepCosts(c_l, c_u, c_r)


def feature_forward_energy_fn(weight: float) -> EnergyFn:
  """Forward energy in feature space, for a payload ``(energy (h, w), features (h, w, c))``.

  The energy is the (Eq. 1/2) map; the step costs are ``weight`` x the feature
  distances that removing (i, j) creates, as in :func:`forward_energy_fn` with the L2
  norm over channels in place of the brightness difference: ||F(i, j+1) - F(i, j-1)||
  for every step (the first row's in the energy), plus ||F(i-1, j) - F(i, j-/+1)|| for
  a diagonal one. A seam through
  the boundary of an object then pays for the new edge it draws (the jagged fringes of
  importance-only seams), and a seam through uniform texture pays nothing extra.
  """

  def fn(pay, valid_width):
    energy, feats = pay
    left, right, up, _ = _neighbours(feats.astype(jnp.float32), valid_width)
    dist = lambda a, b: jnp.sqrt(jnp.sum(jnp.square(a - b), axis=-1))  # noqa: E731
    c_u = weight * dist(right, left)
    c_l = c_u + weight * dist(up, left)
    c_r = c_u + weight * dist(up, right)
    # the first row has no step into it: it pays its horizontal cost in the energy
    energy = energy + jnp.where(jnp.arange(energy.shape[0])[:, None] == 0, c_u, 0.0)
    return _mask_invalid(energy, valid_width), StepCosts(c_l, c_u, c_r)

  return fn


def with_diagonal_cost(energy_fn: EnergyFn, weight: float, border: int = 0) -> EnergyFn:
  """``energy_fn`` whose seams also pay for every sideways step: ``weight`` x the mean
  energy of the usable positions (finite, below :data:`FORBIDDEN_LIMIT`) is added to
  the cost of a diagonal step of the DP (:class:`StepCosts` left and right). The
  first and last ``border`` valid positions are left out of that mean: an enlarging
  plan keeps seams out of its border band with a finite penalty larger than any path
  (:func:`dnr_jax.resizing.deep_carving.plan_width`), which would otherwise set the step cost.

  Many seams carved in turn follow one cheap valley; where it runs diagonally the
  band they remove slides the content on its two sides past each other, and every
  straight structure that crosses it is cut on a slant (a pillar sliced from its
  capital to its base, a canal bank broken into steps). A seam that pays to move
  sideways runs straight unless the saving is worth it: the content then closes up
  along vertical lines, which straight structures survive (docs/history/LAB_LOG.md, "Seams
  that run straight"). 0 = the DP of Eq. 1/2 as it was."""
  if weight <= 0:
    return energy_fn

  def fn(pay, valid_width):
    energy, costs = energy_fn(pay, valid_width)
    usable = jnp.isfinite(energy) & (energy < FORBIDDEN_LIMIT)
    if border > 0:
      x = jnp.arange(energy.shape[1])
      usable = usable & ((x >= border) & (x < valid_width - border))[None, :]
    step = weight * (jnp.sum(jnp.where(usable, energy, 0.0))
                     / jnp.maximum(jnp.sum(usable), 1).astype(jnp.float32))
    if costs is None:
      zeros = jnp.zeros_like(energy, dtype=jnp.float32)
      costs = StepCosts(zeros, zeros, zeros)
    return energy, StepCosts(costs.left + step, costs.up, costs.right + step)

  return fn


def default_batch(width: int) -> int:
  """Seams per DP pass: 1/32 of the width (measured trade-off, docs/history/LAB_LOG.md)."""
  return max(1, width // 32)


def carve_image(image: jax.Array, num_seams: int, energy: str = "backward",
                batch: int | None = None) -> CarveResult:
  """Image-space seam carving of (h, w, 3) to width w - num_seams (static).

  Only the brightness travels through the carving (the energy's input); the caller
  applies ``kept`` to the colour image once. ``batch`` seams per DP pass (default
  :func:`default_batch`; 1 = the classic one seam per pass).
  """
  chex.assert_rank(image, 3)
  fn = {"backward": backward_energy_fn, "forward": forward_energy_fn}[energy]
  gray = jnp.mean(image.astype(jnp.float32), axis=-1)
  batch = default_batch(image.shape[1]) if batch is None else batch
  if batch <= 1:
    return carve(gray, num_seams, num_seams, fn)
  return carve_batched(gray, num_seams, num_seams, fn, batch)


def removed_mask(result: CarveResult, width: int) -> jax.Array:
  """(h, w) bool: True where a source position was removed by a carved seam."""
  k, h = result.seams.shape
  valid = (jnp.arange(k) < result.num_removed)[:, None]
  rows = jnp.broadcast_to(jnp.arange(h)[None, :], (k, h))
  return jnp.zeros((h, width), bool).at[rows, result.seams].max(jnp.broadcast_to(valid, (k, h)))


# ----------------------------------------------------------------------------- batched


def _separate(parents: jax.Array, active: jax.Array, valid_width: jax.Array) -> jax.Array:
  """Keeps the active seams' parents strictly increasing and inside the valid width.

  ``parents`` (b,) are sorted by column with the active seams first. A left-to-right
  running maximum of ``parents - index`` pushes a seam that would merge with (or cross)
  its left neighbour one column to the right of it; the clamp keeps the last seams
  inside the valid width. Both keep every seam 8-connected (|dx| <= 1): the children
  are strictly increasing, so a pushed parent is at most its child's column + 1.
  """
  b = parents.shape[0]
  idx = jnp.arange(b, dtype=jnp.int32)
  n = jnp.sum(active.astype(jnp.int32))
  q = jax.lax.cummax(jnp.where(active, parents - idx, jnp.iinfo(jnp.int32).min // 2))
  sep = jnp.minimum(q + idx, valid_width - n + idx)
  return jnp.where(active, sep, parents)


def find_seams(energy: jax.Array, num: jax.Array, batch: int,
               costs: StepCosts | None = None,
               limit: float | None = None) -> tuple[jax.Array, jax.Array]:
  """Up to ``batch`` disjoint, 8-connected seams from one DP pass.

  The ``num`` (traced, <= batch) cheapest end columns of the cumulative map are traced
  back together; where two paths would merge or cross, the right one is pushed aside
  (:func:`_separate`). Returns (paths (h, batch) int32 sorted left to right per row,
  active (batch,) bool); inactive paths sit past the valid width and must be ignored.
  """
  h, w = energy.shape
  valid_width = jnp.sum(jnp.isfinite(energy[0]).astype(jnp.int32))
  m_all, choice = cumulative_energy(energy, costs)
  rank = jnp.arange(batch, dtype=jnp.int32)
  cheapest = _cheapest_columns(m_all[-1])[:batch]
  active_by_cost = rank < num
  if limit is not None:  # paths through forbidden positions are never taken
    active_by_cost = active_by_cost & (m_all[-1][cheapest] < limit)
  start = jnp.where(active_by_cost, cheapest, w + rank)
  order = jnp.argsort(start)
  x, active = start[order], active_by_cost[order]

  def step(pos, choice_row):
    par = jnp.where(active, pos + choice_row[jnp.clip(pos, 0, w - 1)], pos)
    return _separate(par, active, valid_width), pos

  first, rest = jax.lax.scan(step, x, choice[1:], reverse=True)
  return jnp.concatenate([first[None], rest]), active


def _compaction(removed: jax.Array) -> jax.Array:
  """(h, w) source column of each position once the removed ones are moved to the end.

  A stable partition by one scatter per row (cumulative counts), not a sort.
  """
  h, w = removed.shape
  keep = ~removed
  n_removed = jnp.sum(removed, axis=1, keepdims=True, dtype=jnp.int32)
  dest = jnp.where(keep, jnp.cumsum(keep, axis=1, dtype=jnp.int32) - 1,
                   w - n_removed + jnp.cumsum(removed, axis=1, dtype=jnp.int32) - 1)
  cols = jnp.broadcast_to(jnp.arange(w, dtype=jnp.int32), (h, w))
  return jnp.zeros((h, w), jnp.int32).at[jnp.arange(h)[:, None], dest].set(cols)


def carve_batched(payload, num_seams: jax.Array | int, max_seams: int, energy_fn: EnergyFn,
                  batch: int, limit: float | None = None,
                  stop_threshold: jax.Array | float | None = None) -> CarveResult:
  """Like :func:`carve`, removing up to ``batch`` seams per DP pass.

  ``limit``: as in :func:`carve`, seams whose total energy reaches it are not taken;
  carving ends when a pass finds none. ``stop_threshold``: likewise for seams whose
  mean energy exceeds it (no first seam forced).

  The energy is recomputed between passes, so image-space energies see the carved
  image every ``batch`` seams instead of after every seam; a fixed (feature-space)
  map is only shifted, as in :func:`carve`. Cost: ceil(k / batch) DP passes instead
  of k, each still O(h w); memory O(h w + batch h).
  """
  leaves = jax.tree_util.tree_leaves(payload)
  h, w = leaves[0].shape[:2]
  max_seams = int(min(max_seams, w - 1))
  batch = int(max(1, min(batch, max(max_seams, 1))))
  num_seams = jnp.clip(jnp.asarray(num_seams, jnp.int32), 0, max_seams)
  rows = jnp.arange(h)[:, None]

  def cond(state):
    return (state[0] < num_seams) & ~state[-1]

  def body(state):
    i, kept, pay, seams, means, _ = state
    energy, costs = energy_fn(pay, w - i)
    paths, active = find_seams(energy, jnp.minimum(batch, num_seams - i), batch, costs, limit)
    safe = jnp.clip(paths, 0, w - 1)
    if limit is not None:  # a path pushed aside by a neighbour may meet a forbidden position
      active = active & (jnp.sum(jnp.take_along_axis(energy, safe, axis=1), axis=0) < limit)
    seam_mean = jnp.mean(jnp.take_along_axis(energy, safe, axis=1), axis=0)
    if stop_threshold is not None:
      active = active & (seam_mean <= stop_threshold)
    removed = jnp.zeros((h, w), bool).at[rows, safe].max(jnp.broadcast_to(active, (h, batch)))
    perm = _compaction(removed)

    def compact(a):
      p = perm.reshape(perm.shape + (1,) * (a.ndim - 2))
      return jnp.take_along_axis(a, jnp.broadcast_to(p, a.shape), axis=1)

    source = jnp.take_along_axis(kept, safe, axis=1).T  # (batch, h) source columns
    seams = jax.lax.dynamic_update_slice(seams, source, (i, 0))
    means = jax.lax.dynamic_update_slice(means, jnp.where(active, seam_mean, INF), (i,))
    n = jnp.sum(active.astype(jnp.int32))
    return (i + n, compact(kept), jax.tree_util.tree_map(compact, pay), seams, means, n == 0)

  size = max(max_seams, 1) + batch
  init = (jnp.int32(0), jnp.broadcast_to(jnp.arange(w, dtype=jnp.int32), (h, w)), payload,
          jnp.zeros((size, h), jnp.int32), jnp.full((size,), INF), jnp.bool_(False))
  n, kept, _, seams, means, _ = jax.lax.while_loop(cond, body, init)
  # Within a pass the seams are recorded left to right, not by cost; ``seams[:n]`` are
  # exactly the removed ones.
  return CarveResult(kept, n, seams[:max(max_seams, 1)], means[:max(max_seams, 1)])


# ----------------------------------------------------------------------------- insertion


def insertion_coords(result: CarveResult, width: int, length: int) -> jax.Array:
  """Source coordinates (h, length) of the image with the carved seams *inserted*.

  Seam insertion (Avidan & Shamir 2007, section 3.4) finds the k seams that removal
  would take and duplicates each one instead, the copy being the average of the
  seam and its right neighbour: every source column x appears at its position, and
  after a seam position also at x + 0.5 (x itself at the right border). The seams
  are disjoint, so no position is duplicated twice in one pass and no region
  stretches by more than 2x. Positions past ``width + num_removed`` hold ``width``
  (a sentinel: one past the last column). ``length`` (static) >= width + k.
  """
  ins = removed_mask(result, width).astype(jnp.int32)  # (h, width)
  h = ins.shape[0]
  before = jnp.cumsum(ins, axis=1) - ins
  x = jnp.arange(width, dtype=jnp.int32)[None, :]
  pos = x + before
  rows = jnp.broadcast_to(jnp.arange(h)[:, None], (h, width))
  out = jnp.full((h, length), float(width), jnp.float32)
  out = out.at[rows, pos].set(jnp.broadcast_to(x, (h, width)).astype(jnp.float32))
  copy = jnp.minimum(x.astype(jnp.float32) + 0.5, width - 1.0)
  copy_pos = jnp.where(ins > 0, pos + 1, length)  # out of bounds: dropped
  return out.at[rows, copy_pos].set(jnp.broadcast_to(copy, (h, width)), mode="drop")
