"""The audition of crop shares (resizing.audition): crop + warp candidates planned from one
forward pass and scored by the human-calibrated criterion on their known pixel maps."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from dnr_jax import config
from dnr_jax import resizing
from dnr_jax.nn import vgg
from dnr_jax.ops import importance
from dnr_jax.quality import correspondence
from dnr_jax.quality import human
from dnr_jax.resizing import audition
from dnr_jax.resizing import batching

CFG = config.RetargetConfig()
_candidates = jax.jit(audition.candidates, static_argnames=("plan",))
_chosen = jax.jit(audition.chosen_plan, static_argnames=("plan",))
_crop_warp = jax.jit(audition.crop_warp_plan, static_argnums=(1, 2, 3))


def _wide(small_photo):
  """64 x 192: a flat border, the photo, its mirror image."""
  return np.concatenate([np.full_like(small_photo[:, :32], 90), small_photo,
                         small_photo[:, ::-1][:, :64]], axis=1)


def _imps(weights, image):
  f = vgg.features(weights, jnp.asarray(image, jnp.float32)[None], CFG.operator.layers)
  return {l: importance.importance_map(v[0]) for l, v in f.items()}


def test_crop_shares_are_auditioned_only_for_a_one_axis_shrink_without_masks():
  op = CFG.operator
  shares = lambda out, masked=False: resizing.crop_shares(op, (100, 200), out, masked)  # noqa: E731
  assert shares((100, 150)) == shares((40, 200)) == op.crop_shares
  for out, masked in (((100, 150), True), ((100, 250), False), ((80, 150), False),
                      ((100, 200), False)):  # masks, enlarging, both axes, no change
    assert shares(out, masked) == ()
  plan = resizing.make_plan((100, 200), (100, 150), CFG)
  assert plan.operators == ("warp", "crop25+warp", "crop50+warp", "crop75+warp",
                            "crop90+warp", "crop")
  assert plan.steps == 0 and plan.resampling and not plan.sizes.full_resolution
  # a resampling is planned at plan_size; anything with seams at work_size, with Eq. 4
  big = resizing.make_plan((480, 640), (480, 480), CFG)
  assert big.sizes.work == (240, 320) and big.sizes.work_out == (240, 240) and big.resampling
  keep = resizing.make_plan((480, 640), (480, 480), CFG, keep=True)
  assert keep.operators == ("seams+warp",) and keep.steps == 50 and not keep.resampling
  assert keep.sizes.work == (480, 640)
  paper = resizing.make_plan((480, 640), (480, 480), config.PAPER)
  assert paper.operators == ("seams+warp",) and paper.steps == 50
  redo = dataclasses.replace(CFG, reconstruction=config.ReconstructionConfig(
      reconstruct_resamplings=True))
  assert resizing.make_plan((480, 640), (480, 480), redo).steps == 50


@pytest.mark.parametrize("bad", [(0.5, 0.5), (1.5,), (-0.1,), [0.5]])
def test_bad_crop_shares_are_refused(bad):
  with pytest.raises(ValueError, match="crop_shares"):
    config.OperatorConfig(crop_shares=bad)


def test_the_price_of_lost_content_and_the_plan_size_are_checked():
  with pytest.raises(ValueError, match="crop_lost_weight"):
    config.OperatorConfig(crop_lost_weight=-1.0)
  for bad in (32, -1, 2.5):
    with pytest.raises(ValueError, match="plan_size"):
      config.RetargetConfig(plan_size=bad)


def test_the_window_loses_the_least_hot_saliency_then_centres():
  flat = jnp.ones((100,), jnp.float32) / 100
  window = lambda hot, crop: int(audition._window(  # noqa: E731
      jnp.asarray(hot, jnp.float32), flat, 100, 60, jnp.int32(crop), 10.0))
  right = np.zeros(100)
  right[70:80] = 0.01
  assert window(right, 40) == 20  # the centred window of those holding [70, 80)
  assert window(np.zeros(100), 40) == 20  # nothing hot: centred
  left = np.zeros(100)
  left[0:10] = 0.01
  assert window(left, 40) == 0
  assert window(right, 0) == 0  # no crop: the whole width


def test_a_candidate_samples_only_its_window_and_a_pure_crop_copies_it(random_weights,
                                                                       small_photo):
  image = _wide(small_photo)  # 64 x 192 -> 64 x 96
  imps = _imps(random_weights, image)
  op = CFG.operator
  crop = _crop_warp(imps, 192, 96, op, jnp.int32(96), jnp.int32(32))
  pos = lambda m: (np.asarray(m.index0) + np.asarray(m.weight1)  # noqa: E731
                   * (np.asarray(m.index1) - np.asarray(m.index0)))
  np.testing.assert_allclose(pos(crop.maps["block1_conv2"]),  # every column copied
                             np.tile(32 + np.arange(96), (64, 1)), atol=1e-3)
  half = _crop_warp(imps, 192, 96, op, jnp.int32(48), jnp.int32(16))
  pos = pos(half.maps["block1_conv2"])
  assert pos.shape == (64, 96) and np.all(np.diff(pos, axis=1) > 0)
  assert pos.min() >= 16 - 0.5 and pos.max() <= 16 + 144 - 0.5
  assert np.all(pos == pos[:1])  # every row alike: a crop and a warp of columns
  for l in op.layers:  # every layer ends at the output's width
    assert half.maps[l].index0.shape[1] == vgg.layer_size(96, l)
  whole = _crop_warp(imps, 192, 96, op, jnp.int32(0), jnp.int32(0))
  m = whole.maps["block1_conv2"]
  assert int(np.asarray(m.index0).min()) == 0 and int(np.asarray(m.index1).max()) == 191


def test_a_known_map_is_the_map_recovered_from_the_images(random_weights, photo):
  """The audition scores a candidate on its own pixel map at the criterion's analysis
  resolution; correspondence.align recovers the same columns from the two images."""
  image = np.asarray(Image.fromarray(photo).resize((240, 160), Image.LANCZOS))
  imps = _imps(random_weights, image)
  p = _crop_warp(imps, 240, 150, CFG.operator, jnp.int32(45), jnp.int32(20))
  rp = audition.as_resize_plan(p, {}, (160, 240), (160, 150))
  out = np.asarray(resizing.to_uint8(resizing.deep_carving.apply_plan_to_layer(
      jnp.asarray(image, jnp.float32), rp, "block1_conv2")))
  known = np.asarray(audition.analysis_columns(p.maps["block1_conv2"], 240))
  found = correspondence.align(image, out).columns
  assert known.shape == found.shape
  assert np.mean(np.abs(known - found)) < 1.0 and np.max(np.abs(known - found)) <= 3


def test_the_chosen_candidate_has_the_highest_merit_the_criterion_gives(random_weights,
                                                                         small_photo):
  image = jnp.asarray(_wide(small_photo), jnp.float32)
  plan = resizing.make_plan((64, 192), (64, 96), CFG)
  c = _candidates(random_weights, image, plan)
  k = len(plan.crop_shares)
  assert c.merits.shape == (k,) and c.parts["squeeze"].shape == (k,)
  expect = human.score({**{p: c.parts[p] for p in ("squeeze", "lost")}, "residual": 0.0}
                       ) - CFG.operator.crop_lost_weight * c.parts["lost"]
  np.testing.assert_allclose(np.asarray(c.merits), np.asarray(expect), rtol=1e-5, atol=1e-6)
  # the warp alone loses nothing but squeezes most; the pure crop squeezes nothing
  assert float(c.parts["squeeze"][0]) == pytest.approx(float(c.parts["squeeze"].max()))
  assert float(c.parts["squeeze"][-1]) == pytest.approx(0.0, abs=1e-6)
  rp, best, merits, _ = _chosen(random_weights, image, plan)
  assert int(best) == int(np.argmax(np.asarray(merits)))
  assert rp.height is None and rp.width.maps["block1_conv2"].index0.shape == (64, 96)


@pytest.mark.real_weights
@pytest.mark.slow
def test_a_higher_price_on_lost_content_never_crops_more(real_weights, photo):
  # the cup and saucer fill the frame: a pure crop to half width cuts them
  image = jnp.asarray(np.asarray(Image.fromarray(photo[:, 60:540]).resize(
      (144, 96), Image.LANCZOS)), jnp.float32)
  chosen = []
  for price in (0.0, 10.0, 1000.0):
    cfg = dataclasses.replace(CFG, operator=dataclasses.replace(CFG.operator,
                                                                crop_lost_weight=price))
    plan = resizing.make_plan((96, 144), (96, 72), cfg)
    chosen.append(plan.crop_shares[int(_chosen(real_weights, image, plan)[1])])
  assert chosen == sorted(chosen, reverse=True), chosen
  assert chosen[0] > chosen[-1]


def test_a_resampling_is_its_pixel_map_on_the_input_without_eq4(random_weights, small_photo):
  image = _wide(small_photo)
  only_crop = dataclasses.replace(CFG, operator=dataclasses.replace(CFG.operator,
                                                                    crop_shares=(1.0,)))
  res = resizing.retarget(random_weights, image, (64, 96), only_crop)
  assert res.recon_losses == [] and res.operator == "crop"
  start = res.kept_span["width"][0]
  np.testing.assert_array_equal(res.output, image[:, start:start + 96])  # copied exactly
  res = resizing.retarget(random_weights, image, (64, 96), CFG)
  assert res.recon_losses == [] and res.operator in resizing.make_plan(
      (64, 192), (64, 96), CFG).operators
  assert set(res.operator_scores) == set(res.operator_features["lost"])
  assert res.operator_scores[res.operator] == max(res.operator_scores.values())


@pytest.mark.slow
def test_a_batch_chooses_per_image_like_one_by_one(random_weights, small_photo):
  images = [_wide(small_photo), _wide(small_photo[:, ::-1]), _wide(small_photo[::-1])]
  many = batching.retarget_many(random_weights, images, [(64, 96)] * 3, CFG, batch_size=3)
  for im, r in zip(images, many):
    one = resizing.retarget(random_weights, im, (64, 96), CFG)
    assert one.operator == r.operator
    np.testing.assert_array_equal(one.output, r.output)


@pytest.mark.parametrize("axis", [1, pytest.param(0, marks=pytest.mark.slow)])
def test_a_full_resolution_resampling_lifts_the_chosen_plan(random_weights, small_photo, axis):
  """Above plan_size the audition runs at the plan size and its pixel map is lifted onto
  the photo: a pure crop is then the photo's own pixels in the window."""
  image = np.asarray(Image.fromarray(_wide(small_photo)).resize((576, 192), Image.BILINEAR))
  out_hw = (192, 288)
  if axis == 0:
    image, out_hw = np.ascontiguousarray(image.transpose(1, 0, 2)), (288, 192)
  cfg = dataclasses.replace(CFG, plan_size=96, operator=dataclasses.replace(
      CFG.operator, crop_shares=(1.0,)))
  res = resizing.retarget(random_weights, image, out_hw, cfg)
  assert res.work_hw == ((32, 96) if axis == 1 else (96, 32)) and res.output.shape[:2] == out_hw
  name = "width" if axis == 1 else "height"
  start = res.kept_span[name][0] * 6  # working to full pixels
  window = image[:, start:start + 288] if axis == 1 else image[start:start + 288]
  np.testing.assert_array_equal(res.output, window)
