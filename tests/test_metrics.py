import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnr_jax.quality import metrics
from dnr_jax.nn import vgg


def test_semantic_score_known_answers(random_weights, small_photo):
  assert abs(float(metrics.semantic_score(random_weights, small_photo, small_photo)) - 1) < 1e-6
  half = small_photo[:, :48]
  f = lambda im: vgg.features(random_weights, jnp.asarray(im, jnp.float32)[None],  # noqa
                              ["block5_conv1"])["block5_conv1"]
  expect = float(jnp.sum(f(half) ** 2) / jnp.sum(f(small_photo) ** 2))
  np.testing.assert_allclose(float(metrics.semantic_score(random_weights, half, small_photo)),
                             expect, rtol=1e-5)


def test_nearest_patch_distances_match_brute_force():
  rng = np.random.RandomState(0)
  q, r = rng.rand(50, 12).astype(np.float32), rng.rand(70, 12).astype(np.float32)
  ref = ((q[:, None] - r[None]) ** 2).sum(-1).min(1)
  np.testing.assert_allclose(metrics.nearest_patch_distances(jnp.asarray(q), jnp.asarray(r), 16),
                             ref, rtol=1e-4, atol=1e-5)


def test_identical_image_scores_zero_and_a_crop_is_perfectly_coherent(small_photo):
  same = metrics.bidirectional_similarity(small_photo, small_photo, patch=5, scale_height=64)
  assert same["coherence"] < 1e-6 and same["completeness"] < 1e-6
  crop = metrics.bidirectional_similarity(small_photo[:, 20:70], small_photo, patch=5,
                                          scale_height=64)
  assert crop["coherence"] < 1e-6  # every output patch exists in the input
  assert crop["completeness"] > 1e-3  # but input content is missing


def test_noise_is_incoherent(small_photo):
  noisy = np.clip(small_photo + np.random.RandomState(1).normal(0, 40, small_photo.shape), 0,
                  255).astype(np.uint8)
  clean = metrics.bidirectional_similarity(small_photo[:, 10:80], small_photo, patch=5,
                                           scale_height=64)
  bad = metrics.bidirectional_similarity(noisy[:, 10:80], small_photo, patch=5, scale_height=64)
  assert bad["coherence"] > 10 * max(clean["coherence"], 1e-4)


def test_fine_similarity_sees_a_one_pixel_fringe_the_coarse_score_misses(photo):
  # A 1-px coloured line along a few edges of a 400x600 photo: at 96 px high it is a
  # quarter of a pixel, at half size half a pixel.
  crop = photo[:, 100:500]
  fringed = crop.copy()
  fringed[:, 60::40] = (255, 0, 255)
  fine_clean = metrics.fine_similarity(crop, photo)["fine_coherence"]
  fine_bad = metrics.fine_similarity(fringed, photo)["fine_coherence"]
  coarse_clean = metrics.bidirectional_similarity(crop, photo)["coherence"]
  coarse_bad = metrics.bidirectional_similarity(fringed, photo)["coherence"]
  assert fine_bad > 100 * max(fine_clean, 1e-6)
  # measured: the line raises the fine score 1.8x as much as the coarse one
  assert fine_bad - fine_clean > 1.5 * (coarse_bad - coarse_clean)


def test_fine_similarity_of_a_crop_and_a_height_change():
  rng = np.random.RandomState(0)
  img = (rng.rand(120, 160, 3) * 255).astype(np.uint8)
  same = metrics.fine_similarity(img, img, patch=5, scale=1.0, stride=1)
  assert same["fine_coherence"] < 1e-6 and same["fine_completeness"] < 1e-6
  crop = metrics.fine_similarity(img[:, 30:130], img, patch=5, scale=1.0, stride=1)
  assert crop["fine_coherence"] < 1e-6 and crop["fine_completeness"] > 1e-3
  # rows kept in a band around their proportional place: dropping every 8th row keeps
  # every output patch that does not straddle a dropped row
  rows = np.setdiff1d(np.arange(120), np.arange(4, 120, 8))
  short = metrics.fine_similarity(img[rows], img, patch=1, scale=1.0, stride=1, band=0.1)
  assert short["fine_coherence"] < 1e-6
  # a height crop moves rows far from their proportional place: the band runs along the
  # columns then, which a height change keeps
  top = metrics.fine_similarity(img[40:], img, patch=5, scale=1.0, stride=1)
  assert top["fine_coherence"] < 1e-6


