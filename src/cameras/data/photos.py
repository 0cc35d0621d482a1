"""scikit-image's bundled photos with hand-drawn object boxes, and composites with exact boxes.

The test set that needs no download: six photos whose main object has a box drawn by hand,
and composites that paste four of those objects (the cat of ``chelsea``, the cup of
``coffee``, the motorcycle, the camera on its tripod) at two sizes and random places onto
eight scikit-image backgrounds, so their box is exact. Used by the scale-rule study, the
enhanced-PGD study and ``cameras reproduce``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np


def _rgb(a: np.ndarray) -> np.ndarray:
    return np.stack([a] * 3, -1) if a.ndim == 2 else a[..., :3]


def photos() -> dict[str, tuple[np.ndarray, tuple[int, int, int, int]]]:
    """name → (H×W×3 uint8 RGB, box (x0, y0, x1, y1) in its pixels around the main object).

    The boxes were drawn by hand around what the embedded model's top-1 names: chelsea (the
    cat's head), coffee (the cup), rocket, camera (camera and tripod), motorcycle, astronaut
    (the suit).

    Example:
        >>> p = photos()
        >>> list(p)[:2], p["chelsea"][0].shape
        (['chelsea', 'coffee'], (300, 451, 3))
    """
    from skimage import data

    return {
        "chelsea": (data.chelsea(), (60, 1, 400, 300)),
        "coffee": (data.coffee(), (150, 30, 470, 240)),
        "rocket": (data.rocket(), (300, 125, 352, 415)),
        "camera": (_rgb(data.camera()), (215, 90, 400, 512)),
        "motorcycle": (data.stereo_motorcycle()[0], (70, 160, 620, 470)),
        "astronaut": (data.astronaut(), (0, 240, 450, 512)),
    }


def _objects():
    """object → (source photo, its box, the embedded model's classes that name it)."""
    from skimage import data

    return {
        "cat": (data.chelsea(), (60, 1, 400, 300), {281, 282, 285}),
        "cup": (data.coffee(), (150, 30, 470, 240), {967, 968, 504}),
        "motorcycle": (data.stereo_motorcycle()[0], (70, 160, 620, 470), {535, 479, 665, 670}),
        "tripod": (_rgb(data.camera()), (215, 90, 400, 512), {872, 759}),
    }


def _backgrounds():
    from skimage import data

    return {
        "brick": lambda: _rgb(data.brick()), "grass": lambda: _rgb(data.grass()),
        "gravel": lambda: _rgb(data.gravel()), "moon": lambda: _rgb(data.moon()),
        "hubble": lambda: data.hubble_deep_field()[:600, :800], "text": lambda: _rgb(data.text()),
        "page": lambda: _rgb(data.page()), "coins": lambda: _rgb(data.coins()),
    }


def composites(seed: int = 0) -> Iterator[tuple[str, np.ndarray, tuple[int, int, int, int], set[int]]]:
    """Yield 64 (name, H×W×3 uint8 RGB, box (x0, y0, x1, y1), the object's ImageNet class ids).

    Each of 4 objects at 0.45 and 0.6 of the background's shorter side, at a random place
    (``seed``), on each of 8 backgrounds resized to 512×384 (landscape) or 384×512
    (portrait), alternately. Keep those whose top-1 is one of the object's classes when the
    map of the top-1 should point at the object.

    Example:
        >>> name, rgb, box, classes = next(composites())
        >>> name, rgb.shape, 285 in classes
        ('cat@brick-0.45', (384, 512, 3), True)
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    k = 0
    objects = _objects()
    for bname, make in _backgrounds().items():
        for oname, (src, (x0, y0, x1, y1), classes) in objects.items():
            for frac in (0.45, 0.6):
                W, H = (512, 384) if k % 2 == 0 else (384, 512)
                k += 1
                bg = np.asarray(Image.fromarray(np.ascontiguousarray(make()).astype(np.uint8)).resize((W, H)))
                obj = Image.fromarray(np.ascontiguousarray(src[y0:y1, x0:x1]))
                scale = frac * min(W, H) / max(obj.size)
                ow, oh = max(1, round(obj.width * scale)), max(1, round(obj.height * scale))
                obj = obj.resize((ow, oh), Image.BICUBIC)
                px, py = int(rng.integers(0, W - ow + 1)), int(rng.integers(0, H - oh + 1))
                out = bg.copy()
                out[py:py + oh, px:px + ow] = np.asarray(obj)
                yield f"{oname}@{bname}-{frac}", out, (px, py, px + ow, py + oh), classes


def write_photos(out_dir: str | Path, names=None) -> list[tuple[Path, tuple[int, int, int, int]]]:
    """Write the photos (all, or ``names``) as ``<name>.png`` and return (path, box) pairs.

    Example:
        >>> import tempfile
        >>> [(p.name, b) for p, b in write_photos(tempfile.mkdtemp(), ["coffee"])]
        [('coffee.png', (150, 30, 470, 240))]
    """
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    got = photos()
    names = list(got) if names is None else list(names)
    unknown = [n for n in names if n not in got]
    if unknown:
        from ..core.errors import InputError
        raise InputError(f"unknown sample photo(s) {', '.join(unknown)}; choose from {', '.join(got)}")
    res = []
    for n in names:
        rgb, box = got[n]
        path = out / f"{n}.png"
        if not path.exists():
            Image.fromarray(np.ascontiguousarray(rgb)).save(path)
        res.append((path, box))
    return res
