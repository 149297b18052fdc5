"""Shared fixtures: small images, random-init VGG19 (fast), the real weights (marked tests)."""

import contextlib
import logging

import jax
import numpy as np
import pytest
from PIL import Image

from dnr_jax.io import image_io
from dnr_jax.nn import vgg
from dnr_jax.nn import weights as weights_lib


@pytest.fixture(scope="session")
def random_weights():
  return vgg.random_weights(jax.random.PRNGKey(0))


@pytest.fixture(scope="session")
def real_weights():
  return weights_lib.load_vgg19()


@pytest.fixture(scope="session")
def photo():
  """The bundled photograph (400x600 RGB)."""
  return image_io.load_image(image_io.sample_image_path())


@pytest.fixture(scope="session")
def small_photo(photo):
  """The bundled photograph at 64x96, for fast end-to-end tests."""
  return np.asarray(Image.fromarray(photo).resize((96, 64), Image.BILINEAR))


@contextlib.contextmanager
def count_compilations():
  """Collects JAX's 'Compiling ...' log lines (``jax.log_compiles``) inside the block."""
  seen = []

  class _Handler(logging.Handler):
    def emit(self, record):
      msg = record.getMessage()
      if msg.startswith("Compiling "):
        seen.append(msg.split(" with ")[0])

  handler = _Handler()
  logger = logging.getLogger("jax")
  logger.addHandler(handler)
  try:
    with jax.log_compiles(True):
      yield seen
  finally:
    logger.removeHandler(handler)


@pytest.fixture(name="compilations")
def compilations_fixture():
  """``with compilations() as seen:`` lists the XLA compilations made inside the block."""
  return count_compilations


@pytest.fixture(scope="session", autouse=True)
def _private_cache_home(tmp_path_factory):
  """CLI subprocesses put their persistent compilation cache in a temporary cache home,
  never in the user's (and share it with one another, as a user's runs would)."""
  import os  # pylint: disable=g-import-not-at-top
  old = os.environ.get("XDG_CACHE_HOME")
  os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache_home"))
  yield
  if old is None:
    os.environ.pop("XDG_CACHE_HOME", None)
  else:
    os.environ["XDG_CACHE_HOME"] = old


@pytest.fixture(scope="session", autouse=True)
def _persistent_compilation_cache(tmp_path_factory):
  """In-process tests share one persistent compilation cache (both xdist workers too):
  a program another test or module already compiled is loaded, not compiled again
  (the module fixture below drops the in-memory ones)."""
  from dnr_jax.io import compilation  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.getbasetemp()
  shared = root.parent if root.name.startswith("popen-gw") else root
  compilation.enable_persistent_cache(shared / "xla_cache")
  yield


@pytest.fixture(scope="module", autouse=True)
def _release_compilations():
  """Drops JAX's compiled programs after each test module. Every XLA:CPU executable
  holds ~3 memory mappings until its cache entry goes; the whole suite compiles
  ~20,000 programs, and at the kernel's 65,530-mapping limit (vm.max_map_count) the
  next compilation segfaulted (measured: 65,361 mappings at the crash in test_seams)."""
  yield
  from dnr_jax.io import compilation  # pylint: disable=g-import-not-at-top
  compilation.clear_programs()
