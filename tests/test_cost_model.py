import dataclasses

from dnr_jax import config
from dnr_jax import resizing
from dnr_jax.cli import cost_model


def test_estimates_grow_with_the_input_and_stop_growing_at_the_working_size():
  cfg = config.RetargetConfig(work_size=640, operator=config.OperatorConfig(crop_shares=()))
  small = cost_model.estimate(resizing.make_plan((480, 640), (480, 480), cfg))
  mp12 = cost_model.estimate(resizing.make_plan((3000, 4000), (3000, 3000), cfg))
  mp24 = cost_model.estimate(resizing.make_plan((4000, 6000), (4000, 4500), cfg))
  assert small.work_hw == (480, 640) and "full resolution" not in small.seconds
  assert mp12.work_hw == (480, 640) and mp12.work_out_hw == (480, 480)
  # the deep phases run at the working size whatever the input ...
  assert mp12.seconds["reconstruction"] == small.seconds["reconstruction"]
  # ... the full-resolution phases and the memory grow with the pixels
  assert small.total_s < mp12.total_s < mp24.total_s
  assert small.peak_rss_bytes < mp12.peak_rss_bytes < mp24.peak_rss_bytes
  assert mp12.to_json()["total_s"] == round(mp12.total_s, 2)


def test_more_steps_cost_more():
  paper = config.PAPER
  base = cost_model.estimate(resizing.make_plan((480, 640), (480, 480), paper))
  more = cost_model.estimate(resizing.make_plan((480, 640), (480, 480), dataclasses.replace(
      paper, reconstruction=dataclasses.replace(paper.reconstruction, steps=200))))
  assert more.seconds["reconstruction"] > 2 * base.seconds["reconstruction"]


def test_a_resampling_costs_a_fraction_and_its_candidates_little():
  """The default's crop + warp (no Eq. 4, planned at plan_size) is estimated far below
  the paper's seams and Eq. 4; each audition candidate adds a little."""
  default = cost_model.estimate(resizing.make_plan((480, 640), (480, 480),
                                                   config.RetargetConfig()))
  paper = cost_model.estimate(resizing.make_plan((480, 640), (480, 480), config.PAPER))
  assert "reconstruction" not in default.seconds and "full resolution" in default.seconds
  assert default.total_s < paper.total_s / 3
  one = config.RetargetConfig(operator=config.OperatorConfig(crop_shares=(1.0,)))
  single = cost_model.estimate(resizing.make_plan((480, 640), (480, 480), one))
  assert single.seconds["prepare"] < default.seconds["prepare"]
  assert single.peak_rss_bytes < default.peak_rss_bytes
  # no audition when both axes change: the shares change nothing
  two_axes = [cost_model.estimate(resizing.make_plan((480, 640), (400, 480), c))
              for c in (config.RetargetConfig(), one)]
  assert two_axes[0].to_json() == two_axes[1].to_json()
