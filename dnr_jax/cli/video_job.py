"""A clip from the command line: ``--input=clip.mp4 --output=vertical.mp4 --aspect=9:16``.

Checks everything that can be known before decoding (paths, sizes, the header), then
the plan pass and the render pass of :mod:`dnr_jax.video.stream`, frames streamed from
the decoder to the encoder. Progress with ETA in frames; Ctrl-C (or SIGTERM) leaves no
partial output (exit 130); a clip that cannot be read or written is one line, exit 2.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import sys
import time

import numpy as np
from tqdm import tqdm

from dnr_jax.cli.job import (EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, EXIT_WEIGHTS, Job,
                             UserError, error_line, target_size)

from dnr_jax.config import VideoConfig
from dnr_jax.io import atomic_write
from dnr_jax.io import video_io
from dnr_jax.nn import weights as weights_lib
from dnr_jax.video import plan as plan_lib
from dnr_jax.video import shots
from dnr_jax.video import stream


def output_path(job: Job) -> pathlib.Path:
  """``--output``, a folder's ``<input>_retargeted.<suffix>``, or beside the input.
  Numbered frames go to a folder ``<input folder>_retargeted`` under the same name."""
  src = pathlib.Path(job.input)
  if video_io.is_sequence(src):
    if not job.output:
      return src.resolve().parent.with_name(src.resolve().parent.name + "_retargeted") / src.name
    out = pathlib.Path(job.output)
    return out / src.name if out.is_dir() else out
  if job.output:
    out = pathlib.Path(job.output)
    return out / f"{src.stem}_retargeted{src.suffix}" if out.is_dir() else out
  return src.resolve().with_name(f"{src.stem}_retargeted{src.suffix}")


def clip_size(info: video_io.VideoInfo, job: Job, out: pathlib.Path) -> tuple[int, int]:
  """The output frames' (h, w): ``--aspect``, or the size flags; even for H.264."""
  oh, ow = target_size(info.height, info.width, job)
  return video_io.even_size(oh, ow, out)


def run_clip(job: Job, vcfg: VideoConfig) -> int:
  """The whole clip job; returns the exit status."""
  try:
    out = output_path(job)
    kind = video_io.output_kind(out)
    if not (job.frame_rate > 0 and math.isfinite(job.frame_rate)):
      raise UserError(f"--frame_rate must be a positive number, got {job.frame_rate}")
    info = video_io.probe(job.input, frame_rate=job.frame_rate)
    if out.resolve() == pathlib.Path(job.input).resolve():
      raise UserError(f"--output {out} is the input: inputs are never overwritten")
    existing = ([f for _, f in video_io.sequence_files(out)] if kind == "sequence"
                else [out] if out.exists() else [])
    if existing and not job.overwrite:
      raise UserError(f"--output {out} exists" + (f" ({len(existing)} frames, like "
                      f"{existing[0].name})" if kind == "sequence" else "")
                      + " (give --overwrite to replace it)")
    if job.report and pathlib.Path(job.report).exists() and not job.overwrite:
      raise UserError(f"--report {job.report} exists (give --overwrite to replace it)")
    oh, ow = clip_size(info, job, out)
    if min(oh, ow) < 2:
      raise UserError(f"the output {ow}x{oh} is too small")
    problem = atomic_write.probe_writable_folder(out.parent)
    if problem:
      raise UserError(f"--output {out}: {problem}")
  except (UserError, video_io.VideoError) as e:
    error_line(str(e))
    return EXIT_USAGE
  aspect_hw, axis = plan_lib.content_aware_size((info.height, info.width), (oh, ow))
  frames = info.frames or 0
  print(f"dnr_jax: {info.path.name} {info.width}x{info.height}, {frames or '?'} frames at "
        f"{float(info.fps):.3g} fps -> {ow}x{oh} ({'width' if axis == 1 else 'height'} "
        f"{info.width if axis == 1 else info.height} -> {aspect_hw[axis]}"
        f"{', then scaled' if aspect_hw != (oh, ow) else ''}; crop window "
        f"{plan_lib.crop_length((info.height, info.width)[axis], aspect_hw[axis], vcfg)} px)"
        + (f", audio copied ({info.audio_streams} stream{'s' * (info.audio_streams > 1)})"
           if info.audio_streams else ""), file=sys.stderr, flush=True)
  try:
    if job.dry_run:
      return _dry_run(info)
    try:
      weights = weights_lib.load_vgg19(job.vgg_weights)
    except weights_lib.WeightsError as e:
      error_line(str(e))
      return EXIT_WEIGHTS
    return _retarget(job, vcfg, info, out, (oh, ow), weights)
  except video_io.VideoError as e:
    error_line(str(e))
    return EXIT_USAGE
  except KeyboardInterrupt:
    print("\ndnr_jax: interrupted; nothing was written", file=sys.stderr)
    return EXIT_INTERRUPTED


