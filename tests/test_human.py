"""quality.correspondence (the recovered column map) and quality.human (the criterion)."""

import numpy as np
import pytest
from PIL import Image

from dnr_jax.quality import correspondence
from dnr_jax.quality import human
from dnr_jax.quality import votes as votes_lib


def _texture(h=48, w=80, seed=0):
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_a_crop_is_recovered_exactly():
  src = _texture()
  out = src[:, 7:67]
  a = correspondence.align(src, out, width=80, bands=4)
  np.testing.assert_array_equal(a.columns, np.tile(np.arange(7, 67), (4, 1)))
  assert a.residual.max() < 1e-6 and not a.transposed


def test_removed_columns_are_recovered_and_a_height_change_is_transposed():
  src = _texture(seed=1)
  kept = np.setdiff1d(np.arange(80), [5, 6, 30, 31, 32, 60])
  a = correspondence.align(src, src[:, kept], width=80, bands=2)
  np.testing.assert_array_equal(a.columns, np.tile(kept, (2, 1)))
  t = correspondence.align(src.transpose(1, 0, 2), src[:, kept].transpose(1, 0, 2),
                           width=80, bands=2)
  assert t.transposed
  np.testing.assert_array_equal(t.columns, a.columns)


def test_an_enlarged_output_is_refused():
  with pytest.raises(ValueError, match="wider than the source"):
    correspondence.align(_texture(), _texture(48, 100))


def test_features_tell_a_crop_from_a_squeeze(random_weights):
  src = np.asarray(Image.fromarray(_texture(96, 160, seed=2)).resize((320, 192), Image.BILINEAR))
  crop = src[:, :240]  # the right quarter cut
  squeeze = np.asarray(Image.fromarray(src).resize((240, 192), Image.BILINEAR))
  fc = human.features(src, crop, random_weights)
  fs = human.features(src, squeeze, random_weights)
  assert set(fc) == set(human.FEATURES)
  assert fc["squeeze"] < 1e-3 and fc["lost"] > 0.01 and fc["residual"] < 1e-3
  # a uniform squeeze by 4/3 skips single columns: nothing lost, the local scale ~4/3
  assert fs["lost"] < 1e-3
  assert fs["squeeze"] == pytest.approx(np.log(4 / 3) ** 2, rel=0.5)


def test_lost_counts_runs_of_two_hidden_columns_and_the_borders():
  sal = np.full((2, 10), 0.05)
  hot = np.zeros((2, 10))
  hot[:, [0, 4, 6, 7]] = 0.05
  every_other = np.array([[1, 3, 5, 7, 9]] * 2)  # single columns skipped (not 0: a border)
  f = human.map_features(sal, hot, every_other)
  assert f["lost"] == pytest.approx(0.1)  # column 0: cut at the border
  gap = np.array([[0, 1, 2, 3, 8, 9]] * 2)  # 4-7 hidden: a run
  assert human.map_features(sal, hot, gap)["lost"] == pytest.approx(0.3)
  assert human.map_features(sal, hot, np.tile(np.arange(10), (2, 1)))["lost"] == 0.0


def test_the_criterion_scores_any_pair_and_refuses_enlarging(random_weights):
  src = _texture(60, 90, seed=3)
  assert np.isfinite(human.human_preference(src, src[:, 10:80], random_weights))
  with pytest.raises(ValueError):
    human.human_preference(src, _texture(60, 120), random_weights)


@pytest.mark.real_weights
def test_the_criterion_prefers_the_crop_that_keeps_the_cup(real_weights, photo):
  """The bundled photo (the cup at x 170-420 of 600) to half width: the crop around
  the cup beats the crop through it, and a uniform squeeze the crop around it."""
  h, w = photo.shape[:2]
  score = lambda im: human.human_preference(photo, im, real_weights)  # noqa: E731
  around, through = photo[:, 140:440], photo[:, 0:300]
  squeeze = np.asarray(Image.fromarray(photo).resize((300, h), Image.LANCZOS))
  assert score(around) > score(through)
  assert score(around) > score(squeeze)


def test_fit_weights_learns_which_way_people_lean():
  # people choose the image with the smaller "squeeze", whatever its "tear"
  rng = np.random.default_rng(0)
  table, votes = {}, []
  for s in range(20):
    for m in "ab":
      table[(s, m)] = {"squeeze": float(rng.uniform()), "tear": float(rng.uniform())}
    better = min("ab", key=lambda m, s=s: table[(s, m)]["squeeze"])
    votes += [votes_lib.Vote("x", s, "a", "b", better, 1.0)] * 3
  w = human.fit_weights(votes, table, names=("squeeze", "tear"))
  assert w["squeeze"] < 0 and abs(w["tear"]) < abs(w["squeeze"]) / 3
  scores = {k: human.score(f, w) for k, f in table.items()}
  assert votes_lib.agreement(votes, scores).rate == 1.0