@pytest.mark.slow
def test_traceable_completeness_is_the_completeness_half_and_sees_a_cut_object(small_photo):
  """``metrics.completeness`` (usable under jit and vmap) equals the completeness of
  :func:`metrics.bidirectional_similarity`; cutting a distinct object out of the image
  raises it, removing a copy of something that stays does not."""
  base = np.full((64, 96, 3), 120, np.uint8)
  base[20:44, 10:26] = (230, 40, 40)   # a red block: unique
  base[20:44, 60:72] = (40, 40, 230)   # a blue block ...
  base[20:44, 78:90] = (40, 40, 230)   # ... and its twin
  one_blue = np.delete(base, np.s_[76:92], axis=1)   # 80 wide: the twin carved out
  no_red = np.delete(base, np.s_[8:24], axis=1)      # 80 wide: the red block carved out
  traced = jax.jit(metrics.completeness)
  for out, orig in ((one_blue, base), (no_red, base), (small_photo[:, :48], small_photo)):
    expect = metrics.bidirectional_similarity(out, orig)["completeness"]
    assert float(traced(jnp.asarray(out, jnp.float32), jnp.asarray(orig, jnp.float32))) == \
        pytest.approx(expect, rel=1e-4, abs=1e-7)
  lost = lambda o: float(traced(jnp.asarray(o, jnp.float32), jnp.asarray(base, jnp.float32)))  # noqa: E731
  assert lost(no_red) > 10 * max(lost(one_blue), 1e-5)


@pytest.mark.parametrize("axis", [1, 0])
def test_traceable_fine_coherence_is_the_fine_half_and_sees_a_torn_object(small_photo, axis):
  """``metrics.fine_coherence`` (usable under jit and vmap) equals the ``fine_coherence``
  of :func:`metrics.fine_similarity` (band along rows for a width change, along
  columns for a height change); an object torn into a jagged step (its rows shifted
  against each other, as seams through it leave it) raises it far above removing a
  twin of something that stays."""
  base = np.full((96, 144, 3), 120, np.uint8)
  base[24:72, 12:40] = (230, 40, 40)    # a red block
  base[30:60, 86:102] = (40, 40, 230)   # a blue block ...
  base[30:60, 116:132] = (40, 40, 230)  # ... and its twin
  one_blue = np.delete(base, np.s_[110:134], axis=1)  # 120 wide: the twin carved out
  torn = np.delete(base, np.s_[110:134], axis=1)
  for y in range(24, 72, 8):  # the red block's rows shifted in steps of 6 px
    torn[y:y + 4] = np.roll(torn[y:y + 4], 6 * ((y // 8) % 3), axis=1)
  pairs = [(one_blue, base), (torn, base), (small_photo[:, :48], small_photo)]
  if axis == 0:
    pairs = [(np.ascontiguousarray(o.transpose(1, 0, 2)),
              np.ascontiguousarray(i.transpose(1, 0, 2))) for o, i in pairs]
  traced = jax.jit(metrics.fine_coherence)
  got = []
  for out, orig in pairs:
    expect = metrics.fine_similarity(out, orig)["fine_coherence"]
    got.append(float(traced(jnp.asarray(out, jnp.float32), jnp.asarray(orig, jnp.float32))))
    assert got[-1] == pytest.approx(expect, rel=1e-4, abs=1e-7)
  assert got[1] > 10 * max(got[0], 1e-5)
