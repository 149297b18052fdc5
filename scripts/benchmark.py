"""Performance figures of dnr_jax in one run on one machine (CPU here; unchanged on GPU).

0. The whole CLI process, as a user runs it (issue 37): a 640x480 photo to 75% width,
   median, min and max of ``--runs`` processes with warm caches, beside the
   `seam-carving` package run the same way (a fresh Python that reads, resizes and
   writes the photo) in the same run, as a ratio; one cold process (empty caches); a
   12 MP photo (JPEG and PNG); a folder of 20 photos. ``--whole_process`` runs only this.
1. Image-space seam carving, 640x480 -> 480 wide: ours (jit) vs the ``seam-carving``
   package from PyPI, backward and forward energy.
2. One reconstruction step vs the bare forward+backward of the layers the loss uses.
3. The default pipeline on a 640x480 photo to 75% width, per phase.
4. Peak memory (host RSS; device bytes in use where the backend reports them).
5. How time grows with image size (3 sizes) and with the batch size under ``vmap``.

Writes ``results/benchmark/benchmark.md``, ``benchmark.json`` and ``scaling.png``.

    python scripts/benchmark.py [--quick] [--runs=5]
    python scripts/benchmark.py --whole_process [--runs=5]               # part 0 only
    python scripts/benchmark.py --batch [--batch_sizes=1,2,4,8,16,32]   # batches, devices
    python scripts/benchmark.py --folder DIR                            # the CLI on a folder

(``--batch`` and ``--folder``: see scripts/benchmark_batch.py.)
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
import platform
import resource
import tempfile
import time

import jax
import jax.numpy as jnp

import _photos
import _processes
import benchmark_batch
from dnr_jax.resizing import baselines
from dnr_jax import config
from dnr_jax import resizing
from dnr_jax.resizing import reconstruct
from dnr_jax.nn import vgg
from dnr_jax.nn import weights as weights_lib


def _time(fn, repeat=3):
  """(first call incl. compile, best of `repeat` later calls) in seconds."""
  t0 = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - t0
  best = float("inf")
  for _ in range(repeat):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    best = min(best, time.perf_counter() - t0)
  return first, best


def bench_whole_process(runs: int) -> dict:
  """Part 0: whole processes (see the module docstring); returns rows for the table."""
  tmp = pathlib.Path(tempfile.mkdtemp(prefix="dnr_bench_"))
  paths = _processes.inputs(tmp / "in")
  cold_cache = lambda name: f"--compilation_cache={tmp / ('cold_' + name)}"
  out = {}

  def job(name, src, dst, extra=()):
    args = [f"--input={src}", f"--output={dst}", "--width_ratio=0.75", *extra]
    cold = _processes.dnr(args + [cold_cache(name)])  # empty caches: compiles everything
    _processes.dnr(args)  # fills the default caches (untimed)
    warm = [_processes.dnr(args) for _ in range(runs)]
    out[name] = {"cold": cold, "warm": warm}
    print(name, "cold", cold, "warm", _processes.summary(warm, "wall"), flush=True)

  job("640x480", paths["640"], tmp / "o640.png")
  out["640x480"]["report"] = _processes.dnr(
      [f"--input={paths['640']}", f"--output={tmp / 'o640r.png'}", "--width_ratio=0.75"],
      report=True)
  out["640x480"]["seam_carving"] = [
      _processes.seam_carving([paths["640"]], [tmp / "sc640.png"]) for _ in range(runs)]
  job("12 MP JPEG", paths["12mp_jpg"], tmp / "o12.jpg")
  job("12 MP PNG", paths["12mp_png"], tmp / "o12.png")
  job("folder of 20", paths["folder"], tmp / "ofolder")
  srcs = sorted(paths["folder"].iterdir())
  (tmp / "scfolder").mkdir()
  out["folder of 20"]["seam_carving"] = [_processes.seam_carving(
      srcs, [tmp / "scfolder" / s.name for s in srcs]) for _ in range(min(runs, 3))]
  out["folder of 20"]["photos"] = len(srcs)
  return out


def _whole_process_md(wp: dict, runs: int) -> list[str]:
  s = _processes.summary
  L = ["### The whole CLI process (`python -m dnr_jax.main`), to 75% width", "",
       f"Median (min-max) of {runs} processes with warm caches (after one untimed run); "
       "cold = one process with an empty `--compilation_cache`. The `seam-carving` "
       "package (backward energy) runs in a fresh Python that reads, resizes and writes "
       "the same photos, in the same run.", "",
       "| job | warm wall (s) | CPU (s) | peak RSS (MB) | cold wall (s) | "
       "`seam-carving` wall (s) | ratio ours / theirs |", "|---|---|---|---|---|---|---|"]
  for name, r in wp.items():
    sc = r.get("seam_carving")
    ratio = (f"{_processes.median(r['warm'], 'wall') / _processes.median(sc, 'wall'):.2f}"
             if sc else "")
    theirs = s(sc, "wall", ".2f") if sc else "- (not run: ~5 min at its 1024x768 rate)"
    rate = (f" ({r['photos'] / _processes.median(r['warm'], 'wall'):.2f} photos/s)"
            if "photos" in r else "")
    L.append(f"| {name} | {s(r['warm'], 'wall', '.2f')}{rate} | {s(r['warm'], 'cpu')} | "
             f"{s(r['warm'], 'rss_mb', '.0f')} | {r['cold']['wall']:.1f} | {theirs} | {ratio} |")
  rep = wp["640x480"]["report"]
  L += ["", f"640x480 with `--report` (also scores the result): {rep['wall']:.1f} s; its "
        "phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in rep["timings"].items()), ""]
  return L


def bench_seam_carving(img, repeat):
  import seam_carving  # pylint: disable=g-import-not-at-top
  out = {}
  for energy in ("backward", "forward"):
    first, ours = _time(lambda e=energy: baselines.seam_carve(img, (480, 480), e), repeat)
    t0 = time.perf_counter()
    for _ in range(max(1, repeat // 2)):
      seam_carving.resize(img, (480, 480), energy_mode=energy, order="width-first")
    theirs = (time.perf_counter() - t0) / max(1, repeat // 2)
    out[energy] = {"ours_s": ours, "ours_first_call_s": first, "seam_carving_pkg_s": theirs,
                   "speedup": theirs / ours}
  return out


def bench_forward(w, img, repeat):
  """Forward pass to block5_pool (the one the deep operator needs) on one image."""
  f = jax.jit(lambda x: vgg.features(w, x, ("block5_pool",)))
  x = jnp.asarray(img, jnp.float32)[None]
  first, best = _time(lambda: f(x), repeat)
  return {"first_call_s": first, "best_s": best}


def bench_step(w, hw, repeat, chunk=10):
  h, wd = hw
  tgt = {"block1_conv2": jnp.zeros((h, wd, 64), jnp.float32)}
  lam = {"block1_conv2": 1.0}
  x = jnp.full((h, wd, 3), 120.0, jnp.float32)
  grad = jax.jit(jax.grad(lambda im: reconstruct.feature_loss(w, im, tgt, lam)))
  _, floor = _time(lambda: grad(x), repeat)
  cfg = config.RetargetConfig()
  state = reconstruct.init_state(x, 2.0)

  def chunked():
    return resizing.reconstruction_chunk(w, tgt, reconstruct.init_state(x, 2.0), cfg, chunk)

  _, per_chunk = _time(chunked, repeat)
  del state
  return {"floor_fwd_bwd_s": floor, "step_s": per_chunk / chunk,
          "ratio_step_to_floor": per_chunk / chunk / floor}


def bench_pipeline(w, img, cfg):
  res = resizing.retarget(w, img, (img.shape[0], round(img.shape[1] * 0.75)), cfg)
  t = dict(res.timings)
  t["total"] = sum(t.values())
  # second run: the same sizes compile nothing
  res2 = resizing.retarget(w, img[:, ::-1].copy(), (img.shape[0], round(img.shape[1] * 0.75)),
                           cfg)
  t2 = dict(res2.timings)
  t2["total"] = sum(t2.values())
  return {"first_run_s": t, "second_run_s": t2, "seams_removed": res.seams_removed["width"]}


def bench_sizes(w, sizes, repeat):
  rows = []
  for h, wd in sizes:
    img = _photos.benchmark_photo(h, wd)
    out_hw = (h, round(wd * 0.75))
    cfg = config.RetargetConfig()
    prep_first, prep = _time(lambda: resizing.prepare(w, jnp.asarray(img, jnp.float32),
                                                       out_hw, cfg), repeat)
    step = bench_step(w, out_hw, repeat)
    rows.append({"size": f"{wd}x{h}", "prepare_s": prep, "prepare_first_call_s": prep_first,
                 **step, "pipeline_estimate_s": prep + step["step_s"] * cfg.reconstruction.steps})
  return rows


def bench_batch(w, hw, batches, steps=10):
  rows = []
  h, wd = hw
  out_hw = (h, round(wd * 0.75))
  cfg = config.RetargetConfig(reconstruction=config.ReconstructionConfig(steps=steps, chunk=steps))
  for n in batches:
    imgs = jnp.stack([jnp.asarray(_photos.benchmark_photo(h, wd), jnp.float32)] * n)
    prep_fn = jax.jit(jax.vmap(functools.partial(resizing.prepare, w, out_hw=out_hw, cfg=cfg)))
    chunk_fn = jax.jit(jax.vmap(
        lambda t, s: resizing.reconstruction_chunk(w, t, s, cfg, steps, unroll=False)))

    def run():
      prep = prep_fn(imgs)
      s = jax.vmap(lambda im: reconstruct.init_state(im, cfg.reconstruction.learning_rate))(
          prep.init)
      return chunk_fn(prep.targets, s)

    _, t = _time(run, 2)
    rows.append({"batch": n, "seconds": t, "per_image_s": t / n, "steps": steps})
  return rows


def peak_memory():
  out = {"host_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
  try:
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
      out["device_peak_mib"] = stats["peak_bytes_in_use"] / 2**20
  except Exception:  # pylint: disable=broad-except
    pass
  return out


def _md(results) -> str:
  dev = results["device"]
  L = [f"Benchmark: {results['date']}, {dev}, jax {jax.__version__}, "
       f"`python scripts/benchmark.py{' --quick' if results['quick'] else ''}`", ""]
  if "whole_process" in results:
    L += _whole_process_md(results["whole_process"], results["runs"])
  if "forward_block5_pool_640x480" not in results:
    return "\n".join(L) + "\n"
  if "seam_carving" in results:
    L += ["### Image-space seam carving, 640x480 -> 480x480", "",
          "| energy | dnr_jax (s) | seam-carving 1.1.0 (s) | speed-up | dnr_jax first call incl. compile (s) |",
          "|---|---|---|---|---|"]
    for e, r in results["seam_carving"].items():
      L.append(f"| {e} | {r['ours_s']:.2f} | {r['seam_carving_pkg_s']:.2f} | "
               f"{r['speedup']:.2f}x | {r['ours_first_call_s']:.2f} |")
  fw = results["forward_block5_pool_640x480"]
  L += ["", f"Forward pass to block5_pool, 640x480: {fw['best_s']:.2f} s "
        f"(first call incl. compile {fw['first_call_s']:.2f} s)"]
  L += ["", "### Default pipeline, 640x480 photo -> 480x480", "",
        "| run | prepare (s) | reconstruction (s) | refinement (s) | total (s) |", "|---|---|---|---|---|"]
  for k in ("first_run_s", "second_run_s"):
    t = results["pipeline"][k]
    L.append(f"| {k.split('_')[0]} | {t.get('prepare', 0):.1f} | {t.get('reconstruction', 0):.1f} "
             f"| {t.get('refinement', 0):.1f} | {t['total']:.1f} |")
  L += ["", "### Scaling with image size (75% width, block1_conv2 loss)", "",
        "| input | prepare (s) | step (s) | fwd+bwd floor (s) | step / floor | est. pipeline (s) |",
        "|---|---|---|---|---|---|"]
  for r in results["sizes"]:
    L.append(f"| {r['size']} | {r['prepare_s']:.2f} | {r['step_s']:.3f} | "
             f"{r['floor_fwd_bwd_s']:.3f} | {r['ratio_step_to_floor']:.2f} | "
             f"{r['pipeline_estimate_s']:.1f} |")
  L += ["", f"### Batch under vmap ({results['batch_size']}, prepare + "
        f"{results['batch'][0]['steps']} steps)", "",
        "| batch | seconds | per image (s) |", "|---|---|---|"]
  for r in results["batch"]:
    L.append(f"| {r['batch']} | {r['seconds']:.2f} | {r['per_image_s']:.2f} |")
  m = results["memory"]
  L += ["", f"Peak host RSS: {m['host_peak_rss_mib']:.0f} MiB"
        + (f"; device peak: {m['device_peak_mib']:.0f} MiB" if "device_peak_mib" in m else "")]
  return "\n".join(L) + "\n"


def _plot(results, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(1, 2, figsize=(10, 4))
  px = [int(r["size"].split("x")[0]) * int(r["size"].split("x")[1]) / 1e6 for r in results["sizes"]]
  ax[0].plot(px, [r["step_s"] for r in results["sizes"]], "o-", label="Adam step")
  ax[0].plot(px, [r["floor_fwd_bwd_s"] for r in results["sizes"]], "s--", label="fwd+bwd floor")
  ax[0].plot(px, [r["prepare_s"] for r in results["sizes"]], "^-", label="prepare (features+plan)")
  ax[0].set_xlabel("input megapixels")
  ax[0].set_ylabel("seconds")
  ax[0].legend()
  ax[0].set_title("time vs image size")
  b = results["batch"]
  ax[1].plot([r["batch"] for r in b], [r["per_image_s"] for r in b], "o-")
  ax[1].set_xlabel("batch size (vmap)")
  ax[1].set_ylabel("seconds per image")
  ax[1].set_title("batch scaling")
  fig.suptitle(results["device"])
  fig.tight_layout()
  fig.savefig(path, dpi=90)


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
  ap.add_argument("--out", default="results/benchmark")
  ap.add_argument("--repeat", type=int, default=3)
  ap.add_argument("--runs", type=int, default=5, help="whole processes per job (part 0)")
  ap.add_argument("--whole_process", action="store_true", help="only part 0")
  ap.add_argument("--batch", action="store_true",
                  help="only batches: images/s by batch size, loops, bfloat16")
  ap.add_argument("--batch_sizes", default="",
                  help="comma-separated (default 1,2,4 on CPU, 1..32 on accelerators)")
  ap.add_argument("--no_loops", action="store_true", help="--batch: skip rolled vs unrolled")
  ap.add_argument("--no_dtypes", action="store_true", help="--batch: skip bfloat16")
  ap.add_argument("--folder", default="", help="the CLI on this folder: one by one vs batched")
  ap.add_argument("--folder_batch_size", type=int, default=8)
  ap.add_argument("--work_multiple", type=int, default=32)
  args = ap.parse_args()
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  if args.folder:
    benchmark_batch.main_folder(args, out)
    return
  if args.batch:
    benchmark_batch.main_batch(args, weights_lib.load_vgg19(), out)
    return
  dev = jax.devices()[0]
  results = {"date": time.strftime("%Y-%m-%d"), "quick": args.quick, "runs": args.runs,
             "device": f"{dev.platform}: {dev.device_kind}, {platform.processor() or platform.machine()}, "
                       f"{jax.local_device_count()} device(s), host cores {__import__('os').cpu_count()}"}
  if not args.quick:
    results["whole_process"] = bench_whole_process(args.runs)
  if args.whole_process:
    (out / "whole_process.json").write_text(json.dumps(results, indent=1))
    (out / "whole_process.md").write_text(_md(results))
    print(_md(results))
    return
  w = weights_lib.load_vgg19()
  img = _photos.benchmark_photo(480, 640)
  results["forward_block5_pool_640x480"] = bench_forward(w, img, args.repeat)
  if not args.quick:
    results["seam_carving"] = bench_seam_carving(img, args.repeat)
    print(json.dumps(results["seam_carving"], indent=1), flush=True)
    results["pipeline"] = bench_pipeline(w, img, config.RetargetConfig())
  else:
    small = _photos.benchmark_photo(120, 160)
    results["pipeline"] = bench_pipeline(w, small, config.RetargetConfig(
        reconstruction=config.ReconstructionConfig(steps=10)))
  print(json.dumps(results["pipeline"], indent=1), flush=True)
  sizes = [(120, 160), (240, 320), (360, 480)] if args.quick else [(240, 320), (480, 640),
                                                                   (768, 1024)]
  results["sizes"] = bench_sizes(w, sizes, args.repeat)
  print(json.dumps(results["sizes"], indent=1), flush=True)
  bh = (120, 160) if args.quick else (240, 320)
  results["batch_size"] = f"{bh[1]}x{bh[0]}"
  results["batch"] = bench_batch(w, bh, (1, 2, 4))
  results["memory"] = peak_memory()
  (out / "benchmark.json").write_text(json.dumps(results, indent=1))
  (out / "benchmark.md").write_text(_md(results))
  _plot(results, out / "scaling.png")
  print(_md(results))


if __name__ == "__main__":
  main()
