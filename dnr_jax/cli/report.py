"""What the CLI writes beside an output: the debug pictures and the JSON report entry."""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np

from dnr_jax import resizing
from dnr_jax.cli import cost_model
from dnr_jax.cli import visualize
from dnr_jax.config import RetargetConfig
from dnr_jax.io import atomic_write
from dnr_jax.io import image_io
from dnr_jax.io import outputs
from dnr_jax.ops import importance
from dnr_jax.quality import human
from dnr_jax.quality import metrics


def _mask_picture(image: np.ndarray, res: resizing.Result, masks: dict) -> np.ndarray:
  """Input with the keep (green) and remove (red) masks, and the output with where
  they went (:meth:`resizing.Result.map_labels`), screen-sized."""
  colours = {"keep": (40, 220, 80), "remove": (255, 40, 40)}
  h = min(400, image.shape[0])
  tiles = []
  for picture, moved in ((image, False), (res.output, True)):
    small = visualize.resize_linear(picture, (h, max(1, round(picture.shape[1] * h
                                                             / picture.shape[0]))))
    for name, m in masks.items():
      mm = res.map_labels(m.astype(np.uint8)) if moved else m.astype(np.uint8)
      small = visualize.seams_overlay(small, mm > 0, colours[name])
    tiles.append(small)
  return visualize.panel(tiles, ["input + masks", "output + where they went"], height=h)


def debug_pictures(image: np.ndarray, res: resizing.Result, task: outputs.Task,
                    masks: dict | None = None) -> list[str]:
  """Writes :func:`debug_panels` to the task's debug paths; returns the files written."""
  written = []
  for name, arr in debug_panels(image, res, masks).items():
    image_io.save_image(arr, task.debug[name], protect=(task.source,))
    written.append(str(task.debug[name]))
  return written


def debug_panels(image: np.ndarray, res: resizing.Result,
                 masks: dict | None = None) -> dict[str, np.ndarray]:
  """The debug pictures (name -> RGB uint8) at the working size (a 12 MP photo gets
  screen-sized panels): Eq. 1 importance, the seams per axis over the input (the crop
  greyed out), the masks, the target maps, the stages, the loss curves."""
  panels: dict[str, np.ndarray] = {}

  def save(name, arr):
    panels[name] = arr

  h, w = res.work_hw
  base = image if image.shape[:2] == (h, w) else visualize.resize_linear(image, (h, w))
  if res.importance:
    eff = np.asarray(importance.effective_importance_jit(res.importance, h, w))
    save("importance", visualize.importance_panel(res.importance, (h, w), eff))
  if res.removal_axis:  # the seams drawn are the last run's, over its own input
    base = visualize.resize_linear(res.stage_input, (h, w))
  for axis, removed in res.removed.items():
    # Height seams live on the width-resized maps: draw them over the input scaled to
    # the output width (positions are approximate where the width pass was non-uniform).
    first = "height" if res.axis_order == "height_first" else "width"
    on_input = axis == first or len(res.removed) == 1
    if on_input:
      under = base
    elif axis == "height":  # on the width-resized image
      under = visualize.resize_linear(base, (h, res.initial.shape[1]))
    else:  # on the height-resized image
      under = visualize.resize_linear(base, (res.initial.shape[0], w))
    i = 1 if axis == "width" else 0
    inserted = res.output.shape[i] > res.stages[-1].image_hw[i]
    span = res.kept_span.get(axis) if on_input and not res.removal_axis else None
    if span is not None:  # the crop before the seams, greyed out
      under = visualize.crop_overlay(under, span, axis)
    tiles = [visualize.seams_overlay(under, m if axis == "width" else m.T,
                                     (40, 200, 255) if inserted else (255, 40, 40))
             for m in removed.values()]
    cropped = span is not None and span != (0, under.shape[1 if axis == "width" else 0])
    save(f"seams_{axis}", visualize.panel(
        tiles, [f"{l} ({'inserted' if inserted else 'removed'}"
                f"{'; grey: cropped' if cropped else ''})" for l in removed],
        height=min(h, 300)))
  if masks:
    save("masks", _mask_picture(image, res, masks))
  save("targets", visualize.importance_panel(res.target_importance, res.initial.shape[:2]))
  # (no Eq. 4 ran for a resampling: its pixel map at the working size, then the output)
  stages = ([base, res.initial, res.reconstructed, res.output],
            ["input", "init", "reconstructed", "output"]) if res.recon_losses else (
                [base, res.initial, res.output], ["input", "pixel map (working size)", "output"])
  save("stages", visualize.panel(*stages, height=min(600, max(h, res.output.shape[0]))))
  if res.recon_losses:
    save("loss", visualize.panel(
        [visualize.plot_curve(res.recon_losses, title="reconstruction loss")]
        + ([visualize.plot_curve(res.refine_losses, title="refinement loss")]
           if res.refine_losses else [])))
  return panels


