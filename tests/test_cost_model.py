from dnr_jax import config
from dnr_jax import cost_model


def test_estimates_grow_with_the_input_and_stop_growing_at_the_working_size():
  cfg = config.RetargetConfig(work_size=640)
  small = cost_model.estimate((480, 640), (480, 480), cfg)
  mp12 = cost_model.estimate((3000, 4000), (3000, 3000), cfg)
  mp24 = cost_model.estimate((4000, 6000), (4000, 4500), cfg)
  assert small.work_hw == (480, 640) and "full resolution" not in small.seconds
  assert mp12.work_hw == (480, 640) and mp12.work_out_hw == (480, 480)
  # the deep phases run at the working size whatever the input ...
  assert mp12.seconds["reconstruction"] == small.seconds["reconstruction"]
  # ... the full-resolution phases and the memory grow with the pixels
  assert small.total_s < mp12.total_s < mp24.total_s
  assert small.peak_rss_bytes < mp12.peak_rss_bytes < mp24.peak_rss_bytes
  assert mp12.to_json()["total_s"] == round(mp12.total_s, 2)


def test_more_steps_cost_more():
  base = cost_model.estimate((480, 640), (480, 480), config.RetargetConfig())
  more = cost_model.estimate((480, 640), (480, 480), config.RetargetConfig(
      reconstruction=config.ReconstructionConfig(steps=200)))
  assert more.seconds["reconstruction"] > 2 * base.seconds["reconstruction"]
