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

INF = jnp.float32(jnp.inf)


class StepCosts(NamedTuple):
  """Extra cost of reaching (i, j) from (i-1, j-1), (i-1, j), (i-1, j+1); (h, w) each."""

  left: jax.Array
  up: jax.Array
  right: jax.Array


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
    cand = jnp.stack([from_left, from_up, from_right])
    best = jnp.argmin(cand, axis=0)
    m = e_row + jnp.min(cand, axis=0)
    return m, (m, best.astype(jnp.int32) - 1)

  m0 = e[0]
  _, (m_rest, choice_rest) = jax.lax.scan(
      row, m0, (e[1:], costs.left[1:], costs.up[1:], costs.right[1:]))
  m_all = jnp.concatenate([m0[None], m_rest])
  choice = jnp.concatenate([jnp.zeros((1, w), jnp.int32), choice_rest])
  return m_all, choice


def backtrack(m_all: jax.Array, choice: jax.Array) -> jax.Array:
  """The minimal seam (h,) int32 ending at argmin of the last row of M."""
  last = jnp.argmin(m_all[-1]).astype(jnp.int32)

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
          stop_energy_fn: Callable[[object, jax.Array], jax.Array] | None = None) -> CarveResult:
  """Removes up to ``num_seams`` (traced OK, <= ``max_seams``) seams, with static shapes.

  Args:
    payload: pytree of (h, w, ...) arrays shifted with each removal (energy, image...).
    num_seams: how many seams to remove.
    max_seams: static upper bound (array sizes).
    energy_fn: (payload, valid_width) -> (energy (h, w) with +inf past valid_width, costs).
    stop_threshold: if given, the first seam is always removed and each further one
      only while its mean energy is <= this value (the deep multi-operator's stop).
    stop_energy_fn: (payload, seam) -> mean energy compared with the threshold
      (default: the seam's mean of ``energy_fn``'s energy).
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
    seam, _ = find_seam(energy, costs)
    if stop_energy_fn is None:
      mean = jnp.mean(energy[rows, seam])
    else:
      mean = stop_energy_fn(pay, seam)
    accept = (i == 0) if stop_threshold is not None else jnp.bool_(True)
    if stop_threshold is not None:
      accept = accept | (mean <= stop_threshold)
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
  """Left/right/up neighbours of every pixel, clamped to the valid region."""
  w = img.shape[1]
  j = jnp.arange(w)
  last = jnp.maximum(valid_width - 1, 0)
  left = jnp.take(img, jnp.clip(j - 1, 0, last), axis=1)
  right = jnp.take(img, jnp.clip(j + 1, 0, last), axis=1)
  up = jnp.concatenate([img[:1], img[:-1]], axis=0)
  down = jnp.concatenate([img[1:], img[-1:]], axis=0)
  return left, right, up, down


def backward_energy_fn(img, valid_width):
  """Classic seam-carving energy |dI/dx| + |dI/dy| (central differences, summed over RGB)."""
  left, right, up, down = _neighbours(img, valid_width)
  e = jnp.sum(jnp.abs(right - left) + jnp.abs(down - up), axis=-1) * 0.5
  return _mask_invalid(e, valid_width), None


def forward_energy_fn(img, valid_width):
  """Forward energy: the intensity jumps that removing (i, j) creates (Rubinstein 2008)."""
  gray = jnp.sum(img, axis=-1) / 3.0
  left, right, _, _ = _neighbours(gray, valid_width)
  up = jnp.concatenate([gray[:1], gray[:-1]], axis=0)
  c_u = jnp.abs(right - left)
  c_l = c_u + jnp.abs(up - left)
  c_r = c_u + jnp.abs(up - right)
  zero = jnp.zeros_like(gray)
  return _mask_invalid(zero, valid_width), StepCosts(c_l, c_u, c_r)


def carve_image(image: jax.Array, num_seams: int, energy: str = "backward") -> CarveResult:
  """Image-space seam carving of (h, w, 3) to width w - num_seams (static)."""
  chex.assert_rank(image, 3)
  fn = {"backward": backward_energy_fn, "forward": forward_energy_fn}[energy]
  return carve(image.astype(jnp.float32), num_seams, num_seams, fn)


def removed_mask(result: CarveResult, width: int) -> jax.Array:
  """(h, w) bool: True where a source position was removed by a carved seam."""
  k, h = result.seams.shape
  valid = (jnp.arange(k) < result.num_removed)[:, None]
  rows = jnp.broadcast_to(jnp.arange(h)[None, :], (k, h))
  return jnp.zeros((h, width), bool).at[rows, result.seams].max(jnp.broadcast_to(valid, (k, h)))
