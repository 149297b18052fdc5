"""Eq. 4 runs where it heals seams; a lifted resampling is its own pixel map."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from dnr_jax.resizing import batching
from dnr_jax import config
from dnr_jax.cli import cost_model
from dnr_jax import resizing
STEPS = 6
BASE = config.RetargetConfig(reconstruction=config.ReconstructionConfig(steps=STEPS, chunk=3))


def _with(cfg, **kw):
  """``cfg`` with operator (op_*) and reconstruction (rc_*) fields replaced."""
  op = {k[3:]: v for k, v in kw.items() if k.startswith("op_")}
  rc = {k[3:]: v for k, v in kw.items() if k.startswith("rc_")}
  return dataclasses.replace(cfg, operator=dataclasses.replace(cfg.operator, **op),
                             reconstruction=dataclasses.replace(cfg.reconstruction, **rc))


@pytest.mark.parametrize("image_hw, out_hw, kw, masked, expected", [
    # lifted (a 12 MP photo at the 640-px working size), no seams in any candidate: 0
    ((3000, 4000), (3000, 3000), {}, False, 0),
    ((3000, 4000), (2250, 4000), {}, False, 0),  # height
    ((3000, 4000), (3000, 3000), {"op_alternatives": ("crop", "warp")}, False, 0),
    ((3000, 4000), (3000, 3000), {"op_use_seams": False}, True, 0),  # keep mask, warp only
    # seams somewhere: Eq. 4 heals them
    ((3000, 4000), (3000, 5000), {}, False, STEPS),  # enlarging inserts seams
    ((3000, 4000), (2500, 3000), {}, False, STEPS),  # both axes: no crop, seams
    ((3000, 4000), (3000, 3000), {}, True, STEPS),  # a mask: no crop, seams
    ((3000, 4000), (3000, 3000), {"op_alternatives": ("warp", "seams")}, False, STEPS),
    ((3000, 4000), (3000, 3000), {"op_crop_share": 0.0}, False, STEPS),  # seams + warp
    # not the pixel map's init, or asked for: the steps run
    ((3000, 4000), (3000, 3000), {"rc_init": "linear"}, False, STEPS),
    ((3000, 4000), (3000, 3000), {"rc_reconstruct_resamplings": True}, False, STEPS),
    # at the input's own size the steps run (they sharpen the warp's columns)
    ((480, 640), (480, 480), {}, False, STEPS),
])
def test_reconstruction_steps_are_zero_only_for_a_lifted_resampling(image_hw, out_hw, kw,
                                                                    masked, expected):
  cfg = _with(BASE, **kw)
  s = resizing.sizes(image_hw, out_hw, cfg.work_size, cfg.work_multiple)
  assert resizing.reconstruction_steps(s, cfg, masked) == expected
  est = cost_model.estimate(resizing.make_plan(image_hw, out_hw, cfg, keep=masked))
  assert ("reconstruction" in est.seconds) == (expected > 0)


@pytest.mark.slow
def test_a_lifted_resampling_is_its_pixel_map_on_the_full_size_photo(random_weights, photo):
  """The bundled 400x600 photo at a 192-px working size, 75% width: crop + warp (a
  32-px crop, the block5_pool stride), no seams. The output is the lifted pixel map,
  exactly what 0 steps give; asking for the reconstruction runs it and changes it."""
  cfg = dataclasses.replace(BASE, work_size=192)
  out_hw = (400, 450)
  s = resizing.sizes(photo.shape[:2], out_hw, cfg.work_size)
  assert s.full_resolution and resizing.reconstruction_steps(s, cfg) == 0
  assert resizing.operator_names(s, cfg) == ("crop+warp", "warp")
  res = resizing.retarget(random_weights, photo, out_hw, cfg)
  assert res.output.shape == (400, 450, 3)
  assert res.recon_losses == [] and "reconstruction" not in res.timings
  np.testing.assert_array_equal(res.reconstructed, res.initial)
  zero = resizing.retarget(random_weights, photo, out_hw, _with(cfg, rc_steps=0))
  np.testing.assert_array_equal(res.output, zero.output)
  forced = resizing.retarget(random_weights, photo, out_hw,
                             _with(cfg, rc_reconstruct_resamplings=True))
  assert len(forced.recon_losses) == STEPS
  assert np.abs(forced.output.astype(int) - res.output).mean() > 0.1
  # the lifted map samples the full-size photo, not the 96-px working image: its detail
  # (mean absolute horizontal step) is the photo's, several times the upsampled result's
  up = np.asarray(Image.fromarray(res.reconstructed).resize((450, 400), Image.BICUBIC))
  detail = lambda im: np.abs(np.diff(im.astype(np.float32), axis=1)).mean()  # noqa: E731
  assert detail(res.output) > 2 * detail(up)
  assert detail(res.output) > 0.7 * detail(photo)


@pytest.mark.slow
def test_seams_still_get_their_reconstruction_when_lifted(random_weights, photo):
  cfg = _with(dataclasses.replace(BASE, work_size=192), op_crop_share=0.0)
  res = resizing.retarget(random_weights, photo, (400, 450), cfg)
  assert len(res.recon_losses) == STEPS
  assert res.seams_removed["width"]["block5_pool"] >= 1


def test_batches_group_images_by_their_step_count_too():
  """A lifted resampling (0 steps) and a photo at its own size (the steps run) of the
  same working shape go to separate batches; two lifted photos share one."""
  s = lambda hw, out: resizing.sizes(hw, out, 640, 32)  # noqa: E731
  jobs = [s((683, 1024), (683, 768)), s((416, 640), (416, 480)), s((680, 1020), (680, 765))]
  assert jobs[0].work == jobs[1].work == jobs[2].work and not jobs[1].full_resolution
  assert [batching.bucket_key(j).steps for j in jobs] == [0, 50, 0]
  assert batching.plan_batches(jobs, 8) == [[0, 2], [1]]
  forced = config.RetargetConfig(reconstruction=config.ReconstructionConfig(
      reconstruct_resamplings=True))
  assert batching.plan_batches(jobs, 8, forced) == [[0, 1, 2]]