def _operations(image_hw, res: resizing.Result) -> dict:
  """What happened per axis: "shrink" (seams removed), "enlarge" (seams inserted) or
  "unchanged"; object removal adds "remove"."""
  ops = {}
  for i, axis in ((1, "width"), (0, "height")):
    n_in, n_out = image_hw[i], res.output.shape[i]
    ops[axis] = "shrink" if n_out < n_in else "enlarge" if n_out > n_in else "unchanged"
  if res.removal_axis:
    ops["remove"] = res.removal_axis
  return ops


def _cropped(image_hw, res: resizing.Result) -> dict:
  """Per shrunk axis, the input pixels the output comes from ("kept_from" to
  "kept_to") and how many the crop took (the audition's crop share; 0 when it did not
  crop)."""
  out = {}
  if res.removal_axis:  # two runs: the spans are the second run's
    return out
  for axis, (start, stop) in res.kept_span.items():
    i = 1 if axis == "width" else 0
    scale = image_hw[i] / res.work_hw[i]
    lo, hi = round(start * scale), min(image_hw[i], round(stop * scale))
    out[axis] = {"kept_from": lo, "kept_to": hi, "cropped_px": image_hw[i] - (hi - lo)}
  return out


def _scores(image, res: resizing.Result, weights) -> dict:
  """The result's quality scores: Eq. 5 and bidirectional similarity at the working
  size, and the human-calibrated criterion (quality.human) on the images themselves
  (enlarging and two-axis results: not scored by it)."""
  small = res.output if res.output.shape[:2] == res.reconstructed.shape[:2] else None
  work_in = image if small is not None else visualize.resize_linear(image, res.work_hw)
  work_out = small if small is not None else visualize.resize_linear(res.output,
                                                                     res.reconstructed.shape[:2])
  scores = metrics.all_scores(weights, work_out, work_in)
  one_axis_shrink = (res.output.shape[0] == image.shape[0]) != (
      res.output.shape[1] == image.shape[1]) and all(
          o <= i for o, i in zip(res.output.shape[:2], image.shape[:2]))
  return {"semantic_score_block5_conv1": scores["semantic_score"], "scored_at": "working size",
          "coherence": scores["coherence"], "completeness": scores["completeness"],
          "human_preference": (human.human_preference(image, res.output, weights)
                               if one_axis_shrink and weights.arch == "vgg19" else None)}


def report_entry(task: outputs.Task, image, res: resizing.Result, cfg: RetargetConfig,
                  weights, debug_files, wall, estimate: cost_model.Estimate,
                  plans: list, job_masks: dict | None = None, score: bool = True) -> dict:
  """The report's entry of one image; ``plans``: the plan of each stage (the report
  reads their decisions, it re-derives none). ``score``: compute the quality scores
  (a VGG forward pass and more: only when a report is written)."""
  job_masks = job_masks or {}
  return {
      "input": str(task.source), "output": str(task.output), "status": "ok",
      "renamed_to_avoid_collision": task.renamed,
      "input_size": {"height": image.shape[0], "width": image.shape[1]},
      "output_size": {"height": res.output.shape[0], "width": res.output.shape[1]},
      "work_size": {"height": res.work_hw[0], "width": res.work_hw[1]},
      "device": jax.default_backend(),
      "compute_dtype": plans[-1].compute_dtype,
      "plan": [{"operators": list(p.operators), "axis_order": p.axis_order,
                "reconstruction_steps": p.steps, "refinement_steps": p.refine_steps,
                "keep": p.keep, "remove": p.remove}
               for p in plans],
      "operations": _operations(image.shape[:2], res),
      "axis_order": res.axis_order,
      "axis_order_kept_importance": res.order_scores,
      "seams_removed": res.seams_removed,
      "cropped": _cropped(image.shape[:2], res),
      "operator": res.operator,
      "operator_merits": res.operator_scores,
      "operator_merit_parts": res.operator_features,
      "masks": {"keep_mask": job_masks.get("keep"), "remove_mask": job_masks.get("remove"),
                "kept_pixels_copied": res.keep_held, "removal_axis": res.removal_axis},
      "target_feature_shapes": {l: list(s) for l, s in res.target_shapes.items()},
      "losses": {"reconstruction": res.recon_losses, "refinement": res.refine_losses},
      "timings_s": {**{k: round(v, 3) for k, v in res.timings.items()}, "total": round(wall, 3)},
      "estimate": estimate.to_json(),
      "scores": _scores(image, res, weights) if score else None,
      "interrupted": res.interrupted,
      "debug_files": debug_files,
      "config": dataclasses.asdict(cfg),
  }


def write_report(path: str, data) -> None:
  atomic_write.write_text(path, json.dumps(data, indent=2) + "\n")
