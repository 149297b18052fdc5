"""The operator chosen per image by the semantic score (OperatorConfig.alternatives)."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from dnr_jax.resizing import batching
from dnr_jax import config
from dnr_jax.resizing import deep_carving
from dnr_jax.quality import metrics
from dnr_jax import resizing
NO_STEPS = config.ReconstructionConfig(steps=0)
# (off by default; no margin: the plain argmax, see test_an_alternative_must_win_by_the_margin)
BOTH = config.OperatorConfig(alternatives=("crop", "seams"), alternative_margin=0.0)


def _wide(small_photo):
  """64 x 192: a flat border, the photo, its mirror image (a crop, seams or the warp can
  each win)."""
  return np.concatenate([np.full_like(small_photo[:, :32], 90), small_photo,
                         small_photo[:, ::-1][:, :64]], axis=1)


def test_alternatives_are_planned_only_for_a_one_axis_shrink_without_masks():
  op = BOTH
  names = lambda out, masked=False: [n for n, _ in resizing.candidate_operators(  # noqa: E731
      op, (100, 200), out, masked)]
  assert names((100, 150)) == ["crop+warp", "crop", "seams"]
  assert names((40, 200)) == ["crop+warp", "crop", "seams"]
  # the configured operator is named by what it does: a 25 px shrink is too small to
  # crop in 32 px steps, and masks, enlarging and two-axis jobs never crop
  assert names((75, 200)) == ["seams+warp", "crop", "seams"]
  assert names((100, 150), masked=True) == ["seams+warp"]
  assert names((100, 250)) == ["seams+warp"]  # enlarging
  assert names((80, 150)) == ["seams+warp"]  # both axes: choose_order decides
  assert names((100, 200)) == ["seams+warp"]
  cands = dict(resizing.candidate_operators(op, (100, 200), (100, 150)))
  assert cands["crop"].crop_share == 1.0
  assert cands["seams"].crop_share == 0.0 and cands["seams"].percentile == 100.0
  # the seams alternative finds its seams one per pass, each paying to move sideways,
  # guarded by the deeper layers' importance; the others keep the configured style
  assert cands["seams"].seam_style == "straight"
  assert cands["crop+warp"].seam_style == op.seam_style == "fast"
  assert all(c.alternatives == () for c in cands.values())
  warp = dict(resizing.candidate_operators(
      dataclasses.replace(op, alternatives=("crop", "warp")), (100, 200), (100, 150)))
  assert list(warp) == ["crop+warp", "crop", "warp"]
  assert warp["warp"].crop_share == 0.0 and not warp["warp"].use_seams
  assert deep_carving.crop_size(warp["warp"], (100, 200), (100, 150))[1] == 0
  only = config.OperatorConfig(alternatives=("seams",), crop_share=0.0)
  assert [n for n, _ in resizing.candidate_operators(only, (100, 200), (100, 150))] == [
      "seams+warp", "seams"]
  assert [n for n, _ in resizing.candidate_operators(  # the default: no seams
      config.OperatorConfig(), (100, 200), (100, 150))] == ["crop+warp", "warp"]


@pytest.mark.parametrize("bad", [("bogus",), ("crop", "crop"), ["crop"], "crop"])
def test_unknown_or_repeated_alternatives_are_refused(bad):
  with pytest.raises(ValueError, match="alternatives"):
    config.OperatorConfig(alternatives=bad)


@pytest.mark.parametrize("bad", [-1, 2.5, True])
def test_alternative_steps_must_be_a_whole_number(bad):
  with pytest.raises(ValueError, match="alternative_steps"):
    config.OperatorConfig(alternative_steps=bad)


@pytest.mark.slow
@pytest.mark.parametrize("axis", [1, 0])
def test_the_plan_kept_is_the_candidate_whose_image_keeps_the_most_deep_features(
    random_weights, small_photo, axis):
  """Each candidate run alone gives a pixel map (the seams init); the semantic score
  (Eq. 5) of each is the candidate's score, the highest wins, and the chosen plan is
  that candidate's own plan, leaf for leaf (the crop's plan padded to the whole image)."""
  image = _wide(small_photo)
  out_hw = (64, 128)
  if axis == 0:
    image, out_hw = np.ascontiguousarray(image.transpose(1, 0, 2)), (128, 64)
  image = jnp.asarray(image, jnp.float32)
  cfg = config.RetargetConfig(operator=dataclasses.replace(BOTH, alternative_steps=0),
                              reconstruction=NO_STEPS)
  prep = resizing.prepare(random_weights, image, out_hw, cfg)
  cands = resizing.candidate_operators(cfg.operator, image.shape[:2], out_hw)
  assert len(cands) == 3 and prep.operator_scores.shape == (3,)
  alone = {}
  for i, (name, op) in enumerate(cands):
    alone[name] = resizing.prepare(random_weights, image, out_hw,
                                   dataclasses.replace(cfg, operator=op))
    assert alone[name].operator_scores.shape == (1,)  # alone: nothing to choose
    score = float(metrics.semantic_score(random_weights, alone[name].init, image))
    assert float(prep.operator_scores[i]) == pytest.approx(score, rel=1e-4), name
    lost = float(metrics.completeness(alone[name].init, image))
    assert float(prep.operator_completeness[i]) == pytest.approx(lost, rel=1e-3), name
    assert np.asarray(alone[name].operator_completeness).tolist() == [0.0]
    torn = float(metrics.fine_coherence(alone[name].init, image))
    assert float(prep.operator_fine_coherence[i]) == pytest.approx(torn, rel=1e-3), name
    assert np.asarray(alone[name].operator_fine_coherence).tolist() == [0.0]
  best = int(np.argmax(np.asarray(prep.operator_scores)))
  assert int(prep.operator) == best
  chosen = alone[cands[best][0]]
  np.testing.assert_allclose(np.asarray(prep.init), np.asarray(chosen.init), atol=1e-3)
  axis_plan = prep.plan.width if axis == 1 else prep.plan.height
  own = chosen.plan.width if axis == 1 else chosen.plan.height
  for layer in cfg.operator.layers:
    np.testing.assert_array_equal(np.asarray(axis_plan.maps[layer].index0),
                                  np.asarray(own.maps[layer].index0))
  n = int(own.num_cells)
  np.testing.assert_allclose(np.asarray(axis_plan.cell_widths)[:n],
                             np.asarray(own.cell_widths)[:n])
  assert not np.any(np.asarray(axis_plan.cell_widths)[n:])  # zero padding past num_cells


@pytest.mark.slow
def test_each_candidate_is_scored_after_its_audition_steps_of_eq4(random_weights,
                                                                   small_photo):
  """With ``alternative_steps`` k, a candidate's score is the semantic score of the best
  image of k Adam steps of Eq. 4 from its pixel map: what the reconstruction of that
  candidate alone reaches after its first k steps."""
  image = jnp.asarray(_wide(small_photo), jnp.float32)
  out_hw = (64, 128)
  rc = config.ReconstructionConfig(steps=4, chunk=4)
  cfg = config.RetargetConfig(operator=dataclasses.replace(BOTH, alternative_steps=4),
                              reconstruction=rc)
  prep = resizing.prepare(random_weights, image, out_hw, cfg)
  raw = resizing.prepare(random_weights, image, out_hw, dataclasses.replace(
      cfg, operator=dataclasses.replace(BOTH, alternative_steps=0)))
  moved = False
  for i, (name, op) in enumerate(resizing.candidate_operators(cfg.operator,
                                                                  image.shape[:2], out_hw)):
    c = dataclasses.replace(cfg, operator=op)
    alone = resizing.prepare(random_weights, image, out_hw, c)
    state, _ = resizing.reconstruction_chunk(random_weights, alone.targets,
                                             resizing.reconstruction_init(alone.init, c), c, 4)
    score = float(metrics.semantic_score(random_weights, resizing.final_image(state), image))
    assert float(prep.operator_scores[i]) == pytest.approx(score, rel=1e-3), name
    moved |= abs(float(raw.operator_scores[i]) - score) > 1e-4
  assert moved  # the steps changed the scores: the test would see them skipped
  assert int(prep.operator) == int(np.argmax(np.asarray(prep.operator_scores)))


@pytest.mark.slow
def test_a_choice_among_resamplings_scores_the_raw_pixel_maps(random_weights, small_photo):
  """With only a crop and the warp (no candidate carves seams: no tears for the audition
  to smooth), the candidates are scored on their pixel maps as they are, whatever
  ``alternative_steps`` says; one seams candidate brings the audition back for all."""
  image = jnp.asarray(_wide(small_photo), jnp.float32)
  out_hw = (64, 128)
  op = config.OperatorConfig(alternatives=("crop", "warp"), alternative_margin=0.0)
  cands = resizing.candidate_operators(op, image.shape[:2], out_hw)
  assert [resizing.carves_seams(c, image.shape[:2], out_hw) for _, c in cands] == [
      False, False, False]
  seams = dict(resizing.candidate_operators(dataclasses.replace(
      op, alternatives=("seams",)), image.shape[:2], out_hw))["seams"]
  assert resizing.carves_seams(seams, image.shape[:2], out_hw)
  assert resizing.carves_seams(config.OperatorConfig(crop_share=0.0), image.shape[:2], out_hw)
  run = lambda o: resizing.prepare(random_weights, image, out_hw, config.RetargetConfig(  # noqa: E731
      operator=o, reconstruction=NO_STEPS))
  raw = run(dataclasses.replace(op, alternative_steps=0))
  steps = run(dataclasses.replace(op, alternative_steps=4))
  np.testing.assert_allclose(np.asarray(steps.operator_scores),
                             np.asarray(raw.operator_scores), rtol=1e-6)
  for i, (name, c) in enumerate(cands):
    alone = resizing.prepare(random_weights, image, out_hw, config.RetargetConfig(
        operator=c, reconstruction=NO_STEPS))
    score = float(metrics.semantic_score(random_weights, alone.init, image))
    assert float(steps.operator_scores[i]) == pytest.approx(score, rel=1e-4), name
  mixed = dataclasses.replace(op, alternatives=("crop", "warp", "seams"))
  moved = np.asarray(run(dataclasses.replace(mixed, alternative_steps=4)).operator_scores)
  still = np.asarray(run(dataclasses.replace(mixed, alternative_steps=0)).operator_scores)
  assert np.max(np.abs(moved - still)) > 1e-4


@pytest.mark.slow
def test_an_alternative_must_win_by_the_margin(random_weights, small_photo):
  """``alternative_margin``: an alternative is chosen only when its score beats the
  configured operator's by more than the margin; the scores themselves are unchanged."""
  image = jnp.asarray(_wide(small_photo), jnp.float32)
  out_hw = (64, 128)
  base = dataclasses.replace(BOTH, alternative_steps=0)
  run = lambda m: resizing.prepare(random_weights, image, out_hw, config.RetargetConfig(  # noqa: E731
      operator=dataclasses.replace(base, alternative_margin=m), reconstruction=NO_STEPS))
  free = run(0.0)
  scores = np.asarray(free.operator_scores)
  for margin in (0.0, float(np.max(scores[1:]) - scores[0]) / 2 if np.max(scores[1:]) >
                 scores[0] else 0.01, 1.0):
    prep = run(margin)
    np.testing.assert_allclose(np.asarray(prep.operator_scores), scores, rtol=1e-5)
    expect = int(np.argmax(scores - np.where(np.arange(3) > 0, margin, 0.0)))
    assert int(prep.operator) == expect, (margin, scores)
  assert int(run(1.0).operator) == 0  # nothing beats the configured operator by 1


