"""Enlarging, keep / remove masks and moving annotations (issue 9), random-init VGG."""

import dataclasses
import json
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from dnr_jax.ops import column_maps
from dnr_jax import config
from dnr_jax.resizing import deep_carving
from dnr_jax import resizing
from dnr_jax.ops import seams
from dnr_jax.nn import vgg
from dnr_jax.nn import weights as weights_lib

CFG = config.RetargetConfig(reconstruction=config.ReconstructionConfig(steps=4, chunk=4))


def _keep_box(hw, box):
  m = np.zeros(hw, bool)
  y0, y1, x0, x1 = box
  m[y0:y1, x0:x1] = True
  return m


# ----------------------------------------------------------------------------- seam insertion


def test_insertion_duplicates_each_carved_seam_once():
  rng = np.random.default_rng(0)
  energy = jnp.asarray(rng.uniform(0, 1, (12, 20)), jnp.float32)
  res = seams.carve(energy, 5, 5, seams.fixed_energy_fn)
  coords = np.asarray(seams.insertion_coords(res, 20, 25))
  removed = np.asarray(seams.removed_mask(res, 20))
  for y in range(12):
    row = coords[y]
    assert np.all(np.diff(row) > 0)  # strictly increasing: nothing dropped or repeated
    np.testing.assert_array_equal(row[np.mod(row, 1) == 0], np.arange(20))
    halves = row[np.mod(row, 1) != 0]
    np.testing.assert_array_equal(halves - 0.5, np.flatnonzero(removed[y]))


def test_column_map_of_inserted_coordinates_interpolates_values():
  kept = jnp.asarray([[0.0, 0.5, 1.0, 2.0, 2.5, 3.0]], jnp.float32)
  cmap = column_maps.from_kept(kept, 6, jnp.arange(6, dtype=jnp.float32))
  src = jnp.asarray([[10.0, 20.0, 40.0, 80.0]])
  np.testing.assert_allclose(column_maps.apply(src, cmap)[0],
                             [10, 15, 20, 40, 60, 80])


def test_enlarging_warp_stretches_and_never_shrinks_a_cell():
  mu = jnp.asarray([1.0, 5.0, 0.2, 3.0])
  widths = np.asarray(column_maps.warp_cell_widths(mu, 40.0, 56.0))
  assert widths.sum() == pytest.approx(56.0, rel=1e-5)
  assert np.all(widths >= 10.0 - 1e-4)
  assert widths[2] == widths.max() and widths[1] == pytest.approx(10.0, rel=1e-4)


def test_protected_cells_keep_their_width():
  mu = jnp.ones(8)
  prot = jnp.asarray([False, True, True, False, False, False, False, False])
  for out in (60.0, 100.0):
    widths = np.asarray(column_maps.warp_cell_widths(mu, 80.0, out, protected=prot))
    np.testing.assert_allclose(widths[1:3], 10.0, rtol=1e-5)
    assert widths.sum() == pytest.approx(out, rel=1e-5)


# ----------------------------------------------------------------------------- enlarging


@pytest.mark.slow
@pytest.mark.parametrize("out_hw", [(64, 192), (100, 80)])
def test_enlarging_shapes(random_weights, small_photo, out_hw):
  res = resizing.retarget(random_weights, small_photo, out_hw, CFG)
  assert res.output.shape == (*out_hw, 3)
  axis = "width" if out_hw[1] != 96 else "height"
  if out_hw[1] == 192:  # (the smaller enlargements are all warp at this tiny size)
    assert res.seams_removed[axis]["block1_conv2"] >= 1


@pytest.mark.slow
def test_enlarging_compiles_once_per_size(random_weights, small_photo, compilations):
  resizing.retarget(random_weights, small_photo, (64, 130), CFG)
  other = np.ascontiguousarray(small_photo[:, ::-1])
  with compilations() as seen:
    res = resizing.retarget(random_weights, other, (64, 130), CFG)
  assert res.output.shape == (64, 130, 3)
  assert seen == []


