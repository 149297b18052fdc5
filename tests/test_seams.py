import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from dnr_jax.ops import seams


def np_min_seam_cost(e, cl=None, cu=None, cr=None):
  """NumPy reference DP: minimal total cost of an 8-connected vertical seam."""
  h, w = e.shape
  cl = np.zeros_like(e) if cl is None else cl
  cu = np.zeros_like(e) if cu is None else cu
  cr = np.zeros_like(e) if cr is None else cr
  m = e[0].astype(np.float64).copy()
  for i in range(1, h):
    new = np.empty(w)
    for j in range(w):
      best = m[j] + cu[i, j]
      if j > 0:
        best = min(best, m[j - 1] + cl[i, j])
      if j < w - 1:
        best = min(best, m[j + 1] + cr[i, j])
      new[j] = e[i, j] + best
    m = new
  return m.min()


def seam_cost(e, s, cl=None, cu=None, cr=None):
  total = e[0, s[0]]
  for i in range(1, len(s)):
    d = s[i] - s[i - 1]
    extra = {-1: cr, 0: cu, 1: cl}[d]  # moved right from parent j-1 -> cost_left etc.
    total += e[i, s[i]] + (0 if extra is None else extra[i, s[i]])
  return total


energies = hnp.arrays(np.float32, st.tuples(st.integers(2, 12), st.integers(2, 12)),
                      elements=st.floats(0, 100, width=32))


@settings(max_examples=25, deadline=None)
@given(energies)
def test_jit_seam_has_the_reference_minimal_cost_and_is_connected(e):
  seam, cost = jax.jit(seams.find_seam)(jnp.asarray(e))
  seam = np.asarray(seam)
  assert seam.shape == (e.shape[0],)
  assert np.all((seam >= 0) & (seam < e.shape[1]))
  assert np.all(np.abs(np.diff(seam)) <= 1)
  ref = np_min_seam_cost(e)
  np.testing.assert_allclose(float(cost), ref, rtol=1e-5, atol=1e-3)
  np.testing.assert_allclose(seam_cost(e, seam), ref, rtol=1e-5, atol=1e-3)


@settings(max_examples=20, deadline=None)
@given(energies, st.data())
def test_forward_energy_costs_match_reference(e, data):
  costs = [data.draw(hnp.arrays(np.float32, e.shape, elements=st.floats(0, 10, width=32)))
           for _ in range(3)]
  seam, cost = seams.find_seam(jnp.asarray(e), seams.StepCosts(*map(jnp.asarray, costs)))
  ref = np_min_seam_cost(e, *costs)
  np.testing.assert_allclose(float(cost), ref, rtol=1e-5, atol=1e-3)
  np.testing.assert_allclose(seam_cost(e, np.asarray(seam), *costs), ref, rtol=1e-5, atol=1e-3)


@settings(max_examples=8, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(2, 10), st.integers(4, 14)),
                  elements=st.floats(0, 100, width=32)), st.data())
def test_removing_k_seams_keeps_strictly_increasing_rows(e, data):
  h, w = e.shape
  k = data.draw(st.integers(0, w - 1))
  res = seams.carve(jnp.asarray(e), k, w - 1, seams.fixed_energy_fn)
  assert int(res.num_removed) == k
  kept = np.asarray(res.kept)[:, : w - k]
  assert kept.shape == (h, w - k)
  assert np.all(np.diff(kept, axis=1) > 0)
  removed = np.asarray(seams.removed_mask(res, w))
  assert np.all(removed.sum(axis=1) == k)
  for y in range(h):  # kept and removed partition every row
    assert sorted(set(kept[y]) | set(np.nonzero(removed[y])[0])) == list(range(w))


