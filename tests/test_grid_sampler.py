import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy import ndimage

from dnr_jax.ops import grid_sampler
from dnr_jax.resizing import refine


def np_bilinear(img, y, x, border):
  h, w, _ = img.shape
  def px(i, j):
    if border == "zeros" and not (0 <= i < h and 0 <= j < w):
      return np.zeros(img.shape[2])
    return img[min(max(i, 0), h - 1), min(max(j, 0), w - 1)]
  i0, j0 = int(np.floor(y)), int(np.floor(x))
  ty, tx = y - i0, x - j0
  return ((1 - ty) * ((1 - tx) * px(i0, j0) + tx * px(i0, j0 + 1))
          + ty * ((1 - tx) * px(i0 + 1, j0) + tx * px(i0 + 1, j0 + 1)))


@pytest.mark.parametrize("border", ["clamp", "zeros"])
def test_matches_numpy_reference_inside_and_outside(border):
  rng = np.random.RandomState(0)
  img = rng.rand(7, 9, 3).astype(np.float32)
  coords = rng.uniform(-2, 10, (5, 6, 2)).astype(np.float32)
  got = np.asarray(grid_sampler.bilinear_sample(jnp.asarray(img), jnp.asarray(coords), border))
  for idx in np.ndindex(5, 6):
    np.testing.assert_allclose(got[idx], np_bilinear(img, *coords[idx], border), atol=1e-5)


@pytest.mark.parametrize("border,mode", [("clamp", "nearest"), ("zeros", "constant")])
def test_agrees_with_map_coordinates(border, mode):
  rng = np.random.RandomState(1)
  img = jnp.asarray(rng.rand(8, 10, 2).astype(np.float32))
  coords = jnp.asarray(rng.uniform(-1.5, 10.5, (4, 5, 2)).astype(np.float32))
  got = grid_sampler.bilinear_sample(img, coords, border)
  for c in range(2):
    ref = ndimage.map_coordinates(img[..., c], [coords[..., 0], coords[..., 1]], order=1,
                                  mode=mode, cval=0.0)
    if border == "zeros":  # map_coordinates' constant mode zeroes whole out-of-range points
      inside = ((coords[..., 0] >= 0) & (coords[..., 0] <= 7) & (coords[..., 1] >= 0)
                & (coords[..., 1] <= 9))
      np.testing.assert_allclose(np.where(inside, got[..., c], 0), np.where(inside, ref, 0),
                                 atol=1e-5)
    else:
      np.testing.assert_allclose(got[..., c], ref, atol=1e-5)


def test_identity_grid_returns_the_image_and_gradients_are_finite():
  img = jnp.asarray(np.random.RandomState(2).rand(6, 5, 3).astype(np.float32))
  grid = grid_sampler.identity_grid(6, 5)
  np.testing.assert_allclose(grid_sampler.bilinear_sample(img, grid), img, atol=1e-6)
  g = jax.grad(lambda d: jnp.sum(grid_sampler.bilinear_sample(img, grid + d) ** 2))(
      jnp.full((6, 5, 2), 0.3))
  assert np.all(np.isfinite(g)) and np.abs(g).sum() > 0


def test_refinement_warp_with_zero_parameters_is_identity():
  img = jnp.asarray(np.random.RandomState(3).rand(20, 30, 3).astype(np.float32)) * 255
  theta = jnp.zeros(refine.control_shape(20, 30, 8))
  np.testing.assert_allclose(refine.warp_image(img, theta, 2.0), img, atol=1e-4)
  d = refine.displacement(jnp.full(theta.shape, 10.0), 20, 30, 2.0)
  assert float(jnp.max(jnp.abs(d))) <= 2.0 + 1e-6  # tanh bound