@pytest.mark.slow
def test_enlarging_full_resolution_lift_is_continuous(random_weights, photo):
  """At full resolution an inserted working column is a stretch of its block, never a
  repeat: every output column comes from a source position within the seams' reach."""
  cfg = dataclasses.replace(CFG, work_size=96)
  res = resizing.retarget(random_weights, photo, (400, 750), cfg)
  assert res.output.shape == (400, 750, 3)
  # against the input scaled, the output is no further than the seams alone could move
  # it: no row may repeat a block (repeats show up as exactly equal runs)
  row = res.output[200].astype(int)
  equal_runs = np.sum(np.all(row[1:] == row[:-1], axis=-1))
  assert equal_runs < 0.05 * row.shape[0]


# ----------------------------------------------------------------------------- keep masks


@pytest.mark.slow
@pytest.mark.parametrize("out_hw", [(64, 72), (64, 130), (80, 70)])
def test_kept_pixels_are_unchanged(random_weights, small_photo, out_hw):
  keep = _keep_box((64, 96), (16, 48, 30, 60))
  res = resizing.retarget(random_weights, small_photo, out_hw, CFG, keep=keep)
  assert res.keep_held == pytest.approx(1.0)
  moved = res.map_labels(keep.astype(np.uint8)) > 0
  assert moved.sum() == keep.sum()
  # working size == input size: the tolerance is exact (copied and held by the loop)
  np.testing.assert_array_equal(res.output[moved], small_photo[keep])


@pytest.mark.slow
def test_kept_pixels_at_full_resolution(random_weights, photo):
  """Above the working size the kept pixels are the lifted (cubic) copy at a sub-pixel
  shift plus the held reconstruction: mean error under 3 grey levels."""
  keep = _keep_box(photo.shape[:2], (120, 300, 200, 380))
  cfg = dataclasses.replace(CFG, work_size=128)
  res = resizing.retarget(random_weights, photo, (400, 480), cfg, keep=keep)
  moved = res.map_labels(keep.astype(np.uint8)) > 0
  assert abs(int(moved.sum()) - int(keep.sum())) <= 0.03 * keep.sum()
  inner = _keep_box(photo.shape[:2], (130, 290, 210, 370))
  pts = np.argwhere(inner)[::97][:, ::-1]
  out_pts = np.round(res.map_points(pts)).astype(int)
  diff = np.abs(res.output[out_pts[:, 1], out_pts[:, 0]].astype(int)
                - photo[pts[:, 1], pts[:, 0]].astype(int))
  assert diff.mean() < 3.0


def test_infeasible_keep_names_the_largest_shrink(random_weights, small_photo):
  keep = _keep_box((64, 96), (0, 64, 10, 80))
  min_h, min_w = resizing.keep_limits(keep, (64, 96), CFG)
  assert 70 <= min_w <= 80 and min_h == 32 or min_h <= 64
  with pytest.raises(resizing.KeepInfeasible, match=f"width >= {min_w} px"):
    resizing.retarget(random_weights, small_photo, (64, min_w - 4), CFG, keep=keep)


@pytest.mark.slow
def test_the_largest_feasible_shrink_holds_the_keep(random_weights, small_photo):
  keep = _keep_box((64, 96), (0, 64, 10, 80))
  _, min_w = resizing.keep_limits(keep, (64, 96), CFG)
  res = resizing.retarget(random_weights, small_photo, (64, min_w), CFG, keep=keep)
  assert res.keep_held == pytest.approx(1.0)


@pytest.mark.slow
def test_no_seam_crosses_a_forbidden_position(random_weights, small_photo):
  keep = jnp.asarray(_keep_box((64, 96), (10, 50, 20, 44)))
  feats = {k: v[0] for k, v in
           vgg.features(random_weights, jnp.asarray(small_photo, jnp.float32)[None],
                                 config.DEFAULT_LAYERS).items()}
  plan = deep_carving.plan_width(feats, 96, 60, CFG.operator, keep=keep)
  for layer, removed in plan.removed.items():
    forbid = deep_carving.forbidden_positions(keep, layer)
    assert not np.any(np.asarray(removed) & np.asarray(forbid)), layer


