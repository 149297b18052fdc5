"""The command-line job: files in, files out. All side effects of the CLI live here.

``main.py`` turns flags into a :class:`Job` and a :class:`~dnr_jax.config.RetargetConfig`
and calls :func:`run`, which returns the exit status. The order of work:

1. **Pre-flight, before any compute**: inputs listed and their headers read (size,
   frames, ``--max_pixels``), output sizes computed, every output path (images, debug
   pictures, report) checked (:mod:`dnr_jax.outputs`). One line and exit 2 per problem.
2. The weights (exit 3 on any problem).
3. Per image: an estimate line (time and memory from :mod:`dnr_jax.cost_model`), the
   pipeline in a worker thread while the main thread draws progress bars with ETA and
   stays responsive to Ctrl-C, then atomic writes. In folder mode a failing image is
   reported and the batch goes on.

Ctrl-C (or SIGTERM) at any moment: the best image so far is written when one exists,
the report records the interruption, exit 130, no traceback, within about a second,
whatever the worker is doing (compiling included).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys
import threading
import time
from typing import Any, Callable

import jax
import numpy as np
from absl import logging

from dnr_jax import atomic_write
from dnr_jax import batching
from dnr_jax import compilation
from dnr_jax import cost_model
from dnr_jax import image_io
from dnr_jax import importance
from dnr_jax import metrics
from dnr_jax import outputs
from dnr_jax import pipeline
from dnr_jax import visualize
from dnr_jax import weights as weights_lib
from dnr_jax.config import RetargetConfig
from dnr_jax.config import resolve_compute_dtype

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_WEIGHTS = 3
EXIT_NUMERICAL = 4
EXIT_INTERRUPTED = 130


class UserError(Exception):
  """Something the user asked for cannot be done (bad flags, sizes, paths)."""


def error_line(message: str) -> None:
  print(f"dnr_jax: error: {message}", file=sys.stderr, flush=True)


def fail(code: int, message: str) -> None:
  error_line(message)
  sys.exit(code)


@dataclasses.dataclass(frozen=True)
class Job:
  input: str | None
  output: str | None = None
  width_ratio: float | None = None
  height_ratio: float | None = None
  target_width: int | None = None
  target_height: int | None = None
  vgg_weights: str | None = None
  save_debug: bool = False
  report: str | None = None
  progress: bool = True
  overwrite: bool = False
  max_pixels: int = image_io.DEFAULT_MAX_PIXELS
  dry_run: bool = False  # pre-flight, decode and estimate only; nothing is written
  batch_size: int = 1  # >1: vmapped batches of images with equal working shapes
  process_index: int = 0  # multi-host runs (--distributed): this process's share
  process_count: int = 1
  keep_mask: str | None = None  # mask image files (nonzero = masked), the input's size
  remove_mask: str | None = None


def target_size(height: int, width: int, job: Job) -> tuple[int, int]:
  """(H', W') from the ratio or pixel flags; each axis takes at most one of the two."""
  def axis(size, ratio, pixels, rname, pname):
    if ratio is not None and pixels is not None:
      raise UserError(f"give --{rname} or --{pname}, not both")
    if ratio is not None:
      if not (np.isfinite(ratio) and 0.0 < ratio <= pipeline.MAX_ENLARGE):
        raise UserError(f"--{rname} must be in (0, {pipeline.MAX_ENLARGE}], got {ratio}")
      return max(1, round(size * ratio))
    if pixels is not None:
      if pixels <= 0:
        raise UserError(f"--{pname} must be positive, got {pixels}")
      if pixels > pipeline.MAX_ENLARGE * size:
        raise UserError(f"--{pname}={pixels} is more than {pipeline.MAX_ENLARGE}x the "
                        f"input's {size} px: enlarge in several runs")
      return pixels
    return size

  if all(v is None for v in (job.width_ratio, job.height_ratio, job.target_width,
                              job.target_height)):
    raise UserError("give the output size: --width_ratio or --target_width, and/or "
                    "--height_ratio or --target_height")
  oh = axis(height, job.height_ratio, job.target_height, "height_ratio", "target_height")
  ow = axis(width, job.width_ratio, job.target_width, "width_ratio", "target_width")
  if min(oh, ow) < image_io.MIN_SIDE:
    raise UserError(f"target {ow}x{oh} is below VGG19's {image_io.MIN_SIDE} px per side")
  return oh, ow


def check_job_flags(job: Job) -> None:
  """Flag errors that do not depend on any image (so they are reported first)."""
  target_size(1 << 20, 1 << 20, dataclasses.replace(
      job, target_width=None if job.target_width is None else min(job.target_width, 1 << 20),
      target_height=None if job.target_height is None else min(job.target_height, 1 << 20)))
  if job.max_pixels <= 0:
    raise UserError(f"--max_pixels must be positive, got {job.max_pixels}")
  if not 1 <= job.batch_size <= 4096:
    raise UserError(f"--batch_size must be in [1, 4096], got {job.batch_size}")


def start_distributed(job: Job, coordinator_address: str | None = None,
                      num_processes: int | None = None, process_id: int | None = None) -> Job:
  """``jax.distributed.initialize()`` (unset arguments are detected from the cluster);
  the job gets this process's index and count: each process retargets its share of
  the inputs on its own devices."""
  import jax  # pylint: disable=g-import-not-at-top
  try:
    jax.distributed.initialize(coordinator_address, num_processes, process_id,
                               initialization_timeout=120)
  except (RuntimeError, ValueError, TypeError) as e:
    raise UserError(f"--distributed: cannot join the cluster: {str(e).splitlines()[0]}") from None
  return dataclasses.replace(job, process_index=jax.process_index(),
                             process_count=jax.process_count())


def report_path(job: Job) -> str | None:
  """The report's path; in a multi-host run each process writes ``name.<i>-of-<n>.json``."""
  if not job.report or job.process_count == 1:
    return job.report
  path = pathlib.Path(job.report)
  return str(path.with_name(f"{path.stem}.{job.process_index}-of-{job.process_count}"
                            f"{path.suffix}"))


