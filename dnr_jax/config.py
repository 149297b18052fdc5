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
CROP_REMAINDERS = ("seams", "global_stop", "warp")
CROP_CHOICES = ("semantic", "importance")
ALTERNATIVES = ("crop", "seams", "warp")


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
  """The deep multi-operator: hierarchical seam carving (Eq. 1-2) + grid warping (Eq. 3)."""

  layers: tuple[str, ...] = DEFAULT_LAYERS
  alpha: float = 0.5  # Eq. 2 damping inside the receptive field of deeper seams
  percentile: float = 20.0  # seams after the first only while mean importance <= this pct
  # Percentile points added per unit of relative shrink beyond 25% (deep_carving.
  # stop_percentile); 60 gives 35 at 50% width, the paper's own setting for 50%
  # (Fig. 16). 0 (the default) = the fixed percentile: 60 raised the mean SS and
  # coherence at 50% on RetargetMe and 5 of 7 package photos, but carved the rocket and
  # half of the flower away (issue 12, docs/history/LAB_LOG.md).
  percentile_growth: float = 0.0
  grid_cell: int = 16  # column-cell width of the warp, image pixels (Eq. 3)
  min_cell_scale: float = 0.2  # no warp cell shrinks below this fraction (see column_maps)
  # Exponent on the warp cells' importance before Eq. 3 (mu_i ** p, mu normalised to mean
  # 1): above 1 the squeeze concentrates in the least important cells and the important
  # ones keep their width; 1 = Eq. 3 as written. 2 measured best (issue 12,
  # docs/history/LAB_LOG.md "A sharper warp"): RetargetMe dev half at 75% width SS 0.853 vs
  # 0.847 at lower coherence, package photos at 50% 0.746 vs 0.711 (subjects keep
  # their proportions, the background takes the squeeze); 4 scored the same at 75%
  # (0.854) and invented more (coherence 1.16 vs 1.02).
  warp_power: float = 2.0
  use_seams: bool = True  # False: warping only (ablation)
  # Seams found per DP pass at the layers below the deepest (whose threshold stop
  # needs one seam at a time): 0 = 1/32 of the layer's width, 1 = one per pass.
  seams_per_pass: int = 0
  # When both axes change: "auto" plans both orders and keeps the one whose seams-and-warp
  # image keeps more deep features (audition.order_scores), or "width_first" /
  # "height_first".
  axis_order: str = "auto"
  # Weight of the feature-space forward energy (seams.feature_forward_energy_fn) in the
  # DP of the layers below the deepest: a seam also pays for the feature edges its
  # removal creates. 0 = Eq. 1/2's importance alone. 0.25, the default, measured best on
  # the RetargetMe dev half (issue 12, docs/history/LAB_LOG.md "Quality on RetargetMe"):
  # importance alone cut a face at its boundary with a textured wall; 1.0 carved smooth
  # object interiors instead. It costs ~1.3 s more prepare per 640x480 image (+6% total).
  forward_weight: float = 0.25
  # Weight of the deeper layers' importance (mean of their normalised maps, upsampled) in
  # the seam energy of each shallower layer, in units of that layer's mean importance.
  # 0 = Eq. 2 alone (a shallow layer sees only its own importance, damped by alpha).
  deep_weight: float = 0.0
  # Cost of a sideways step of a seam in the DP, in units of the mean energy of the
  # layer's usable positions (seams.with_diagonal_cost), at every layer. 0 (the
  # default) = Eq. 1/2's DP. Many seams follow one cheap valley; where it runs
  # diagonally the band they remove cuts every straight structure it crosses on a
  # slant (docs/history/LAB_LOG.md, "Seams that run straight"). The "seams" alternative uses
  # ``seams_diagonal_cost``.
  diagonal_cost: float = 0.0
  # Share of a shrink taken by cropping before any seam: the window (a multiple of the
  # deepest layer's stride) chosen per image by ``crop_choice``; the warp
  # (crop_remainder) then does the rest on the cropped image (deep_carving.crop_size).
  # Only for a job that shrinks one axis without masks. 0 = the paper's operator. 0.75
  # measured best on the RetargetMe dev half (issue 12, docs/history/LAB_LOG.md "A crop before
  # the seams"): at 50% width SS 0.621 against 0.579 and coherence 1.9 against 5.0;
  # subjects keep their proportions instead of being squeezed.
  crop_share: float = 0.75
  # What does the rest of a cropped shrink: "warp" (Eq. 3 alone, the default), "seams"
  # (Eq. 1-3 on the crop, the deepest layer's stop threshold from the crop's own
  # importance: the default until 2026-11-27) or "global_stop" (the seams, every
  # layer's stop threshold from the uncropped image's importance). With the cheap
  # border cropped, the seams' remaining paths run through the subject: they cut the
  # coffee cup's handle at 75% and notched its rim at 50%; the warp never cuts, and on
  # the 41 RetargetMe dev sets it scored SS as high or higher (docs/history/LAB_LOG.md, "The
  # rest of a cropped shrink by the warp alone"). At 75% on the package photos the
  # seams kept more (SS 0.876 against 0.854).
  crop_remainder: str = "warp"
  # Share points added per unit of relative shrink beyond 25% (deep_carving.crop_share):
  # 0.6 gives 0.75 at 75% width and 0.9 at 50%, so that the warp squeezes the crop by
  # about a tenth at both (at 50% with 0.75 it squeezed by a quarter: coherence 2.0
  # against 0.94 on the dev half, same SS).
  crop_share_growth: float = 0.6
  # How the crop window is chosen: "semantic" (the default since the latest change of
  # 2026-11-27): the ``crop_candidates`` windows whose columns hold the most of the
  # uncropped image's block5_conv1 energy (Eq. 5's summand) each get a forward pass, and
  # the crop whose own Eq. 5 numerator is highest is kept (its border features see the
  # crop's edge); "importance": the window of the most deepest-layer importance (Eq. 1
  # at block5_pool, the default until then). On the 16 RetargetMe dev sets at 50% width
  # SS 0.646 against 0.624 (one candidate, the ranking alone: 0.639), at 75% 0.838
  # against 0.837; on the package photos at 75% 0.869 against 0.854 (docs/history/LAB_LOG.md,
  # "The crop window by the semantic score"). Each candidate costs one forward pass of
  # the crop.
  crop_choice: str = "semantic"
  crop_candidates: int = 3
  # Other operators planned beside this one for a one-axis shrink without masks
  # (plan.candidate_operators); the plan whose image keeps the most of the
  # image's deep features wins (Eq. 5, audition.chosen_plan; less
  # ``alternative_completeness_weight`` x what it lost of the image's patches and
  # ``alternative_fine_coherence_weight`` x what it invented), as ``axis_order`` "auto"
  # picks the order. "crop": the crop window alone (crop_share 1, chosen as
  # ``crop_choice`` says; the warp takes the remainder below the deepest layer's
  # stride); "warp": Eq. 3's warp alone over the whole image (crop_share 0, no seams):
  # nothing is cut, the least important columns are squeezed most; "seams": the paper's
  # hierarchical feature-space seams (Eq. 1-2) carve the whole shrink (crop_share 0,
  # percentile 100, deep_weight ``seams_deep_weight``, one seam per DP pass with
  # ``seams_diagonal_cost``).
  # ("warp",), the default since 2026-11-27 (docs/history/LAB_LOG.md, "The warp alone as a
  # candidate"): on the 41 RetargetMe dev sets SS 0.846 against 0.838 at 75% width
  # (coherence 1.04 against 0.83; shift-maps' 1.12), 0.651 against 0.646 at 50%,
  # 75% height unchanged; it never cuts or tears: where it wins it keeps what the crop
  # cuts (an eagle's wing, the car beside a vintage car) and squeezes the background;
  # ~1 s and ~0.4 GB more per 640x480 photo (no audition steps: nothing to smooth).
  # ("crop", "warp"): 0.846 / 0.656, ~3 s more. ("crop", "seams") scored 0.852 / 0.651
  # but, by eye, the seams it keeps tear most of those photos (on the dev half 7 of 13:
  # diagonal tears across streets and altars, jagged left borders; docs/history/LAB_LOG.md, "The
  # operator choice charged for what it invented"), at 20 s and 2.8 GB a photo; with
  # seams, ``alternative_fine_coherence_weight`` 150 measured best. Empty: this operator
  # alone.
  alternatives: tuple[str, ...] = ("warp",)
  # Eq. 4 steps (the reconstruction's loss and learning rate) each candidate's pixel map
  # runs before it is scored when any candidate carves seams: the raw pixel map of the
  # seams scores their tears as deep content (on the dev half it picked the seams on
  # all 4 height sets, each then lower). A choice among resamplings (crop, warp) scores
  # the pixel maps as they are. 0 = always as they are.
  alternative_steps: int = 10
  # How much higher (in semantic score) an alternative's image must score than the
  # configured operator's to be chosen: near ties go to the configured operator, whose
  # image the reconstruction changes least after the audition (a seams image keeps
  # losing deep energy to Eq. 4 over the 50 steps). 0.015 by the dev half (RESULTS):
  # width 75% SS 0.851 against 0.847 with no margin, 0.850-0.851 for 0.0075-0.02; it
  # keeps set 10's face, whose seams won by 0.002.
  alternative_margin: float = 0.015
  # ``deep_weight`` of the "seams" alternative: the deeper layers' importance guards each
  # shallower layer's seams. Carving a whole 25% shrink, the shallow seams otherwise run
  # through an object's smooth interior, which Eq. 1 finds as cheap as the sky beside it
  # (the rocket's body was carved in half, the face of RetargetMe set 10 cut). 4 by the
  # dev half (docs/history/LAB_LOG.md, "The operator choice with the seams guarded by the deep
  # layers").
  seams_deep_weight: float = 4.0
  # ``diagonal_cost`` of the "seams" alternative, which also carves its shallow layers'
  # seams one per DP pass (``seams_per_pass`` 1): a batch of seams found by one DP
  # crowds into one valley and removes it as a band, the tear this guards against.
  seams_diagonal_cost: float = 1.0
  # Subtracted from each candidate's semantic score per unit of its audition image's
  # completeness (metrics.completeness: input patches' distance to the image's nearest
  # patch at 96 px high, ~0.0005-0.007 on photos): Eq. 5 does not see an object cut away
  # when what stays carries as much deep energy (a coffee cup cut at the border). 40 by
  # the dev half (docs/history/LAB_LOG.md, "The operator choice charged for lost patches"): SS
  # 0.854 / 0.655 / 0.906 at 75% / 50% width / 75% height against 0.856 / 0.656 / 0.903
  # with 0, coherence 0.84 / 1.19 against 0.93 / 1.48; package photos at 75% 0.921 and
  # coherence 0.54 against 0.926 and 0.95.
  alternative_completeness_weight: float = 40.0
  # Subtracted from each candidate's semantic score per unit of its audition image's
  # fine coherence (metrics.fine_coherence: its patches' distance to the input's nearest
  # within a band, at half size, ~0.0001-0.003 on photos): what the image invented, a
  # squeezed texture or an object torn by seams into a jagged step, too fine for the
  # 96-px completeness. 25 for the warp by the dev half (docs/history/LAB_LOG.md, "The warp
  # alone as a candidate"): 10 keeps the warp where it squeezes a busy scene (coherence
  # 1.24 at 75% width for SS +0.002), 40 turns it away from most of the photos where it
  # keeps more (SS 0.842); 20-30 choose alike. For ("crop", "seams") 150
  # measured best (docs/history/LAB_LOG.md, "The operator choice charged for what it
  # invented").
  alternative_fine_coherence_weight: float = 25.0

  def __post_init__(self):
    check_range("forward_weight", self.forward_weight, 0.0)
    check_range("diagonal_cost", self.diagonal_cost, 0.0)
    check_range("warp_power", self.warp_power, 0.0, 8.0)  # (mu / mean) ** 8 stays finite
    check_range("seams_diagonal_cost", self.seams_diagonal_cost, 0.0)
    check_range("crop_share", self.crop_share, 0.0, 1.0)
    check_range("crop_share_growth", self.crop_share_growth, 0.0)
    if self.crop_choice not in CROP_CHOICES:
      raise ValueError(f"crop_choice must be one of {', '.join(CROP_CHOICES)}, got "
                       f"{self.crop_choice!r}")
    check_whole("crop_candidates", self.crop_candidates, 1)
    if not isinstance(self.alternatives, tuple) or any(
        a not in ALTERNATIVES for a in self.alternatives) or len(
            set(self.alternatives)) != len(self.alternatives):
      raise ValueError(f"alternatives must be distinct names among {', '.join(ALTERNATIVES)}, "
                       f"got {self.alternatives!r}")
    check_whole("alternative_steps", self.alternative_steps, 0)
    check_range("alternative_margin", self.alternative_margin, 0.0, 1.0)
    check_range("seams_deep_weight", self.seams_deep_weight, 0.0)
    check_range("alternative_completeness_weight", self.alternative_completeness_weight, 0.0)
    check_range("alternative_fine_coherence_weight", self.alternative_fine_coherence_weight,
                0.0)
    if self.crop_remainder not in CROP_REMAINDERS:
      raise ValueError(f"crop_remainder must be one of {', '.join(CROP_REMAINDERS)}, got "
                       f"{self.crop_remainder!r}")
    check_range("deep_weight", self.deep_weight, 0.0)
    if self.axis_order not in AXIS_ORDERS:
      raise ValueError(f"axis_order must be one of {', '.join(AXIS_ORDERS)}, got "
                       f"{self.axis_order!r}")
    check_range("alpha", self.alpha, 0.0, 1.0)
    check_range("percentile", self.percentile, 0.0, 100.0)
    check_range("percentile_growth", self.percentile_growth, 0.0)
    check_range("grid_cell", self.grid_cell, 1)
    check_range("min_cell_scale", self.min_cell_scale, 0.0, 1.0, lo_open=True)
    check_range("seams_per_pass", self.seams_per_pass, 0)
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
    operator=OperatorConfig(crop_share=0.0, crop_share_growth=0.0, alternatives=(),
                            warp_power=1.0, forward_weight=0.0),
    reconstruction=ReconstructionConfig(init="linear"))

# Named configurations (``--preset``): "default" is today's behaviour.
PRESETS = {"default": RetargetConfig(), "paper": PAPER}