def _bar(job: Job, desc: str, total: int):
  return tqdm(total=total or None, desc=desc, unit="frame", disable=not job.progress,
              file=sys.stderr, mininterval=0.5 if sys.stderr.isatty() else 5.0,
              dynamic_ncols=True, leave=False)


def _dry_run(info: video_io.VideoInfo) -> int:
  """Decodes the clip for its shots (no VGG, nothing written)."""
  sigs_prev, d = None, []
  for f in video_io.read_frames(info):
    s = shots.signature(f.image)
    d.append(0.0 if sigs_prev is None else shots.distance(s, sigs_prev))
    sigs_prev = s
  starts = shots.shot_starts(np.asarray(d))
  print(f"dnr_jax: dry run: {len(d)} frames, {len(starts)} shot(s) starting at frames "
        f"{', '.join(map(str, starts))}; nothing written", file=sys.stderr)
  return EXIT_OK


def _retarget(job, vcfg, info, out, out_hw, weights) -> int:
  in_hw = (info.height, info.width)
  t0 = time.perf_counter()
  with _bar(job, "plan (importance, shots)", info.frames) as bar:
    clip_plan = stream.plan_clip(
        (f.image for f in video_io.read_frames(info)), in_hw, out_hw, float(info.fps), weights,
        vcfg, total=info.frames, progress=lambda _, done, __: bar.update(done - bar.n))
  t1 = time.perf_counter()
  sources: list[video_io.Frame] = []

  def images():
    for f in video_io.read_frames(info):
      sources.append(f)
      yield f.image

  with video_io.ClipWriter(out, info, *out_hw, crf=job.crf) as writer, \
       _bar(job, "render", clip_plan.frames) as bar:
    for image in stream.render_frames(images(), clip_plan, vcfg):
      writer.write(image, sources.pop(0))
      bar.update(1)
  t2 = time.perf_counter()
  n = clip_plan.frames
  print(f"dnr_jax: wrote {out} ({n} frames, {len(clip_plan.shot_starts)} shot(s), "
        f"{sum(clip_plan.still)} still) in {t2 - t0:.1f} s: plan {n / (t1 - t0):.1f} fps, "
        f"render+encode {n / (t2 - t1):.1f} fps", file=sys.stderr)
  if job.report:
    report = {"input": str(info.path), "output": str(out), "status": "ok",
              "frames": n, "fps": float(info.fps), "in_hw": list(in_hw),
              "out_hw": list(out_hw), "aspect_hw": list(clip_plan.aspect_hw),
              "axis": clip_plan.axis, "crop": clip_plan.crop,
              "shots": [{"start": s, "still": st} for s, st in
                        zip(clip_plan.shot_starts, clip_plan.still)],
              "crop_starts": np.round(clip_plan.starts, 2).tolist(),
              "seconds": {"plan": t1 - t0, "render": t2 - t1},
              "video_config": dataclasses.asdict(vcfg)}
    atomic_write.write_text(job.report, json.dumps(report, indent=1))
  return EXIT_OK