# ----------------------------------------------------------------------------- progress


def _fmt_s(s: float) -> str:
  return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"


class ProgressView:
  """tqdm bars on a terminal, plain log lines otherwise.

  The worker thread calls :meth:`update` (it only stores the latest event); the main
  thread calls :meth:`draw` while it waits, so drawing never slows the computation and
  an atomic phase (one XLA call: compilation, preparation) still gets a bar whose ETA
  comes from the cost model's estimate of that phase.
  """

  def __init__(self, enabled: bool, tty: bool | None = None):
    self.enabled = enabled
    self.tty = sys.stderr.isatty() if tty is None else tty
    self._lock = threading.Lock()
    self._event: tuple | None = None
    self._bar = None
    self._bar_phase = None
    self._phase_t0 = time.perf_counter()
    self._last_log = 0.0
    self.best: Callable[[], np.ndarray] | None = None
    self.expected: dict[str, float] = {}

  def start_task(self, expected: dict[str, float]) -> None:
    self.close()
    self.best, self.expected = None, dict(expected)

  def update(self, phase: str, done: int, total: int, info: dict) -> None:
    with self._lock:
      self._event = (phase, done, total, dict(info))
      if info.get("best") is not None:
        self.best = info["best"]

  def draw(self) -> None:
    if not self.enabled:
      return
    with self._lock:
      event = self._event
    if event is None:
      return
    phase, done, total, info = event
    if phase not in self.expected:  # a no-op phase for this image (e.g. no downscale)
      return
    if phase != self._bar_phase:
      self._finish_bar()
      self._bar_phase, self._phase_t0 = phase, time.perf_counter()
      self._open_bar(phase, total)
      if not self.tty:
        logging.info("%s: started (expected %s)", phase,
                     _fmt_s(self.expected.get(phase, 0.0)))
    elapsed = time.perf_counter() - self._phase_t0
    atomic = total <= 1
    if self.tty and self._bar is not None:
      if atomic:  # time-based: elapsed against the expected duration
        expected = max(self.expected.get(phase, 1.0), 0.1)
        if done >= total:
          self._bar.total = self._bar.n = max(elapsed, 0.1)
          self._bar.set_postfix_str("done", refresh=False)
        else:
          self._bar.total = max(expected, elapsed * 1.05 + 0.5)
          self._bar.n = min(elapsed, self._bar.total)
          left = expected - elapsed
          self._bar.set_postfix_str(
              f"~{_fmt_s(left)} left (estimate)" if left > 0 else
              f"longer than the ~{_fmt_s(expected)} expected", refresh=False)
      else:
        self._bar.total, self._bar.n = total, done
        if "loss" in info:
          self._bar.set_postfix_str(f"loss {info['loss']:.4g}", refresh=False)
      self._bar.refresh()
    elif (not self.tty and time.perf_counter() - self._last_log > 5.0 and not atomic
          and done > 0):
      self._last_log = time.perf_counter()
      rate = done / max(elapsed, 1e-6)
      eta = (total - done) / rate if rate > 0 else float("nan")
      logging.info("%s: %d/%d, %s elapsed, ETA %s%s", phase, done, total, _fmt_s(elapsed),
                   _fmt_s(eta), f", loss {info['loss']:.5g}" if "loss" in info else "")

  def _open_bar(self, phase: str, total: int) -> None:
    if not self.tty:
      return
    import tqdm  # pylint: disable=g-import-not-at-top
    if total <= 1:
      self._bar = tqdm.tqdm(total=max(self.expected.get(phase, 1.0), 0.1), desc=phase,
                            unit="s", leave=True, file=sys.stderr, dynamic_ncols=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} "
                                       "elapsed{postfix}")
    else:
      self._bar = tqdm.tqdm(total=total, desc=phase, unit="step", leave=True,
                            file=sys.stderr, dynamic_ncols=True)

  def _finish_bar(self) -> None:
    if self._bar is not None:
      if self._bar.unit == "s":  # an atomic phase that ended between two draws
        self._bar.total = self._bar.n = max(time.perf_counter() - self._phase_t0, 0.1)
        self._bar.set_postfix_str("done", refresh=False)
      else:
        self._bar.n = self._bar.total
      self._bar.close()
      self._bar = None
    elif self._bar_phase is not None and self.enabled and not self.tty:
      logging.info("%s: done in %s", self._bar_phase,
                   _fmt_s(time.perf_counter() - self._phase_t0))

  def close(self) -> None:
    if self.enabled:
      self.draw()
      self._finish_bar()
    self._bar_phase, self._event = None, None


