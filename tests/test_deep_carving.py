import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnr_jax.ops import column_maps
from dnr_jax import config
from dnr_jax.resizing import deep_carving
from dnr_jax.ops import receptive
from dnr_jax.nn import vgg

CFG = config.OperatorConfig()
# Jitted once per (sizes, config): eager execution of the plan dispatches thousands of ops.
plan_resize = jax.jit(deep_carving.plan_resize, static_argnums=(1, 2, 3))


def _feats(weights, image):
  f = vgg.features(weights, jnp.asarray(image, jnp.float32)[None], CFG.layers)
  return {k: v[0] for k, v in f.items()}


@pytest.mark.slow  # (every run checks its output's shape)
@pytest.mark.parametrize("out_hw", [(64, 72), (64, 48), (48, 96), (40, 60)])
def test_target_maps_have_the_shapes_of_the_output_features(random_weights, small_photo, out_hw):
  plan = plan_resize(_feats(random_weights, small_photo), (64, 96), out_hw, CFG)
  expect = vgg.feature_shapes(random_weights, *out_hw, CFG.layers)
  for l in CFG.layers:
    assert plan.targets[l].shape == expect[l][1:], l


@pytest.mark.parametrize("forward_weight", [pytest.param(0.0, marks=pytest.mark.slow), 1.0])
def test_seam_fraction_is_shared_and_warp_makes_up_the_rest(random_weights, small_photo,
                                                            forward_weight):
  # every seam allowed; the feature-space forward energy changes where seams go, not
  # how many
  cfg = config.OperatorConfig(percentile=100.0, forward_weight=forward_weight)
  plan = plan_resize(_feats(random_weights, small_photo), (64, 96), (64, 48), cfg)
  k5 = int(plan.width.num_removed["block5_pool"])
  assert k5 == 3 - 1  # 96/32=3 -> 48/32=1: all allowed seams removed
  frac = k5 / 3
  for l in CFG.layers:
    w = vgg.layer_size(96, l)
    k = int(plan.width.num_removed[l])
    assert k == min(round(frac * w), w - vgg.layer_size(48, l)), l
    assert plan.width.removed[l].sum() == k * vgg.layer_size(64, l)
  np.testing.assert_allclose(plan.width.cell_widths.sum(), 48, rtol=1e-4)


def test_threshold_stop_leaves_work_to_the_warp(random_weights, small_photo):
  cfg = config.OperatorConfig(percentile=0.0)  # only the mandatory first seam
  plan = plan_resize(_feats(random_weights, small_photo), (64, 96), (64, 40), cfg)
  assert int(plan.width.num_removed["block5_pool"]) == 1


def test_shallower_seams_are_steered_into_the_deep_receptive_field(random_weights, small_photo):
  plan = plan_resize(_feats(random_weights, small_photo), (64, 96), (64, 64), CFG)
  p = plan.width
  layers = deep_carving.sort_layers(CFG.layers)
  for shallow, deep in zip(layers[:-1], layers[1:]):
    rf = receptive.receptive_field_mask(p.removed[deep], shallow, deep, p.importance[shallow].shape)
    damped = np.where(rf, CFG.alpha * p.importance[shallow], p.importance[shallow])
    np.testing.assert_allclose(p.damped[shallow], damped, rtol=1e-6)


def test_jits_once_per_size_and_vmaps(random_weights, small_photo):
  batch = jnp.stack([jnp.asarray(small_photo, jnp.float32),
                     jnp.asarray(small_photo[:, ::-1], jnp.float32)])
  feats = {k: v for k, v in vgg.features(random_weights, batch, CFG.layers).items()}

  @jax.jit
  @chex.assert_max_traces(n=1)
  def plan_targets(f):
    return deep_carving.plan_resize(f, (64, 96), (64, 72), CFG).targets

  one = plan_targets({k: v[0] for k, v in feats.items()})
  plan_targets({k: v[1] for k, v in feats.items()})  # same sizes: no retrace
  both = jax.jit(jax.vmap(
      lambda f: deep_carving.plan_resize(f, (64, 96), (64, 72), CFG).targets))(feats)
  for l in CFG.layers:
    np.testing.assert_allclose(both[l][0], one[l], rtol=1e-4, atol=1e-3)


