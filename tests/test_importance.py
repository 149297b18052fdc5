import jax.numpy as jnp
import numpy as np

from dnr_jax.ops import importance


def test_eq1_is_the_channel_l2_norm():
  f = np.random.RandomState(0).randn(4, 5, 7).astype(np.float32)
  np.testing.assert_allclose(importance.importance_map(jnp.asarray(f)),
                             np.sqrt((f ** 2).sum(-1)), rtol=1e-6)


def test_effective_map_sums_mean_normalised_upsampled_layers():
  fine = jnp.ones((8, 12)) * 5.0
  coarse = jnp.zeros((2, 3)).at[0, 0].set(6.0)  # all importance in the top-left cell
  eff = importance.effective_importance({"a": fine, "b": coarse}, 8, 12)
  assert eff.shape == (8, 12)
  np.testing.assert_allclose(float(eff.mean()), 2.0, rtol=1e-2)  # each layer has mean ~1
  assert float(eff[0, 0]) > float(eff[-1, -1]) + 1.0
  np.testing.assert_allclose(float(eff[-1, -1]), 1.0, atol=1e-5)  # only the fine layer there