_running_workers: set[int] = set()  # ids of worker calls that have not returned yet


def in_worker(fn: Callable[[], Any], view: ProgressView) -> Any:
  """Runs ``fn`` in a worker thread; the main thread draws progress and takes Ctrl-C.

  A ``KeyboardInterrupt`` reaches the main thread within ~0.1 s even while the worker
  sits in a long XLA call (compilation), which a plain call could not promise.
  """
  box: dict[str, Any] = {}
  key = id(box)

  def target():
    try:
      box["value"] = fn()
    except BaseException as e:  # re-raised in the main thread
      box["error"] = e
    finally:
      _running_workers.discard(key)

  _running_workers.add(key)
  t = threading.Thread(target=target, name="dnr_jax-worker", daemon=True)
  t.start()
  while key in _running_workers:
    t.join(0.1)
    view.draw()
  if "error" in box:
    raise box["error"]
  return box["value"]


def exit_now(code: int) -> None:
  """Exits with ``code``; skips interpreter teardown if a worker is still computing.

  (Tearing down the interpreter under a thread that is inside XLA aborts the process;
  ``Thread.is_alive`` is not trusted here because a ``join`` interrupted by Ctrl-C can
  leave it wrong, so the workers report their own end.)
  """
  sys.stdout.flush()
  sys.stderr.flush()
  if _running_workers:
    os._exit(code)  # pylint: disable=protected-access
  sys.exit(code)


# ----------------------------------------------------------------------------- outputs


def _mask_picture(image: np.ndarray, res: pipeline.Result, masks: dict) -> np.ndarray:
  """Input with the keep (green) and remove (red) masks, and the output with where
  they went (:meth:`pipeline.Result.map_labels`), screen-sized."""
  colours = {"keep": (40, 220, 80), "remove": (255, 40, 40)}
  h = min(400, image.shape[0])
  tiles = []
  for picture, moved in ((image, False), (res.output, True)):
    small = visualize.resize_linear(picture, (h, max(1, round(picture.shape[1] * h
                                                             / picture.shape[0]))))
    for name, m in masks.items():
      mm = res.map_labels(m.astype(np.uint8)) if moved else m.astype(np.uint8)
      small = visualize.seams_overlay(small, mm > 0, colours[name])
    tiles.append(small)
  return visualize.panel(tiles, ["input + masks", "output + where they went"], height=h)


