"""Frozen configuration dataclasses (hashable: they are static arguments of ``jit``).

Defaults follow section 4 of the paper where it gives a value; the rest were chosen
by measurement (see WORKSPACE.md, "How the defaults were chosen").
"""

from __future__ import annotations

import dataclasses
import math

# Section 4. The paper writes "block4_conv5"; VGG19's block 4 ends at conv4.
DEFAULT_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv4", "block4_conv4", "block5_pool")


def check_range(name: str, value: float, lo: float | None = None, hi: float | None = None,
                *, lo_open: bool = False) -> None:
  """ValueError unless ``value`` is a finite number in [lo, hi] ((lo, hi] if lo_open)."""
  ok = isinstance(value, (int, float)) and math.isfinite(value)
  if ok and lo is not None:
    ok = value > lo if lo_open else value >= lo
  if ok and hi is not None:
    ok = value <= hi
  if not ok:
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    raise ValueError(f"{name} must be a finite number in {'(' if lo_open else '['}{lo_s}, "
                     f"{hi_s}], got {value}")


def check_whole(name: str, value, lo: int) -> None:
  """ValueError unless ``value`` is an int (not a bool) >= ``lo``: a static count that
  reaches a shape or a loop length."""
  if isinstance(value, bool) or not isinstance(value, int) or value < lo:
    raise ValueError(f"{name} must be a whole number >= {lo}, got {value!r}")


AXIS_ORDERS = ("auto", "width_first", "height_first")
SEAM_STYLES = ("fast", "straight")


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
  """The deep multi-operator: hierarchical seam carving (Eq. 1-2) + grid warping (Eq. 3)."""

  # Where a default departs from the paper, the lab log (docs/history/LAB_LOG.md) has
  # the measurement that chose it, under the section named here.
  layers: tuple[str, ...] = DEFAULT_LAYERS
  alpha: float = 0.5  # Eq. 2 damping inside the receptive field of deeper seams
  percentile: float = 20.0  # seams after the first only while mean importance <= this pct
  grid_cell: int = 16  # column-cell width of the warp, image pixels (Eq. 3)
  min_cell_scale: float = 0.2  # no warp cell shrinks below this fraction (see column_maps)
  # Exponent on the warp cells' importance before Eq. 3 (mu ** p, mu of mean 1): above 1
  # the least important cells take the squeeze; 1 = Eq. 3 ("A sharper warp").
  warp_power: float = 2.0
  use_seams: bool = True  # False: warping only (ablation)
  # "fast": below the deepest layer 1/32 of the width's seams per DP pass, Eq. 1/2's
  # energy; "straight": one seam per pass, the deeper layers' importance added to each
  # shallower layer's energy and sideways steps charged (deep_carving.STRAIGHT_*;
  # "Seams that run straight").
  seam_style: str = "fast"
  # Two-axis jobs: "auto" (the order phase: Eq. 5 of both orders' pixel maps,
  # audition.order_scores), "width_first" or "height_first".
  axis_order: str = "auto"
  # Weight of the feature-space forward energy (seams.feature_forward_energy_fn) in the
  # DP below the deepest layer; 0 = Eq. 1/2's importance alone ("Quality on RetargetMe").
  forward_weight: float = 0.25
  # The audition of a one-axis shrink without masks (resizing.audition): for each share
  # the crop takes that share of the shrink (the window of the most salient content, its
  # edges in calm columns) and Eq. 3's warp does the rest; the crop + warp that the
  # human-calibrated criterion prefers (quality.human: people prefer a crop to a
  # squeeze, unless it cuts the subject) is kept and delivered as a resampling of the
  # input, without Eq. 4 (plan.reconstruction_steps). Departs from the paper, whose
  # operator is the seams and the warp: () = the paper's operator for every job.
  crop_shares: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)
  # The audition's extra price of lost salient content (quality.human's "lost": an object
  # cut at the border), beyond the criterion's own weight: a crop must not cut the
  # subject when the warp can take that width instead. Set by eye on the development
  # half (RetargetMe sets 1-46, blind pairs: at 10 the crops still cut a lotus's petals,
  # a cat and a couple at 50% width; docs/RESULTS.md). On the survey's votes that compare
  # crops, scales and warps (CR, SCL, WARP) the criterion agrees about as well at any
  # price from 0 to 30 (0.611 to 0.597, +-0.06); over all votes the fitted price (0)
  # agrees more (0.63 against 0.56 at 30), through the 2-D warps the map cannot explain.
  crop_lost_weight: float = 30.0

  def __post_init__(self):
    check_range("forward_weight", self.forward_weight, 0.0)
    check_range("warp_power", self.warp_power, 0.0, 8.0)  # (mu / mean) ** 8 stays finite
    if self.seam_style not in SEAM_STYLES:
      raise ValueError(f"seam_style must be one of {', '.join(SEAM_STYLES)}, got "
                       f"{self.seam_style!r}")
    if not isinstance(self.crop_shares, tuple) or len(set(self.crop_shares)) != len(
        self.crop_shares):
      raise ValueError(f"crop_shares must be distinct numbers in [0, 1], got "
                       f"{self.crop_shares!r}")
    for share in self.crop_shares:
      check_range("each of crop_shares", share, 0.0, 1.0)
    check_range("crop_lost_weight", self.crop_lost_weight, 0.0)
    if self.axis_order not in AXIS_ORDERS:
      raise ValueError(f"axis_order must be one of {', '.join(AXIS_ORDERS)}, got "
                       f"{self.axis_order!r}")
    check_range("alpha", self.alpha, 0.0, 1.0)
    check_range("percentile", self.percentile, 0.0, 100.0)
    check_range("grid_cell", self.grid_cell, 1)
    check_range("min_cell_scale", self.min_cell_scale, 0.0, 1.0, lo_open=True)
    if not self.layers:
      raise ValueError("layers needs at least one VGG layer")