# ----------------------------------------------------------------------------- removal


@pytest.mark.parametrize("out_hw", [(64, 96), pytest.param((64, 110), marks=pytest.mark.slow)])
def test_remove_mask_empties_the_region(random_weights, small_photo, out_hw):
  remove = _keep_box((64, 96), (20, 44, 40, 52))
  res = resizing.retarget(random_weights, small_photo, out_hw, CFG, remove=remove)
  assert res.output.shape == (*out_hw, 3)
  assert res.removal_axis == "width"
  assert len(res.stages) == (1 if out_hw[1] == res.stages[0].out_hw[1] else 2)
  first = res.stages[0]
  assert first.out_hw[1] <= 96 - 12
  assert res.map_labels(remove.astype(np.uint8)).sum() == 0


@pytest.mark.slow
def test_keep_and_remove_together(random_weights, small_photo):
  remove = _keep_box((64, 96), (20, 44, 40, 50))
  keep = _keep_box((64, 96), (10, 50, 60, 80))
  res = resizing.retarget(random_weights, small_photo, (64, 96), CFG, keep=keep, remove=remove)
  assert res.map_labels(remove.astype(np.uint8)).sum() == 0
  assert res.keep_held == pytest.approx(1.0)


# ----------------------------------------------------------------------------- mapping


@pytest.mark.slow  # the quick tier maps points through both axes (below)
@pytest.mark.parametrize("out_hw", [(64, 140), (50, 96)])
def test_point_mapping_agrees_with_the_column_maps(random_weights, small_photo, out_hw):
  res = resizing.retarget(random_weights, small_photo, out_hw, CFG)
  coords = res.source_coords()  # output -> input
  rng = np.random.default_rng(1)
  ys, xs = rng.integers(0, out_hw[0], 40), rng.integers(0, out_hw[1], 40)
  src = coords[ys, xs]
  back = res.map_points(src)  # input -> output
  np.testing.assert_allclose(back[:, 0], xs, atol=1.0)
  np.testing.assert_allclose(back[:, 1], ys, atol=1.0)
  if out_hw[0] == 64:  # width only: the map's row coordinate is the identity
    np.testing.assert_allclose(src[:, 1], ys, atol=1e-4)
    plan_map = res.stages[0].width_src
    np.testing.assert_allclose(src[:, 0], plan_map[ys, xs], atol=1e-4)


@pytest.mark.slow
def test_labels_move_with_the_pixels(random_weights, small_photo):
  res = resizing.retarget(random_weights, small_photo, (64, 120), CFG)
  labels = np.arange(96, dtype=np.int32)[None, :].repeat(64, axis=0)
  moved = res.map_labels(labels)
  assert moved.shape == (64, 120)
  assert np.all(np.diff(moved, axis=1) >= 0)  # order is kept, nothing flips
  assert set(np.unique(moved)) == set(range(96))  # enlarging drops no column


# ----------------------------------------------------------------------------- axis order


@pytest.mark.slow
@pytest.mark.parametrize("order", ["width_first", "height_first"])
def test_both_orders_map_points_and_pixels_consistently(random_weights, small_photo, order):
  cfg = dataclasses.replace(CFG, operator=dataclasses.replace(CFG.operator, axis_order=order))
  res = resizing.retarget(random_weights, small_photo, (48, 72), cfg)
  assert res.output.shape == (48, 72, 3) and res.axis_order == order
  coords = res.source_coords()
  rng = np.random.default_rng(2)
  ys, xs = rng.integers(0, 48, 30), rng.integers(0, 72, 30)
  back = res.map_points(coords[ys, xs])
  np.testing.assert_allclose(back, np.stack([xs, ys], 1), atol=1.0)
  # the seams initialisation is the input sampled at those coordinates
  src = np.clip(np.round(coords), 0, [95, 63]).astype(int)
  near = np.abs(res.initial.astype(int) - small_photo[src[..., 1], src[..., 0]].astype(int))
  assert np.median(near) <= 8


