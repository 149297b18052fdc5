"""Compiled programs against the process's memory-map limit (compilation.py)."""

import subprocess
import sys
import textwrap

import pytest

from dnr_jax.io import compilation


def test_memory_maps_reports_use_and_limit_on_linux():
  maps = compilation.memory_maps()
  if not sys.platform.startswith("linux"):
    assert maps is None
    return
  used, limit = maps
  assert 0 < used < limit


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_release_drops_the_compiled_programs_only_past_the_threshold():
  """Under the threshold nothing happens (the next call of a jitted function compiles
  nothing); past it the programs' memory maps are returned to the system and the same
  call compiles again. Run in a fresh process: clearing JAX's caches here would make
  the rest of the test session recompile."""
  script = textwrap.dedent("""
      import jax, jax.numpy as jnp
      from dnr_jax.io import compilation
      x = jnp.ones(7)
      fns = [jax.jit(lambda x, k=k: jnp.sin(x) * k + jnp.cumsum(x)) for k in range(40)]
      for f in fns:
        f(x).block_until_ready()
      assert compilation.release_if_crowded(threshold=1.0) is None
      with compilation.CompileCounter() as c:
        fns[0](x).block_until_ready()
      assert c.stats.requests == 0, c.stats
      before, after = compilation.release_if_crowded(threshold=0.0)
      assert after < before - 40, (before, after)  # each program held maps
      with compilation.CompileCounter() as c:
        fns[0](x).block_until_ready()
      assert c.stats.requests == 1, c.stats
      print("ok", before, after)
      """)
  out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.startswith("ok")


def test_the_executable_cache_loads_a_program_without_tracing_it(tmp_path):
  """compilation.call: the first call traces, compiles and stores the program; a new
  process (here: the in-memory programs dropped) loads it without tracing; a damaged
  file is rebuilt; inside a trace it steps aside; off, it is a plain call."""
  code = textwrap.dedent(f"""
      import functools, pathlib, jax, jax.numpy as jnp
      from dnr_jax.io import compilation
      traces = []

      @functools.partial(jax.jit, static_argnames=("k",))
      def f(x, k):
        traces.append(1)
        return x * k

      x = jnp.arange(4.0)
      assert float(compilation.call(f, x, k=3)[1]) == 3.0 and len(traces) == 1  # off
      compilation.enable_persistent_cache(pathlib.Path({str(tmp_path)!r}) / "c")
      jax.clear_caches(); traces.clear()
      assert float(compilation.call(f, x, k=2)[1]) == 2.0 and len(traces) == 1
      files = list((pathlib.Path({str(tmp_path)!r}) / "c" / "executables").glob("*.exe"))
      assert len(files) == 1
      compilation.clear_programs()
      assert float(compilation.call(f, x, k=2)[2]) == 4.0 and len(traces) == 1  # loaded
      assert float(compilation.call(f, x + 1, k=2)[0]) == 2.0 and len(traces) == 1
      compilation.call(f, jnp.arange(5.0), k=2)  # another shape: another program
      assert len(traces) == 2
      files[0].write_bytes(b"damaged")
      compilation.clear_programs()
      assert float(compilation.call(f, x, k=2)[3]) == 6.0 and len(traces) == 3  # rebuilt
      assert float(jax.jit(lambda y: compilation.call(f, y, k=2))(x)[1]) == 2.0  # traced
      print("ok")
      """)
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


def test_a_program_first_found_in_the_persistent_cache_is_stored_runnable(tmp_path):
  """A program JAX's persistent cache already holds: call compiles it afresh before
  storing it (an XLA:CPU executable loaded from that cache serialized without its
  object code, and the next process failed with "Function convert_add_fusion not
  found" when it ran; the CLI's second run of a photo did)."""
  code = textwrap.dedent(f"""
      import functools, pathlib, jax, jax.numpy as jnp
      from dnr_jax.io import compilation

      @functools.partial(jax.jit, static_argnames=("k",))
      def g(x, k):
        f = x.astype(jnp.float32)
        return (f / k).astype(jnp.int32) + jnp.sin(f).astype(jnp.int32)

      compilation.enable_persistent_cache(pathlib.Path({str(tmp_path)!r}) / "c")
      x = jnp.arange(64, dtype=jnp.uint8)
      want = int(g(x, k=3)[40])  # compiled and written to JAX's persistent cache
      jax.clear_caches()
      assert int(compilation.call(g, x, k=3)[40]) == want  # stored
      compilation.clear_programs()
      assert int(compilation.call(g, x, k=3)[40]) == want  # loaded, and it runs
      print("ok")
      """)
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


def test_a_program_stored_first_leaves_jax_persistent_cache_on(tmp_path):
  """The first compile of a process is the executable cache's (the CLI's case): JAX's
  persistent cache must stay on for the other programs, so a second process finds them
  there (it was off for the whole process: the CLI's rerun compiled 11 programs)."""
  code = textwrap.dedent(f"""
      import pathlib, jax, jax.numpy as jnp, numpy as np
      from dnr_jax.io import compilation
      compilation.enable_persistent_cache(pathlib.Path({str(tmp_path)!r}) / "c")
      g = jax.jit(lambda x: x * 2)
      h = jax.jit(lambda x: jnp.sin(x) + 1)
      x = np.arange(8, dtype=np.float32)  # (host data: no compile before call's)
      with compilation.CompileCounter() as counter:
        compilation.call(g, x)
        h(x)
      print(counter.stats.cache_hits)
      """)
  runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300) for _ in range(2)]
  for r in runs:
    assert r.returncode == 0, r.stderr[-3000:]
  assert runs[1].stdout.split()[-1] == "1", [r.stdout for r in runs]  # h from the cache


def test_a_stored_program_that_cannot_run_is_rebuilt(tmp_path):
  """A program stored without its object code (what an XLA:CPU executable loaded from
  JAX's persistent cache serializes to) is caught at its first run in the next process,
  deleted and rebuilt: the job gets the right result, not "NOT_FOUND"."""
  code = textwrap.dedent(f"""
      import functools, pathlib, sys, jax, jax.numpy as jnp, numpy as np
      from dnr_jax.io import compilation

      @functools.partial(jax.jit, static_argnames=("k",))
      def g(x, k):
        f = x.astype(jnp.float32)
        return (f / k).astype(jnp.int32) + jnp.sin(f).astype(jnp.int32)

      root = compilation.enable_persistent_cache(pathlib.Path({str(tmp_path)!r}) / "c")
      x = np.arange(64, dtype=np.uint8)
      if sys.argv[1] == "store_a_broken_one":
        print(int(g(x, k=3)[40]))  # into JAX's persistent cache
        jax.clear_caches()
        loaded = g.trace(x, k=3).lower().compile()  # a persistent-cache hit
        path = root / "executables" / (compilation._key(g, (x,), {{"k": 3}}) + ".exe")
        compilation._save(path, loaded)
      else:
        print(int(compilation.call(g, x, k=3)[40]))
      """)
  runs = [subprocess.run([sys.executable, "-c", code, arg], capture_output=True, text=True,
                         timeout=300) for arg in ("store_a_broken_one", "use")]
  assert runs[0].returncode == 0, runs[0].stderr[-3000:]
  assert runs[1].returncode == 0, runs[1].stderr[-3000:]
  assert runs[1].stdout.split() == runs[0].stdout.split()
  assert "cannot run" in runs[1].stderr and "rebuilding" in runs[1].stderr
