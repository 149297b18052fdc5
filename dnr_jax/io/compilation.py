"""XLA compilations: the CLI's caches of compiled programs, and counting what a run compiled.

A new (input size, output size) costs seconds of XLA compilation (the VGG forward, the
deep plan and the unrolled Adam chunk). :func:`enable_persistent_cache` points two disk
caches at a folder (by default under the user's cache dir):

- JAX's persistent compilation cache, for every executable (not only those that took
  over a second): a second run of the same sizes loads them instead of compiling. JAX
  still traces and lowers the Python function to find the entry (2 s of a 640x480
  photo's 8 on the 2-core CPU);
- an executable cache of the project's own (:func:`call`): the main programs (the
  prepare phase, the Eq. 4 chunk, the lift) serialised whole
  (``jax.experimental.serialize_executable``), keyed by the function, its static
  arguments, its arguments' shapes, dtypes and shardings, the jax/jaxlib versions, the
  devices and a hash of this package's source; a warm run loads them without tracing
  (0.3 s instead of 3 s for the prepare phase).

:class:`CompileCounter` counts, through ``jax.monitoring`` events (public API):
- ``compilations``: XLA backend compilations that actually ran (a persistent-cache hit
  is not one); ``compile_s``: seconds spent building executables (compiling, or
  loading from the cache);
- ``cache_hits``: executables loaded from the persistent cache;
- ``trace_s``: tracing and lowering seconds (paid even on a cache hit).
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import hashlib
import logging
import os
import pathlib
import pickle
import threading
from typing import Any, Callable

import jax
from jax._src import compilation_cache as jax_compilation_cache  # (see call)
from jax._src import config as jax_config  # (its context managers: see call)
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
  global _EXECUTABLES
  _EXECUTABLES = folder / "executables"
  _EXECUTABLES.mkdir(exist_ok=True)
  return folder


def disable_executable_cache() -> None:
  """Stops :func:`call` from reading or writing the disk (the compiled programs it
  holds in memory are dropped too)."""
  global _EXECUTABLES
  _EXECUTABLES = None
  _LOADED.clear()


# --- The executable cache -------------------------------------------------------------------

_EXECUTABLES: pathlib.Path | None = None  # set by enable_persistent_cache
_LOADED: dict[str, Any] = {}  # key -> jax.stages.Compiled, for this process
_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _source_hash() -> str:
  """A hash of this package's Python source: a changed program never loads a stale
  executable."""
  root = pathlib.Path(__file__).resolve().parents[1]
  h = hashlib.sha256()
  for f in sorted(root.rglob("*.py")):
    h.update(str(f.relative_to(root)).encode())
    h.update(f.read_bytes())
  return h.hexdigest()


def _leaf_key(x) -> str:
  if x is None:
    return "None"
  sharding = getattr(x, "sharding", None)
  shape, dtype = getattr(x, "shape", ()), getattr(x, "dtype", type(x).__name__)
  return f"{tuple(shape)}:{dtype}:{sharding if isinstance(x, jax.Array) else 'host'}"


def _key(fn: Callable, args: tuple, static: dict) -> str:
  leaves, tree = jax.tree_util.tree_flatten(args, is_leaf=lambda x: x is None)
  devices = jax.devices()
  parts = [getattr(fn, "__module__", ""), getattr(fn, "__qualname__", repr(fn)),
           repr(sorted(static.items())), str(tree), *map(_leaf_key, leaves),
           jax.__version__, getattr(jax.lib, "__version__", ""), jax.default_backend(),
           f"{len(devices)}x{devices[0].device_kind}", _source_hash()]
  return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:40]


def _load(path: pathlib.Path):
  from jax.experimental import serialize_executable  # pylint: disable=g-import-not-at-top
  try:
    payload, in_tree, out_tree = pickle.loads(path.read_bytes())
    return serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
  except FileNotFoundError:
    return None
  except Exception as e:  # pylint: disable=broad-except  (stale or damaged: rebuild it)
    logging.warning("dnr_jax: the cached program %s could not be loaded (%s); rebuilding",
                    path.name, e)
    path.unlink(missing_ok=True)
    return None


def _save(path: pathlib.Path, compiled) -> None:
  from jax.experimental import serialize_executable  # pylint: disable=g-import-not-at-top
  try:
    data = pickle.dumps(serialize_executable.serialize(compiled))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
  except Exception as e:  # pylint: disable=broad-except  (a cache: the run goes on)
    logging.warning("dnr_jax: could not cache the compiled program %s (%s)", path.name, e)


def call(fn: Callable, *args, **static):
  """``fn(*args, **static)`` for a jitted ``fn`` whose static arguments are ``static``
  (by name) and whose other arguments are ``args`` (positional; None for an absent
  one), through the executable cache when :func:`enable_persistent_cache` is on."""
  if _EXECUTABLES is None or any(isinstance(x, jax.core.Tracer)
                                 for x in jax.tree_util.tree_leaves(args)):
    return fn(*args, **static)  # (off, or inside a trace: retarget_pure)
  key = _key(fn, args, static)
  with _LOCK:
    compiled = _LOADED.get(key)
  if compiled is not None:
    return compiled(*args)
  path = _EXECUTABLES / f"{key}.exe"
  compiled = _load(path)
  if compiled is not None:
    try:
      # A loaded program's first run is waited for: one stored without its object code
      # fails here ("NOT_FOUND: Function convert_divide_fusion not found"), and is
      # rebuilt instead of failing the job (the inputs are not donated: a rerun is safe).
      out = jax.block_until_ready(compiled(*args))
    except jax.errors.JaxRuntimeError as e:
      if "NOT_FOUND" not in str(e):
        raise
      logging.warning("dnr_jax: the cached program %s cannot run (%s); rebuilding",
                      path.name, str(e).splitlines()[0])
      path.unlink(missing_ok=True)
    else:
      with _LOCK:
        _LOADED[key] = compiled
      return out
  compiled, from_persistent_cache = _compile(fn, args, static)
  if not from_persistent_cache:
    _save(path, compiled)
  with _LOCK:
    _LOADED[key] = compiled
  return compiled(*args)


_COMPILING = threading.local()  # set while _compile runs in this thread


def _note_cache_hit(event: str, **_) -> None:
  if event == _CACHE_HIT and getattr(_COMPILING, "active", False):
    _COMPILING.hit = True


def _compile(fn: Callable, args: tuple, static: dict):
  """(the compiled program, whether it came from JAX's persistent cache anyway).

  An XLA:CPU executable loaded from JAX's persistent cache serializes without its object
  code (loaded again, it fails when it runs: "NOT_FOUND: Function ... not found"), so
  the program to store is compiled with that cache taken out: JAX reads
  ``jax_enable_compilation_cache`` only when it opens its cache, so the cache is reset
  (closed) around the compile, and reset again after it so that the next compile
  reopens it. Another thread compiling meanwhile just misses the cache. Should a hit
  still be seen, :func:`call` does not store the program."""
  quiet = logging.getLogger(jax_compilation_cache.__name__)  # ("Resetting cache at ...")
  with _COMPILE_LOCK:
    level = quiet.level
    quiet.setLevel(max(level, logging.WARNING))
    _COMPILING.active, _COMPILING.hit = True, False
    jax.monitoring.register_event_listener(_note_cache_hit)
    jax_compilation_cache.reset_cache()
    try:
      with jax_config.enable_compilation_cache(False):
        compiled = fn.trace(*args, **static).lower().compile()
    finally:
      jax_compilation_cache.reset_cache()
      jax.monitoring.unregister_event_listener(_note_cache_hit)
      _COMPILING.active = False
      quiet.setLevel(level)
    return compiled, _COMPILING.hit


_COMPILE_LOCK = threading.Lock()


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


def clear_programs() -> None:
  """Drops every compiled program this process holds: JAX's (``jax.clear_caches``) and
  :func:`call`'s; a size seen again loads from the disk caches or compiles."""
  jax.clear_caches()
  with _LOCK:
    _LOADED.clear()
  gc.collect()


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
  clear_programs()
  after = memory_maps()
  return maps[0], (after[0] if after else -1)
