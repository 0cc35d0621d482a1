"""Reading image files and turning them into model input. NumPy/PIL live only here and in I/O."""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from torchvision.transforms import InterpolationMode

from .core.errors import ImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
MIN_SIDE = 8
MAX_ASPECT = 16  # longer side over shorter; beyond, the model input (and CAMERAS's scales) runs away


def _to_rgb8(img: Image.Image) -> Image.Image:
    """Convert any PIL mode (16-bit, float, palette, alpha, CMYK, grey) to 8-bit RGB."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max(initial=0) > 255 or img.mode.startswith("I;16") else 255.0
        arr = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        peak = 1.0 if arr.max(initial=0) <= 1.0 else float(arr.max())
        arr = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "RGBa"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(path: str | os.PathLike, upright: bool = True) -> Image.Image:
    """Read an image file as 8-bit RGB, upright (EXIF orientation applied) unless ``upright`` is False.

    Dataset images are read with ``upright=False``: their annotations (boxes, masks, sizes)
    are in the pixels as stored, as the benchmarks' own code reads them.

    Handles JPEG, PNG, BMP, TIFF, WebP (and GIF's first frame): grayscale, palette, RGBA
    (composited on white), 16-bit and float images. Raises :class:`ImageError` naming the
    file for a missing path, a directory, a non-image, a truncated file or an image under
    8 px on a side.

    Example:
        >>> from skimage import data; from PIL import Image
        >>> Image.fromarray(data.chelsea()).save("/tmp/_c.png")
        >>> load_image("/tmp/_c.png").size
        (451, 300)
    """
    p = Path(path)
    with _reading(p):
        with Image.open(p) as im:
            im.load()
            if upright:
                im = ImageOps.exif_transpose(im)
            rgb = _to_rgb8(im)
    _check_side(p, rgb.size)
    return rgb


def image_size(path: str | os.PathLike, upright: bool = True) -> tuple[int, int]:
    """(width, height) of an image file as :func:`load_image` returns it, from the file's header.

    The pixels are not decoded (a JPEG's or PNG's header says its size; an EXIF orientation
    of 5–8 swaps the two sides, as :func:`load_image` turns the image upright), so a folder's
    sizes are known before any image is read. A corrupt body is found when the image is
    loaded; a missing file, a non-image or an image under 8 px on a side raise the same
    :class:`ImageError` as :func:`load_image`.

    Example:
        >>> from skimage import data; from PIL import Image
        >>> Image.fromarray(data.chelsea()).save("/tmp/_c.png")
        >>> image_size("/tmp/_c.png")
        (451, 300)
    """
    p = Path(path)
    with _reading(p):
        with Image.open(p) as im:
            size = im.size
            if upright and _orientation(im, p) in (5, 6, 7, 8):  # transposed or rotated by 90°
                size = size[::-1]
    _check_side(p, size)
    return size


def _orientation(im: Image.Image, path: Path) -> int:
    """The EXIF orientation (1–8) of an image opened from ``path``, not yet decoded. A PNG's EXIF is
    its eXIf chunk (``getexif`` would decode a PNG whose chunk PIL has not seen yet): the one PIL
    read with the header, else one after the pixel data, found by walking the chunk headers."""
    if im.format == "PNG":
        raw = im.info.get("exif") or _png_exif_after_header(path)
        if not raw:
            return 1
        exif = Image.Exif()
        exif.load(raw)
        return exif.get(0x0112, 1)
    return im.getexif().get(0x0112, 1)


def _png_exif_after_header(path: Path) -> bytes | None:
    """The data of a PNG's eXIf chunk wherever it lies (PIL reads one after the pixel data only when it
    decodes them), by reading the chunk headers and skipping their data; None without one."""
    with open(path, "rb", buffering=0) as f:  # unbuffered: a seek past a chunk reads none of it
        size = os.fstat(f.fileno()).st_size
        f.seek(8)  # the signature
        while len(head := f.read(8)) == 8:
            length, kind = struct.unpack(">I4s", head)
            if length > size - f.tell():  # a corrupt length: the decoder will say so
                break
            if kind == b"eXIf":
                data = f.read(length)
                return data if len(data) == length else None
            if kind == b"IEND":
                break
            f.seek(length + 4, os.SEEK_CUR)  # the data and its CRC
    return None


@contextlib.contextmanager
def _reading(p: Path) -> Iterator[None]:
    """Checks that ``p`` is a file, and PIL's errors while reading it as one :class:`ImageError` naming it."""
    if not p.exists():
        raise ImageError(f"{p}: no such file")
    if p.is_dir():
        raise ImageError(f"{p}: is a directory, not an image file (pass the files inside it)")
    try:
        yield
    except UnidentifiedImageError:
        raise ImageError(f"{p}: not an image file PIL can read (JPEG, PNG, BMP, TIFF, WebP)") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"{p}: too many pixels to decode safely ({e}); downscale it first") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{p}: corrupt or truncated image ({e})") from None


