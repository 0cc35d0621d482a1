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
    # the header alone gives the same upright size; as stored, the sides are the file's
    from cameras.images import image_size

    assert image_size(tmp_path / "rot.jpg") == (40, 56) and image_size(tmp_path / "rot.jpg", upright=False) == (56, 40)
    for orientation in range(1, 9):
        exif[0x0112] = orientation
        img.save(tmp_path / f"o{orientation}.jpg", exif=exif)
        assert image_size(tmp_path / f"o{orientation}.jpg") == cameras.load_image(tmp_path / f"o{orientation}.jpg").size


def test_input_sizes_from_headers_match_the_prepared_inputs(tmp_path):
    import torchvision

    from cameras.images import image_size

    bundles = [cameras.load_model("synthetic:cnn"), cameras.load_model("timm:vit_tiny_patch16_224", weights="random"),
               cameras.ModelBundle(torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn(
                   weights=None, weights_backbone=None, num_classes=3), "det", input_size=800, mean=(0, 0, 0),
                   std=(1, 1, 1), task="detection")]
    for h, w in ((40, 56), (300, 451), (57, 31), (20, 300)):
        Image.fromarray(rand_image(h, w)).save(tmp_path / "x.png")
        img = cameras.load_image(tmp_path / "x.png")
        for b in bundles:
            for square in (False, True):
                assert b.input_hw(*image_size(tmp_path / "x.png"), square) == tuple(b.prepare(img, square).shape[-2:])
    with pytest.raises(ImageError, match="times as wide as high"):
        bundles[0].input_hw(340, 20)
    for bad in ((-5, 10), (10, 0), (10.5, 10), (True, 10)):
        with pytest.raises(cameras.InputError, match="whole numbers of at least 1"):
            bundles[0].input_hw(*bad)


def test_header_sizes_decode_no_pixels(tmp_path, monkeypatch):
    from PIL import JpegImagePlugin, PngImagePlugin

    from cameras.images import image_size

    img = Image.fromarray(rand_image(40, 56))
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(tmp_path / "plain.png")
    img.save(tmp_path / "rot.png", exif=exif)
    img.save(tmp_path / "rot.jpg", exif=exif)
    loads = []
    for cls in (PngImagePlugin.PngImageFile, JpegImagePlugin.JpegImageFile):
        monkeypatch.setattr(cls, "load", lambda self, real=cls.load: loads.append(self.format) or real(self))
    assert [image_size(tmp_path / n) for n in ("plain.png", "rot.png", "rot.jpg")] == [(56, 40), (40, 56), (40, 56)]
    assert loads == []  # PIL's getexif would have decoded the PNGs
    assert cameras.load_image(tmp_path / "rot.png").size == (40, 56) and loads


def test_header_size_finds_a_png_exif_chunk_after_the_pixels(tmp_path, monkeypatch):
    import struct

    from PIL import PngImagePlugin

    from cameras.images import image_size

    img = Image.fromarray(rand_image(40, 56))
    exif = img.getexif()
    exif[0x0112] = 8
    img.save(tmp_path / "rot.png", exif=exif)
    data, chunks, at = (tmp_path / "rot.png").read_bytes(), [], 8
    while at < len(data):  # the file's chunks, each with its length, type and CRC
        n = struct.unpack(">I", data[at:at + 4])[0]
        chunks.append(data[at:at + 12 + n])
        at += 12 + n
    kinds = [c[4:8] for c in chunks]
    assert kinds.index(b"eXIf") < kinds.index(b"IDAT")  # PIL writes it first: move it to just before IEND
    late = [c for c in chunks if c[4:8] != b"eXIf"]
    late.insert(-1, chunks[kinds.index(b"eXIf")])
    (tmp_path / "late.png").write_bytes(data[:8] + b"".join(late))
    with Image.open(tmp_path / "late.png") as im:
        assert "exif" not in im.info  # not seen with the header
    loads = []
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load",
                        lambda self, real=PngImagePlugin.PngImageFile.load: loads.append(1) or real(self))
    assert image_size(tmp_path / "late.png") == (40, 56) and loads == []
    assert cameras.load_image(tmp_path / "late.png").size == (40, 56)  # what decoding finds agrees
    # a pixel-data length past the end of the file is not trusted (nor read): the walk stops there, so the
    # late eXIf chunk is not found and the header's size stands
    late = (tmp_path / "late.png").read_bytes()
    at = late.index(b"IDAT") - 4
    (tmp_path / "bad.png").write_bytes(late[:at] + struct.pack(">I", 2**31 - 1) + late[at + 4:])
    decoded = len(loads)
    assert image_size(tmp_path / "bad.png") == (56, 40) and len(loads) == decoded


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
    from cameras.images import image_size

    # from the header: the same refusals, and a truncated body is only found when decoded
    for name, message in (("missing.jpg", "no such file"), ("text.jpg", "not an image"), ("tiny.png", "at least 8 px")):
        with pytest.raises(ImageError, match=message):
            image_size(tmp_path / name)
    with pytest.raises(ImageError, match="is a directory"):
        image_size(tmp_path)
    assert image_size(tmp_path / "trunc.jpg") == (200, 200)


def test_preprocess_keeps_aspect_or_squares():
    img = Image.fromarray(rand_image(300, 451))
    assert cameras.preprocess(img).shape == (1, 3, 224, 337)
    assert cameras.preprocess(img, square=True).shape == (1, 3, 224, 224)
    assert preprocess_size(451, 300, 224) == (337, 224)
    x = cameras.preprocess(Image.new("RGB", (32, 32), (124, 116, 104)), size=16)
    assert x.abs().max() < 0.02  # ImageNet mean maps to ~0