def _debug_pictures(image: np.ndarray, res: pipeline.Result, task: outputs.Task,
                    masks: dict | None = None) -> list[str]:
  """Debug pictures at the working size (a 12 MP photo gets screen-sized panels)."""
  written = []

  def save(name, arr):
    image_io.save_image(arr, task.debug[name], protect=(task.source,))
    written.append(str(task.debug[name]))

  h, w = res.work_hw
  base = image if image.shape[:2] == (h, w) else visualize.resize_linear(image, (h, w))
  if res.importance:
    eff = np.asarray(importance.effective_importance_jit(res.importance, h, w))
    save("importance", visualize.importance_panel(res.importance, (h, w), eff))
  if res.removal_axis:  # the seams drawn are the last run's, over its own input
    base = visualize.resize_linear(res.stage_input, (h, w))
  for axis, removed in res.removed.items():
    # Height seams live on the width-resized maps: draw them over the input scaled to
    # the output width (positions are approximate where the width pass was non-uniform).
    first = "height" if res.axis_order == "height_first" else "width"
    on_input = axis == first or len(res.removed) == 1
    if on_input:
      under = base
    elif axis == "height":  # on the width-resized image
      under = visualize.resize_linear(base, (h, res.initial.shape[1]))
    else:  # on the height-resized image
      under = visualize.resize_linear(base, (res.initial.shape[0], w))
    i = 1 if axis == "width" else 0
    inserted = res.output.shape[i] > res.stages[-1].image_hw[i]
    span = res.kept_span.get(axis) if on_input and not res.removal_axis else None
    if span is not None:  # the crop before the seams, greyed out
      under = visualize.crop_overlay(under, span, axis)
    tiles = [visualize.seams_overlay(under, m if axis == "width" else m.T,
                                     (40, 200, 255) if inserted else (255, 40, 40))
             for m in removed.values()]
    cropped = span is not None and span != (0, under.shape[1 if axis == "width" else 0])
    save(f"seams_{axis}", visualize.panel(
        tiles, [f"{l} ({'inserted' if inserted else 'removed'}"
                f"{'; grey: cropped' if cropped else ''})" for l in removed],
        height=min(h, 300)))
  if masks:
    save("masks", _mask_picture(image, res, masks))
  save("targets", visualize.importance_panel(res.target_importance, res.initial.shape[:2]))
  save("stages", visualize.panel([base, res.initial, res.reconstructed, res.output],
                                 ["input", "init", "reconstructed", "output"],
                                 height=min(600, max(h, res.output.shape[0]))))
  if res.recon_losses:
    save("loss", visualize.panel(
        [visualize.plot_curve(res.recon_losses, title="reconstruction loss")]
        + ([visualize.plot_curve(res.refine_losses, title="refinement loss")]
           if res.refine_losses else [])))
  return written


def _operations(image_hw, res: pipeline.Result) -> dict:
  """What happened per axis: "shrink" (seams removed), "enlarge" (seams inserted) or
  "unchanged"; object removal adds "remove"."""
  ops = {}
  for i, axis in ((1, "width"), (0, "height")):
    n_in, n_out = image_hw[i], res.output.shape[i]
    ops[axis] = "shrink" if n_out < n_in else "enlarge" if n_out > n_in else "unchanged"
  if res.removal_axis:
    ops["remove"] = res.removal_axis
  return ops


def _cropped(image_hw, res: pipeline.Result) -> dict:
  """Per shrunk axis, the input pixels the output comes from ("kept_from" to
  "kept_to") and how many the crop before the seams took (OperatorConfig.crop_share;
  0 when it did not crop)."""
  out = {}
  if res.removal_axis:  # two runs: the spans are the second run's
    return out
  for axis, (start, stop) in res.kept_span.items():
    i = 1 if axis == "width" else 0
    scale = image_hw[i] / res.work_hw[i]
    lo, hi = round(start * scale), min(image_hw[i], round(stop * scale))
    out[axis] = {"kept_from": lo, "kept_to": hi, "cropped_px": image_hw[i] - (hi - lo)}
  return out


