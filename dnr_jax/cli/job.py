"""The job the command line asks for: exit codes, flags-level checks, target sizes."""

from __future__ import annotations

import dataclasses
import pathlib
import sys

import numpy as np

from dnr_jax import resizing
from dnr_jax.io import image_io


EXIT_OK = 0
EXIT_USAGE = 2
EXIT_WEIGHTS = 3
EXIT_NUMERICAL = 4
EXIT_INTERRUPTED = 130


class UserError(Exception):
  """Something the user asked for cannot be done (bad flags, sizes, paths)."""


def error_line(message: str) -> None:
  print(f"dnr_jax: error: {message}", file=sys.stderr, flush=True)


def fail(code: int, message: str) -> None:
  error_line(message)
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
  overwrite: bool = False
  max_pixels: int = image_io.DEFAULT_MAX_PIXELS
  dry_run: bool = False  # pre-flight, decode and estimate only; nothing is written
  batch_size: int = 1  # >1: vmapped batches of images with equal working shapes
  process_index: int = 0  # multi-host runs (--distributed): this process's share
  process_count: int = 1
  keep_mask: str | None = None  # mask image files (nonzero = masked), the input's size
  remove_mask: str | None = None
  aspect: str | None = None  # "W:H": one axis changes (see aspect_size)
  crf: int = 18  # clips: the H.264/VP9 constant rate factor (lower = better, larger)
  frame_rate: float = 25.0  # numbered-frame inputs (frames/%05d.png): frames per second


def parse_aspect(text: str) -> tuple[int, int]:
  """'9:16' -> (9, 16), (width, height)."""
  try:
    w, h = (int(v) for v in text.split(":"))
  except ValueError:
    raise UserError(f"--aspect must be W:H (like 9:16), got {text!r}") from None
  if w <= 0 or h <= 0:
    raise UserError(f"--aspect must be W:H with positive sides, got {text!r}")
  return w, h


def aspect_size(height: int, width: int, aspect: str) -> tuple[int, int]:
  """The (H', W') of ``--aspect=W:H``: one axis changes, the other keeps its length (a
  narrower aspect shrinks the width, a wider one the height: nothing is upscaled)."""
  aw, ah = parse_aspect(aspect)
  if aw * height <= ah * width:
    return height, max(1, round(height * aw / ah))
  return max(1, round(width * ah / aw)), width


def target_size(height: int, width: int, job: Job) -> tuple[int, int]:
  """(H', W') from ``--aspect``, or the ratio or pixel flags (each axis takes at most
  one of the two)."""
  if job.aspect is not None:
    if any(v is not None for v in (job.width_ratio, job.height_ratio, job.target_width,
                                    job.target_height)):
      raise UserError("give --aspect or the size flags (--width_ratio, --target_width, "
                      "...), not both")
    oh, ow = aspect_size(height, width, job.aspect)
    if min(oh, ow) < image_io.MIN_SIDE:
      raise UserError(f"target {ow}x{oh} is below VGG19's {image_io.MIN_SIDE} px per side")
    return oh, ow
  def axis(size, ratio, pixels, rname, pname):
    if ratio is not None and pixels is not None:
      raise UserError(f"give --{rname} or --{pname}, not both")
    if ratio is not None:
      if not (np.isfinite(ratio) and 0.0 < ratio <= resizing.MAX_ENLARGE):
        raise UserError(f"--{rname} must be in (0, {resizing.MAX_ENLARGE}], got {ratio}")
      return max(1, round(size * ratio))
    if pixels is not None:
      if pixels <= 0:
        raise UserError(f"--{pname} must be positive, got {pixels}")
      if pixels > resizing.MAX_ENLARGE * size:
        raise UserError(f"--{pname}={pixels} is more than {resizing.MAX_ENLARGE}x the "
                        f"input's {size} px: enlarge in several runs")
      return pixels
    return size

  if all(v is None for v in (job.width_ratio, job.height_ratio, job.target_width,
                              job.target_height)):
    raise UserError("give the output size: --aspect, or --width_ratio or --target_width "
                    "and/or --height_ratio or --target_height")
  oh = axis(height, job.height_ratio, job.target_height, "height_ratio", "target_height")
  ow = axis(width, job.width_ratio, job.target_width, "width_ratio", "target_width")
  if min(oh, ow) < image_io.MIN_SIDE:
    raise UserError(f"target {ow}x{oh} is below VGG19's {image_io.MIN_SIDE} px per side")
  return oh, ow


def check_job_flags(job: Job) -> None:
  """Flag errors that do not depend on any image (so they are reported first)."""
  target_size(1 << 20, 1 << 20, dataclasses.replace(
      job, target_width=None if job.target_width is None else min(job.target_width, 1 << 20),
      target_height=None if job.target_height is None else min(job.target_height, 1 << 20)))
  if not 0 <= job.crf <= 51:
    raise UserError(f"--crf must be in [0, 51], got {job.crf}")
  if job.max_pixels <= 0:
    raise UserError(f"--max_pixels must be positive, got {job.max_pixels}")
  if not 1 <= job.batch_size <= 4096:
    raise UserError(f"--batch_size must be in [1, 4096], got {job.batch_size}")


def start_distributed(job: Job, coordinator_address: str | None = None,
                      num_processes: int | None = None, process_id: int | None = None) -> Job:
  """``jax.distributed.initialize()`` (unset arguments are detected from the cluster);
  the job gets this process's index and count: each process retargets its share of
  the inputs on its own devices."""
  import jax  # pylint: disable=g-import-not-at-top
  try:
    jax.distributed.initialize(coordinator_address, num_processes, process_id,
                               initialization_timeout=120)
  except (RuntimeError, ValueError, TypeError) as e:
    raise UserError(f"--distributed: cannot join the cluster: {str(e).splitlines()[0]}") from None
  return dataclasses.replace(job, process_index=jax.process_index(),
                             process_count=jax.process_count())


def report_path(job: Job) -> str | None:
  """The report's path; in a multi-host run each process writes ``name.<i>-of-<n>.json``."""
  if not job.report or job.process_count == 1:
    return job.report
  path = pathlib.Path(job.report)
  return str(path.with_name(f"{path.stem}.{job.process_index}-of-{job.process_count}"
                            f"{path.suffix}"))