@pytest.mark.slow
@pytest.mark.parametrize("charged", ["completeness", "fine_coherence"])
def test_each_charge_weight_costs_each_candidate_its_measure(random_weights, small_photo,
                                                             charged):
  """``alternative_completeness_weight`` w (what the image lost) and
  ``alternative_fine_coherence_weight`` v (what it invented at half size): the kept
  candidate maximises its semantic score - w x completeness - v x fine coherence (minus
  the margin for an alternative); the reported values do not depend on the weights, and
  a huge weight keeps the candidate least charged by its measure."""
  image = jnp.asarray(_wide(small_photo), jnp.float32)
  out_hw = (64, 128)
  base = dataclasses.replace(BOTH, alternative_steps=0, alternative_margin=0.005,
                             alternative_completeness_weight=10.0,
                             alternative_fine_coherence_weight=10.0)
  field = f"alternative_{charged}_weight"
  run = lambda x: resizing.prepare(random_weights, image, out_hw, config.RetargetConfig(  # noqa: E731
      operator=dataclasses.replace(base, **{field: x}), reconstruction=NO_STEPS))
  free = run(0.0)
  scores, lost = np.asarray(free.operator_scores), np.asarray(free.operator_completeness)
  torn = np.asarray(free.operator_fine_coherence)
  measure = lost if charged == "completeness" else torn
  assert np.all(measure > 0) and len(set(measure.round(7))) > 1
  handicap = np.where(np.arange(3) > 0, 0.005, 0.0)
  merit = lambda x: (scores - 10.0 * lost - 10.0 * torn - handicap  # noqa: E731
                     - (x - 10.0) * measure)
  chosen = set()
  for x in (0.0, 10.0, 100.0, 1e5):
    prep = run(x)
    for got, want in ((prep.operator_scores, scores), (prep.operator_completeness, lost),
                      (prep.operator_fine_coherence, torn)):
      np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)
    assert int(prep.operator) == int(np.argmax(merit(x))), (x, scores, lost, torn)
    chosen.add(int(prep.operator))
  assert int(run(1e5).operator) == int(np.argmin(measure))
  assert len(chosen) > 1 or int(np.argmax(merit(0.0))) == int(np.argmin(measure))


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_alternative_margin_is_a_share_of_the_score(bad):
  with pytest.raises(ValueError, match="alternative_margin"):
    config.OperatorConfig(alternative_margin=bad)


