import jax
import jax.numpy as jnp
import numpy as np

from dnr_jax.resizing import reconstruct


def test_loss_only_computes_the_lambda_layers(random_weights):
  x = jnp.zeros((40, 48, 3))
  tgt = {"block1_conv2": jnp.zeros((40, 48, 64))}
  step = reconstruct.make_step(
      lambda im: reconstruct.feature_loss(random_weights, im, tgt, {"block1_conv2": 1.0,
                                                                    "block5_pool": 0.0}), 1.0)
  jaxpr = str(jax.make_jaxpr(step)(reconstruct.init_state(x, 1.0)))
  # two convs forward, and two for the gradient w.r.t. the image (none for weights)
  assert jaxpr.count("conv_general_dilated") == 4
  assert "reduce_window_max" not in jaxpr and "max_pool" not in jaxpr


def test_adam_reduces_the_loss_keeps_the_range_and_tracks_the_best(random_weights):
  rng = np.random.RandomState(0)
  goal = jnp.asarray(rng.uniform(0, 255, (32, 40, 3)).astype(np.float32))
  layers = {"block1_conv2": 1.0}
  tgt = {"block1_conv2": reconstruct.vgg.features(random_weights, goal[None],
                                                  ["block1_conv2"])["block1_conv2"][0]}
  loss = lambda im: reconstruct.feature_loss(random_weights, im, tgt, layers)  # noqa: E731
  step = reconstruct.make_step(loss, 4.0)
  state = reconstruct.init_state(jnp.full((32, 40, 3), 128.0), 4.0)
  state, losses = jax.jit(lambda s: reconstruct.run_chunk(step, s, 30))(state)
  losses = np.asarray(losses)
  assert losses[-1] < 0.3 * losses[0]
  assert float(state.image.min()) >= 0 and float(state.image.max()) <= 255
  np.testing.assert_allclose(float(state.best_loss), losses.min(), rtol=1e-6)
  np.testing.assert_allclose(float(loss(state.best_image)), losses.min(), rtol=1e-4)


def test_rolled_and_unrolled_chunks_agree(random_weights):
  tgt = {"block1_conv2": jnp.ones((32, 32, 64))}
  loss = lambda im: reconstruct.feature_loss(random_weights, im, tgt, {"block1_conv2": 1.0})  # noqa
  step = reconstruct.make_step(loss, 2.0)
  s0 = reconstruct.init_state(jnp.full((32, 32, 3), 100.0), 2.0)
  a, la = jax.jit(lambda s: reconstruct.run_chunk(step, s, 5, unroll=True))(s0)
  b, lb = jax.jit(lambda s: reconstruct.run_chunk(step, s, 5, unroll=False))(s0)
  np.testing.assert_allclose(la, lb, rtol=1e-4)
  np.testing.assert_allclose(a.image, b.image, atol=1e-2)
