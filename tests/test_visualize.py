import numpy as np

from dnr_jax.cli import visualize


def test_crop_overlay_greys_only_what_the_crop_took():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
  out = visualize.crop_overlay(image, (5, 24), "width")
  np.testing.assert_array_equal(out[:, 5:24], image[:, 5:24])  # the kept window as is
  outside = np.concatenate([out[:, :5], out[:, 24:]], axis=1).astype(int)
  original = np.concatenate([image[:, :5], image[:, 24:]], axis=1).astype(int)
  assert np.abs(outside - 128).max() < np.abs(original - 128).max()  # pulled to grey
  rows = visualize.crop_overlay(image, (0, 12), "height")
  np.testing.assert_array_equal(rows[:12], image[:12])
  assert not np.array_equal(rows[12:], image[12:])
  np.testing.assert_array_equal(visualize.crop_overlay(image, (0, 30)), image)  # no crop
