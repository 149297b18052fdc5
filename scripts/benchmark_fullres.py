r"""Full-resolution figures: wall time and peak memory by input size, seam-carving speed.

    python scripts/benchmark_fullres.py --photo=PHOTO.jpg [--sizes=0.3,1,3,12,24]

1. **Sizes.** The photo is resized (Lanczos) and centre-cropped to 4:3 inputs of the
   given megapixels; each is retargeted to 75% width by the CLI in a fresh process
   (``python -m dnr_jax.main``, default settings), which also prints its own estimate.
   Recorded: wall time of the process, its peak RSS (``getrusage`` of the child), the
   per-phase timings from the JSON report, and the estimate the CLI printed.
2. **Seams at 1024x768 -> 768 wide.** Image-space seam carving (ours, one seam per DP
   pass and the batched default), the deep operator's plan (seam finding at every layer
   + warp, features precomputed), the ``seam-carving`` package, and liblqr through
   ImageMagick's ``-liquid-rescale`` (process start and PPM read/write included, as a
   user would run it).

Writes ``results/fullres/bench.json`` and ``results/fullres/table.md``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image


def make_input(photo: pathlib.Path, megapixels: float, out: pathlib.Path) -> tuple[int, int]:
  """A 4:3 crop of ``photo`` resized to ``megapixels`` (Lanczos); returns (w, h)."""
  w = int(round((megapixels * 1e6 * 4 / 3) ** 0.5 / 4)) * 4
  h = w * 3 // 4
  im = Image.open(photo).convert("RGB")
  s = max(w / im.width, h / im.height)
  r = im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS)
  x, y = (r.width - w) // 2, (r.height - h) // 2
  r.crop((x, y, x + w, y + h)).save(out, quality=92)
  return w, h


def run_cli(src: pathlib.Path, out_dir: pathlib.Path, extra=()) -> dict:
  out, report = out_dir / f"{src.stem}_out.png", out_dir / f"{src.stem}.json"
  t0 = time.perf_counter()
  with tempfile.TemporaryFile("w+") as err:
    proc = subprocess.Popen([sys.executable, "-m", "dnr_jax.main", f"--input={src}",
                             f"--output={out}", "--width_ratio=0.75", f"--report={report}",
                             "--overwrite", "--noprogress", *extra], stderr=err,
                            stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
    wall = time.perf_counter() - t0
    err.seek(0)
    stderr = err.read()
  if os.waitstatus_to_exitcode(status):
    raise RuntimeError(stderr[-2000:])
  peak_kb = usage.ru_maxrss
  est = re.search(r"expected ~([\d.]+) s.*peak memory ~([\d.]+) GiB host", stderr)
  rep = json.loads(report.read_text())
  return {"wall_s": round(wall, 1),
          "peak_rss_gib": round(peak_kb / 2**20, 2),
          "timings_s": rep["timings_s"], "work_size": rep["work_size"],
          "estimate_s": float(est.group(1)) if est else None,
          "estimate_rss_gib": float(est.group(2)) if est else None}


def bench_seams(photo: pathlib.Path, repeats: int = 3) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from dnr_jax.resizing import baselines  # pylint: disable=g-import-not-at-top
  from dnr_jax import config  # pylint: disable=g-import-not-at-top
  from dnr_jax.resizing import deep_carving  # pylint: disable=g-import-not-at-top
  from dnr_jax.nn import vgg  # pylint: disable=g-import-not-at-top
  from dnr_jax.nn import weights as weights_lib  # pylint: disable=g-import-not-at-top

  img = np.asarray(Image.open(photo).convert("RGB").resize((1024, 768), Image.LANCZOS))
  res = {}

  def best_of(fn):
    fn()  # compile / warm up
    times = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      fn()
      times.append(time.perf_counter() - t0)
    return round(min(times), 3)

  for name, batch in (("ours, one seam per pass", 1), ("ours, batched (default)", None)):
    f = jax.jit(lambda x, b=batch: baselines.carve_width_map(x, 256, "backward", b))
    res[f"image seams: {name}"] = best_of(
        lambda f=f: jax.block_until_ready(f(jnp.asarray(img, jnp.float32))))
  w = weights_lib.load_vgg19()
  cfg = config.OperatorConfig()
  feats = {k: v[0] for k, v in jax.jit(vgg.features, static_argnums=2)(
      w, jnp.asarray(img, jnp.float32)[None], cfg.layers).items()}
  for name, style in (("one seam per pass (straight)", "straight"), ("batched (default)", "fast")):
    c = config.OperatorConfig(seam_style=style)
    plan = jax.jit(deep_carving.plan_resize, static_argnums=(1, 2, 3))
    res[f"deep operator plan: {name}"] = best_of(
        lambda c=c, plan=plan: jax.block_until_ready(plan(feats, (768, 1024), (768, 768), c)))
  try:
    import seam_carving  # pylint: disable=g-import-not-at-top
    res["seam-carving package 1.1.0 (backward)"] = best_of(
        lambda: seam_carving.resize(img, (768, 768), energy_mode="backward", order="width-first"))
  except ImportError:
    res["seam-carving package"] = None
  convert = shutil.which("convert")
  if convert:
    with tempfile.TemporaryDirectory() as d:
      src = pathlib.Path(d) / "in.ppm"
      Image.fromarray(img).save(src)
      res["liblqr (ImageMagick -liquid-rescale, incl. process + PPM io)"] = best_of(
          lambda: subprocess.run([convert, str(src), "-liquid-rescale", "768x768!",
                                  str(pathlib.Path(d) / "out.ppm")], check=True))
  return res


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--photo", required=True, help="a real photo to resize into the inputs")
  ap.add_argument("--sizes", default="0.3,1,3,12,24", help="megapixels, comma separated")
  ap.add_argument("--extra", default="", help="extra CLI flags, space separated")
  ap.add_argument("--skip_seams", action="store_true")
  ap.add_argument("--out", default="results/fullres")
  args = ap.parse_args()
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  results = {"photo": str(args.photo), "sizes": {}, "seams_1024x768_to_768": {}}
  for mp in [float(s) for s in args.sizes.split(",")]:
    src = out / f"input_{mp:g}mp.jpg"
    w, h = make_input(pathlib.Path(args.photo), mp, src)
    r = run_cli(src, out, args.extra.split())
    results["sizes"][f"{w}x{h}"] = r
    print(f"{w}x{h}: {r}", flush=True)
  if not args.skip_seams:
    results["seams_1024x768_to_768"] = bench_seams(pathlib.Path(args.photo))
    print(results["seams_1024x768_to_768"], flush=True)
  (out / "bench.json").write_text(json.dumps(results, indent=2))
  lines = ["| input | wall s | peak RSS GiB | estimate s | estimate GiB | phases s |",
           "|---|---|---|---|---|---|"]
  for size, r in results["sizes"].items():
    phases = ", ".join(f"{k} {v}" for k, v in r["timings_s"].items())
    lines.append(f"| {size} | {r['wall_s']} | {r['peak_rss_gib']} | {r['estimate_s']} | "
                 f"{r['estimate_rss_gib']} | {phases} |")
  lines += ["", "| seams 1024x768 -> 768 | s |", "|---|---|"]
  lines += [f"| {k} | {v} |" for k, v in results["seams_1024x768_to_768"].items()]
  (out / "table.md").write_text("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
