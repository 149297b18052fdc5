import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnr_jax import config
from dnr_jax import pipeline

FAST = config.RetargetConfig(
    reconstruction=config.ReconstructionConfig(steps=6, chunk=3, init="seams"),
    refinement=config.RefinementConfig(steps=3))


def test_retarget_end_to_end(random_weights, small_photo):
  seen = []
  res = pipeline.retarget(small_photo, (64, 72), FAST, random_weights,
                          progress=lambda *a: seen.append(a))
  assert res.output.shape == (64, 72, 3) and res.output.dtype == np.uint8
  assert res.reconstructed.shape == res.initial.shape == (64, 72, 3)
  assert len(res.recon_losses) == 6 and len(res.refine_losses) == 3
  assert min(res.recon_losses) < res.recon_losses[0]
  assert [s[:3] for s in seen] == [("reconstruction", 3, 6), ("reconstruction", 6, 6),
                                   ("refinement", 3, 3)]
  assert res.seams_removed["width"]["block5_pool"] >= 1
  assert res.target_shapes["block1_conv2"] == (64, 72, 64)
  assert set(res.timings) == {"prepare", "reconstruction", "refinement"}
  assert not res.interrupted


@pytest.mark.parametrize("init", ["linear", "seams", "noise"])
def test_initialisations(random_weights, small_photo, init):
  cfg = dataclasses.replace(FAST, reconstruction=config.ReconstructionConfig(steps=0, init=init),
                            refinement=config.RefinementConfig(steps=0))
  res = pipeline.retarget(small_photo, (48, 96), cfg, random_weights)
  assert res.initial.shape == (48, 96, 3)
  np.testing.assert_array_equal(res.output, res.initial)  # no step: output is the init
  if init == "noise":
    assert res.initial.std() > 50
  else:  # a resized photo: close to the photo's colours
    assert abs(res.initial.mean() - small_photo.mean()) < 10


def test_pure_pipeline_vmaps_over_a_batch(random_weights, small_photo):
  cfg = dataclasses.replace(FAST, reconstruction=config.ReconstructionConfig(steps=2))
  batch = jnp.stack([jnp.asarray(small_photo, jnp.float32),
                     jnp.asarray(small_photo[::-1], jnp.float32)])
  fn = jax.jit(jax.vmap(lambda im: pipeline.retarget_pure(random_weights, im, (64, 80), cfg)))
  out, aux = fn(batch)
  assert out.shape == (2, 64, 80, 3)
  assert aux["seams_width"]["block5_pool"].shape == (2,)
  single, _ = jax.jit(lambda im: pipeline.retarget_pure(random_weights, im, (64, 80), cfg))(
      batch[1])
  np.testing.assert_allclose(out[1], single, atol=0.5)


@pytest.mark.parametrize("out_hw,kw,match", [
    ((64, 100), {}, "larger than the input"),
    ((20, 96), {}, "32 px"),
    ((64, 80), {"init": "seams", "layers": ("block2_conv2", "block5_pool"),
                "loss": (("block2_conv2", 1.0),)}, "block1"),
    ((64, 80), {"loss": (("block3_conv1", 1.0),)}, "not among the operator layers"),
])
def test_invalid_requests_are_value_errors(random_weights, small_photo, out_hw, kw, match):
  cfg = config.RetargetConfig(
      operator=config.OperatorConfig(layers=kw.get("layers", config.DEFAULT_LAYERS)),
      reconstruction=config.ReconstructionConfig(
          init=kw.get("init", "linear"),
          loss_layers=kw.get("loss", (("block1_conv2", 1.0),))))
  with pytest.raises(ValueError, match=match):
    pipeline.retarget(small_photo, out_hw, cfg, random_weights)


def test_nan_loss_stops_with_a_clear_error(random_weights, small_photo):
  cfg = dataclasses.replace(FAST, reconstruction=config.ReconstructionConfig(
      steps=4, chunk=2, learning_rate=float("nan")))
  with pytest.raises(pipeline.NumericalError, match="nan"):
    pipeline.retarget(small_photo, (64, 72), cfg, random_weights)


def test_ctrl_c_keeps_the_best_image_so_far(random_weights, small_photo):
  def interrupt(phase, step, total, loss, its):
    if step >= 3:
      raise KeyboardInterrupt

  cfg = dataclasses.replace(FAST, reconstruction=config.ReconstructionConfig(steps=30, chunk=3))
  res = pipeline.retarget(small_photo, (64, 72), cfg, random_weights, progress=interrupt)
  assert res.interrupted
  assert res.output.shape == (64, 72, 3)
  assert len(res.recon_losses) == 3 and res.refine_losses == []


def test_a_second_image_of_the_same_sizes_compiles_nothing(random_weights, small_photo):
  pipeline.retarget(small_photo, (64, 76), FAST, random_weights)
  sizes = [f._cache_size() for f in (pipeline._prepare_jit, pipeline._recon_chunk,
                                     pipeline._refine_chunk)]
  pipeline.retarget(small_photo[:, ::-1].copy(), (64, 76), FAST, random_weights)
  assert [f._cache_size() for f in (pipeline._prepare_jit, pipeline._recon_chunk,
                                    pipeline._refine_chunk)] == sizes


def test_changing_only_the_step_count_reuses_the_compilations(random_weights, small_photo):
  pipeline.retarget(small_photo, (64, 68), FAST, random_weights)
  sizes = [f._cache_size() for f in (pipeline._prepare_jit, pipeline._recon_chunk)]
  more = dataclasses.replace(FAST, reconstruction=dataclasses.replace(FAST.reconstruction,
                                                                      steps=9))
  pipeline.retarget(small_photo, (64, 68), more, random_weights)  # chunks of 3, as before
  assert [f._cache_size() for f in (pipeline._prepare_jit, pipeline._recon_chunk)] == sizes