@pytest.mark.slow
def test_auto_order_keeps_the_more_important_plan(random_weights, small_photo):
  order, scores = resizing.choose_order(random_weights, jnp.asarray(small_photo, jnp.float32),
                                        (48, 72), CFG)
  assert set(scores) == {"width_first", "height_first"}
  assert scores[order] == max(scores.values())
  res = resizing.retarget(random_weights, small_photo, (48, 72), CFG)
  assert res.axis_order == order and res.order_scores == pytest.approx(scores)
  same, none = resizing.choose_order(random_weights, jnp.asarray(small_photo, jnp.float32),
                                     (64, 72), CFG)
  assert same == "width_first" and none == {}


# ----------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory, random_weights, small_photo):
  d = tmp_path_factory.mktemp("edit_cli")
  wpath = d / "w.npz"
  weights_lib.save_npz(random_weights, wpath, {"source": "random init for tests"})
  img = d / "photo.png"
  Image.fromarray(small_photo).save(img)
  keep = d / "keep.png"
  Image.fromarray((_keep_box((64, 96), (0, 64, 10, 80)) * 255).astype(np.uint8)).save(keep)
  small = d / "small_mask.png"
  Image.fromarray(np.zeros((10, 10), np.uint8)).save(small)
  return d, wpath, img, keep, small


def _cli(*args):
  proc = subprocess.run([sys.executable, "-m", "dnr_jax.main", "--noprogress", "--steps=2",
                         "--chunk=2", *args], capture_output=True, text=True, timeout=600)
  return proc.returncode, proc.stderr


@pytest.mark.slow  # (enlarging and keep masks: in process above; the CLI's mask errors below)
def test_cli_enlarges_with_a_keep_mask_and_reports_it(cli_files):
  d, wpath, img, keep, _ = cli_files
  code, err = _cli(f"--input={img}", f"--output={d}/big.png", "--width_ratio=1.25",
                   f"--keep_mask={keep}", f"--vgg_weights={wpath}", f"--report={d}/r.json",
                   "--save_debug")
  assert code == 0, err
  assert np.asarray(Image.open(d / "big.png")).shape == (64, 120, 3)
  report = json.loads((d / "r.json").read_text())
  assert report["operations"]["width"] == "enlarge"
  assert report["masks"]["kept_pixels_copied"] == pytest.approx(1.0)
  assert (d / "big_masks.png").is_file() and (d / "big_seams_width.png").is_file()


@pytest.mark.parametrize("args,match", [
    (["--width_ratio=0.5", "--keep_mask={keep}"], r"keep_mask: .*width >= \d+ px"),
    (["--width_ratio=0.8", "--keep_mask={small}"], "10x10, the image 96x64"),
    (["--width_ratio=0.8", "--remove_mask={d}/none.png"], "no such file"),
    (["--width_ratio=0.8", "--keep_mask={keep}", "--remove_mask={keep}"], "overlap"),
])
def test_cli_mask_errors_are_one_line_and_write_nothing(cli_files, args, match):
  d, wpath, img, keep, small = cli_files
  out = d / "never.png"
  args = [a.format(keep=keep, small=small, d=d) for a in args]
  code, err = _cli(f"--input={img}", f"--output={out}", f"--vgg_weights={wpath}", *args)
  assert code == 2, err
  lines = [l for l in err.splitlines() if "error" in l]
  assert len(lines) == 1 and "Traceback" not in err, err
  import re  # pylint: disable=g-import-not-at-top
  assert re.search(match, lines[0]), err
  assert not out.exists()
