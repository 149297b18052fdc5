"""Expected wall time and peak memory of one job, from sizes alone (before any work).

A linear model per phase in the pixel counts that drive it, with coefficients fitted
to ``scripts/benchmark_fullres.py`` runs on the project's 2-core CPU machine (see
docs/history/LAB_LOG.md, "Full resolution"). On other machines the shape holds and the
constants do not: the line printed by the CLI names the machine the figures are for.

Phases and their drivers:
- decode: full input pixels; downscale: full input pixels;
- prepare (VGG forward to block5_pool + the deep plan): working input pixels, plus the
  block1 seam DP, ~ working pixels x seams at the working size;
- reconstruction: steps x working output pixels (forward + backward of block1);
- full resolution (lifted maps + correction) and saving: full output pixels;
- compilation of a new (input, output) size: a constant plus a working-pixel term.
Memory: a runtime base, bytes per full-resolution pixel (input, intermediate and output
images, row tiles) and per working pixel (VGG activations of the prepare phase).
"""

from __future__ import annotations

import dataclasses

from dnr_jax.resizing import plan as plan_lib

MACHINE = "2-core CPU"

# Seconds per pixel (or per pixel-step), fitted to scripts/benchmark_fullres.py on the
# 2-core CPU, 2026-11-26 (docs/history/LAB_LOG.md, "Full resolution").
_DECODE_S_PER_PX = 2e-8
_DOWNSCALE_S_PER_PX = 6e-8
_PREPARE_S_PER_WORK_PX = 1.2e-5
_PREPARE_S_PER_WORK_PX_SEAM = 4e-8
_PREPARE_S_PER_WORK_PX_CANDIDATE = 5e-7
_RECON_S_PER_OUT_PX_STEP = 1.7e-6
_FULLRES_S_PER_OUT_PX = 1.75e-7
_SAVE_S_PER_OUT_PX = 1.5e-7
_COMPILE_S = 6.0
_RECON_COMPILE_S = 5.0
_COMPILE_S_PER_WORK_PX = 2e-6
# Bytes.
_BASE_RSS = 1.0e9
_RSS_PER_FULL_PX = 16.0
_RSS_PER_WORK_PX = 1000.0
_RSS_PER_WORK_PX_CANDIDATE = 200.0  # each crop share of the audition
_DEVICE_PER_WORK_PX = 1200.0


@dataclasses.dataclass(frozen=True)
class Estimate:
  work_hw: tuple[int, int]
  work_out_hw: tuple[int, int]
  seconds: dict  # phase -> expected seconds (compilation included in the phase)
  compile_s: float
  peak_rss_bytes: float
  device_bytes: float
  machine: str = MACHINE

  @property
  def total_s(self) -> float:
    return float(sum(self.seconds.values()))

  def plus(self, other: "Estimate") -> "Estimate":
    """Two runs one after the other (object removal, then the requested size)."""
    seconds = {k: self.seconds.get(k, 0.0) + other.seconds.get(k, 0.0)
               for k in {**self.seconds, **other.seconds}}
    return dataclasses.replace(self, seconds=seconds, compile_s=self.compile_s + other.compile_s,
                               peak_rss_bytes=max(self.peak_rss_bytes, other.peak_rss_bytes),
                               device_bytes=max(self.device_bytes, other.device_bytes))

  def to_json(self) -> dict:
    return {"seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "total_s": round(self.total_s, 2), "compile_s": round(self.compile_s, 2),
            "peak_rss_bytes": int(self.peak_rss_bytes), "device_bytes": int(self.device_bytes),
            "machine": self.machine}


def estimate(plan: plan_lib.Plan) -> Estimate:
  """The expected cost of running ``plan`` (:func:`dnr_jax.resizing.plan.make_plan`):
  its sizes, its audition's candidates and whether Eq. 4 runs."""
  s = plan.sizes
  image_hw, out_hw = s.image, s.out
  full_px = image_hw[0] * image_hw[1]
  out_px = out_hw[0] * out_hw[1]
  work_px = s.work[0] * s.work[1]
  work_out_px = s.work_out[0] * s.work_out[1]
  seams = abs(s.work[0] - s.work_out[0]) + abs(s.work[1] - s.work_out[1])  # removed/inserted
  compile_s = _COMPILE_S + _COMPILE_S_PER_WORK_PX * work_px
  seconds = {
      "decode": _DECODE_S_PER_PX * full_px,
      "prepare": compile_s + _PREPARE_S_PER_WORK_PX * work_px
                 + _PREPARE_S_PER_WORK_PX_SEAM * work_px * seams,
      "save": _SAVE_S_PER_OUT_PX * out_px,
  }
  steps = plan.steps  # 0 for a lifted plan without seams
  if steps:
    seconds["reconstruction"] = (_RECON_COMPILE_S
                                 + _RECON_S_PER_OUT_PX_STEP * work_out_px * steps)
  if plan.refine_steps:
    seconds["refinement"] = (_RECON_COMPILE_S
                             + 2 * _RECON_S_PER_OUT_PX_STEP * work_out_px * plan.refine_steps)
  if s.full_resolution:
    seconds["downscale"] = _DOWNSCALE_S_PER_PX * full_px
    seconds["full resolution"] = _FULLRES_S_PER_OUT_PX * (out_px + full_px)
  # The audition's candidates (Plan.crop_shares) share the image's forward pass; each
  # adds its plan and its criterion (a small term per working pixel).
  k = max(1, len(plan.crop_shares))
  seconds["prepare"] += (k - 1) * _PREPARE_S_PER_WORK_PX_CANDIDATE * work_px
  if plan.resampling and not s.full_resolution:  # the pixel map on the input's pixels
    seconds["full resolution"] = _FULLRES_S_PER_OUT_PX * (out_px + full_px)
  rss = (_BASE_RSS + _RSS_PER_FULL_PX * (full_px + out_px)
         + (_RSS_PER_WORK_PX + _RSS_PER_WORK_PX_CANDIDATE * (k - 1)) * work_px)
  device = _DEVICE_PER_WORK_PX * work_px * k + 16.0 * (full_px + out_px)
  return Estimate(s.work, s.work_out, seconds, compile_s, rss, device)
