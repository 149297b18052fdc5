"""The operator audition and the axis order: the decisions made by looking at pixels.

Every candidate operator of the plan (:attr:`dnr_jax.resizing.plan.Plan.candidates`:
the configured one, then the alternatives crop / warp / seams for a one-axis shrink
without masks) plans the image; the plan whose image keeps the most of the input's
deep features is kept (Eq. 5, less what it lost and invented). For a two-axis job
under ``axis_order="auto"`` both orders are planned and the one whose pixel map keeps
more deep features wins (:func:`order_scores`). Both are pure and vmappable.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from dnr_jax.config import OperatorConfig
from dnr_jax.nn import vgg
from dnr_jax.ops import importance
from dnr_jax.quality import metrics
from dnr_jax.resizing import deep_carving
from dnr_jax.resizing import reconstruct


def _semantic_crop(weights, image, sem_energy, axis: int, crop: int, layers, count: int):
  """The crop window: (offset, the kept crop's features {layer: (h, w, c)}).

  ``sem_energy`` (h, w) is the uncropped image's Eq. 5 summand (``metrics.SEMANTIC_LAYER``
  energy per position); its column sums rank the windows
  (:func:`deep_carving.crop_candidates`). The ``count`` best crops go through VGG as one
  batch, and the crop whose own Eq. 5 numerator is highest is kept (the crop's border
  features see its edge, which the ranking cannot), its features reused for the plan.
  Cost: ``count`` forward passes of the crop instead of one."""
  n = image.shape[axis]
  sem = metrics.SEMANTIC_LAYER
  starts = deep_carving.crop_candidates(sem_energy if axis == 1 else sem_energy.T, n, crop,
                                        vgg.layer_stride(layers[-1], weights.arch), sem,
                                        count, weights.arch)
  windows = jax.vmap(lambda s: jax.lax.dynamic_slice_in_dim(image, s, n - crop, axis=axis))(
      starts)
  feats = vgg.features(weights, windows, tuple(dict.fromkeys((*layers, sem))))
  # Ties (to float rounding) go to the better-ranked window: argmax takes the first.
  best = jnp.argmax(jnp.sum(jnp.square(feats[sem]), axis=(1, 2, 3)))
  return starts[best], {k: feats[k][best] for k in layers}


def deep_plan(weights, image, out_hw, operator: OperatorConfig, keep=None, remove=None,
              feats=None) -> deep_carving.ResizePlan:
  """The deep operator's plan of one (working-size) image: its features (one forward
  pass) -> :func:`deep_carving.plan_resize`, in the order ``operator.axis_order``
  (resolved by the plan). With ``operator.crop_share`` (one shrinking axis, no masks)
  a window is cropped first (:func:`deep_carving.crop_size`; chosen by
  :func:`_semantic_crop`), the crop gets its own forward pass (its border features
  then see the zero padding, like the output's) and plan (the warp alone), and the plan is
  shifted back onto the whole image (:func:`deep_carving.uncrop`), so every later
  phase sees an ordinary plan. The crop departs from the paper (whose operator is the
  seams and the warp alone): it keeps subjects' proportions at large shrinks.
  ``feats``: the image's features {layer: (h, w, c)} when already computed (they must
  hold ``operator.layers`` and ``metrics.SEMANTIC_LAYER``; :func:`chosen_plan` shares
  one forward pass)."""
  layers = deep_carving.sort_layers(operator.layers, weights.arch)
  order = operator.axis_order if operator.axis_order != "auto" else "width_first"
  axis, crop = deep_carving.crop_size(operator, image.shape[:2], out_hw, weights.arch,
                                      masked=keep is not None or remove is not None)
  sem = metrics.SEMANTIC_LAYER
  wanted = tuple(dict.fromkeys((*layers, sem))) if crop else layers
  if feats is None:
    feats = {k: v[0] for k, v in vgg.features(weights, image[None], wanted).items()}
  feats = {k: feats[k] for k in wanted}
  if crop:  # Eq. 5's summand of the uncropped image, computed on the way down
    sem_energy = jnp.sum(jnp.square(feats[sem]), axis=-1)
    feats = {k: feats[k] for k in layers}
  if not crop:
    return deep_carving.plan_resize(feats, image.shape[:2], out_hw, operator, weights.arch,
                                    keep=keep, remove=remove, order=order)
  orient = (lambda x: x) if axis == 1 else (lambda x: jnp.swapaxes(x, 0, 1))
  full_imp = {l: orient(importance.importance_map(f)) for l, f in feats.items()}
  offset, feats = _semantic_crop(weights, image, sem_energy, axis, crop, layers,
                                 operator.crop_candidates)
  window_hw = list(image.shape[:2])
  window_hw[axis] -= crop
  # Eq. 3's warp alone does the rest of a cropped shrink: seams on the crop could cut
  # a subject that fills it ("The rest of a cropped shrink by the warp alone").
  operator = dataclasses.replace(operator, use_seams=False)
  plan = deep_carving.plan_resize(feats, tuple(window_hw), out_hw, operator, weights.arch,
                                  order=order)
  name = "width" if axis == 1 else "height"
  cells = max(1, round(image.shape[axis] / operator.grid_cell))  # a whole-image plan's
  return plan._replace(**{name: deep_carving.uncrop(getattr(plan, name), offset, full_imp,
                                                    weights.arch, cells)})


def chosen_plan(weights, image, plan, loss_layers, learning_rate: float, keep=None,
                remove=None):
  """(plan, index, scores, lost, torn): of the plan's candidate operators
  (:attr:`Plan.candidates`), the deep plan whose image keeps the most of the input's
  deep features: the highest semantic score (Eq. 5) less
  ``alternative_completeness_weight`` x the image's completeness
  (:func:`metrics.completeness`: the input's patches it lost) and
  ``alternative_fine_coherence_weight`` x its fine coherence
  (:func:`metrics.fine_coherence`, half size: what it invented, a torn object), an
  alternative only by more than ``alternative_margin``, ties to the configured
  operator; ``scores``, ``lost`` and ``torn`` (k,) hold each candidate's. Each
  candidate's image is its pixel map applied to the image (the reconstruction's
  starting point) after ``plan.audition_steps`` steps of Eq. 4 (all candidates as one
  vmapped batch; the plan runs them when a candidate carves seams, whose tears raise
  the deep energy that the reconstruction then smooths away). The audition departs
  from the paper, which has one operator. All candidates' plans are built (static
  shapes: one executable, vmappable); the image's forward pass is computed once."""
  operator = plan.operator_config()
  out_hw = plan.sizes.work_out
  cands = [(n, dataclasses.replace(op, axis_order=operator.axis_order))
           for n, op in plan.candidates]
  if len(cands) == 1:
    return (deep_plan(weights, image, out_hw, cands[0][1], keep, remove),
            jnp.zeros((), jnp.int32), jnp.ones((1,), jnp.float32),
            jnp.zeros((1,), jnp.float32), jnp.zeros((1,), jnp.float32))
  sem = metrics.SEMANTIC_LAYER
  feats = {k: v[0] for k, v in vgg.features(
      weights, image[None], tuple(dict.fromkeys((*plan.layers, sem)))).items()}
  plans = [deep_plan(weights, image, out_hw, op, keep, remove, feats) for _, op in cands]
  pictures = jnp.stack([deep_carving.apply_plan_to_layer(image, p, plan.shallow)
                        for p in plans])
  if plan.audition_steps:
    lossy = tuple(l for l, lam in loss_layers if lam > 0)
    targets = {l: jnp.stack([p.targets[l] for p in plans]) for l in lossy}

    def audition(t, start):
      state = reconstruct.init_state(start, learning_rate)
      state, _ = reconstruct.run_chunk(
          reconstruct.eq4_step(weights, t, loss_layers, learning_rate), state,
          plan.audition_steps, unroll=reconstruct.default_unroll())
      return reconstruct.final_image(state)

    pictures = jax.vmap(audition)(targets, pictures)
  kept = jnp.sum(jnp.square(vgg.features(weights, pictures, (sem,))[sem]), axis=(1, 2, 3))
  scores = kept / jnp.sum(jnp.square(feats[sem]))
  # What each picture lost of the image's patches (metrics.completeness, at 96 px high):
  # Eq. 5 does not see a cut object whose neighbours carry as much deep energy.
  lost = jax.vmap(lambda p: metrics.completeness(p, image))(pictures)
  # What each picture invented at half size (metrics.fine_coherence): the seams' tears
  # through an object (a cup's wall in a jagged step) are too fine for the 96-px scores.
  torn = jax.vmap(lambda p: metrics.fine_coherence(jnp.clip(p, 0.0, 255.0), image))(pictures)
  # An alternative must beat the configured operator by alternative_margin; the first
  # of equals wins (the configured one).
  handicap = jnp.where(jnp.arange(scores.shape[0]) > 0, operator.alternative_margin, 0.0)
  merit = (scores - operator.alternative_completeness_weight * lost
           - operator.alternative_fine_coherence_weight * torn - handicap)
  best = jnp.argmax(merit).astype(jnp.int32)
  chosen = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs)[best], *plans)
  return (chosen, best, scores.astype(jnp.float32), lost.astype(jnp.float32),
          torn.astype(jnp.float32))


def order_scores(weights, image, plan, keep=None) -> jax.Array:
  """(2,) the semantic score (Eq. 5) of the pixel map (seams and warp) of a two-axis
  job planned width first and height first, on the (working-size) image: the order
  phase keeps the higher (ties to width first). Measured on the 7 package photos at
  75% x 75% (docs/history/LAB_LOG.md, "Editing"): this criterion chose the order with
  the better output on all 5 photos where both orders were run. Cost: one forward
  pass, two plans and two forward passes of the small images."""
  operator = plan.candidates[0][1]
  feats = {k: v[0] for k, v in vgg.features(weights, image[None], plan.layers).items()}
  keep = None if keep is None else keep > 0.5
  scores = []
  for o in ("width_first", "height_first"):
    p = deep_carving.plan_resize(feats, image.shape[:2], plan.sizes.work_out, operator,
                                 weights.arch, keep=keep, order=o)
    seams_image = deep_carving.apply_plan_to_layer(image, p, plan.shallow)
    scores.append(metrics.semantic_score(weights, seams_image, image))
  return jnp.stack(scores)


def order_from_scores(scores) -> str:
  """The order :func:`order_scores` chose: height first only when strictly better."""
  return "height_first" if float(scores[1]) > float(scores[0]) else "width_first"