@dataclasses.dataclass(frozen=True)
class ReconstructionConfig:
  """Eq. 4 by Adam on the output pixels (0..255 RGB, projected onto the box)."""

  loss_layers: tuple[tuple[str, float], ...] = (("block1_conv2", 1.0),)  # (layer, lambda)
  init: str = "seams"  # "seams" | "linear" (the paper's) | "noise"; see WORKSPACE.md
  steps: int = 50
  learning_rate: float = 2.0
  chunk: int = 10  # steps per jitted call (the host reports progress between chunks)
  seed: int = 0
  # Eq. 4 heals what the seams tore. When the output is lifted to full resolution from
  # a plan without seams (a crop and/or Eq. 3's warp, plan.carves_seams) and the
  # init is "seams", the output is that pixel map on the full-size image
  # (plan.reconstruction_steps: 0 steps). True runs the steps anyway: on the
  # RetargetMe dev half (1024-px photos, lifted from 640) their upsampled correction
  # only added a blotchy low-frequency tone drift (issue 12, docs/history/LAB_LOG.md).
  reconstruct_resamplings: bool = False

  def __post_init__(self):
    if self.init not in ("linear", "seams", "noise"):
      raise ValueError(f"unknown initialisation {self.init!r}: linear, seams or noise")
    if self.steps < 0 or self.chunk < 1:
      raise ValueError("steps must be >= 0 and chunk >= 1")
    check_range("learning_rate", self.learning_rate, 0.0, lo_open=True)
    if not self.loss_layers or not any(lam > 0 for _, lam in self.loss_layers):
      raise ValueError("loss_layers needs at least one layer with a positive lambda")
    for name, lam in self.loss_layers:
      check_range(f"lambda of {name}", lam, 0.0)


@dataclasses.dataclass(frozen=True)
class RefinementConfig:
  """Section 3.3: a learned sampling grid G in front of the network, O fixed."""

  steps: int = 0
  learning_rate: float = 0.05  # in pixels of displacement per step (Adam)
  control_cell: int = 8  # displacement lives on a coarse grid, bilinearly upsampled
  smoothness: float = 1.0  # weight of the squared-difference penalty between controls
  max_shift: float = 2.0  # displacements are tanh-bounded to this many pixels

  def __post_init__(self):
    if self.steps < 0:
      raise ValueError("refinement steps must be >= 0")
    check_range("refine_learning_rate", self.learning_rate, 0.0, lo_open=True)
    check_range("refine_cell", self.control_cell, 1)
    check_range("refine_smoothness", self.smoothness, 0.0)
    check_range("refine_max_shift", self.max_shift, 0.0, lo_open=True)


# The long side, in pixels, at which the deep operator and the reconstruction run; larger
# inputs are delivered at full resolution by lifting the plan (see dnr_jax/resizing/fullres.py).
# 640 by measurement (docs/history/LAB_LOG.md, "Full resolution"): photos up to 640 px run
# exactly as before, and a 12 MP photo finishes in about a minute on the 2-core CPU.
DEFAULT_WORK_SIZE = 640
DEFAULT_PLAN_SIZE = 320


COMPUTE_DTYPES = ("auto", "float32", "bfloat16")


def resolve_compute_dtype(compute_dtype: str, backend: str) -> str:
  """The dtype that ``compute_dtype`` means on ``backend`` (``jax.default_backend()``):
  "auto" is float32 on "cpu" (where bfloat16 convolutions are slower) and bfloat16 on
  accelerators (measured on an H100: same semantic score and coherence on the package
  photos, the reconstruction 1.8x faster)."""
  if compute_dtype == "auto":
    return "float32" if backend == "cpu" else "bfloat16"
  return compute_dtype


