"""Frames per second of the two video passes on whatever JAX finds (CPU, GPU, TPU),
decoding and encoding left out: a 1280x720 camera pan over the bundled photo, held in
memory, to 9:16 and 1:1 (the library's iterator API, no PyAV needed). The first
batch's compilation is reported apart.

    python scripts/video_fps.py [--frames=200]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from PIL import Image

from dnr_jax.config import VideoConfig
from dnr_jax.io import image_io
from dnr_jax.nn import weights as weights_lib
from dnr_jax.video import plan as plan_lib
from dnr_jax.video import stream


def pan(frames: int, hw=(720, 1280), speed=3) -> list[np.ndarray]:
  photo = image_io.load_image(image_io.sample_image_path())
  h, w = hw
  big = np.asarray(Image.fromarray(photo).resize((w + frames * speed, h), Image.BICUBIC))
  return [np.ascontiguousarray(big[:, t * speed:t * speed + w]) for t in range(frames)]


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--frames", type=int, default=200)
  args = ap.parse_args()
  weights = weights_lib.load_vgg19()
  frames = pan(args.frames)
  cfg = VideoConfig()
  print(f"{jax.devices()[0].device_kind}, {len(frames)} frames 1280x720")
  for aspect in ((16, 9), (1, 1)):
    out_hw, _ = plan_lib.content_aware_size((720, 1280), aspect)
    for run in ("first (compiles)", "second"):
      t0 = time.perf_counter()
      p = stream.plan_clip(iter(frames), (720, 1280), out_hw, 25.0, weights, cfg)
      t1 = time.perf_counter()
      n = 0
      for _ in stream.render_frames(iter(frames), p, cfg):
        n += 1
      t2 = time.perf_counter()
      print(f"to {out_hw[1]}x{out_hw[0]}, {run}: plan {n / (t1 - t0):.1f} fps, "
            f"render {n / (t2 - t1):.1f} fps, both {n / (t2 - t0):.1f} fps", flush=True)


if __name__ == "__main__":
  main()
