"""Where the time goes on this machine (issue 37): whole CLI processes, phases, floors.

1. The whole CLI process (a subprocess, the persistent compilation cache warm after
   one untimed run): a 640x480 photo to 75% width, ``--runs`` times (median, min,
   max of wall, CPU and peak RSS from /usr/bin/time), beside the ``seam-carving``
   package on the same photo in the same run; a 12 MP photo; a folder of 20 photos.
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
import json
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

import _photos
from dnr_jax import config
from dnr_jax import resizing
from dnr_jax.io import compilation
from dnr_jax.io import image_io
from dnr_jax.nn import vgg
from dnr_jax.nn import weights as weights_lib
from dnr_jax.resizing import reconstruct

ROOT = pathlib.Path(__file__).resolve().parents[1]


def cli_run(args: list[str], report: bool = False) -> dict:
  """One whole process under /usr/bin/time: wall, CPU, peak RSS; with ``report``, the
  report's phase timings (the report also scores the result: Eq. 5, coherence)."""
  with tempfile.TemporaryDirectory() as tmp:
    report = pathlib.Path(tmp) / "r.json" if report else None
    stats = pathlib.Path(tmp) / "time.txt"
    cmd = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(stats), sys.executable, "-m",
           "dnr_jax.main", *args, *([f"--report={report}"] if report else []),
           "--noprogress", "--overwrite"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
      raise RuntimeError(proc.stderr[-2000:])
    wall, user, sys_s, rss_kb = stats.read_text().split()[-4:]
    rep = json.loads(report.read_text()) if report else {}
  entries = rep.get("images", [rep]) if isinstance(rep, dict) else rep
  timings = entries[0].get("timings_s", {}) if entries else {}
  return {"wall": float(wall), "cpu": float(user) + float(sys_s), "rss_mb": int(rss_kb) / 1024,
          "timings": timings}


def summary(runs: list[dict], key: str) -> str:
  v = [r[key] for r in runs]
  return f"{statistics.median(v):.1f} ({min(v):.1f}-{max(v):.1f})"


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


def whole_processes(args, tmp, p640, photo) -> list[str]:
  lines = []
  base = [f"--input={p640}", f"--output={tmp}/o.png", "--width_ratio=0.75"]
  cli_run(base)  # warms the persistent compilation cache
  runs = [cli_run(base) for _ in range(args.runs)]
  reported = [cli_run(base, report=True) for _ in range(3)]
  import seam_carving  # pylint: disable=g-import-not-at-top
  sc = []
  for _ in range(3):
    t0 = time.perf_counter()
    seam_carving.resize(photo, (480, 480), energy_mode="backward", order="width-first")
    sc.append(time.perf_counter() - t0)
  phases = {k: statistics.median([r["timings"].get(k, 0.0) for r in reported])
            for k in reported[0]["timings"]}
  lines += ["### Whole CLI process, 640x480 -> 480x480, warm compilation cache", "",
            f"| measure | median (min-max) of {args.runs} |", "|---|---|",
            f"| wall (s) | {summary(runs, 'wall')} |", f"| CPU (s) | {summary(runs, 'cpu')} |",
            f"| peak RSS (MB) | {summary(runs, 'rss_mb')} |",
            f"| the `seam-carving` package, same photo and size, in process (s) | "
            f"{statistics.median(sc):.2f} |",
            f"| ratio wall / seam-carving | {statistics.median([r['wall'] for r in runs]) / statistics.median(sc):.1f} |",
            f"| wall with `--report` (scores the result too) (s) | {summary(reported, 'wall')} |",
            "", "Phases of the report (median of 3, s): "
            + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()), ""]
  print("\n".join(lines), flush=True)

  big = np.asarray(Image.fromarray(photo).resize((4000, 3000), Image.BICUBIC))
  p12 = tmp / "photo12mp.png"
  Image.fromarray(big).save(p12, compress_level=1)
  b12 = [f"--input={p12}", f"--output={tmp}/o12.png", "--width_ratio=0.75"]
  r12 = [cli_run(b12) for _ in range(2)]
  folder = tmp / "folder"
  folder.mkdir()
  photos = list(_photos.package_photos(640).values())
  for i in range(20):
    im = photos[i % len(photos)]
    s = 1.0 - 0.1 * (i // len(photos))
    im = np.asarray(Image.fromarray(im).resize((round(im.shape[1] * s), round(im.shape[0] * s))))
    Image.fromarray(im).save(folder / f"p{i:02d}.png")
  bf = [f"--input={folder}", f"--output={tmp}/out", "--width_ratio=0.75"]
  rf = [cli_run(bf), cli_run(bf)]  # its sizes new to the caches, then again
  lines += ["### Other jobs (whole process)", "",
            "| job | wall (s) | CPU (s) | peak RSS (MB) |", "|---|---|---|---|",
            f"| 12 MP (4000x3000) -> 75% width, first run | {r12[0]['wall']:.1f} | "
            f"{r12[0]['cpu']:.1f} | {r12[0]['rss_mb']:.0f} |",
            f"| the same again (its programs in the cache) | {r12[1]['wall']:.1f} | "
            f"{r12[1]['cpu']:.1f} | {r12[1]['rss_mb']:.0f} |",
            f"| folder of 20 photos (7 package photos at 3 scales, <= 640 px) -> 75%, its "
            f"20 sizes new to the caches | {rf[0]['wall']:.1f} ({20 / rf[0]['wall']:.2f} "
            f"photos/s) | {rf[0]['cpu']:.1f} | {rf[0]['rss_mb']:.0f} |",
            f"| the same folder again (warm caches) | {rf[1]['wall']:.1f} "
            f"({20 / rf[1]['wall']:.2f} photos/s) | {rf[1]['cpu']:.1f} | "
            f"{rf[1]['rss_mb']:.0f} |", ""]
  print("\n".join(lines[-8:]), flush=True)
  return lines


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--runs", type=int, default=5)
  ap.add_argument("--only_in_process", action="store_true",
                  help="skip the whole-process runs (parts 2 and 3 only)")
  args = ap.parse_args()
  tmp = pathlib.Path(tempfile.mkdtemp())
  photo = np.asarray(Image.fromarray(image_io.load_image(image_io.sample_image_path()))
                     .resize((640, 480), Image.LANCZOS))
  p640 = tmp / "photo640.png"
  Image.fromarray(photo).save(p640)
  lines = [f"CPU profile: {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
           f"{jax.default_backend()}, `python scripts/profile_cpu.py --runs={args.runs}`", ""]

  # 1. whole processes
  if not args.only_in_process:
    lines += whole_processes(args, tmp, p640, photo)

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