def test_carving_equals_numpy_deletion_with_recomputed_reference():
  rng = np.random.RandomState(0)
  e = rng.rand(8, 10).astype(np.float32)
  res = seams.carve(jnp.asarray(e), 3, 3, seams.fixed_energy_fn)
  cur, cols = e.copy(), np.tile(np.arange(10), (8, 1))
  for i in range(3):  # greedy reference: cost of each successive seam is minimal
    ref = np_min_seam_cost(cur)
    s = np.asarray(res.seams[i])
    pos = np.array([np.nonzero(cols[y] == s[y])[0][0] for y in range(8)])
    assert np.all(np.abs(np.diff(pos)) <= 1)
    np.testing.assert_allclose(cur[np.arange(8), pos].sum(), ref, rtol=1e-5)
    cur = np.array([np.delete(cur[y], pos[y]) for y in range(8)])
    cols = np.array([np.delete(cols[y], pos[y]) for y in range(8)])
  np.testing.assert_array_equal(np.asarray(res.kept)[:, :7], cols)


def test_stop_threshold_removes_at_least_one_and_stops_at_costly_seams():
  e = np.full((6, 10), 5.0, np.float32)
  e[:, 2] = 0.0  # one free seam; everything else costs 5
  res = seams.carve(jnp.asarray(e), 4, 4, seams.fixed_energy_fn, stop_threshold=1.0)
  assert int(res.num_removed) == 1
  np.testing.assert_array_equal(np.asarray(res.seams[0]), [2] * 6)
  res = seams.carve(jnp.asarray(e), 4, 4, seams.fixed_energy_fn, stop_threshold=-1.0)
  assert int(res.num_removed) == 1  # always at least one
  res = seams.carve(jnp.asarray(e), 4, 4, seams.fixed_energy_fn, stop_threshold=10.0)
  assert int(res.num_removed) == 4


def test_traced_seam_count_compiles_once():
  e = jnp.asarray(np.random.RandomState(1).rand(6, 9).astype(np.float32))
  traces = []

  @jax.jit
  def f(e, k):
    traces.append(1)
    return seams.carve(e, k, 5, seams.fixed_energy_fn).kept

  for k in range(6):
    f(e, k)
  assert len(traces) == 1


@pytest.mark.parametrize("energy", ["backward", "forward"])
def test_image_carving_avoids_a_textured_object(energy):
  rng = np.random.RandomState(0)
  img = np.full((24, 40, 3), 128.0, np.float32)
  img[:, 10:18] = rng.uniform(0, 255, (24, 8, 3))  # busy object on a flat background
  res = jax.jit(seams.carve_image, static_argnums=(1, 2))(jnp.asarray(img), 12, energy)
  removed = np.asarray(seams.removed_mask(res, 40))
  assert removed[:, 10:18].sum() == 0
  assert removed.sum() == 24 * 12


def test_vmap_over_a_batch_of_energies():
  e = jnp.asarray(np.random.RandomState(2).rand(3, 5, 7).astype(np.float32))
  batched = jax.vmap(lambda x: seams.find_seam(x)[1])(e)
  single = jnp.stack([seams.find_seam(x)[1] for x in e])
  np.testing.assert_allclose(batched, single, rtol=1e-6)


@settings(max_examples=8, deadline=None)  # each new shape compiles: keep the count low
@given(hnp.arrays(np.float32, st.tuples(st.integers(2, 10), st.integers(4, 16)),
                  elements=st.floats(0, 100, width=32)), st.integers(1, 6), st.integers(2, 5))
def test_batched_carving_removes_exactly_k_disjoint_connected_seams(e, k, batch):
  h, w = e.shape
  k = min(k, w - 1)
  res = jax.jit(seams.carve_batched, static_argnums=(2, 3, 4))(
      jnp.asarray(e), k, k, seams.fixed_energy_fn, batch)
  assert int(res.num_removed) == k
  kept = np.asarray(res.kept)[:, : w - k]
  assert np.all(np.diff(kept, axis=1) > 0)  # order kept, nothing duplicated
  mask = np.asarray(seams.removed_mask(res, w))
  assert np.all(mask.sum(axis=1) == k)  # exactly k per row, disjoint
  np.testing.assert_array_equal(np.sort(np.concatenate([kept, np.argwhere(mask)[:, 1].reshape(
      h, k)], axis=1), axis=1), np.broadcast_to(np.arange(w), (h, w)))
  first = np.asarray(res.seams)[: min(batch, k)]  # the first pass is in source coordinates
  assert np.all(np.abs(np.diff(first, axis=1)) <= 1)


