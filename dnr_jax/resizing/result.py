"""The host-side result of one retargeted image (NumPy arrays), and how it is built."""

from __future__ import annotations

import dataclasses

import numpy as np

from dnr_jax.resizing import deep_carving
from dnr_jax.resizing import mapping


@dataclasses.dataclass
class Result:
  """Everything :func:`retarget` produced (NumPy arrays, host side)."""

  output: np.ndarray  # (H', W', 3) uint8 at full resolution, the final G(O)
  reconstructed: np.ndarray  # (h', w', 3) uint8, O before refinement (working size)
  initial: np.ndarray  # (h', w', 3) uint8, the initialisation (working size)
  work_hw: tuple  # (h, w): the working size the method ran at (== input if small)
  importance: dict  # layer -> (h, w) Eq. 1 map of the (working-size) input
  removed: dict  # "width"/"height" -> {layer: (h, w) bool} removed positions
  seams_removed: dict  # "width"/"height" -> {layer: int}
  target_shapes: dict  # layer -> (h', w', c) target feature map shape
  target_importance: dict  # layer -> (h', w') Eq. 1 map of the target features F'
  cell_widths: dict  # "width"/"height" -> (n_cells,) warp output widths
  recon_losses: list
  refine_losses: list
  timings: dict  # seconds per phase
  interrupted: bool = False
  batch_size: int = 1  # images that shared the working-size phases (dnr_jax.resizing.batching)
  # How output pixels come from input pixels, one MapStage per run (two for object
  # removal); dnr_jax.resizing.mapping moves points and label masks with them.
  stages: list = dataclasses.field(default_factory=list)
  keep_held: float | None = None  # fraction of the kept (working) pixels copied unchanged
  removal_axis: str | None = None  # "width"/"height" when a remove mask was carved out
  stage_input: np.ndarray | None = None  # the last run's input (after a removal)
  axis_order: str | None = None  # "width_first"/"height_first" when both axes change
  order_scores: dict = dataclasses.field(default_factory=dict)  # kept importance of each
  # "width"/"height" -> (start, stop): the working-size columns (rows) the pixel map
  # samples, [0, w) unless the operator cropped (the audition's crop shares).
  kept_span: dict = dataclasses.field(default_factory=dict)
  # The operator whose plan was kept (Plan.operators: "warp", "crop50+warp", "crop",
  # "seams+warp"...) and, when the audition chose between crop shares, each candidate's
  # merit (the human-calibrated criterion, lost content priced higher; higher won) and
  # the merit's parts per candidate ({"squeeze", "lost"}: Prepared).
  operator: str | None = None
  operator_scores: dict = dataclasses.field(default_factory=dict)
  operator_features: dict = dataclasses.field(default_factory=dict)

  def map_points(self, points_xy) -> np.ndarray:
    """(N, 2) input (x, y) pixel positions -> where they are in the output."""
    return mapping.map_points(self, points_xy)

  def map_labels(self, labels) -> np.ndarray:
    """(H, W) label mask of the input -> (H', W') of the output (nearest source)."""
    return mapping.map_labels(self, labels)

  def source_coords(self) -> np.ndarray:
    """(H', W', 2) input (x, y) position of every output pixel."""
    return mapping.source_coords(self)


def to_uint8(x) -> np.ndarray:
  """0..255 floats -> uint8 (rounded, clipped), on the host; uint8 passes through."""
  x = np.asarray(x)
  if x.dtype == np.uint8:
    return x
  return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _kept_span(plan: deep_carving.AxisPlan, n: int) -> tuple[int, int]:
  """(start, stop) of the working-size positions an axis plan's pixel map samples."""
  cm = plan.maps[max(plan.maps, key=lambda l: plan.maps[l].index0.shape[1])]  # block1's
  lo, hi = int(np.min(np.asarray(cm.index0))), int(np.max(np.asarray(cm.index1)))
  return max(0, lo), min(n, hi + 1)


def make_result(s, prep, recon, output, recon_losses: list,
                refine_losses: list, timings: dict, interrupted: bool = False,
                target_shapes: dict | None = None,
                operator_names: tuple[str, ...] | None = None) -> Result:
  """The host-side :class:`Result` of one image from its (unbatched) phase outputs.

  Only small arrays are read from ``prep`` (maps, importance, the initial image), never
  the target features: ``target_shapes`` gives their shapes where ``prep.plan.targets``
  was left on the device (the batch path); default: read from ``prep.plan.targets``.
  ``operator_names``: the names of the candidate operators (:attr:`Plan.operators`).
  """
  plan = prep.plan
  stage = mapping.MapStage.from_plan(s, plan, prep.init.shape[:2])
  if target_shapes is None:
    target_shapes = {l: tuple(t.shape) for l, t in plan.targets.items()}
  axes = {k: p for k, p in (("width", plan.width), ("height", plan.height)) if p is not None}
  if plan.width is not None and not deep_carving.height_first(plan):
    imp = {l: np.asarray(m) for l, m in plan.width.importance.items()}
  elif plan.height is not None:  # the height plan works on transposed maps
    imp = {l: np.asarray(m).T for l, m in plan.height.importance.items()}
  else:
    imp = {}
  return Result(
      output=to_uint8(output), reconstructed=to_uint8(recon), initial=to_uint8(prep.init),
      work_hw=s.work, importance=imp,
      removed={a: {l: np.asarray(m) for l, m in p.removed.items()} for a, p in axes.items()},
      seams_removed={a: {l: int(k) for l, k in p.num_removed.items()} for a, p in axes.items()},
      target_shapes=dict(target_shapes),
      target_importance={l: np.asarray(m, np.float32) for l, m in prep.target_importance.items()},
      cell_widths={a: np.asarray(p.cell_widths)[:int(p.num_cells)] for a, p in axes.items()},
      recon_losses=list(recon_losses), refine_losses=list(refine_losses), timings=timings,
      interrupted=interrupted, stages=[stage],
      kept_span={a: _kept_span(p, s.work[1] if a == "width" else s.work[0])
                 for a, p in axes.items()},
      axis_order=(("height_first" if deep_carving.height_first(plan) else "width_first")
                  if len(axes) == 2 else None),
      operator=None if operator_names is None else operator_names[int(prep.operator)],
      operator_scores=_per_operator(operator_names, prep.operator_scores),
      operator_features={k: _per_operator(operator_names, v)
                         for k, v in prep.operator_features.items()})


def _per_operator(names, values) -> dict:
  if names is None or len(names) < 2:
    return {}
  return dict(zip(names, (float(x) for x in np.asarray(values))))
