"""scripts/probe_tears.py's tear scores: row shifts of a pixel map invent vertical edges;
a band of seams squeezes the texture under it."""

import importlib.util
import pathlib
import sys

import numpy as np
import jax.numpy as jnp

from dnr_jax.ops import column_maps

SCRIPTS = pathlib.Path(__file__).resolve().parent.parent / "scripts"


def _probe():
  sys.path.insert(0, str(SCRIPTS))
  try:
    spec = importlib.util.spec_from_file_location("probe_tears", SCRIPTS / "probe_tears.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
  finally:
    sys.path.remove(str(SCRIPTS))


def _whole_columns(h, cols):
  idx = jnp.asarray(np.broadcast_to(np.asarray(cols, np.int32), (h, len(cols))))
  return column_maps.ColumnMap(idx, idx, jnp.zeros(idx.shape, jnp.float32))


def test_whole_columns_invent_nothing_and_row_shifts_through_stripes_do():
  probe = _probe()
  h, w = 8, 12
  stripes = np.zeros((h, w, 3), np.float32)
  stripes[:, ::2] = 255.0  # vertical stripes: no vertical edge anywhere
  # a crop or a warp moves whole columns: every vertical step is the source's own
  assert np.all(probe.invented_vertical_edges(stripes, _whole_columns(h, range(2, 11))) == 0)
  # a seam that jumps: column 0 removed from rows 0-3, column 11 from rows 4-7, so
  # every output column of row 4 comes from one column left of row 3's
  kept = np.broadcast_to(np.arange(1, w), (h, w - 1)).copy()
  kept[4:] = np.arange(0, w - 1)
  idx = jnp.asarray(kept)
  cmap = column_maps.ColumnMap(idx, idx, jnp.zeros(idx.shape, jnp.float32))
  inv = probe.invented_vertical_edges(stripes, cmap)
  assert inv.shape == (h - 1, w - 1)
  assert np.all(inv[3] > 400)  # rows 3 and 4 out of phase: 255 x sqrt(3) each
  assert np.all(inv[:3] == 0) and np.all(inv[4:] == 0)
  # on a flat image the same shift invents nothing
  assert np.all(probe.invented_vertical_edges(np.full((h, w, 3), 90.0, np.float32), cmap) == 0)


def test_a_band_of_removed_columns_squeezes_texture_and_a_crop_does_not():
  probe = _probe()
  h, w = 6, 40
  stripes = np.zeros((h, w, 3), np.float32)
  stripes[:, ::2] = 255.0
  crop = _whole_columns(h, range(5, 35))
  assert np.all(probe.squeezed_texture(stripes, crop) == 0)
  # 10 seams through columns 10-19 of every row: output column 10 jumps to source 20
  cols = [c for c in range(w) if not 10 <= c < 20]
  band = _whole_columns(h, cols)
  sq = probe.squeezed_texture(stripes, band)
  assert sq.shape == (h, w - 10)
  assert np.all(sq[:, 8:12] > 0) and np.all(sq[:, :7] == 0) and np.all(sq[:, 13:] == 0)
  # the same band through a flat region squeezes nothing visible
  assert np.all(probe.squeezed_texture(np.full((h, w, 3), 90.0, np.float32), band) == 0)
