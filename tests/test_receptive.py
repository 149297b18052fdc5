import jax.numpy as jnp
import numpy as np
import pytest

from dnr_jax.ops import receptive
from dnr_jax.nn import vgg


@pytest.mark.parametrize("shallow,deep", [("block4_conv4", "block5_pool"),
                                          ("block1_conv2", "block2_conv2"),
                                          ("block3_conv4", "block4_conv4"),
                                          ("block1_conv2", "block5_pool")])
def test_mask_propagation_matches_the_interval_formula(shallow, deep):
  h, w = 64, 96  # multiples of 32: no position is dropped by VALID pooling
  hd, wd = vgg.layer_size(h, deep), vgg.layer_size(w, deep)
  hs, ws = vgg.layer_size(h, shallow), vgg.layer_size(w, shallow)
  rng = np.random.RandomState(0)
  for _ in range(3):
    i, j = rng.randint(hd), rng.randint(wd)
    mask = np.zeros((hd, wd), bool)
    mask[i, j] = True
    got = np.asarray(receptive.receptive_field_mask(jnp.asarray(mask), shallow, deep, (hs, ws)))
    (r0, r1), (c0, c1) = (receptive.receptive_interval(i, shallow, deep),
                          receptive.receptive_interval(j, shallow, deep))
    expect = np.zeros((hs, ws), bool)
    expect[max(r0, 0):r1 + 1, max(c0, 0):c1 + 1] = True
    np.testing.assert_array_equal(got, expect)


def test_known_interval_block5_pool_to_block4_conv4():
  # pool [2j, 2j+1] -> 4 convs widen by 4 -> block4 pool doubles: [4j-8, 4j+11]
  assert receptive.receptive_interval(3, "block4_conv4", "block5_pool") == (4, 23)
  assert receptive.receptive_interval(5, "block1_conv2", "block1_conv2") == (5, 5)


def test_positions_dropped_by_floor_pooling_are_outside_every_receptive_field():
  # block4_conv4 of width 11 pools to 5 columns: column 10 feeds nothing deeper.
  mask = jnp.ones((1, 2), bool)
  got = np.asarray(receptive.receptive_field_mask(mask, "block4_conv4", "block5_pool", (5, 11)))
  assert got[:4, :10].all() and not got[:, 10].any() and not got[4].any()
