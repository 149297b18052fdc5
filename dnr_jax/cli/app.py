"""The command-line job: files in, files out. All side effects of the CLI live here.

``main.py`` turns flags into a :class:`Job` and a :class:`~dnr_jax.config.RetargetConfig`
and calls :func:`run`, which returns the exit status. The order of work:

1. **Pre-flight, before any compute**: inputs listed and their headers read (size,
   frames, ``--max_pixels``), output sizes computed, every output path (images, debug
   pictures, report) checked (:mod:`dnr_jax.io.outputs`). One line and exit 2 per problem.
2. The weights (exit 3 on any problem).
3. Per image: an estimate line (time and memory from :mod:`dnr_jax.cli.cost_model`), the
   pipeline in a worker thread while the main thread draws progress bars with ETA and
   stays responsive to Ctrl-C, then atomic writes. In folder mode a failing image is
   reported and the batch goes on.

Ctrl-C (or SIGTERM) at any moment: the best image so far is written when one exists,
the report records the interruption, exit 130, no traceback, within about a second,
whatever the worker is doing (compiling included).
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
import time
from typing import Any

import numpy as np
from absl import logging

from dnr_jax import resizing
from dnr_jax.cli import cost_model
from dnr_jax.cli import report as report_lib
from dnr_jax.cli.job import EXIT_OK  # noqa: F401
from dnr_jax.cli.job import EXIT_USAGE  # noqa: F401
from dnr_jax.cli.job import EXIT_WEIGHTS  # noqa: F401
from dnr_jax.cli.job import EXIT_NUMERICAL  # noqa: F401
from dnr_jax.cli.job import EXIT_INTERRUPTED  # noqa: F401
from dnr_jax.cli.job import UserError  # noqa: F401
from dnr_jax.cli.job import error_line  # noqa: F401
from dnr_jax.cli.job import fail  # noqa: F401
from dnr_jax.cli.job import Job  # noqa: F401
from dnr_jax.cli.job import target_size  # noqa: F401
from dnr_jax.cli.job import check_job_flags  # noqa: F401
from dnr_jax.cli.job import start_distributed  # noqa: F401
from dnr_jax.cli.job import report_path  # noqa: F401
from dnr_jax.cli.progress import ProgressView
from dnr_jax.cli.progress import exit_now  # noqa: F401  (dnr_jax.cli.main calls it here)
from dnr_jax.cli.progress import fmt_s
from dnr_jax.cli.progress import in_worker
from dnr_jax.config import RetargetConfig
from dnr_jax.config import VideoConfig
from dnr_jax.io import compilation
from dnr_jax.io import video_io
from dnr_jax.io import image_io
from dnr_jax.io import outputs
from dnr_jax.nn import weights as weights_lib
from dnr_jax.resizing import batching

# ----------------------------------------------------------------------------- the job


@dataclasses.dataclass
class _Planned:
  task: outputs.Task
  info: image_io.ImageInfo
  out_hw: tuple[int, int]
  estimate: cost_model.Estimate
  plans: list  # one resizing.Plan per stage (object removal has two)
  masks: dict = dataclasses.field(default_factory=dict)  # "keep"/"remove" -> (H, W) bool


def _stage_plans(masks: dict, image_hw: tuple[int, int], out_hw: tuple[int, int],
                 cfg: RetargetConfig) -> list:
  """The plans of a job's stages (object removal has two), with every check of the
  masks made before any compute on the image (:func:`masks.stages`; UserError, exit 2)."""
  try:
    axis, stages = resizing.masks.stages(image_hw, out_hw, cfg, masks.get("keep"),
                                         masks.get("remove"))
  except resizing.KeepInfeasible as e:
    raise UserError(f"--keep_mask: {e}") from None
  except ValueError as e:
    raise UserError(str(e).replace("the keep mask", "--keep_mask").replace(
        "the remove mask", "--remove_mask")) from None
  return [resizing.make_plan(a, b, cfg, keep="keep" in masks, remove=axis is not None and i == 0)
          for i, (a, b) in enumerate(stages)]


def _preflight(job: Job, cfg: RetargetConfig) -> tuple[list[_Planned], list[dict], bool]:
  """Everything checkable before compute. Returns (planned, failed entries, folder mode).

  Raises UserError for problems that stop the whole job (flags, paths).
  """
  check_job_flags(job)
  try:
    tasks, folder = outputs.plan_tasks(job.input, job.output)
  except outputs.PathError as e:
    raise UserError(str(e)) from None
  all_sources = [t.source for t in tasks]
  masks = {}
  for name, path in (("keep", job.keep_mask), ("remove", job.remove_mask)):
    if path is not None:
      try:
        masks[name] = image_io.load_mask(path, what=f"--{name}_mask", max_pixels=job.max_pixels)
      except image_io.ImageError as e:
        raise UserError(str(e)) from None
      all_sources.append(pathlib.Path(path))  # never written over
  if "keep" in masks and "remove" in masks and np.any(masks["keep"] & masks["remove"]):
    raise UserError("--keep_mask and --remove_mask overlap: a pixel cannot be both")
  if job.process_count > 1:  # names are planned over all inputs, so shares never collide
    tasks = [tasks[i] for i in batching.process_share(len(tasks), job.process_index,
                                                      job.process_count)]
  planned, failed = [], []
  for task in tasks:
    try:
      info = image_io.probe_image(task.source, job.max_pixels)
      out_hw = target_size(info.height, info.width, job)
      plans = _stage_plans(masks, (info.height, info.width), out_hw, cfg)
    except (image_io.ImageError, UserError, ValueError) as e:
      if not folder:
        raise UserError(str(e)) from None
      msg = str(e) if str(task.source) in str(e) else f"{task.source}: {e}"
      error_line(msg)
      failed.append({"input": str(task.source), "output": None, "status": "error",
                     "error": msg})
      continue
    if task.renamed:
      logging.warning("%s and another input share the name %s: writing %s", task.source,
                      task.source.stem, task.output)
    if job.save_debug:
      start_hw = plans[-1].sizes.image
      task.debug = outputs.debug_paths(task.output, outputs.debug_names(
          out_hw[1] != start_hw[1], out_hw[0] != start_hw[0],
          any(p.steps > 0 for p in plans), has_masks=bool(masks)))
    est = cost_model.estimate(plans[0])
    for later in plans[1:]:  # object removal, then the requested size
      est = est.plus(cost_model.estimate(later))
    planned.append(_Planned(task, info, out_hw, est, plans, masks))
  paths = [(("output" if not folder else f"output of {p.task.source.name}"), p.task.output)
           for p in planned]
  paths += [(f"debug picture ({name})", path) for p in planned for name, path in p.task.debug.items()]
  if job.report:
    paths.append(("--report", pathlib.Path(report_path(job))))
  problems = outputs.check_paths(paths, all_sources, job.overwrite)
  if problems:
    for line in problems[:-1]:
      error_line(line)
    raise UserError(problems[-1])
  return planned, failed, folder


def _estimate_line(p: _Planned, index: int, count: int) -> str:
  (h, w), (oh, ow) = (p.info.height, p.info.width), p.out_hw
  e = p.estimate
  where = f" [{index + 1}/{count}]" if count > 1 else ""
  work = (f"working size {e.work_hw[1]}x{e.work_hw[0]} -> {e.work_out_hw[1]}x{e.work_out_hw[0]}"
          if e.work_hw != (h, w) else "working at full size")
  return (f"dnr_jax{where}: {p.task.source.name} {w}x{h} -> {ow}x{oh}, {work}; expected "
          f"~{fmt_s(e.total_s)} (incl. ~{fmt_s(e.compile_s)} compiling a new size), peak "
          f"memory ~{e.peak_rss_bytes / 2**30:.1f} GiB host, "
          f"~{e.device_bytes / 2**30:.1f} GiB device ({e.machine})")


def run(job: Job, cfg: RetargetConfig, vcfg: VideoConfig = VideoConfig()) -> int:
  """Runs the job; returns the exit status (errors print one line on stderr). A clip
  (a video container, an animated image) goes to :func:`dnr_jax.cli.video_job.run_clip`."""
  if job.input and video_io.is_clip(job.input):
    try:
      check_job_flags(job)
    except UserError as e:
      error_line(str(e))
      return EXIT_USAGE
    # (imported here: the clip path's modules, scipy.sparse among them, cost a photo's
    # run 0.4 s of start-up)
    from dnr_jax.cli import video_job  # pylint: disable=g-import-not-at-top
    return video_job.run_clip(job, vcfg)
  entries: list[dict] = []
  view = ProgressView(job.progress)
  current: dict[str, Any] = {}
  report = report_path(job)
  try:
    try:
      planned, entries, folder = _preflight(job, cfg)
      current["folder"] = folder
    except UserError as e:
      error_line(str(e))
      return EXIT_USAGE
    if not planned:
      error_line("no image could be processed")
      if report:
        report_lib.write_report(report, entries)
      return EXIT_USAGE
    try:
      weights = weights_lib.load_vgg19(job.vgg_weights)
    except weights_lib.WeightsError as e:
      error_line(str(e))
      return EXIT_WEIGHTS
    status = EXIT_USAGE if entries else EXIT_OK
    if job.dry_run:
      return _dry_run(planned, job, cfg) or status
    t_run = time.perf_counter()
    with compilation.CompileCounter() as counter:
      for group in _groups(planned, job, cfg):
        released = compilation.release_if_crowded()
        if released:
          logging.info("released the compiled programs (%d of the process's allowed memory "
                       "maps in use, %d after)", *released)
        current.pop("written", None)
        current["saved"] = set()
        current["tasks"] = [p.task for p in group]
        before = counter.snapshot()
        if len(group) == 1 and job.batch_size == 1:
          index = planned.index(group[0])
          results = [_run_one(group[0], index, len(planned), job, cfg, weights, view, current)]
        else:
          results = _run_batch(group, planned, job, cfg, weights, view, current)
        used = (counter.snapshot() - before).to_json()
        for code, entry in results:
          if entry.get("status") == "ok" or entry.get("status") == "interrupted":
            entry["compilations"] = {**used, "shared_by_images": len(group)}
          entries.append(entry)
          if code != EXIT_OK:
            status = status or code
        if any(code == EXIT_INTERRUPTED for code, _ in results) or (
            status != EXIT_OK and not folder):
          break
      totals = counter.snapshot()
    n_ok = sum(e["status"] == "ok" for e in entries)
    wall = time.perf_counter() - t_run
    if len(planned) > 1:
      print(f"dnr_jax: {n_ok} image(s) in {fmt_s(wall)} ({n_ok / max(wall, 1e-9):.3g} "
            f"images/s), {totals.compilations} XLA compilation(s) ({fmt_s(totals.compile_s)})"
            f", {totals.cache_hits} loaded from the persistent cache", file=sys.stderr)
    n_failed = sum(e["status"] == "error" for e in entries)
    if folder and n_failed:
      error_line(f"{n_failed} of {len(entries)} images failed (see the lines above"
                 f"{' and the report' if report else ''})")
    if report:
      _write_report_or_fail(report, entries, folder)
    return status
  except KeyboardInterrupt:
    return _interrupted(job, view, current, entries, folder=current.get("folder", False))


def _groups(planned: list[_Planned], job: Job, cfg: RetargetConfig) -> list[list[_Planned]]:
  """One image at a time (batch size 1), or vmapped batches of equal working shapes."""
  if job.batch_size == 1 or job.keep_mask or job.remove_mask:  # masks: one at a time
    return [[p] for p in planned]
  return [[planned[i] for i in idx]
          for idx in batching.plan_batches([p.plans[0] for p in planned], job.batch_size)]


def _dry_run(planned: list[_Planned], job: Job, cfg: RetargetConfig) -> int:
  """Decodes every input and prints its estimate line; writes nothing."""
  status = EXIT_OK
  if job.batch_size > 1:
    groups = _groups(planned, job, cfg)
    print(f"dnr_jax: {len(planned)} image(s) in {len(groups)} batch(es) of up to "
          f"{job.batch_size} (one compilation per working shape and batch size)",
          file=sys.stderr)
  for index, p in enumerate(planned):
    try:
      image_io.load_image(p.task.source, job.max_pixels)
    except image_io.ImageError as e:
      error_line(str(e))
      status = EXIT_USAGE
      continue
    print(_estimate_line(p, index, len(planned)), file=sys.stderr)
  print(f"dnr_jax: dry run: {len(planned)} image(s) checked, nothing written",
        file=sys.stderr)
  return status


def _write_report_or_fail(path: str, entries: list[dict], folder: bool) -> None:
  try:
    report_lib.write_report(path, entries if folder else entries[0])
  except OSError as e:
    error_line(f"--report {path}: cannot write ({e.strerror or e})")


def _run_one(p: _Planned, index: int, count: int, job: Job, cfg: RetargetConfig, weights,
             view: ProgressView, current: dict) -> tuple[int, dict]:
  """One image: load, estimate line, pipeline (worker thread), writes. Never raises
  for a per-image failure: returns (exit code, report entry)."""
  task = p.task
  fail_entry = {"input": str(task.source), "output": str(task.output), "status": "error"}
  t0 = time.perf_counter()
  try:
    image = image_io.load_image(task.source, job.max_pixels)
    if image.shape[:2] != (p.info.height, p.info.width):  # header and pixels disagree
      raise image_io.ImageError(f"{task.source}: decoded size differs from its header")
    print(_estimate_line(p, index, count), file=sys.stderr, flush=True)
    view.start_task(p.estimate.seconds)
    res = in_worker(lambda: resizing.retarget(weights, image, p.out_hw, cfg, view.update,
                                              keep=p.masks.get("keep"),
                                              remove=p.masks.get("remove")), view)
    view.close()
    if res.keep_held is not None and abs(res.keep_held - 1.0) > 1e-3:
      print(f"dnr_jax: warning: {task.source.name}: only {100 * min(res.keep_held, 1.0):.1f}% "
            "of the kept pixels could be copied unchanged (the free region is too small "
            "for this size)", file=sys.stderr)
    image_io.save_image(res.output, task.output, protect=(task.source,))
    current["written"] = True
    current.setdefault("saved", set()).add(task.output)
    debug = report_lib.debug_pictures(image, res, task, p.masks) if job.save_debug else []
  except (image_io.ImageError, ValueError) as e:
    view.close()
    msg = str(e) if str(task.source) in str(e) else f"{task.source}: {e}"
    error_line(msg)
    return EXIT_USAGE, {**fail_entry, "error": msg}
  except resizing.NumericalError as e:
    view.close()
    error_line(f"{task.source}: {e}")
    return EXIT_NUMERICAL, {**fail_entry, "error": str(e)}
  wall = time.perf_counter() - t0
  logging.info("wrote %s in %.1f s (%s)", task.output, wall,
               ", ".join(f"{k} {v:.1f} s" for k, v in res.timings.items()))
  entry = report_lib.report_entry(task, image, res, cfg, weights, debug, wall, p.estimate,
                                  p.plans, {"keep": job.keep_mask, "remove": job.remove_mask},
                                  score=bool(report_path(job)))
  if res.interrupted:
    print(f"dnr_jax: interrupted; wrote the best image so far to {task.output}",
          file=sys.stderr)
    entry["status"] = "interrupted"
    return EXIT_INTERRUPTED, entry
  return EXIT_OK, entry


def _run_batch(group: list[_Planned], planned: list[_Planned], job: Job, cfg: RetargetConfig,
               weights, view: ProgressView, current: dict) -> list[tuple[int, dict]]:
  """Images with equal working shapes as one vmapped batch over the local devices
  (:mod:`dnr_jax.resizing.batching`, in the worker thread), then the writes. Per-image failures
  become entries; the others go on."""
  results: list[tuple[int, dict]] = []
  loaded = []
  for p in group:
    try:
      image = image_io.load_image(p.task.source, job.max_pixels)
      if image.shape[:2] != (p.info.height, p.info.width):
        raise image_io.ImageError(f"{p.task.source}: decoded size differs from its header")
      loaded.append((p, image))
    except image_io.ImageError as e:
      error_line(str(e))
      results.append((EXIT_USAGE, {"input": str(p.task.source), "output": str(p.task.output),
                                   "status": "error", "error": str(e)}))
  if not loaded:
    return results
  current["tasks"] = [p.task for p, _ in loaded]
  if "mesh" not in current:
    current["mesh"] = batching.batch_mesh()
  mesh = current["mesh"]
  first = current.get("started", 0)
  current["started"] = first + len(loaded)
  e = loaded[0][0].estimate
  expected = {k: sum(p.estimate.seconds.get(k, 0.0) for p, _ in loaded) for k in e.seconds}
  print(f"dnr_jax [{first + 1}-{first + len(loaded)}/{len(planned)}]: batch of {len(loaded)} "
        f"({', '.join(p.task.source.name for p, _ in loaded[:4])}"
        f"{', ...' if len(loaded) > 4 else ''}), working size {e.work_hw[1]}x{e.work_hw[0]} -> "
        f"{e.work_out_hw[1]}x{e.work_out_hw[0]} on {mesh.devices.size} device(s); expected "
        f"~{fmt_s(sum(expected.values()))} ({e.machine})", file=sys.stderr, flush=True)
  view.start_task(expected)
  t0 = time.perf_counter()
  try:
    outcomes = in_worker(lambda: resizing.retarget_group(
        weights, [im for _, im in loaded], [p.plans[0] for p, _ in loaded], cfg, mesh,
        view.update, padded_size=batching.batch_shape(len(loaded), job.batch_size,
                                                      mesh.devices.size)), view)
  except ValueError as err:
    view.close()
    for p, _ in loaded:
      error_line(f"{p.task.source}: {err}")
      results.append((EXIT_USAGE, {"input": str(p.task.source), "output": str(p.task.output),
                                   "status": "error", "error": str(err)}))
    return results
  view.close()
  wall = time.perf_counter() - t0
  for k, ((p, image), res) in enumerate(zip(loaded, outcomes)):
    task = p.task
    fail_entry = {"input": str(task.source), "output": str(task.output), "status": "error"}
    if isinstance(res, Exception):
      code = EXIT_NUMERICAL if isinstance(res, resizing.NumericalError) else EXIT_USAGE
      error_line(f"{task.source}: {res}")
      results.append((code, {**fail_entry, "error": str(res)}))
      continue
    try:
      image_io.save_image(res.output, task.output, protect=(task.source,))
      current.setdefault("saved", set()).add(task.output)
      debug = report_lib.debug_pictures(image, res, task, p.masks) if job.save_debug else []
    except (image_io.ImageError, ValueError) as err:
      msg = str(err) if str(task.source) in str(err) else f"{task.source}: {err}"
      error_line(msg)
      results.append((EXIT_USAGE, {**fail_entry, "error": msg}))
      continue
    entry = report_lib.report_entry(task, image, res, cfg, weights, debug, wall, p.estimate,
                                    p.plans, {"keep": job.keep_mask, "remove": job.remove_mask},
                                    score=bool(report_path(job)))
    entry["batch"] = {"size": len(loaded), "index": k, "devices": int(mesh.devices.size),
                      "seconds": round(wall, 3)}
    results.append((EXIT_OK, entry))
  current["written"] = True
  logging.info("batch of %d written in %.1f s (%s)", len(loaded), wall,
               ", ".join(f"{k} {v:.1f} s" for k, v in outcomes[0].timings.items())
               if isinstance(outcomes[0], resizing.Result) else "")
  return results


def _interrupted(job: Job, view: ProgressView, current: dict, entries: list[dict],
                 folder: bool) -> int:
  """Ctrl-C / SIGTERM in the main thread: keep what can be kept, then exit 130."""
  try:
    view.enabled = False
    print("", file=sys.stderr)
    all_tasks = current.get("tasks") or []
    saved = current.get("saved") or set()
    for task in all_tasks:
      if task.output in saved:  # finished: the interrupt came during its report/pictures
        print(f"dnr_jax: interrupted after {task.output} was written (complete)",
              file=sys.stderr)
        entries.append({"input": str(task.source), "output": str(task.output),
                        "status": "interrupted"})
    pending = [t for t in all_tasks if t.output not in saved]
    if pending and view.best is not None and not current.get("written"):
      best = view.best()
      for task, image in zip(all_tasks, best if isinstance(best, list) else [best]):
        if task.output in saved:
          continue
        image_io.save_image(image, task.output, protect=(task.source,))
        print(f"dnr_jax: interrupted; wrote the best image so far to {task.output}",
              file=sys.stderr)
        entries.append({"input": str(task.source), "output": str(task.output),
                        "status": "interrupted"})
    elif pending:
      print("dnr_jax: interrupted before an image was produced; nothing was written"
            + (" for the current image" if entries else ""), file=sys.stderr)
      for task in pending:
        entries.append({"input": str(task.source), "output": None, "status": "interrupted"})
    if report_path(job) and entries:
      _write_report_or_fail(report_path(job), entries, folder)
  except KeyboardInterrupt:
    print("dnr_jax: interrupted again; stopping now", file=sys.stderr)
  except (image_io.ImageError, OSError) as e:
    error_line(f"interrupted, and the best image so far could not be written: {e}")
  return EXIT_INTERRUPTED