def test_identity_size_is_identity(random_weights, small_photo):
  f = _feats(random_weights, small_photo)
  plan = plan_resize(f, (64, 96), (64, 96), CFG)
  assert plan.width is None and plan.height is None
  np.testing.assert_array_equal(plan.targets["block3_conv4"], f["block3_conv4"])


def test_enlarging_beyond_twice_is_refused(random_weights, small_photo):
  with pytest.raises(ValueError, match="2x"):
    deep_carving.plan_width(_feats(random_weights, small_photo), 96, 200, CFG)


@pytest.mark.slow
def test_image_level_map_is_the_shallow_layer_map(random_weights, small_photo):
  plan = plan_resize(_feats(random_weights, small_photo), (64, 96), (64, 72), CFG)
  img = deep_carving.apply_plan_to_layer(jnp.asarray(small_photo, jnp.float32), plan,
                                         "block1_conv2")
  assert img.shape == (64, 72, 3)
  m = plan.width.maps["block1_conv2"]
  np.testing.assert_allclose(img, column_maps.apply(jnp.asarray(small_photo, jnp.float32), m))


@pytest.mark.parametrize("out_hw", [pytest.param((64, 72), marks=pytest.mark.slow), (64, 48)])
def test_shrinking_keeps_the_border_columns_at_the_border(random_weights, small_photo, out_hw):
  # The outermost output columns sample exactly the source's outermost columns at the
  # image level (their features saw the zero padding: anything else is a target no
  # image can meet, drawn as a coloured line along the border by Eq. 4).
  cfg = config.OperatorConfig(percentile=100.0)  # many seams: some would reach the border
  plan = plan_resize(_feats(random_weights, small_photo), (64, 96), out_hw, cfg)
  cm = plan.width.maps[CFG.layers[0]]
  src0 = np.where(np.asarray(cm.weight1[:, 0]) > 0.5, cm.index1[:, 0], cm.index0[:, 0])
  src1 = np.where(np.asarray(cm.weight1[:, -1]) > 0.5, cm.index1[:, -1], cm.index0[:, -1])
  assert np.all(src0 == 0) and np.all(src1 == 95)
  assert np.all(np.minimum(cm.weight1[:, 0], 1 - cm.weight1[:, 0]) < 1e-4)
  assert np.all(np.minimum(cm.weight1[:, -1], 1 - cm.weight1[:, -1]) < 1e-4)
  removed = np.asarray(plan.width.removed[CFG.layers[0]])
  assert not removed[:, :3].any() and not removed[:, -3:].any()


def test_seam_style_is_checked():
  with pytest.raises(ValueError, match="seam_style"):
    config.OperatorConfig(seam_style="slanted")


@pytest.mark.parametrize("seam_style", ["fast", "straight"])
def test_straight_seams_keep_out_of_a_deep_object(seam_style):
  """An object whose interior is smooth (low Eq. 1 importance at the shallow layer,
  lower than the textured background) but which the deeper layer finds important: the
  shallow seams cut through it by Eq. 1-2 alone ("fast"); "straight" adds the deeper
  layer's importance to the shallow energy and they go round it (the rocket)."""
  rng = np.random.default_rng(0)
  layers = ("block1_conv2", "block2_conv2")
  shallow = 1.0 + 0.1 * rng.random((16, 64, 4))
  shallow[:, 28:36] = 0.1  # the object's smooth interior
  deep = 0.1 + 0.05 * rng.random((8, 32, 4))
  deep[:, 13:19] = 3.0  # the deep layer sees the object (and its edges)
  feats = {"block1_conv2": jnp.asarray(shallow, jnp.float32),
           "block2_conv2": jnp.asarray(deep, jnp.float32)}
  cfg = config.OperatorConfig(layers=layers, percentile=100.0, forward_weight=0.0,
                              crop_shares=(), seam_style=seam_style)
  plan = plan_resize(feats, (16, 64), (16, 48), cfg)
  assert int(plan.width.num_removed["block1_conv2"]) == 16
  assert not bool(plan.width.removed["block2_conv2"][:, 13:19].any())  # deep seams avoid it
  cut = int(plan.width.removed["block1_conv2"][:, 28:36].sum())
  if seam_style == "straight":
    assert cut == 0
  else:
    assert cut == 16 * 8  # every column of the interior, on every row
  # the same number of seams either way: the style moves them, it does not stop them
  assert int(plan.width.num_removed["block2_conv2"]) == 8
