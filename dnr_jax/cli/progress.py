"""Progress of the CLI's jobs: bars with ETA on a terminal, log lines otherwise; the
worker thread that keeps the main thread free for Ctrl-C."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Callable

import numpy as np
from absl import logging


def fmt_s(s: float) -> str:
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
                     fmt_s(self.expected.get(phase, 0.0)))
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
              f"~{fmt_s(left)} left (estimate)" if left > 0 else
              f"longer than the ~{fmt_s(expected)} expected", refresh=False)
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
      logging.info("%s: %d/%d, %s elapsed, ETA %s%s", phase, done, total, fmt_s(elapsed),
                   fmt_s(eta), f", loss {info['loss']:.5g}" if "loss" in info else "")

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
                   fmt_s(time.perf_counter() - self._phase_t0))

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