@dataclasses.dataclass(frozen=True)
class RetargetConfig:
  operator: OperatorConfig = OperatorConfig()
  reconstruction: ReconstructionConfig = ReconstructionConfig()
  refinement: RefinementConfig = RefinementConfig()
  work_size: int = DEFAULT_WORK_SIZE  # 0: always run at the input's size
  # The long side at which a resampling plan (the audition's crop + warp: no seams, no
  # Eq. 4) is made; its pixel map is then lifted onto the input's own pixels. Eq. 1's
  # importance decides only where to crop and which columns to squeeze, which a quarter
  # of the pixels tell as well, and VGG costs 4x less (issue 37). 0 = ``work_size``.
  plan_size: int = DEFAULT_PLAN_SIZE
  # Working sides rounded to a multiple of this many pixels (1 = exact aspect ratio).
  # Photos whose working shapes then agree share one compilation and one vmapped batch
  # (dnr_jax.resizing.batching); the lift back to full resolution absorbs the small anisotropy.
  work_multiple: int = 1
  # The VGG convolutions' dtype: "float32", "bfloat16", or "auto" = float32 on CPUs and
  # bfloat16 on accelerators, where it ran the Eq. 4 loop 1.8x faster at the same
  # quality (docs/history/LAB_LOG.md, "Batches, devices and compilations"); see
  # :func:`resolve_compute_dtype`.
  compute_dtype: str = "auto"

  def __post_init__(self):
    if self.compute_dtype not in COMPUTE_DTYPES:
      raise ValueError(f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, got "
                       f"{self.compute_dtype!r}")
    if not isinstance(self.work_size, int) or self.work_size < 0:
      raise ValueError(f"work_size must be 0 (off) or a positive number of pixels, got "
                       f"{self.work_size}")
    if not isinstance(self.plan_size, int) or (self.plan_size and self.plan_size < 64):
      raise ValueError(f"plan_size must be 0 (the work size) or at least 64 pixels, got "
                       f"{self.plan_size}")
    if not isinstance(self.work_multiple, int) or not 1 <= self.work_multiple <= 256:
      raise ValueError(f"work_multiple must be an integer in [1, 256], got "
                       f"{self.work_multiple}")


# ----------------------------------------------------------------------------- presets

# The paper's operator as published (sections 3-4): hierarchical feature-space seams to
# the 20th-percentile threshold (Eq. 1-2), Eq. 3's proportional warp for the rest of
# the width, Eq. 4 from the linear-scale initialisation; no crop before the seams, no
# audition of other operators, no feature-space forward energy. The refinement of
# section 3.3 is available (``refinement.steps``). Photos above ``work_size`` are still
# lifted to full resolution (the paper ran at the input's size).
PAPER = RetargetConfig(
    operator=OperatorConfig(crop_shares=(), warp_power=1.0, forward_weight=0.0),
    reconstruction=ReconstructionConfig(init="linear"))

# Named configurations (``--preset``): "default" is today's behaviour.
PRESETS = {"default": RetargetConfig(), "paper": PAPER}


@dataclasses.dataclass(frozen=True)
class VideoConfig:
  """Clips (:mod:`dnr_jax.video`): per shot a smooth crop path and an Eq. 3 warp.

  Departure from the paper (which is about still images): no seams and no Eq. 4 per
  frame. A seam or a reconstruction decided per frame moves content differently from
  one frame to the next (flicker, measured in docs/RESULTS.md); a crop path and warp
  cells smoothed in time move it coherently, and cost a resampling per frame.
  """

  # The warp squeezes the crop window at most this much; a larger shrink takes the rest
  # by the crop (16:9 to 9:16 is 3.2x in width: a crop of 1.6x the output, warped 2x).
  max_warp: float = 2.0
  sample_every: int = 6  # Eq. 1 importance on every n-th frame of a shot (and its last)
  work_height: int = 144  # the frames' height for VGG19 (importance only)
  # Eq. 1 layers of the camera and the warp: the deep ones. With the shallow layers
  # too, grass and foliage outweighed a smooth-skinned subject and the camera left it
  # (bigbuckbunny.mp4, docs/RESULTS.md "Video").
  layers: tuple[str, ...] = ("block4_conv4", "block5_pool")
  # A shot keeps a still camera (an editor's locked-off shot) when one window holds at
  # least this share of the best window's importance on every sampled frame; else the
  # camera pans smoothly.
  still_keep: float = 0.9
  smooth_seconds: float = 1.0  # time scale of the camera path's and the warp's smoothing
  max_speed: float = 0.5  # camera pan speed, at most this many crop widths per second
  grid_cell: int = 16  # warp cell width, input pixels
  min_cell_scale: float = 0.4  # a warp cell shrinks to no less than this (2.5x)
  warp_power: float = 2.0  # as OperatorConfig.warp_power
  batch: int = 8  # frames resampled per jitted call (static: one compilation per size)

  def __post_init__(self):
    check_range("max_warp", self.max_warp, 1.0, 5.0)
    if self.sample_every < 1 or self.work_height < 32 or self.batch < 1:
      raise ValueError("sample_every and batch must be >= 1, work_height >= 32")
    check_range("still_keep", self.still_keep, 0.0, 1.0)
    if not self.layers:
      raise ValueError("layers needs at least one VGG layer")
    check_range("smooth_seconds", self.smooth_seconds, 0.0, 60.0)
    check_range("max_speed", self.max_speed, 0.0)
    check_range("min_cell_scale", self.min_cell_scale, 0.05, 1.0)