def test_batched_first_seam_is_the_optimal_one_when_alone():
  e = np.random.RandomState(3).rand(12, 20).astype(np.float32)
  res = seams.carve_batched(jnp.asarray(e), 1, 1, seams.fixed_energy_fn, 4)
  seam, cost = seams.find_seam(jnp.asarray(e))
  np.testing.assert_array_equal(np.asarray(res.seams)[0], np.asarray(seam))


def test_feature_forward_costs_are_the_feature_distances_a_removal_creates():
  rng = np.random.RandomState(3)
  f = rng.rand(5, 7, 4).astype(np.float32)
  e = rng.rand(5, 7).astype(np.float32)
  energy, costs = seams.feature_forward_energy_fn(2.0)((jnp.asarray(e), jnp.asarray(f)), 7)
  np.testing.assert_allclose(np.asarray(energy)[1:], e[1:])
  np.testing.assert_allclose(np.asarray(energy)[0, 3],
                             e[0, 3] + 2.0 * np.linalg.norm(f[0, 4] - f[0, 2]), rtol=1e-5)
  i, j = 2, 3
  cu = 2.0 * np.linalg.norm(f[i, j + 1] - f[i, j - 1])
  np.testing.assert_allclose(float(costs.up[i, j]), cu, rtol=1e-5)
  np.testing.assert_allclose(float(costs.left[i, j]),
                             cu + 2.0 * np.linalg.norm(f[i - 1, j] - f[i, j - 1]), rtol=1e-5)
  np.testing.assert_allclose(float(costs.right[i, j]),
                             cu + 2.0 * np.linalg.norm(f[i - 1, j] - f[i, j + 1]), rtol=1e-5)


def test_feature_forward_energy_keeps_seams_off_an_object_boundary():
  # Two flat feature regions meet at column 8; the importance is lowest right at the
  # boundary, so importance alone carves there, joining the two regions into a new edge.
  h, w = 12, 16
  f = np.zeros((h, w, 3), np.float32)
  f[:, 8:] = 10.0
  e = np.ones((h, w), np.float32)
  e[:, 7:9] = 0.5
  alone = seams.carve_batched(jnp.asarray(e), 2, 2, seams.fixed_energy_fn, 2)
  forward = seams.carve_batched((jnp.asarray(e), jnp.asarray(f)), 2, 2,
                                seams.feature_forward_energy_fn(1.0), 2)
  on_boundary = lambda r: np.isin(np.asarray(r.seams[:2]), (7, 8)).any()  # noqa: E731
  assert on_boundary(alone)
  assert not on_boundary(forward)
  assert int(forward.num_removed) == 2


def test_seams_through_a_flat_region_run_straight_and_spread_over_it():
  """Exact ties (a flat sky; ReLU features are exactly 0 over large areas) keep a seam
  straight and spread the seams of one pass over the whole flat run. With ties broken
  towards the left, each seam drifted one column left per row into the left border,
  and a pass's parallel seams tore a diagonal band out of the image."""
  h, w = 40, 64
  e = np.zeros((h, w), np.float32)
  e[:, 28:36] = 5.0  # an object in the middle of a flat field
  seam, cost = seams.find_seam(jnp.asarray(e))
  seam = np.asarray(seam)
  assert float(cost) == 0.0 and np.all(seam == seam[0])  # straight, in the flat field
  paths, active = seams.find_seams(jnp.asarray(e), jnp.int32(8), 8)
  paths, active = np.asarray(paths), np.asarray(active)
  assert active.all()
  assert np.all(paths == paths[:1])  # every seam of the pass is straight
  cols = paths[0]
  assert np.all(e[0, cols] == 0.0)  # none through the object
  left, right = np.sum(cols < 28), np.sum(cols >= 36)
  assert left >= 2 and right >= 2, cols  # taken from both sides of it, not one end
  assert np.min(np.diff(np.sort(cols))) > 1  # spread out, not a band of neighbours
  res = seams.carve_batched(jnp.asarray(e), 16, 16, seams.fixed_energy_fn, 8)
  mask = np.asarray(seams.removed_mask(res, w))
  assert np.all(mask == mask[:1])  # whole columns: nothing torn diagonally
  assert not mask[:, 28:36].any()