@pytest.mark.slow
def test_the_result_names_the_operator_and_each_candidates_score(random_weights, small_photo):
  image = _wide(small_photo)
  cfg = config.RetargetConfig(operator=BOTH, reconstruction=NO_STEPS)
  res = resizing.retarget(random_weights, image, (64, 128), cfg)
  assert set(res.operator_scores) == set(res.operator_completeness) == set(
      res.operator_fine_coherence) == {"crop+warp", "crop", "seams"}
  merit = {n: res.operator_scores[n] - BOTH.alternative_completeness_weight *
           res.operator_completeness[n] - BOTH.alternative_fine_coherence_weight *
           res.operator_fine_coherence[n] for n in res.operator_scores}
  assert res.operator == max(merit, key=merit.get)
  alone = resizing.retarget(random_weights, image, (64, 128), dataclasses.replace(
      cfg, operator=config.OperatorConfig(alternatives=())))
  assert alone.operator == "crop+warp" and alone.operator_scores == {}
  assert alone.operator_completeness == {} and alone.operator_fine_coherence == {}


@pytest.mark.slow
def test_the_chosen_plan_lifts_to_full_resolution_like_the_same_operator_alone(
    random_weights, small_photo):
  """At full resolution (the plan lifted by fullres) the output is the output of the
  chosen candidate configured alone: the selection changes nothing downstream."""
  wide = np.asarray(Image.fromarray(_wide(small_photo)).resize((576, 192), Image.LANCZOS))
  cfg = config.RetargetConfig(operator=BOTH, reconstruction=NO_STEPS, work_size=192)
  res = resizing.retarget(random_weights, wide, (192, 384), cfg)
  cands = dict(resizing.candidate_operators(cfg.operator, (64, 192), (64, 128)))
  alone = resizing.retarget(random_weights, wide, (192, 384),
                            dataclasses.replace(cfg, operator=cands[res.operator]))
  assert res.output.shape == (192, 384, 3)
  np.testing.assert_array_equal(res.output, alone.output)