def _check_side(p: Path, size: tuple[int, int]) -> None:
    if min(size) < MIN_SIDE:
        raise ImageError(f"{p}: image is {size[0]}×{size[1]} px; at least {MIN_SIDE} px per side is needed")


def check_aspect(height: int, width: int, where: object = None) -> None:
    """Refuse an image more than ``MAX_ASPECT`` (16) times as wide as high, or the reverse (``where``: its path,
    for the message); such a strip makes a runaway model input unless it is resized square.

    Example:
        >>> check_aspect(20, 330, "strip.png")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        cameras.core.errors.ImageError: strip.png: the image is 330×20 px, 16.5 times as wide as high (at most 16); ...
    """
    ratio = max(height, width) / max(1, min(height, width))
    if ratio > MAX_ASPECT:
        shape = "wide as high" if width >= height else "high as wide"
        raise ImageError(("" if where is None else f"{where}: ")
                         + f"the image is {width}×{height} px, {ratio:.1f} times as {shape} (at most {MAX_ASPECT}); "
                         "crop it, or resize it square (--square, square=True)")


def check_images(paths: list, progress: bool | None = None, square: bool = False) -> None:
    """Open every image once (as :func:`load_image`), so that a bad file fails before any work; without
    ``square``, a strip (:func:`check_aspect`) fails too.

    A folder of thousands of images takes a while: a progress bar shows it (``progress``:
    None on a terminal only, True always, False never).

    Example:
        >>> check_images(["missing.png"], progress=False)
        Traceback (most recent call last):
        ...
        cameras.core.errors.ImageError: missing.png: no such file
    """
    from tqdm import tqdm

    for p in tqdm(paths, desc="checking images", unit="img", leave=False,
                  disable=None if progress is None else not progress):
        img = load_image(p)
        if not square:
            check_aspect(img.height, img.width, p)


def image_to_tensor(img: Image.Image) -> Tensor:
    """8-bit RGB PIL image → 3×H×W float32 tensor in [0, 1].

    Example:
        >>> from PIL import Image
        >>> image_to_tensor(Image.new("RGB", (5, 4), (255, 0, 0))).shape
        torch.Size([3, 4, 5])
    """
    return TF.pil_to_tensor(img).float().div_(255.0)


