"""Full resolution: host resizes, padded lifts, and compilations shared across photo sizes."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from dnr_jax import config
from dnr_jax.resizing import fullres
from dnr_jax.ops import importance
from dnr_jax import resizing
from dnr_jax.resizing import reconstruct
from dnr_jax.ops import resample

CFG = config.RetargetConfig(
    operator=config.OperatorConfig(layers=("block1_conv2", "block2_conv2", "block3_conv4")),
    reconstruction=config.ReconstructionConfig(steps=2, chunk=2), work_size=64)
SHALLOW = "block1_conv2"


@pytest.mark.parametrize("shape,out,kind", [
    ((300, 451), (97, 160), "linear"),  # downscale, anisotropic
    ((120, 90), (400, 333), "cubic"),  # upscale
    ((43, 48), (128, 144), "cubic"),  # the correction's shape
    ((64, 64), (50, 70), "cubic"),  # one axis down, one up
])
def test_host_resize_matches_the_jitted_resize(shape, out, kind):
  x = np.random.default_rng(0).integers(0, 256, (*shape, 3)).astype(np.uint8)
  jitted = np.asarray(resample.resize(jnp.asarray(x), out, kind))
  host = resample.resize_host(x, out, kind, block=37)  # blocks that do not divide the rows
  assert host.shape == (*out, 3) and host.dtype == np.float32
  np.testing.assert_allclose(host, jitted, atol=1e-3)
  base = np.full((*out, 3), 7.0, np.float32)
  assert resample.resize_host(x, out, kind, add_to=base) is base  # in place
  np.testing.assert_allclose(base, jitted + 7.0, atol=1e-3)


def _photo(small_photo, h, w):
  return np.asarray(Image.fromarray(small_photo).resize((w, h), Image.LANCZOS))


def _prepared(weights, image, out_hw, cfg=CFG):
  s = resizing.validate(image.shape[:2], out_hw, cfg)
  work = resizing.downscale(image, s.work, on_host=True)
  return s, resizing.prepare(weights, work, s.work_out, cfg)


def _axis_lift(plan):
  kept = plan.kept[SHALLOW]
  return fullres.AxisLift(kept, kept.shape[1] - plan.num_removed[SHALLOW].astype(jnp.int32),
                          plan.cell_widths, jnp.asarray(kept.shape, jnp.int32),
                          jnp.asarray(plan.cell_widths.shape[0], jnp.int32))


def test_padded_lift_in_row_bands_equals_the_unpadded_lift(random_weights, small_photo):
  image = _photo(small_photo, 150, 230)
  s, prep = _prepared(random_weights, image, (150, 170))
  lift = _axis_lift(prep.plan.width)
  size = (np.int32(150), np.int32(230))
  whole = np.asarray(fullres.lifted_tile(jnp.asarray(image), lift, np.int32(0), size,
                                         np.int32(170), 170))
  padded = fullres.pad_lift(jax.device_get(lift), 128)  # far more padding than needed
  assert padded.kept.shape == (128, 128) and padded.cell_widths.shape == (128,)
  bands = [np.asarray(fullres.lifted_tile(fullres.pad_to(image[st:st + 64], (64, 256)), padded,
                                          np.int32(st), size, np.int32(170), 192))
           for st in range(0, 150, 64)]
  banded = np.concatenate(bands)[:150, :170]
  np.testing.assert_allclose(banded, whole, atol=1e-3)


def _crop_and_warp_lift(h, w, start, n_valid, cells):
  """A row-uniform plan: every working row keeps columns [start, start + n_valid)."""
  kept = np.tile(np.arange(start, start + n_valid, dtype=np.int32), (h, 1))
  kept = np.concatenate([kept, np.full((h, w - n_valid), start + n_valid - 1, np.int32)], 1)
  return fullres.AxisLift(kept, np.int32(n_valid), np.asarray(cells, np.float32),
                          np.asarray((h, w), np.int32), np.int32(len(cells)))


def test_sample_columns_is_sample_rows_with_one_map_for_every_row():
  x = np.random.default_rng(1).integers(0, 256, (37, 90, 3)).astype(np.uint8)
  coords = np.sort(np.random.default_rng(2).uniform(-1, 91, 61)).astype(np.float32)
  per_row = resample.sample_rows(jnp.asarray(x), jnp.broadcast_to(coords, (37, 61)))
  np.testing.assert_allclose(resample.sample_columns(jnp.asarray(x), jnp.asarray(coords)),
                             per_row, atol=1e-3)


def test_a_row_uniform_lift_takes_the_one_map_path_with_the_same_pixels():
  """A crop + warp carves the same columns in every row: the host lifts it through one
  1-D map (fullres.uniform_tile), which must equal the per-row lift; seams are not
  row-uniform."""
  image = np.random.default_rng(3).integers(0, 256, (150, 230, 3)).astype(np.uint8)
  lift = _crop_and_warp_lift(30, 46, 5, 38, [40.0, 60.0, 70.0])
  assert fullres.row_uniform(lift)
  seams = lift._replace(kept=lift.kept.copy())
  seams.kept[7, 10:] += 1
  assert not fullres.row_uniform(seams)
  size = (np.int32(150), np.int32(230))
  per_row = np.asarray(fullres.lifted_tile(jnp.asarray(image), lift, np.int32(0), size,
                                           np.int32(170), 170))
  coords, scale = fullres.lifted_row(lift, size, np.int32(170), 170)
  one_map = np.asarray(fullres.uniform_tile(jnp.asarray(image), coords, scale, size[1]))
  # (per row, the map is interpolated between working rows: equal up to float rounding)
  np.testing.assert_allclose(one_map, per_row, atol=2e-2)
  as_uint8 = np.asarray(fullres.uniform_tile(jnp.asarray(image), coords, scale, size[1],
                                             as_uint8=True))
  assert as_uint8.dtype == np.uint8
  assert np.abs(as_uint8.astype(int) - resizing.to_uint8(per_row).astype(int)).max() <= 1


def test_the_warp_scale_is_the_slope_of_the_warp_coordinates():
  from dnr_jax.ops import column_maps  # pylint: disable=g-import-not-at-top
  cells = jnp.asarray([1.0, 3.0, 0.5, 2.0])
  coords = np.asarray(column_maps.warp_coords(cells, 400, 150))
  scale = np.asarray(column_maps.warp_scale(cells, 400, 150))
  slope = np.diff(coords)
  inside = np.abs(np.diff(slope, prepend=slope[0])) < 1e-3  # not at a cell border
  np.testing.assert_allclose(scale[:-1][inside], slope[inside], rtol=1e-3)
  np.testing.assert_allclose(sorted(set(np.round(scale, 2))), [1.44, 2.17, 4.33, 8.67])


def test_a_squeezed_warp_cell_is_antialiased_not_aliased():
  """Columns alternating black and white, the left half squeezed 3.3x by the warp
  (cells 1.2 : 2.8 of a half-width output): point samples 3.3 px apart beat against
  the stripes (aliasing: bands of dark and light); the lifted map widens its kernel by
  the squeeze and shows the mean grey, on the host (1-D map) and per row alike."""
  h, w = 40, 400
  stripes = np.zeros((h, w, 3), np.uint8)
  stripes[:, ::2] = 255
  lift = _crop_and_warp_lift(10, 100, 0, 100, [1.2, 2.8])
  size, out = (np.int32(h), np.int32(w)), 200
  coords, scale = fullres.lifted_row(lift, size, np.int32(out), out)
  assert abs(float(scale[10]) - 10 / 3) < 1 / 64 and abs(float(scale[150]) - 200 / 140) < 1 / 64
  left = slice(5, 55)  # inside the squeezed cell, away from its border and the edge
  point = np.asarray(fullres.uniform_tile(jnp.asarray(stripes), coords, scale, size[1]))
  assert point[:, left].std() > 30  # the beat
  bound = fullres.stretch_class(float(np.max(scale)))
  assert bound == 5.0
  smooth = np.asarray(fullres.uniform_tile(jnp.asarray(stripes), coords, scale, size[1],
                                           max_stretch=bound))
  assert abs(smooth[:, left].mean() - 127.5) < 3 and smooth[:, left].std() < 6
  per_row = np.asarray(fullres.lifted_tile(jnp.asarray(stripes), lift, np.int32(0), size,
                                           np.int32(out), out, max_stretch=bound))
  np.testing.assert_allclose(per_row, smooth, atol=2e-2)


def test_a_resampling_comes_back_from_the_host_as_its_final_uint8_pixels(
    random_weights, small_photo):
  """No Eq. 4 (``correct=False``): the host path rounds on the device and returns
  uint8, equal to rounding the pure (one-piece) path; for a seams plan and for a crop."""
  image = _photo(small_photo, 150, 230)
  s, prep = _prepared(random_weights, image, (150, 170))
  width = prep.plan.width
  crop = width._replace(kept={**width.kept, SHALLOW: jnp.asarray(_crop_and_warp_lift(
      *width.kept[SHALLOW].shape, 3, int(width.num_valid[SHALLOW]), [1.0]).kept)})
  for plan_width in (width, crop):
    p = prep._replace(plan=prep.plan._replace(width=plan_width))
    host = resizing.full_resolution_tiled(image, p, prep.init, s, CFG, SHALLOW, correct=False)
    pure = fullres.full_resolution(jnp.asarray(image), p, prep.init, s, CFG, SHALLOW,
                                   correct=False)
    assert host.dtype == np.uint8 and host.shape == (150, 170, 3)
    assert np.abs(host.astype(int) - resizing.to_uint8(pure).astype(int)).max() <= 1


def test_full_resolution_compiles_once_for_photos_of_one_width_class(
    random_weights, small_photo, compilations):
  """Two photos with different heights, hence different working shapes, but widths in
  one size class: the second one's lift back to full resolution compiles nothing."""
  for i, h in enumerate((200, 236)):
    image = _photo(small_photo, h, 300)
    s, prep = _prepared(random_weights, image, (h, 225))
    with compilations() as seen:
      out = resizing.full_resolution_tiled(image, prep, prep.init, s, CFG, SHALLOW)
    assert out.shape == (h, 225, 3)
    if i == 0:
      first_work = s.work
      assert seen, "the first lift compiles"
    else:
      assert s.work != first_work
      assert seen == [], f"the second photo's lift compiled {seen}"


@pytest.mark.slow
def test_result_target_importance_is_eq1_of_the_targets(random_weights, small_photo):
  s, prep = _prepared(random_weights, small_photo, (64, 72))
  for layer, target in prep.plan.targets.items():
    np.testing.assert_allclose(prep.target_importance[layer],
                               importance.importance_map(target), rtol=1e-5)
  res = resizing.retarget(random_weights, small_photo, (64, 72), CFG)
  assert set(res.target_importance) == set(prep.plan.targets)
  assert res.target_importance["block2_conv2"].shape == res.target_shapes["block2_conv2"][:2]


def test_auto_dtype_and_loop_form_follow_the_backend():
  assert config.resolve_compute_dtype("auto", "cpu") == "float32"
  assert config.resolve_compute_dtype("auto", "gpu") == "bfloat16"
  assert config.resolve_compute_dtype("auto", "tpu") == "bfloat16"
  assert config.resolve_compute_dtype("float32", "gpu") == "float32"
  assert reconstruct.default_unroll("cpu") and not reconstruct.default_unroll("gpu")
  with pytest.raises(ValueError, match="compute_dtype"):
    dataclasses.replace(CFG, compute_dtype="float16")
