"""The command-line job: files in, files out. All side effects of the CLI live here.

``main.py`` turns flags into a :class:`Job` and a :class:`~dnr_jax.config.RetargetConfig`
and calls :func:`run`, which returns the exit status.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys
import time

import numpy as np
from absl import logging

from dnr_jax import image_io
from dnr_jax import importance
from dnr_jax import metrics
from dnr_jax import pipeline
from dnr_jax import visualize
from dnr_jax import weights as weights_lib
from dnr_jax.config import RetargetConfig

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_WEIGHTS = 3
EXIT_NUMERICAL = 4
EXIT_INTERRUPTED = 130


class UserError(Exception):
  """Something the user asked for cannot be done (bad flags, sizes, paths)."""


def fail(code: int, message: str) -> None:
  print(f"dnr_jax: error: {message}", file=sys.stderr)
  sys.exit(code)


@dataclasses.dataclass(frozen=True)
class Job:
  input: str | None
  output: str | None = None
  width_ratio: float | None = None
  height_ratio: float | None = None
  target_width: int | None = None
  target_height: int | None = None
  vgg_weights: str | None = None
  save_debug: bool = False
  report: str | None = None
  progress: bool = True


def target_size(height: int, width: int, job: Job) -> tuple[int, int]:
  """(H', W') from the ratio or pixel flags; each axis takes at most one of the two."""
  def axis(size, ratio, pixels, rname, pname):
    if ratio is not None and pixels is not None:
      raise UserError(f"give --{rname} or --{pname}, not both")
    if ratio is not None:
      if not 0.0 < ratio <= 1.0:
        raise UserError(f"--{rname} must be in (0, 1], got {ratio}")
      return max(1, round(size * ratio))
    if pixels is not None:
      if pixels <= 0:
        raise UserError(f"--{pname} must be positive, got {pixels}")
      return pixels
    return size

  if all(v is None for v in (job.width_ratio, job.height_ratio, job.target_width,
                              job.target_height)):
    raise UserError("give the output size: --width_ratio or --target_width, and/or "
                    "--height_ratio or --target_height")
  oh = axis(height, job.height_ratio, job.target_height, "height_ratio", "target_height")
  ow = axis(width, job.width_ratio, job.target_width, "width_ratio", "target_width")
  if ow > width or oh > height:
    raise UserError(f"target {ow}x{oh} is larger than the input {width}x{height}: only "
                    "shrinking is supported")
  if min(oh, ow) < image_io.MIN_SIDE:
    raise UserError(f"target {ow}x{oh} is below VGG19's {image_io.MIN_SIDE} px per side")
  return oh, ow


def _pairs(job: Job) -> list[tuple[pathlib.Path, pathlib.Path]]:
  if not job.input:
    raise UserError("--input is required (an image file or a folder)")
  src = pathlib.Path(job.input)
  if src.is_dir():
    images = image_io.list_images(src)
    if not images:
      raise UserError(f"{src}: no images found")
    out_dir = pathlib.Path(job.output) if job.output else src.with_name(src.name + "_retargeted")
    if out_dir.exists() and not out_dir.is_dir():
      raise UserError(f"--output {out_dir} must be a folder when --input is one")
    if out_dir.resolve() == src.resolve():
      raise UserError("--output must differ from the input folder")
    return [(p, out_dir / (p.stem + ".png")) for p in images]
  if not src.exists():
    raise UserError(f"{src}: no such file or folder")
  out = pathlib.Path(job.output) if job.output else src.with_name(src.stem + "_retargeted.png")
  if out.is_dir():
    out = out / (src.stem + ".png")
  if out.suffix.lower() not in image_io.IMAGE_SUFFIXES:
    raise UserError(f"--output {out}: unknown image extension (use .png or .jpg)")
  return [(src, out)]


class _Progress:
  """One updating line on a terminal, periodic log lines otherwise."""

  def __init__(self, enabled: bool):
    self.enabled = enabled
    self.tty = sys.stderr.isatty()

  def __call__(self, phase, step, total, loss, its):
    if not self.enabled:
      return
    msg = f"{phase}: {step}/{total}  loss {loss:.5g}  {its:.2f} it/s"
    if self.tty:
      print("\r" + msg.ljust(70), end="\n" if step == total else "", file=sys.stderr, flush=True)
    else:
      logging.info(msg)


def _debug_pictures(image: np.ndarray, res: pipeline.Result, out: pathlib.Path) -> list[str]:
  stem, written = out.with_suffix(""), []

  def save(name, arr):
    p = pathlib.Path(f"{stem}_{name}.png")
    image_io.save_image(arr, p)
    written.append(str(p))

  h, w = image.shape[:2]
  if res.importance:
    eff = np.asarray(importance.effective_importance(res.importance, h, w))
    save("importance", visualize.importance_panel(res.importance, (h, w), eff))
  for axis, removed in res.removed.items():
    # Height seams live on the width-resized maps: draw them over the input scaled to
    # the output width (positions are approximate where the width pass was non-uniform).
    base = image if axis == "width" else visualize.resize_linear(image, (h, res.output.shape[1]))
    tiles = [visualize.seams_overlay(base, m if axis == "width" else m.T)
             for m in removed.values()]
    save(f"seams_{axis}", visualize.panel(tiles, list(removed), height=min(h, 300)))
  save("targets", visualize.importance_panel(res.target_importance, res.output.shape[:2]))
  save("stages", visualize.panel([image, res.initial, res.reconstructed, res.output],
                                 ["input", "init", "reconstructed", "output"]))
  if res.recon_losses:
    save("loss", visualize.panel(
        [visualize.plot_curve(res.recon_losses, title="reconstruction loss")]
        + ([visualize.plot_curve(res.refine_losses, title="refinement loss")]
           if res.refine_losses else [])))
  return written


def _report_entry(src, out, image, res: pipeline.Result, cfg: RetargetConfig, weights,
                  debug_files, wall) -> dict:
  ss = float(metrics.semantic_score_jit(weights, res.output, image))
  return {
      "input": str(src), "output": str(out),
      "input_size": {"height": image.shape[0], "width": image.shape[1]},
      "output_size": {"height": res.output.shape[0], "width": res.output.shape[1]},
      "seams_removed": res.seams_removed,
      "target_feature_shapes": {l: list(s) for l, s in res.target_shapes.items()},
      "losses": {"reconstruction": res.recon_losses, "refinement": res.refine_losses},
      "timings_s": {**{k: round(v, 3) for k, v in res.timings.items()}, "total": round(wall, 3)},
      "scores": {"semantic_score_block5_conv1": ss,
                 **metrics.bidirectional_similarity(res.output, image)},
      "interrupted": res.interrupted,
      "debug_files": debug_files,
      "config": dataclasses.asdict(cfg),
  }


def _write_json(path: str, data) -> None:
  p = pathlib.Path(path)
  p.parent.mkdir(parents=True, exist_ok=True)
  tmp = p.with_name(f".tmp_{p.name}")
  tmp.write_text(json.dumps(data, indent=2) + "\n")
  os.replace(tmp, p)


def run(job: Job, cfg: RetargetConfig) -> int:
  """Runs the job; returns the exit status (errors print one line on stderr)."""
  try:
    pairs = _pairs(job)
    loaded = []
    for src, out in pairs:
      image = image_io.load_image(src)
      loaded.append((src, out, image, target_size(image.shape[0], image.shape[1], job)))
  except (UserError, image_io.ImageError) as e:
    print(f"dnr_jax: error: {e}", file=sys.stderr)
    return EXIT_USAGE
  try:
    weights = weights_lib.load_vgg19(job.vgg_weights)
  except weights_lib.WeightsError as e:
    print(f"dnr_jax: error: {e}", file=sys.stderr)
    return EXIT_WEIGHTS

  entries, status = [], EXIT_OK
  progress = _Progress(job.progress)
  for src, out, image, out_hw in loaded:
    t0 = time.perf_counter()
    logging.info("%s: %dx%d -> %dx%d", src, image.shape[1], image.shape[0], out_hw[1], out_hw[0])
    try:
      res = pipeline.retarget(image, out_hw, cfg, weights, progress)
      image_io.save_image(res.output, out, protect=(src,))
    except ValueError as e:
      print(f"dnr_jax: error: {src}: {e}", file=sys.stderr)
      return EXIT_USAGE
    except image_io.ImageError as e:
      print(f"dnr_jax: error: {e}", file=sys.stderr)
      return EXIT_USAGE
    except pipeline.NumericalError as e:
      print(f"dnr_jax: error: {src}: {e}", file=sys.stderr)
      return EXIT_NUMERICAL
    debug = _debug_pictures(image, res, out) if job.save_debug else []
    wall = time.perf_counter() - t0
    logging.info("wrote %s in %.1f s (%s)", out, wall,
                 ", ".join(f"{k} {v:.1f} s" for k, v in res.timings.items()))
    if job.report:
      entries.append(_report_entry(src, out, image, res, cfg, weights, debug, wall))
    if res.interrupted:
      print(f"dnr_jax: interrupted; wrote the best image so far to {out}", file=sys.stderr)
      status = EXIT_INTERRUPTED
      break
  if job.report:
    _write_json(job.report, entries[0] if len(pairs) == 1 else entries)
  return status
