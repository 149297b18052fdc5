"""XLA compilations: JAX's persistent cache for the CLI, and counting what a run compiled.

A new (input size, output size) costs seconds of XLA compilation (the VGG forward, the
deep plan and the unrolled Adam chunk). JAX's persistent compilation cache stores the
compiled executables on disk, so a second run of the same sizes loads them instead of
compiling. :func:`enable_persistent_cache` points it at a folder (by default under the
user's cache dir) and caches every executable, not only those that took over a second.

:class:`CompileCounter` counts, through ``jax.monitoring`` events (public API):
- ``compilations``: XLA backend compilations that actually ran (a persistent-cache hit
  is not one); ``compile_s``: seconds spent building executables (compiling, or
  loading from the cache);
- ``cache_hits``: executables loaded from the persistent cache;
- ``trace_s``: tracing and lowering seconds (paid even on a cache hit).
"""

from __future__ import annotations

import dataclasses
import gc
import os
import pathlib
import threading

import jax
import jax.monitoring

_BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
_TRACE = ("/jax/core/compile/jaxpr_trace_duration",
          "/jax/core/compile/jaxpr_to_mlir_module_duration")
_CACHE_HIT = "/jax/compilation_cache/cache_hits"


def default_cache_dir() -> pathlib.Path:
  """``$XDG_CACHE_HOME/dnr_jax/xla`` (``~/.cache/dnr_jax/xla`` when unset)."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return pathlib.Path(base) / "dnr_jax" / "xla"


def enable_persistent_cache(path: str | os.PathLike) -> pathlib.Path:
  """Turns on JAX's persistent compilation cache in ``path`` (created if needed).

  Every executable is cached (JAX's default skips those compiled in under a second,
  which on a GPU would be most of ours). Raises OSError if the folder cannot be made
  or written; the caller decides whether that is fatal (the CLI only warns).
  """
  folder = pathlib.Path(path).expanduser()
  folder.mkdir(parents=True, exist_ok=True)
  probe = folder / f".probe-{os.getpid()}"
  probe.write_bytes(b"")
  probe.unlink()
  jax.config.update("jax_compilation_cache_dir", str(folder))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return folder


@dataclasses.dataclass
class CompileStats:
  requests: int = 0  # executables built: compiled, or loaded from the persistent cache
  compile_s: float = 0.0  # seconds building them (compiling or loading)
  cache_hits: int = 0
  trace_s: float = 0.0

  @property
  def compilations(self) -> int:
    """XLA compilations that really ran (persistent-cache hits excluded)."""
    return self.requests - self.cache_hits

  def to_json(self) -> dict:
    return {"compilations": self.compilations, "compile_s": round(self.compile_s, 3),
            "persistent_cache_hits": self.cache_hits, "trace_s": round(self.trace_s, 3)}

  def __sub__(self, other: "CompileStats") -> "CompileStats":
    return CompileStats(self.requests - other.requests,
                        self.compile_s - other.compile_s,
                        self.cache_hits - other.cache_hits, self.trace_s - other.trace_s)


class CompileCounter:
  """Counts compilations process-wide while active (any thread: the CLI's worker too).

      with CompileCounter() as counter:
        ...
      counter.stats  # CompileStats; counter.snapshot() works inside the block too
  """

  def __init__(self):
    self._stats = CompileStats()
    self._lock = threading.Lock()

  def _on_duration(self, event: str, seconds: float, **_) -> None:
    with self._lock:
      if event == _BACKEND_COMPILE:  # recorded around compile-or-load
        self._stats.requests += 1
        self._stats.compile_s += seconds
      elif event in _TRACE:
        self._stats.trace_s += seconds

  def _on_event(self, event: str, **_) -> None:
    if event == _CACHE_HIT:
      with self._lock:
        self._stats.cache_hits += 1

  def snapshot(self) -> CompileStats:
    with self._lock:
      return dataclasses.replace(self._stats)

  @property
  def stats(self) -> CompileStats:
    return self.snapshot()

  def __enter__(self) -> "CompileCounter":
    jax.monitoring.register_event_duration_secs_listener(self._on_duration)
    jax.monitoring.register_event_listener(self._on_event)
    return self

  def __exit__(self, *exc) -> None:
    jax.monitoring.unregister_event_duration_listener(self._on_duration)
    jax.monitoring.unregister_event_listener(self._on_event)


# --- Compiled programs and the process's memory maps ---------------------------------------
#
# On the CPU every compiled executable keeps its machine code in memory mappings of the
# process: about 1,000 per job size with the default operator, 1,700-4,000 with
# ``--alternatives`` (measured on Linux, jax 0.10). JAX keeps every executable for the
# life of the process, and Linux allows a process 65,530 mappings by default
# (``vm.max_map_count``): a folder of a few dozen differently sized photos (RetargetMe's
# sets all differ) ended with "LLVM compilation error: Cannot allocate memory" and the
# process died. :func:`release_if_crowded` drops the compiled programs when their share
# of the limit grows past a threshold; a size seen again recompiles, or loads from the
# persistent cache.


def _count_lines(path: str) -> int | None:
  try:
    with open(path, "rb") as f:
      return sum(1 for _ in f)
  except OSError:
    return None


def memory_maps() -> tuple[int, int] | None:
  """(memory mappings of this process, the kernel's limit per process), or None where
  the system does not say (not Linux)."""
  used = _count_lines("/proc/self/maps")
  try:
    with open("/proc/sys/vm/max_map_count") as f:
      limit = int(f.read().strip())
  except (OSError, ValueError):
    return None
  return None if used is None or limit <= 0 else (used, limit)


def release_if_crowded(threshold: float = 0.5) -> tuple[int, int] | None:
  """Drops every compiled program (``jax.clear_caches``) when this process uses more
  than ``threshold`` of its allowed memory mappings; returns (before, after) mapping
  counts when it did, None when it did not (or the system does not say). Call between
  jobs, never while a jitted computation of the caller is in flight."""
  maps = memory_maps()
  if maps is None or maps[0] <= threshold * maps[1]:
    return None
  jax.clear_caches()
  gc.collect()
  after = memory_maps()
  return maps[0], (after[0] if after else -1)
