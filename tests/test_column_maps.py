import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings, strategies as st

from dnr_jax.ops import column_maps as cm


def test_linear_scale_matches_jax_image_resize_without_antialias():
  x = jnp.asarray(np.random.RandomState(0).rand(5, 40, 3).astype(np.float32))
  for w_out in (30, 20, 40):
    got = cm.apply(x, cm.linear_scale(5, 40, w_out))
    ref = jax.image.resize(x, (5, w_out, 3), "linear", antialias=False)
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_from_kept_interpolates_values_of_kept_columns():
  kept = jnp.asarray([[0, 2, 3, 9, 9]], jnp.int32)  # 3 valid: columns 0, 2, 3
  x = jnp.arange(10, dtype=jnp.float32)[None, :] * 10
  m = cm.from_kept(kept, 3, jnp.asarray([0.0, 0.5, 1.0, 2.0, 7.0]))
  np.testing.assert_allclose(cm.apply(x, m)[0], [0, 10, 20, 30, 30])  # never samples 1 or 9


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 50), min_size=2, max_size=30), st.floats(0.3, 1.0),
       st.floats(0.0, 0.4))
def test_warp_widths_sum_exactly_and_respect_bounds(mu, ratio, min_scale):
  mu = jnp.asarray(mu, jnp.float32)
  w_in = 16.0 * mu.shape[0]
  w_out = w_in * ratio
  widths = np.asarray(cm.warp_cell_widths(mu, w_in, w_out, min_scale))
  np.testing.assert_allclose(widths.sum(), w_out, rtol=1e-4)
  if min_scale <= ratio:  # feasible: bounds hold up to the final exact rescale
    assert widths.max() <= 16.0 * (1 + 1e-3)
    assert widths.min() >= 16.0 * min_scale * (1 - 1e-3)


def test_warp_widths_follow_importance():
  mu = jnp.asarray([1.0, 1.0, 4.0, 4.0, 1.0, 1.0])
  widths = np.asarray(cm.warp_cell_widths(mu, 96.0, 72.0, 0.1))
  assert widths[2] > widths[0] and np.isclose(widths[2], widths[3])
  np.testing.assert_allclose(widths[2], 16.0, rtol=1e-3)  # important cells keep their width


def test_a_warp_power_moves_the_squeeze_to_the_least_important_cells():
  """Column-mean importance varies little (here 1.0 to 1.6): with Eq. 3's proportional
  widths every cell shrinks, the subject's included; squared, the subject keeps more
  of its width and the least important cells give it up. Power 1 is Eq. 3."""
  mu = jnp.asarray([1.0, 1.2, 1.6, 1.6, 1.2, 1.0, 1.0, 1.1])
  plain = np.asarray(cm.warp_cell_widths(mu, 128.0, 96.0, 0.2))
  np.testing.assert_allclose(np.asarray(cm.warp_cell_widths(mu, 128.0, 96.0, 0.2, power=1.0)),
                             plain)
  sharp = np.asarray(cm.warp_cell_widths(mu, 128.0, 96.0, 0.2, power=2.0))
  np.testing.assert_allclose(sharp.sum(), 96.0, rtol=1e-4)
  assert sharp[2] > plain[2] and sharp[0] < plain[0]  # subject wider, background narrower
  m = np.asarray(mu)  # the importance still orders the widths
  assert np.all((m[:, None] < m[None, :]) <= (sharp[:, None] <= sharp[None, :] + 1e-4))
  # enlarging: the least important cells stretch, more so
  wide = np.asarray(cm.warp_cell_widths(mu, 128.0, 160.0, 0.2, power=2.0))
  wide1 = np.asarray(cm.warp_cell_widths(mu, 128.0, 160.0, 0.2))
  assert wide[0] > wide1[0] and wide[2] < wide1[2]


def test_warp_coords_are_monotone_and_uniform_warp_is_linear_scale():
  coords = cm.warp_coords(jnp.ones(8), 64, 48)
  np.testing.assert_allclose(coords, cm.linear_coords(64, 48), atol=1e-4)
  coords = np.asarray(cm.warp_coords(jnp.asarray([1, 5, 1, 1, 9, 1.0]), 60, 40))
  assert np.all(np.diff(coords) > 0) and coords[0] >= -0.5 and coords[-1] <= 59.5


def test_cell_profile_of_coarse_and_fine_profiles():
  fine = jnp.repeat(jnp.asarray([1.0, 3.0]), 16)
  np.testing.assert_allclose(cm.cell_profile(fine, 32, 2), [1.0, 3.0], atol=0.2)
  coarse = jnp.asarray([2.0, 2.0, 0.0])
  np.testing.assert_allclose(cm.cell_profile(coarse, 2, 4), [2, 2, 2, 2])  # 3rd is invalid
