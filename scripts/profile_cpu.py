"""Where the time goes on this machine (issue 37): phases and floors.

1. The whole CLI process: ``scripts/benchmark.py --whole_process`` (640x480 median,
   min and max beside the ``seam-carving`` package, cold, 12 MP, a folder of 20);
   this script runs it first unless ``--only_in_process``.
2. In process, per phase of the report (prepare = the plan's candidates and their
   audition, reconstruction = Eq. 4), first run (compiling) and second (compiled),
   with the compilations counted.
3. The floor: one VGG19 forward to block5_pool and one forward+backward of the loss at
   the working size, times the steps the plan runs.

    python scripts/profile_cpu.py [--runs=5]

Writes results/profile/profile.md (docs/RESULTS.md copies its tables).
"""

from __future__ import annotations

import argparse
import pathlib
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from dnr_jax import config
from dnr_jax import resizing
from dnr_jax.io import compilation
from dnr_jax.io import image_io
from dnr_jax.nn import vgg
from dnr_jax.nn import weights as weights_lib
from dnr_jax.resizing import reconstruct

ROOT = pathlib.Path(__file__).resolve().parents[1]


def floors(w, hw: tuple[int, int], cfg: config.RetargetConfig) -> dict:
  x = jnp.full((1, *hw, 3), 120.0, jnp.float32)
  fwd = jax.jit(lambda im: vgg.features(w, im, ("block5_pool",)))
  layers = tuple(l for l, _ in cfg.reconstruction.loss_layers)
  tgt = {l: f[0] for l, f in vgg.features(w, x, layers).items()}
  lam = dict(cfg.reconstruction.loss_layers)
  grad = jax.jit(jax.grad(lambda im: reconstruct.feature_loss(w, im, tgt, lam)))
  out = {}
  for name, fn, arg in (("forward", fwd, x), ("forward+backward", grad, x[0])):
    jax.block_until_ready(fn(arg))
    t0 = time.perf_counter()
    for _ in range(3):
      jax.block_until_ready(fn(arg))
    out[name] = (time.perf_counter() - t0) / 3
  return out


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--runs", type=int, default=5)
  ap.add_argument("--only_in_process", action="store_true",
                  help="skip the whole-process runs (parts 2 and 3 only)")
  args = ap.parse_args()
  photo = np.asarray(Image.fromarray(image_io.load_image(image_io.sample_image_path()))
                     .resize((640, 480), Image.LANCZOS))
  lines = [f"CPU profile: {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
           f"{jax.default_backend()}, `python scripts/profile_cpu.py --runs={args.runs}`", ""]

  # 1. whole processes
  if not args.only_in_process:
    import benchmark  # pylint: disable=g-import-not-at-top
    lines += benchmark._whole_process_md(benchmark.bench_whole_process(args.runs), args.runs)

  # 2. in process, compile vs run
  w = weights_lib.load_vgg19()
  cfg = config.RetargetConfig()
  rows = []
  for label, img in (("first (compiles)", photo), ("second (compiled)", photo[:, ::-1].copy())):
    with compilation.CompileCounter() as counter:
      t0 = time.perf_counter()
      res = resizing.retarget(w, img, (480, 480), cfg)
      wall = time.perf_counter() - t0
    st = counter.stats
    rows.append(f"| {label} | {wall:.1f} | " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                           res.timings.items())
                + f" | {st.requests} ({st.compile_s:.1f} s) | {res.operator} |")
  lines += ["### In process, 640x480 -> 480x480 (no start-up, weights loaded)", "",
            "| run | wall (s) | phases (s) | compilations (s) | operator |",
            "|---|---|---|---|---|", *rows, ""]
  # 3. floors: the default's one forward at its plan size; the paper's forward and Eq. 4
  # steps at the work size
  hw = res.work_hw
  f = floors(w, hw, cfg)
  paper_hw = (480, 640)
  fp = floors(w, paper_hw, config.PAPER)
  steps = config.PAPER.reconstruction.steps
  lines += ["### Floors", "",
            "| what | s |", "|---|---|",
            f"| the default: one VGG19 forward to block5_pool at its plan size {hw[1]}x{hw[0]} "
            f"| {f['forward']:.3f} |",
            f"| the paper's preset: one forward at {paper_hw[1]}x{paper_hw[0]} | "
            f"{fp['forward']:.3f} |",
            f"| ... one forward+backward of its Eq. 4 loss | {fp['forward+backward']:.3f} |",
            f"| ... x {steps} reconstruction steps | {steps * fp['forward+backward']:.1f} |", ""]
  out = ROOT / "results" / "profile"
  out.mkdir(parents=True, exist_ok=True)
  (out / "profile.md").write_text("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