def _report_entry(task: outputs.Task, image, res: pipeline.Result, cfg: RetargetConfig,
                  weights, debug_files, wall, estimate: cost_model.Estimate,
                  job_masks: dict | None = None) -> dict:
  job_masks = job_masks or {}
  small = res.output if res.output.shape[:2] == res.reconstructed.shape[:2] else None
  work_in = image if small is not None else visualize.resize_linear(image, res.work_hw)
  work_out = small if small is not None else visualize.resize_linear(res.output,
                                                                     res.reconstructed.shape[:2])
  scores = metrics.all_scores(weights, work_out, work_in)
  return {
      "input": str(task.source), "output": str(task.output), "status": "ok",
      "renamed_to_avoid_collision": task.renamed,
      "input_size": {"height": image.shape[0], "width": image.shape[1]},
      "output_size": {"height": res.output.shape[0], "width": res.output.shape[1]},
      "work_size": {"height": res.work_hw[0], "width": res.work_hw[1]},
      "device": jax.default_backend(),
      "compute_dtype": resolve_compute_dtype(cfg.compute_dtype, jax.default_backend()),
      "operations": _operations(image.shape[:2], res),
      "axis_order": res.axis_order,
      "axis_order_kept_importance": res.order_scores,
      "seams_removed": res.seams_removed,
      "cropped": _cropped(image.shape[:2], res),
      "operator": res.operator,
      "operator_semantic_scores": res.operator_scores,
      "operator_completeness": res.operator_completeness,
      "operator_fine_coherence": res.operator_fine_coherence,
      "masks": {"keep_mask": job_masks.get("keep"), "remove_mask": job_masks.get("remove"),
                "kept_pixels_copied": res.keep_held, "removal_axis": res.removal_axis},
      "target_feature_shapes": {l: list(s) for l, s in res.target_shapes.items()},
      "losses": {"reconstruction": res.recon_losses, "refinement": res.refine_losses},
      "timings_s": {**{k: round(v, 3) for k, v in res.timings.items()}, "total": round(wall, 3)},
      "estimate": estimate.to_json(),
      "scores": {"semantic_score_block5_conv1": scores["semantic_score"],
                 "scored_at": "working size", "coherence": scores["coherence"],
                 "completeness": scores["completeness"]},
      "interrupted": res.interrupted,
      "debug_files": debug_files,
      "config": dataclasses.asdict(cfg),
  }


def write_report(path: str, data) -> None:
  atomic_write.write_text(path, json.dumps(data, indent=2) + "\n")


# ----------------------------------------------------------------------------- the job


@dataclasses.dataclass
class _Planned:
  task: outputs.Task
  info: image_io.ImageInfo
  out_hw: tuple[int, int]
  estimate: cost_model.Estimate
  masks: dict = dataclasses.field(default_factory=dict)  # "keep"/"remove" -> (H, W) bool


def _check_masks(masks: dict, image_hw: tuple[int, int], out_hw: tuple[int, int],
                 cfg: RetargetConfig) -> tuple[int, int]:
  """Mask sizes, object removal's size, and the keep mask's largest feasible shrink,
  all before any compute on the image (UserError, exit 2). Returns the size the last
  run starts from (the input's, or the size after the object's removal)."""
  for name, m in masks.items():
    if m.shape != tuple(image_hw):
      raise UserError(f"--{name}_mask is {m.shape[1]}x{m.shape[0]}, the image "
                      f"{image_hw[1]}x{image_hw[0]}: it must be the same size")
  keep, mid = masks.get("keep"), tuple(image_hw)
  if "remove" in masks and masks["remove"].any():
    _, mid = pipeline.removal_size(masks["remove"], tuple(image_hw), cfg)
    if min(mid) < image_io.MIN_SIDE:
      raise UserError(f"--remove_mask spans the image: removing it leaves {mid[1]}x{mid[0]}")
    pipeline.validate(mid, out_hw, cfg)
  try:  # (after a removal the kept region is unchanged and the image smaller: the
    # limits of the input are a close bound for the second run)
    pipeline.check_keep(keep, tuple(image_hw), mid, cfg)
    pipeline.check_keep(keep, tuple(image_hw), out_hw, cfg)
  except pipeline.KeepInfeasible as e:
    raise UserError(f"--keep_mask: {e}") from None
  return mid


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
      pipeline.validate((info.height, info.width), out_hw, cfg)
      start_hw = _check_masks(masks, (info.height, info.width), out_hw, cfg)
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
      task.debug = outputs.debug_paths(task.output, outputs.debug_names(
          out_hw[1] != start_hw[1], out_hw[0] != start_hw[0],
          pipeline.reconstruction_steps(
              pipeline.sizes((info.height, info.width), out_hw, cfg.work_size,
                             cfg.work_multiple), cfg, bool(masks)) > 0,
          has_masks=bool(masks)))
    est = cost_model.estimate((info.height, info.width), out_hw, cfg, bool(masks))
    if "remove" in masks:  # two runs: the removal, then the requested size (which
      # carries the keep mask, if any: pipeline.retarget's second run)
      est = est.plus(cost_model.estimate((info.height, info.width), out_hw, cfg,
                                         "keep" in masks))
    planned.append(_Planned(task, info, out_hw, est, masks))
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
          f"~{_fmt_s(e.total_s)} (incl. ~{_fmt_s(e.compile_s)} compiling a new size), peak "
          f"memory ~{e.peak_rss_bytes / 2**30:.1f} GiB host, "
          f"~{e.device_bytes / 2**30:.1f} GiB device ({e.machine})")


