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
