"""Throughput of batches on whatever devices are present (called by ``benchmark.py``).

``python scripts/benchmark.py --batch`` (the library on one bucket of 640x480 photos):
1. images/s and per-image latency for batch sizes 1..32 (``--batch_sizes``), split
   over all local devices; compile seconds separately; host RSS and device peak memory;
2. unrolled Adam chunks against the rolled loop (``lax.scan``) at the smallest and
   largest batch;
3. bfloat16 convolutions against float32: seconds, and quality (semantic score,
   coherence, completeness) on the package photos.

``python scripts/benchmark.py --folder DIR`` (the CLI on a folder, as a user runs it):
one by one, batched with a cold persistent compilation cache, and batched again with
the cache warm; images/s and XLA compilations of each (from the JSON reports).

Writes ``results/benchmark/batch.json`` / ``folder.json`` and prints Markdown tables.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

import _photos
from dnr_jax.resizing import batching
from dnr_jax.io import compilation
from dnr_jax import config
from dnr_jax.quality import metrics


def device_line() -> str:
  dev = jax.devices()[0]
  return (f"{dev.platform}: {dev.device_kind} x{jax.local_device_count()}, host "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"jax {jax.__version__}")


def _memory() -> dict:
  out = {"host_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    out["device_peak_mib"] = stats["peak_bytes_in_use"] / 2**20
  return out


def _variants(photo: np.ndarray, n: int, seed: int) -> list[np.ndarray]:
  """``n`` different images of one size: shifted and mirrored copies of the photo."""
  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    img = np.roll(photo, int(rng.integers(0, photo.shape[1])), axis=1)
    out.append(np.ascontiguousarray(img[:, ::-1] if i % 2 else img))
  return out


def _run(weights, images, cfg, mesh, size, unroll=None):
  outs = [(im.shape[0], round(im.shape[1] * 0.75)) for im in images]
  t0 = time.perf_counter()
  res = batching.retarget_batch(weights, images, outs, cfg, mesh, unroll=unroll,
                                padded_size=size)
  return time.perf_counter() - t0, res


def _first_and_steady(weights, photo, b, cfg, mesh, unroll=None):
  """(first call incl. compilation, a second call on other images, its results)."""
  size = batching.batch_shape(b, b, mesh.devices.size)
  first, _ = _run(weights, _variants(photo, b, 0), cfg, mesh, size, unroll)
  steady, res = _run(weights, _variants(photo, b, 1), cfg, mesh, size, unroll)
  return first, steady, res


def bench_batch_sizes(weights, sizes, hw=(480, 640), cfg=config.RetargetConfig()):
  mesh = batching.batch_mesh()
  photo = _photos.benchmark_photo(*hw)
  rows = []
  for b in sizes:
    with compilation.CompileCounter() as counter:
      first, steady, res = _first_and_steady(weights, photo, b, cfg, mesh)
    st = counter.stats
    rows.append({"batch": b, "devices": int(mesh.devices.size), "first_call_s": first,
                 "compilations": st.compilations, "compile_s": st.compile_s,
                 "steady_s": steady, "images_per_s": b / steady, "latency_s": steady,
                 "per_image_s": steady / b, "timings": res[0].timings, **_memory()})
    print(json.dumps(rows[-1]), flush=True)
  return rows


def bench_loops(weights, sizes, hw=(480, 640), cfg=config.RetargetConfig()):
  """Unrolled chunks vs the rolled loop, same batches (steady state, compile excluded)."""
  mesh = batching.batch_mesh()
  photo = _photos.benchmark_photo(*hw)
  rows = []
  for b in sizes:
    row = {"batch": b}
    for unroll in (True, False):
      _, t, res = _first_and_steady(weights, photo, b, cfg, mesh, unroll)
      row["unrolled_s" if unroll else "rolled_s"] = t
      row["unrolled_reconstruction_s" if unroll else "rolled_reconstruction_s"] = (
          res[0].timings.get("reconstruction", 0.0))
    rows.append(row)
    print(json.dumps(row), flush=True)
  return rows


def bench_dtypes(weights, batch, hw=(480, 640)):
  """float32 vs bfloat16: steady seconds of one batch, and quality on the package photos.

  The photos are centre-cropped and scaled to ``hw`` and run as one batch padded to
  ``batch``, so the quality check reuses the executables the speed check compiled.
  """
  mesh = batching.batch_mesh()
  photos = {k: _photos.crop_resize(v, *hw) for k, v in _photos.package_photos(max(hw)).items()}
  photo = _photos.benchmark_photo(*hw)
  size = batching.batch_shape(batch, batch, mesh.devices.size)
  out = {}
  for dtype in ("float32", "bfloat16"):
    cfg = config.RetargetConfig(compute_dtype=dtype)
    _, t, res = _first_and_steady(weights, photo, batch, cfg, mesh)
    phases = res[0].timings
    names = list(photos)[:size]
    _, results = _run(weights, [photos[k] for k in names], cfg, mesh, size)
    scores = {}
    for name, res in zip(names, results):
      img = photos[name]
      ss = float(metrics.semantic_score_jit(weights, res.output, img))
      scores[name] = {"semantic_score": ss, **metrics.bidirectional_similarity(res.output, img)}
    out[dtype] = {"batch": batch, "steady_s": t, "timings": phases, "scores": scores,
                  "mean": {k: float(np.mean([s[k] for s in scores.values()]))
                           for k in ("semantic_score", "coherence", "completeness")}}
    print(dtype, json.dumps(out[dtype]["mean"]), f"{t:.2f} s", flush=True)
  return out


def batch_markdown(r: dict) -> str:
  L = [f"Batches: {r['date']}, {r['device']}, `{r['command']}`", "",
       "| batch | devices | images/s | latency (s) | per image (s) | first call (s) | "
       "compilations | compile (s) | host RSS (MiB) | device peak (MiB) |",
       "|---|---|---|---|---|---|---|---|---|---|"]
  for x in r["batch_sizes"]:
    L.append(f"| {x['batch']} | {x['devices']} | {x['images_per_s']:.3f} | {x['latency_s']:.2f} "
             f"| {x['per_image_s']:.2f} | {x['first_call_s']:.1f} | {x['compilations']} | "
             f"{x['compile_s']:.1f} | {x['host_peak_rss_mib']:.0f} | "
             f"{x.get('device_peak_mib', float('nan')):.0f} |")
  if r.get("loops"):
    L += ["", "| batch | unrolled chunks (s) | rolled loop (s) | rolled / unrolled "
          "(reconstruction phase) |", "|---|---|---|---|"]
    for x in r["loops"]:
      L.append(f"| {x['batch']} | {x['unrolled_s']:.2f} | {x['rolled_s']:.2f} | "
               f"{x['rolled_reconstruction_s'] / x['unrolled_reconstruction_s']:.2f} |")
  if r.get("dtypes"):
    L += ["", "| dtype | batch seconds | prepare (s) | reconstruction (s) | mean SS | "
          "mean coherence | mean completeness |", "|---|---|---|---|---|---|---|"]
    for k, x in r["dtypes"].items():
      m = x["mean"]
      ph = x.get("timings", {})
      L.append(f"| {k} | {x['steady_s']:.2f} | {ph.get('prepare', float('nan')):.2f} | "
               f"{ph.get('reconstruction', float('nan')):.2f} | {m['semantic_score']:.4f} | "
               f"{m['coherence']:.5f} | {m['completeness']:.5f} |")
  return "\n".join(L) + "\n"


# ----------------------------------------------------------------------------- the CLI


def _cli(folder, out, report, cache, batch_size, extra):
  args = [sys.executable, "-m", "dnr_jax.main", f"--input={folder}", f"--output={out}",
          "--width_ratio=0.75", "--noprogress", "--overwrite", f"--report={report}",
          f"--compilation_cache={cache}", f"--batch_size={batch_size}", *extra]
  t0 = time.perf_counter()
  proc = subprocess.run(args, capture_output=True, text=True)
  wall = time.perf_counter() - t0
  if proc.returncode != 0:
    raise RuntimeError(proc.stderr[-3000:])
  entries = json.loads(pathlib.Path(report).read_text())
  n = sum(e["status"] == "ok" for e in entries)
  summary = [l for l in proc.stderr.splitlines() if "images/s" in l][-1]
  # "dnr_jax: 40 image(s) in 312 s (...), 25 XLA compilation(s) (41 s), 3 loaded from ..."
  m = re.search(r"(\d+) XLA compilation\(s\) \(([\d.]+) s\), (\d+) loaded", summary)
  return {"images": n, "wall_s": wall, "images_per_s": n / wall,
          "compilations": int(m.group(1)), "compile_s": float(m.group(2)),
          "cache_hits": int(m.group(3)), "summary": summary}


def bench_folder(folder: str, batch_size: int, work_multiple: int) -> dict:
  """One by one (no persistent cache), batched (cold cache), batched again (warm)."""
  with tempfile.TemporaryDirectory() as tmp:
    t = pathlib.Path(tmp)
    runs = {}
    runs["one_by_one"] = _cli(folder, t / "one", t / "one.json", "", 1, [])
    print(json.dumps(runs["one_by_one"]), flush=True)
    extra = [f"--work_multiple={work_multiple}"]
    for name in ("batched_cold_cache", "batched_warm_cache"):
      runs[name] = _cli(folder, t / "batch", t / f"{name}.json", t / "cache", batch_size, extra)
      print(json.dumps(runs[name]), flush=True)
  return runs


def folder_markdown(r: dict) -> str:
  L = [f"Folder: {r['date']}, {r['device']}, `{r['command']}` ({r['images']} photos)", "",
       "| run | images/s | wall (s) | XLA compilations | compile (s) | loaded from cache |",
       "|---|---|---|---|---|---|"]
  for k, x in r["runs"].items():
    L.append(f"| {k.replace('_', ' ')} | {x['images_per_s']:.3f} | {x['wall_s']:.0f} | "
             f"{x['compilations']} | {x['compile_s']:.0f} | {x['cache_hits']} |")
  return "\n".join(L) + "\n"


def main_batch(args, weights, out: pathlib.Path) -> None:
  sizes = [int(x) for x in args.batch_sizes.split(",")] if args.batch_sizes else (
      [1, 2, 4] if jax.default_backend() == "cpu" else [1, 2, 4, 8, 16, 32])
  r = {"date": time.strftime("%Y-%m-%d"), "device": device_line(),
       "command": " ".join(["python scripts/benchmark.py"] + sys.argv[1:])}
  r["batch_sizes"] = bench_batch_sizes(weights, sizes)
  if not args.no_loops:
    r["loops"] = bench_loops(weights, sorted({sizes[0], sizes[-1]}))
  if not args.no_dtypes:
    r["dtypes"] = bench_dtypes(weights, sizes[-1])
  (out / "batch.json").write_text(json.dumps(r, indent=1))
  (out / "batch.md").write_text(batch_markdown(r))
  print(batch_markdown(r))


def main_folder(args, out: pathlib.Path) -> None:
  from dnr_jax.io import image_io  # pylint: disable=g-import-not-at-top
  r = {"date": time.strftime("%Y-%m-%d"), "device": device_line(),
       "command": " ".join(["python scripts/benchmark.py"] + sys.argv[1:]),
       "images": len(image_io.list_images(pathlib.Path(args.folder)))}
  r["runs"] = bench_folder(args.folder, args.folder_batch_size, args.work_multiple)
  (out / "folder.json").write_text(json.dumps(r, indent=1))
  (out / "folder.md").write_text(folder_markdown(r))
  print(folder_markdown(r))


if __name__ == "__main__":
  raise SystemExit("run it through scripts/benchmark.py --batch or --folder DIR")
