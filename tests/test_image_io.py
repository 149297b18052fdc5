import numpy as np
import pytest
from PIL import Image

from dnr_jax.io import image_io


def _save(tmp_path, im, name, **kw):
  p = tmp_path / name
  im.save(p, **kw)
  return p


def test_rgb_roundtrip_and_atomic_save(tmp_path):
  arr = np.random.RandomState(0).randint(0, 256, (40, 50, 3)).astype(np.uint8)
  p = image_io.save_image(arr, tmp_path / "a.png")
  np.testing.assert_array_equal(image_io.load_image(p), arr)
  assert not list(tmp_path.glob(".tmp_*"))
  assert p.stat().st_mode & 0o044  # readable by others, like any file the user writes


def test_exif_orientation_is_applied(tmp_path):
  arr = np.zeros((40, 60, 3), np.uint8)
  arr[:, :10] = 255  # white band on the left
  im = Image.fromarray(arr)
  exif = im.getexif()
  exif[0x0112] = 6  # rotate 90 CW on display
  p = _save(tmp_path, im, "r.jpg", exif=exif, quality=95)
  out = image_io.load_image(p)
  assert out.shape == (60, 40, 3)
  assert out[:10].mean() > 200 and out[-10:].mean() < 50  # band now on top


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "I;16"])
def test_other_modes_become_rgb(tmp_path, mode):
  base = Image.fromarray(np.random.RandomState(1).randint(0, 256, (40, 40, 3)).astype(np.uint8))
  if mode == "I;16":
    im = Image.fromarray((np.arange(1600).reshape(40, 40) * 40).astype(np.uint16))
  else:
    im = base.convert(mode)
  p = _save(tmp_path, im, "x.tif" if mode in ("CMYK", "I;16") else "x.png")
  out = image_io.load_image(p)
  assert out.shape == (40, 40, 3) and out.dtype == np.uint8
  if mode == "I;16":
    assert out.max() > 200  # scaled from 16 bits, not clipped at 255 raw


def test_alpha_is_composited_over_white(tmp_path):
  rgba = np.zeros((40, 40, 4), np.uint8)
  rgba[..., 0] = 255
  rgba[:, :20, 3] = 0  # left half transparent red -> white
  rgba[:, 20:, 3] = 255
  out = image_io.load_image(_save(tmp_path, Image.fromarray(rgba), "a.png"))
  np.testing.assert_array_equal(out[0, 0], [255, 255, 255])
  np.testing.assert_array_equal(out[0, 30], [255, 0, 0])


def test_too_small_and_unreadable_images(tmp_path):
  small = _save(tmp_path, Image.new("RGB", (31, 100)), "small.png")
  with pytest.raises(image_io.ImageError, match="at least 32"):
    image_io.load_image(small)
  junk = tmp_path / "junk.png"
  junk.write_bytes(b"not an image")
  with pytest.raises(image_io.ImageError, match="cannot read"):
    image_io.load_image(junk)
  with pytest.raises(image_io.ImageError, match="no such"):
    image_io.load_image(tmp_path / "missing.png")


def test_never_overwrites_the_input(tmp_path):
  p = _save(tmp_path, Image.new("RGB", (40, 40)), "in.png")
  before = p.read_bytes()
  with pytest.raises(image_io.ImageError, match="overwrite"):
    image_io.save_image(np.zeros((40, 40, 3), np.uint8) + 9, p, protect=(p,))
  assert p.read_bytes() == before
