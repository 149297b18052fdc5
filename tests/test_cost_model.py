from dnr_jax import config
from dnr_jax import resizing
from dnr_jax.cli import cost_model


def test_estimates_grow_with_the_input_and_stop_growing_at_the_working_size():
  cfg = config.RetargetConfig(work_size=640, reconstruction=config.ReconstructionConfig(
      reconstruct_resamplings=True))  # (else the lifted ones skip it: test_reconstruction_steps)
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
  base = cost_model.estimate(resizing.make_plan((480, 640), (480, 480),
                                                config.RetargetConfig()))
  more = cost_model.estimate(resizing.make_plan((480, 640), (480, 480), config.RetargetConfig(
      reconstruction=config.ReconstructionConfig(steps=200))))
  assert more.seconds["reconstruction"] > 2 * base.seconds["reconstruction"]


def test_auditioned_operators_cost_prepare_time_and_memory():
  none = config.RetargetConfig(operator=config.OperatorConfig(alternatives=()))
  both = config.RetargetConfig(operator=config.OperatorConfig(alternatives=("crop", "seams")))
  one = config.RetargetConfig(operator=config.OperatorConfig(alternatives=("seams",)))
  est = {n: cost_model.estimate(resizing.make_plan((480, 640), (480, 480), c))
         for n, c in (("none", none), ("one", one), ("both", both))}
  assert est["none"].seconds["prepare"] < est["one"].seconds["prepare"] < est["both"].seconds[
      "prepare"]
  assert est["none"].peak_rss_bytes < est["one"].peak_rss_bytes < est["both"].peak_rss_bytes
  assert est["none"].seconds["reconstruction"] == est["both"].seconds["reconstruction"]
  # no alternatives are planned when both axes change (candidate_operators): same cost
  two_axes = [cost_model.estimate(resizing.make_plan((480, 640), (400, 480), c))
              for c in (none, both)]
  assert two_axes[0].to_json() == two_axes[1].to_json()