def run(job: Job, cfg: RetargetConfig) -> int:
  """Runs the job; returns the exit status (errors print one line on stderr)."""
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
        write_report(report, entries)
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
      print(f"dnr_jax: {n_ok} image(s) in {_fmt_s(wall)} ({n_ok / max(wall, 1e-9):.3g} "
            f"images/s), {totals.compilations} XLA compilation(s) ({_fmt_s(totals.compile_s)})"
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
  job_sizes = [pipeline.sizes((p.info.height, p.info.width), p.out_hw, cfg.work_size,
                              cfg.work_multiple) for p in planned]
  return [[planned[i] for i in idx]
          for idx in batching.plan_batches(job_sizes, job.batch_size, cfg)]


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
    write_report(path, entries if folder else entries[0])
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
    res = in_worker(lambda: pipeline.retarget(weights, image, p.out_hw, cfg, view.update,
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
    debug = _debug_pictures(image, res, task, p.masks) if job.save_debug else []
  except (image_io.ImageError, ValueError) as e:
    view.close()
    msg = str(e) if str(task.source) in str(e) else f"{task.source}: {e}"
    error_line(msg)
    return EXIT_USAGE, {**fail_entry, "error": msg}
  except pipeline.NumericalError as e:
    view.close()
    error_line(f"{task.source}: {e}")
    return EXIT_NUMERICAL, {**fail_entry, "error": str(e)}
  wall = time.perf_counter() - t0
  logging.info("wrote %s in %.1f s (%s)", task.output, wall,
               ", ".join(f"{k} {v:.1f} s" for k, v in res.timings.items()))
  entry = _report_entry(task, image, res, cfg, weights, debug, wall, p.estimate,
                        {"keep": job.keep_mask, "remove": job.remove_mask})
  if res.interrupted:
    print(f"dnr_jax: interrupted; wrote the best image so far to {task.output}",
          file=sys.stderr)
    entry["status"] = "interrupted"
    return EXIT_INTERRUPTED, entry
  return EXIT_OK, entry


def _run_batch(group: list[_Planned], planned: list[_Planned], job: Job, cfg: RetargetConfig,
               weights, view: ProgressView, current: dict) -> list[tuple[int, dict]]:
  """Images with equal working shapes as one vmapped batch over the local devices
  (:mod:`dnr_jax.batching`, in the worker thread), then the writes. Per-image failures
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
        f"~{_fmt_s(sum(expected.values()))} ({e.machine})", file=sys.stderr, flush=True)
  view.start_task(expected)
  t0 = time.perf_counter()
  try:
    outcomes = in_worker(lambda: batching.retarget_batch(
        weights, [im for _, im in loaded], [p.out_hw for p, _ in loaded], cfg, mesh,
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
      code = EXIT_NUMERICAL if isinstance(res, pipeline.NumericalError) else EXIT_USAGE
      error_line(f"{task.source}: {res}")
      results.append((code, {**fail_entry, "error": str(res)}))
      continue
    try:
      image_io.save_image(res.output, task.output, protect=(task.source,))
      current.setdefault("saved", set()).add(task.output)
      debug = _debug_pictures(image, res, task, p.masks) if job.save_debug else []
    except (image_io.ImageError, ValueError) as err:
      msg = str(err) if str(task.source) in str(err) else f"{task.source}: {err}"
      error_line(msg)
      results.append((EXIT_USAGE, {**fail_entry, "error": msg}))
      continue
    entry = _report_entry(task, image, res, cfg, weights, debug, wall, p.estimate,
                        {"keep": job.keep_mask, "remove": job.remove_mask})
    entry["batch"] = {"size": len(loaded), "index": k, "devices": int(mesh.devices.size),
                      "seconds": round(wall, 3)}
    results.append((EXIT_OK, entry))
  current["written"] = True
  logging.info("batch of %d written in %.1f s (%s)", len(loaded), wall,
               ", ".join(f"{k} {v:.1f} s" for k, v in outcomes[0].timings.items())
               if isinstance(outcomes[0], pipeline.Result) else "")
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
