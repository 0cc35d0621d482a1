"""Reading images of every format and mode; preprocessing."""

import numpy as np
import pytest
from PIL import Image

import cameras
from cameras import ImageError
from cameras.images import preprocess_size

from .conftest import rand_image


@pytest.mark.parametrize("ext", ["jpg", "png", "bmp", "tiff", "webp"])
def test_formats(tmp_path, ext):
    p = tmp_path / f"a.{ext}"
    Image.fromarray(rand_image()).save(p)
    img = cameras.load_image(p)
    assert img.mode == "RGB" and img.size == (56, 40)


def test_modes(tmp_path):
    arr = rand_image()
    Image.fromarray(arr).convert("L").save(tmp_path / "grey.png")
    Image.fromarray(arr).convert("P").save(tmp_path / "pal.png")
    rgba = np.dstack([arr, np.zeros(arr.shape[:2], np.uint8)])  # fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    grey16 = (np.linspace(0, 65535, 40 * 56).reshape(40, 56)).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    for name in ("grey.png", "pal.png", "rgba.png", "g16.png"):
        assert cameras.load_image(tmp_path / name).mode == "RGB"
    # transparent pixels are composited on white
    assert np.all(np.asarray(cameras.load_image(tmp_path / "rgba.png")) == 255)
    # 16-bit values are scaled, not clipped at 255
    g = np.asarray(cameras.load_image(tmp_path / "g16.png"))[..., 0]
    assert g[0, 0] == 0 and g[-1, -1] == 255 and 120 < g[20, 28] < 135


def test_exif_rotation(tmp_path):
    arr = rand_image(40, 56)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° CW on display
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert cameras.load_image(tmp_path / "rot.jpg").size == (40, 56)


def test_bad_files(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        cameras.load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="is a directory"):
        cameras.load_image(tmp_path)
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(ImageError, match="not an image"):
        cameras.load_image(tmp_path / "text.jpg")
    Image.fromarray(rand_image(200, 200)).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        cameras.load_image(tmp_path / "trunc.jpg")
    Image.fromarray(rand_image(5, 30)).save(tmp_path / "tiny.png")
    with pytest.raises(ImageError, match="at least 8 px"):
        cameras.load_image(tmp_path / "tiny.png")


def test_preprocess_keeps_aspect_or_squares():
    img = Image.fromarray(rand_image(300, 451))
    assert cameras.preprocess(img).shape == (1, 3, 224, 337)
    assert cameras.preprocess(img, square=True).shape == (1, 3, 224, 224)
    assert preprocess_size(451, 300, 224) == (337, 224)
    x = cameras.preprocess(Image.new("RGB", (32, 32), (124, 116, 104)), size=16)
    assert x.abs().max() < 0.02  # ImageNet mean maps to ~0
