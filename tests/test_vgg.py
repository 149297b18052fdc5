import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnr_jax.nn import vgg


def _count_convs(fn, *args):
  jaxpr = jax.make_jaxpr(fn)(*args)
  return str(jaxpr).count("conv_general_dilated")


def test_layer_table():
  names = vgg.layer_names()
  assert len(names) == 21 and names[0] == "block1_conv1" and names[-1] == "block5_pool"
  assert len(vgg.conv_layer_names()) == 16 and len(vgg.conv_layer_names("vgg16")) == 13
  assert vgg.layer_stride("block3_conv4") == 4 and vgg.layer_stride("block5_pool") == 32
  assert vgg.layer_size(600, "block5_pool") == 18 and vgg.layer_size(450, "block5_pool") == 14
  with pytest.raises(ValueError, match="block4_conv5"):
    vgg.layer_index("block4_conv5")


def test_nothing_past_the_deepest_requested_layer_is_computed(random_weights):
  x = jnp.zeros((1, 32, 32, 3))
  n1 = _count_convs(lambda x: vgg.features(random_weights, x, ["block1_conv2"]), x)
  n3 = _count_convs(lambda x: vgg.features(random_weights, x, ["block1_conv1", "block3_conv1"]), x)
  n_all = _count_convs(lambda x: vgg.features(random_weights, x, ["block5_pool"]), x)
  assert (n1, n3, n_all) == (2, 5, 16)


def test_feature_shapes_follow_the_strides(random_weights):
  shapes = vgg.feature_shapes(random_weights, 70, 101, ["block1_conv2", "block3_conv4",
                                                         "block5_pool"])
  assert shapes == {"block1_conv2": (1, 70, 101, 64), "block3_conv4": (1, 17, 25, 256),
                    "block5_pool": (1, 2, 3, 512)}


def test_preprocessing_is_applied_from_the_convention():
  rgb = jnp.array([[[[10.0, 20.0, 30.0]]]])
  np.testing.assert_allclose(vgg.CAFFE_BGR.apply(rgb)[0, 0, 0],
                             [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-6)
  np.testing.assert_allclose(vgg.TORCHVISION_RGB.apply(rgb)[0, 0, 0],
                             (np.array([10, 20, 30]) / 255 - [0.485, 0.456, 0.406])
                             / [0.229, 0.224, 0.225], rtol=1e-5)


def test_features_reject_wrong_shapes(random_weights):
  with pytest.raises(AssertionError):
    vgg.features(random_weights, jnp.zeros((32, 32, 3)), ["block1_conv1"])