def test_a_diagonal_cost_keeps_seams_out_of_a_diagonal_valley():
  """The tear of the seams alternative: many seams follow one cheap diagonal valley and
  remove it as a slanted band. Paying for each sideways step, the seams take the
  straight, slightly dearer columns instead; 0 leaves the DP as it was."""
  h, w = 24, 40
  e = np.ones((h, w), np.float32)
  for i in range(h):
    e[i, 4 + i] = 0.0  # a free valley running diagonally down to the right
  e[:, 32] = 0.2  # a straight column that costs a little
  assert seams.with_diagonal_cost(seams.fixed_energy_fn, 0.0) is seams.fixed_energy_fn
  plain = seams.carve(jnp.asarray(e), 1, 1, seams.fixed_energy_fn)
  straight = seams.carve(jnp.asarray(e), 1, 1,
                         seams.with_diagonal_cost(seams.fixed_energy_fn, 1.0))
  assert np.array_equal(np.asarray(plain.seams[0]), 4 + np.arange(h))  # the valley
  assert np.all(np.asarray(straight.seams[0]) == 32)
  # the step cost scales with the map: the same choice for an energy 100x larger
  big = seams.carve(jnp.asarray(100.0 * e), 1, 1,
                    seams.with_diagonal_cost(seams.fixed_energy_fn, 1.0))
  assert np.all(np.asarray(big.seams[0]) == 32)
  # forbidden positions (keep masks, the border band) do not inflate the step cost
  walled = e.copy()
  walled[:, :2] = seams.FORBIDDEN
  fn = seams.with_diagonal_cost(seams.fixed_energy_fn, 1.0)
  _, costs = fn(jnp.asarray(walled), jnp.int32(w))
  assert float(costs.left[0, 10]) == pytest.approx(float(np.mean(e[:, 2:])), rel=1e-5)
  # nor does an enlarging plan's border band (a finite penalty larger than any path)
  # when the step cost is told its width
  banded = e.copy()
  banded[:, :3] += 2.0 * h + 1.0
  banded[:, -3:] += 2.0 * h + 1.0
  _, inflated = fn(jnp.asarray(banded), jnp.int32(w))
  _, costs = seams.with_diagonal_cost(seams.fixed_energy_fn, 1.0, border=3)(
      jnp.asarray(banded), jnp.int32(w))
  assert float(costs.left[0, 10]) == pytest.approx(float(np.mean(e[:, 3:-3])), rel=1e-5)
  assert float(inflated.left[0, 10]) > 5.0 * float(costs.left[0, 10])
  # with fewer valid positions the band is counted from the last valid one
  shorter = e.copy()  # 5 seams removed: the right band moved 5 positions left
  shorter[:, :3] += 2.0 * h + 1.0
  shorter[:, w - 8:w - 5] += 2.0 * h + 1.0
  _, costs = seams.with_diagonal_cost(seams.fixed_energy_fn, 1.0, border=3)(
      jnp.asarray(shorter), jnp.int32(w - 5))
  assert float(costs.left[0, 10]) == pytest.approx(float(np.mean(e[:, 3:w - 8])), rel=1e-5)
  # the forward energy's own step costs are kept, the diagonal cost added on top
  f = jnp.asarray(np.random.default_rng(0).random((h, w, 3)), jnp.float32)
  fwd = seams.feature_forward_energy_fn(0.5)
  _, c0 = fwd((jnp.asarray(e), f), jnp.int32(w))
  _, c1 = seams.with_diagonal_cost(fwd, 1.0)((jnp.asarray(e), f), jnp.int32(w))
  np.testing.assert_allclose(np.asarray(c1.up), np.asarray(c0.up))
  assert np.all(np.asarray(c1.left) > np.asarray(c0.left))