def preprocess_size(height: int, width: int, size: int, square: bool = False, multiple: int = 1) -> tuple[int, int]:
    """Model-input (h, w): shorter side to ``size`` keeping the aspect ratio, or size×size;
    with ``multiple`` > 1 (a transformer's patch size) the longer side is rounded to a multiple of it.
    An image more than ``MAX_ASPECT`` (16) times longer than high, or the reverse, is refused
    unless ``square``: an 8×3000 strip would become a 224×84000 input, and CAMERAS's largest
    scale 924×346500.

    Example:
        >>> preprocess_size(300, 451, 224), preprocess_size(300, 451, 224, multiple=16)
        ((224, 337), (224, 336))
        >>> preprocess_size(8, 3000, 224)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        cameras.core.errors.ImageError: the image is 3000×8 px, 375.0 times as wide as high (at most 16); ...
    """
    if square:
        return size, size
    check_aspect(height, width)

    def fit(v: float) -> int:
        return max(multiple, round(v / multiple) * multiple) if multiple > 1 else max(1, round(v))

    if height <= width:
        return size, fit(width * size / height)
    return fit(height * size / width), size


def resize_image(
    img: Image.Image,
    size: int = 224,
    square: bool = False,
    interpolation: str = "bicubic",
    device: str | torch.device = "cpu",
    multiple: int = 1,
) -> Tensor:
    """Resize (antialiased) an RGB image to model size: a 1×3×h×w tensor in [0, 1], not normalised.

    ``multiple``: round the longer side to a multiple of it (see :func:`preprocess_size`).

    The same pixels :func:`preprocess` feeds the model, before normalisation (for metrics
    and attacks that work in [0, 1] space).

    Example:
        >>> from PIL import Image
        >>> resize_image(Image.new("RGB", (451, 300))).shape
        torch.Size([1, 3, 224, 337])
    """
    x = image_to_tensor(img).to(device)
    h, w = preprocess_size(x.shape[1], x.shape[2], size, square, multiple)
    mode = (InterpolationMode(interpolation) if interpolation in ("bilinear", "bicubic", "nearest")
            else InterpolationMode.BICUBIC)
    return TF.resize(x, [h, w], interpolation=mode, antialias=True).clamp_(0, 1).unsqueeze(0)


def preprocess(
    img: Image.Image,
    size: int = 224,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    square: bool = False,
    interpolation: str = "bicubic",
    device: str | torch.device = "cpu",
) -> Tensor:
    """Resize (antialiased) and normalise an RGB image into a 1×3×h×w model input.

    By default the shorter side becomes ``size`` and the aspect ratio is kept (no crop), so
    maps cover the whole image; ``square=True`` resizes to size×size.

    Example:
        >>> from PIL import Image
        >>> preprocess(Image.new("RGB", (451, 300))).shape
        torch.Size([1, 3, 224, 337])
    """
    x = resize_image(img, size, square, interpolation, device)
    return TF.normalize(x, list(mean), list(std))


def list_images(paths, recursive: bool = False) -> list[Path]:
    """Expand the given paths: files stay, directories give their image files (sorted).

    With ``recursive``, images in subfolders at any depth are included (sorted by path);
    without, subfolders are skipped (see :func:`skipped_subfolders`).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); (d / "sub").mkdir()
        >>> _ = (d / "a.jpg").write_bytes(b""), (d / "sub" / "b.png").write_bytes(b"")
        >>> [p.name for p in list_images([d])], [p.name for p in list_images([d], recursive=True)]
        (['a.jpg'], ['a.jpg', 'b.png'])
    """
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = p.rglob("*") if recursive else p.iterdir()
            out.extend(sorted(q for q in found if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file()))
        else:
            out.append(p)
    return out


def skipped_subfolders(paths, inputs: Callable[[list[Path]], list[Path]] | None = None) -> list[Path]:
    """Subfolders of the given folders that hold images but are skipped without ``recursive``.

    ``inputs`` narrows a subfolder's images to those that count (e.g. not a run's own outputs);
    a subfolder whose images it drops entirely is not listed.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); (d / "sub").mkdir()
        >>> _ = (d / "sub" / "b.png").write_bytes(b"")
        >>> [p.name for p in skipped_subfolders([d])]
        ['sub']
    """
    out = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out += [q for q in sorted(p.iterdir())
                    if q.is_dir() and (inputs or list)(list_images([q], recursive=True))]
    return out