@pytest.mark.slow
def test_a_vmapped_batch_chooses_per_image_like_one_by_one(random_weights, small_photo):
  """The choice is a traced index inside the vmapped prepare: each image of a batch gets
  its own operator, scores and output, equal to its one-by-one run."""
  a = _wide(small_photo)
  images = [a, np.ascontiguousarray(a[:, ::-1])]
  cfg = config.RetargetConfig(operator=BOTH,
                              reconstruction=config.ReconstructionConfig(steps=4, chunk=2))
  batched = batching.retarget_batch(random_weights, images, [(64, 128)] * 2, cfg)
  for image, res in zip(images, batched):
    one = resizing.retarget(random_weights, image, (64, 128), cfg)
    assert res.operator == one.operator and res.operator_scores == pytest.approx(
        one.operator_scores, rel=1e-5)
    assert np.abs(res.output.astype(int) - one.output).max() <= 1


def test_the_warp_candidate_squeezes_every_row_alike_and_keeps_both_borders(random_weights,
                                                                            small_photo):
  """"warp": no crop and no seam at any layer; every row of every layer's column map
  samples the same source positions, in order (nothing is cut, torn or duplicated), from
  the first column to the last; the important columns keep more of their width."""
  image = jnp.asarray(_wide(small_photo), jnp.float32)
  out_hw = (64, 128)
  op = dict(resizing.candidate_operators(
      dataclasses.replace(BOTH, alternatives=("warp",)), image.shape[:2], out_hw))["warp"]
  prep = resizing.prepare(random_weights, image, out_hw,
                          config.RetargetConfig(operator=op, reconstruction=NO_STEPS))
  plan = prep.plan.width
  assert prep.plan.height is None
  for layer in op.layers:
    assert int(plan.num_removed[layer]) == 0, layer
    cm = plan.maps[layer]
    x = np.asarray(cm.index0 + cm.weight1 * (cm.index1 - cm.index0))  # source coordinate
    np.testing.assert_allclose(x, np.broadcast_to(x[:1], x.shape), atol=1e-5)
    assert np.all(np.diff(x[0]) > 0), layer
  x = np.asarray(plan.maps[op.layers[0]].index0)[0]
  assert x[0] <= 1 and x[-1] >= image.shape[1] - 2  # both borders kept: no crop
  widths = np.asarray(plan.cell_widths)[:int(plan.num_cells)]
  assert widths.max() > 1.5 * widths.min()  # importance-driven, not a uniform scaling
