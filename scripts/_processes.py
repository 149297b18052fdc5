"""Whole-process timings (issue 37): the CLI as a user runs it, and the `seam-carving`
package run the same way (a fresh Python that reads the photo, resizes, writes), so a
ratio compares like with like: start-up, decoding and encoding included on both sides.

Each run is one subprocess under ``/usr/bin/time`` (wall, CPU = user + system, peak
RSS); where that program is missing, wall from the clock and CPU / RSS from
``resource.getrusage(RUSAGE_CHILDREN)`` (the RSS is then the largest child so far).
"""

from __future__ import annotations

import json
import os
import pathlib
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

import _photos
from dnr_jax.io import image_io

# A fresh Python that does what a user of the `seam-carving` package does.
_SEAM_CARVING = """
import sys
import numpy as np, seam_carving
from PIL import Image
src, dst, w = sys.argv[1], sys.argv[2], int(sys.argv[3])
for s, d in zip(src.split(","), dst.split(",")):
  img = np.asarray(Image.open(s).convert("RGB"))
  out = seam_carving.resize(img, (w if w > 0 else round(img.shape[1] * -w / 100),
                                  img.shape[0]), energy_mode="backward", order="width-first")
  Image.fromarray(out).save(d)
"""


def timed(cmd: list[str]) -> dict:
  """One subprocess: {"wall", "cpu", "rss_mb"}; raises with its stderr if it fails."""
  with tempfile.TemporaryDirectory() as tmp:
    stats = pathlib.Path(tmp) / "time.txt"
    gnu_time = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time")
                                        else None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    full = [gnu_time, "-f", "%e %U %S %M", "-o", str(stats), *cmd] if gnu_time else cmd
    proc = subprocess.run(full, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode:
      raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    if gnu_time:
      wall_s, user, sys_s, rss_kb = stats.read_text().split()[-4:]
      return {"wall": float(wall_s), "cpu": float(user) + float(sys_s),
              "rss_mb": int(rss_kb) / 1024}
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall": wall, "cpu": (after.ru_utime - before.ru_utime)
            + (after.ru_stime - before.ru_stime), "rss_mb": after.ru_maxrss / 1024}


def dnr(args: list[str], report: bool = False) -> dict:
  """The CLI (``python -m dnr_jax.main``) once; with ``report``, its phase timings too."""
  with tempfile.TemporaryDirectory() as tmp:
    rep = pathlib.Path(tmp) / "r.json"
    run = timed([sys.executable, "-m", "dnr_jax.main", *args, "--noprogress", "--overwrite",
                 *([f"--report={rep}"] if report else [])])
    entries = json.loads(rep.read_text()) if report else {}
  entries = entries.get("images", [entries]) if isinstance(entries, dict) else entries
  run["timings"] = entries[0].get("timings_s", {}) if entries else {}
  return run


def seam_carving(sources: list[pathlib.Path], outputs: list[pathlib.Path],
                 width_percent: int = 75) -> dict:
  """The `seam-carving` package (backward energy) in a fresh process on ``sources``."""
  return timed([sys.executable, "-c", _SEAM_CARVING, ",".join(map(str, sources)),
                ",".join(map(str, outputs)), str(-width_percent)])


def summary(runs: list[dict], key: str, fmt: str = ".1f") -> str:
  """``median (min-max)`` of ``key`` over ``runs``."""
  v = [r[key] for r in runs]
  return f"{statistics.median(v):{fmt}} ({min(v):{fmt}}-{max(v):{fmt}})"


def median(runs: list[dict], key: str) -> float:
  return statistics.median(r[key] for r in runs)


def inputs(folder: pathlib.Path) -> dict:
  """Writes the benchmark's inputs under ``folder``: the bundled photo at 640x480 (PNG),
  the same at 12 MP (4000x3000, PNG and JPEG q92: a camera writes JPEG), and a folder
  of 20 photos (the 7 package photos at 3 scales, <= 640 px, 20 sizes)."""
  folder.mkdir(parents=True, exist_ok=True)
  photo = np.asarray(Image.fromarray(image_io.load_image(image_io.sample_image_path()))
                     .resize((640, 480), Image.LANCZOS))
  paths = {"640": folder / "photo640.png", "12mp_png": folder / "photo12mp.png",
           "12mp_jpg": folder / "photo12mp.jpg", "folder": folder / "folder"}
  Image.fromarray(photo).save(paths["640"])
  big = Image.fromarray(photo).resize((4000, 3000), Image.BICUBIC)
  big.save(paths["12mp_png"], compress_level=1)
  big.save(paths["12mp_jpg"], quality=92)
  paths["folder"].mkdir(exist_ok=True)
  photos = list(_photos.package_photos(640).values())
  for i in range(20):
    im = photos[i % len(photos)]
    s = 1.0 - 0.1 * (i // len(photos))
    im = Image.fromarray(im).resize((round(im.shape[1] * s), round(im.shape[0] * s)))
    im.save(paths["folder"] / f"p{i:02d}.png")
  return paths
