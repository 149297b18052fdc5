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
    # the audition's crop + warp: a resampling at any size, no Eq. 4
    ((3000, 4000), (3000, 3000), {}, False, 0),
    ((3000, 4000), (2250, 4000), {}, False, 0),  # height
    ((480, 640), (480, 480), {}, False, 0),  # at the input's own size too (issue 34)
    ((3000, 4000), (3000, 3000), {"op_crop_shares": (1.0,)}, False, 0),
    # seams somewhere: Eq. 4 heals them
    ((3000, 4000), (3000, 5000), {}, False, STEPS),  # enlarging inserts seams
    ((3000, 4000), (2500, 3000), {}, False, STEPS),  # both axes: no audition, seams
    ((3000, 4000), (3000, 3000), {}, True, STEPS),  # a mask: no audition, seams
    ((3000, 4000), (3000, 3000), {"op_crop_shares": ()}, False, STEPS),  # the paper's
    # the warp alone (no seams) with a mask is a resampling too
    ((3000, 4000), (3000, 3000), {"op_use_seams": False}, True, 0),
    # not the pixel map's init, or asked for: the steps run
    ((3000, 4000), (3000, 3000), {"rc_init": "linear"}, False, STEPS),
    ((480, 640), (480, 480), {"rc_reconstruct_resamplings": True}, False, STEPS),
])
def test_reconstruction_steps_are_zero_only_for_a_resampling(image_hw, out_hw, kw, masked,
                                                               expected):
  cfg = _with(BASE, **kw)
  assert resizing.reconstruction_steps(cfg, image_hw, out_hw, masked) == expected
  plan = resizing.make_plan(image_hw, out_hw, cfg, keep=masked)
  assert plan.steps == expected and plan.resampling == (expected == 0)
  # a resampling is planned at plan_size, the rest at work_size
  assert max(plan.sizes.work) == (cfg.plan_size if expected == 0 else cfg.work_size)
  est = cost_model.estimate(plan)
  assert ("reconstruction" in est.seconds) == (expected > 0)


@pytest.mark.slow
def test_a_lifted_resampling_is_its_pixel_map_on_the_full_size_photo(random_weights, photo):
  """The bundled 400x600 photo at 75% width: planned at a 192-px plan size, delivered as
  the lifted pixel map, exactly what 0 steps give; asking for the reconstruction runs
  it (at the work size) and changes it."""
  cfg = dataclasses.replace(BASE, plan_size=192)
  out_hw = (400, 450)
  plan = resizing.make_plan(photo.shape[:2], out_hw, cfg)
  assert plan.sizes.full_resolution and plan.steps == 0 and plan.sizes.work == (128, 192)
  res = resizing.retarget(random_weights, photo, out_hw, cfg)
  assert res.output.shape == (400, 450, 3)
  assert res.recon_losses == [] and "reconstruction" not in res.timings
  np.testing.assert_array_equal(res.reconstructed, res.initial)
  forced = resizing.retarget(random_weights, photo, out_hw,
                             _with(dataclasses.replace(cfg, work_size=192),
                                   rc_reconstruct_resamplings=True))
  assert len(forced.recon_losses) == STEPS
  assert not np.array_equal(forced.output, res.output)
  # the lifted map samples the full-size photo, not the 128-px working image: its
  # detail (mean absolute horizontal step) is the photo's, several times the upsampled
  # result's
  up = np.asarray(Image.fromarray(res.reconstructed).resize((450, 400), Image.BICUBIC))
  detail = lambda im: np.abs(np.diff(im.astype(np.float32), axis=1)).mean()  # noqa: E731
  assert detail(res.output) > 2 * detail(up)
  assert detail(res.output) > 0.7 * detail(photo)


@pytest.mark.slow
def test_seams_still_get_their_reconstruction_when_lifted(random_weights, photo):
  cfg = _with(dataclasses.replace(BASE, work_size=192), op_crop_shares=())
  res = resizing.retarget(random_weights, photo, (400, 450), cfg)
  assert len(res.recon_losses) == STEPS
  assert res.seams_removed["width"]["block5_pool"] >= 1


def test_batches_group_images_by_their_step_count_too():
  """A resampling (0 steps) and a seam job (the steps run) of the same working shape go
  to separate batches; two resamplings share one."""
  seams = _with(config.RetargetConfig(work_size=320, work_multiple=32), op_crop_shares=())
  s = lambda hw, out, cfg: resizing.make_plan(hw, out, cfg)  # noqa: E731
  auto = config.RetargetConfig(work_multiple=32)
  jobs = [s((683, 1024), (683, 768), auto), s((448, 640), (448, 480), seams),
          s((680, 1020), (680, 765), auto)]
  assert jobs[0].sizes.work == jobs[1].sizes.work == jobs[2].sizes.work
  assert [j.batch_key.steps for j in jobs] == [0, 50, 0]
  assert batching.plan_batches(jobs, 8) == [[0, 2], [1]]
