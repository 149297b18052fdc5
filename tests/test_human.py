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


def test_features_tell_a_crop_from_a_squeeze():
  src = np.asarray(Image.fromarray(_texture(96, 160, seed=2)).resize((320, 192), Image.BILINEAR))
  crop = src[:, 40:280]
  squeeze = np.asarray(Image.fromarray(src).resize((240, 192), Image.BILINEAR))
  fc, fs = human.features(src, crop), human.features(src, squeeze)
  assert fc["squeeze"] < 1e-3 and fc["interior_loss"] < 1e-3 and fc["border_loss"] > 0.1
  assert fs["border_loss"] < 0.05 and fs["interior_loss"] > 0.1
  # a uniform squeeze by 4/3: the local scale is ~4/3 everywhere
  assert fs["squeeze"] == pytest.approx(np.log(4 / 3) ** 2, rel=0.5)
  assert set(fc) == set(human.FEATURES)


def test_the_criterion_scores_any_pair_and_refuses_enlarging():
  src = _texture(60, 90, seed=3)
  assert np.isfinite(human.human_preference(src, src[:, 10:80]))
  with pytest.raises(ValueError):
    human.human_preference(src, _texture(60, 120))


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
