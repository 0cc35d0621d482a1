"""A synthetic localisation task with known object positions: one coloured shape on clutter.

Each image holds one object whose class is its colour *and* shape (a red square, a green
disc, a blue triangle or a yellow cross), pasted at a random place and size on a random
background of smooth colour noise with grey distractor shapes. The object's box is exact,
so a saliency map can be scored against it (pointing game, energy inside the box) with no
human annotation. :func:`write_synthetic` writes a set as an ImageNet-style folder that
``cameras evaluate --format imagenet`` reads with the models ``synthetic:vit`` and
``synthetic:cnn`` (trained on this task; see ``scripts/train_synthetic.py``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..core.errors import InputError

CLASSES: tuple[str, ...] = ("red_square", "green_disc", "blue_triangle", "yellow_cross")
_COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230), "yellow": (235, 215, 40)}


def _shape_mask(kind: str, s: int) -> np.ndarray:
    """s×s bool mask of a shape filling its box."""
    yy, xx = np.mgrid[:s, :s] + 0.5
    c = s / 2
    if kind == "square":
        return np.ones((s, s), bool)
    if kind == "disc":
        return (yy - c) ** 2 + (xx - c) ** 2 <= c * c
    if kind == "triangle":  # apex at the top, base at the bottom
        return np.abs(xx - c) <= yy / 2
    bar = max(1, s // 3)  # cross
    return (np.abs(yy - c) <= bar / 2) | (np.abs(xx - c) <= bar / 2)


def _clutter(rng: np.random.Generator, size: int, min_frac: float, max_frac: float) -> np.ndarray:
    """size×size×3 float background: smooth colour noise with two grey distractor shapes."""
    # background: smooth colour noise (a coarse random grid, upsampled) around a random mid tone
    grid = rng.uniform(60, 190, size=(4, 4, 3))
    ys = np.linspace(0, 3, size)
    xs = np.linspace(0, 3, size)
    y0i, x0i = np.floor(ys).astype(int).clip(0, 2), np.floor(xs).astype(int).clip(0, 2)
    fy, fx = (ys - y0i)[:, None, None], (xs - x0i)[None, :, None]
    g = grid
    img = ((1 - fy) * (1 - fx) * g[y0i][:, x0i] + (1 - fy) * fx * g[y0i][:, x0i + 1]
           + fy * (1 - fx) * g[y0i + 1][:, x0i] + fy * fx * g[y0i + 1][:, x0i + 1])
    img = img + rng.normal(0, 8, size=img.shape)
    kinds = ("square", "disc", "triangle", "cross")
    for _ in range(2):  # grey distractors
        s = int(rng.integers(max(3, int(size * min_frac * 0.7)), max(4, int(size * max_frac)) + 1))
        x, y = (int(v) for v in rng.integers(0, size - s + 1, size=2))
        m = _shape_mask(kinds[int(rng.integers(4))], s)
        img[y:y + s, x:x + s][m] = rng.uniform(70, 180)
    return img


def synthetic_image(rng: np.random.Generator, size: int = 64, label: int | None = None,
                    min_frac: float = 0.2, max_frac: float = 0.35) -> tuple[np.ndarray, int, tuple[int, int, int, int]]:
    """One image: (size×size×3 uint8 RGB, class id, box (x0, y0, x1, y1) in pixels, x1/y1 exclusive).

    The object's side is ``min_frac``–``max_frac`` of the image; two grey distractor shapes
    of random kinds may overlap the background but are drawn under the object.

    Example:
        >>> img, label, box = synthetic_image(np.random.default_rng(0), 64, label=1)
        >>> img.shape, CLASSES[label], box[2] - box[0] == box[3] - box[1]
        ((64, 64, 3), 'green_disc', True)
    """
    if label is None:
        label = int(rng.integers(len(CLASSES)))
    img = _clutter(rng, size, min_frac, max_frac)
    colour, kind = CLASSES[label].split("_")
    s = int(rng.integers(int(size * min_frac), int(size * max_frac) + 1))
    x, y = (int(v) for v in rng.integers(0, size - s + 1, size=2))
    m = _shape_mask(kind, s)
    shade = np.array(_COLOURS[colour], float) * rng.uniform(0.85, 1.1)
    img[y:y + s, x:x + s][m] = shade
    return np.clip(img, 0, 255).astype(np.uint8), label, (x, y, x + s, y + s)


def synthetic_scene(rng: np.random.Generator, size: int = 64, labels: tuple[int, ...] | None = None,
                    min_frac: float = 0.2, max_frac: float = 0.35) -> tuple[np.ndarray, np.ndarray, list, list]:
    """An image with several objects side by side and its per-pixel labels, for segmentation.

    The image is cut into ``len(labels)`` vertical strips (default: two objects of random
    classes) and one object is pasted in each, on the same clutter as
    :func:`synthetic_image`. Returns (size×size×3 uint8 RGB, size×size uint8 label map with
    0 for background and 1 + class id on each object's pixels, the class ids, the boxes
    (x0, y0, x1, y1), x1/y1 exclusive).

    Example:
        >>> img, seg, labels, boxes = synthetic_scene(np.random.default_rng(0), 64, labels=(0, 0))
        >>> img.shape, seg.max(), boxes[0][2] <= 32 <= boxes[1][0]
        ((64, 64, 3), np.uint8(1), True)
    """
    if labels is None:
        labels = tuple(int(v) for v in rng.integers(len(CLASSES), size=2))
    img = _clutter(rng, size, min_frac, max_frac)
    seg = np.zeros((size, size), np.uint8)
    boxes = []
    strip = size // len(labels)
    for i, label in enumerate(labels):
        colour, kind = CLASSES[label].split("_")
        s = int(rng.integers(int(size * min_frac), int(size * max_frac) + 1))
        s = min(s, strip)
        x = i * strip + int(rng.integers(0, strip - s + 1))
        y = int(rng.integers(0, size - s + 1))
        m = _shape_mask(kind, s)
        img[y:y + s, x:x + s][m] = np.array(_COLOURS[colour], float) * rng.uniform(0.85, 1.1)
        seg[y:y + s, x:x + s][m] = 1 + label
        boxes.append((x, y, x + s, y + s))
    return np.clip(img, 0, 255).astype(np.uint8), seg, list(labels), boxes


def synthetic_batch(n: int, seed: int = 0, size: int = 64):
    """``n`` images as arrays: (n×size×size×3 uint8, n labels, n×4 boxes), balanced over the classes.

    Example:
        >>> imgs, labels, boxes = synthetic_batch(8, seed=1)
        >>> imgs.shape, sorted(set(labels.tolist()))
        ((8, 64, 64, 3), [0, 1, 2, 3])
    """
    rng = np.random.default_rng(seed)
    out = [synthetic_image(rng, size, label=i % len(CLASSES)) for i in range(n)]
    return (np.stack([o[0] for o in out]), np.array([o[1] for o in out]), np.array([o[2] for o in out]))


def write_synthetic(out_dir: str | Path, n: int = 200, seed: int = 1, size: int = 64,
                    progress: bool | None = None) -> Path:
    """Write ``n`` images as an ImageNet-style localisation folder and return it.

    ``out_dir`` gets ``<class>_<i>.png`` files, ``LOC_val_solution.csv`` (``ImageId,
    PredictionString`` with ``class x0 y0 x1 y1``, x1/y1 inclusive, as ImageNet's) and
    ``classes.txt``. Files already there are overwritten; nothing else is touched. A folder
    whose ``LOC_val_solution.csv`` lists images this set would not write (a larger earlier
    set) is refused before anything is written: those images would be left without boxes. Images
    are made and written one at a time (the same images as :func:`synthetic_batch`), with a
    progress bar (``progress``: None on a terminal only); the CSV and ``classes.txt`` come
    last and atomically, so an interrupted run leaves no annotation file to trust.

    Example:
        >>> import tempfile
        >>> d = write_synthetic(tempfile.mkdtemp(), n=4)
        >>> sorted(p.name for p in d.iterdir())[:2]
        ['LOC_val_solution.csv', 'blue_triangle_0002.png']
    """
    import io

    from PIL import Image
    from tqdm import tqdm

    from ..io import write_files_atomically

    out = Path(out_dir)
    stems = [f"{CLASSES[i % len(CLASSES)]}_{i:04d}" for i in range(n)]  # as written below
    try:
        with open(out / "LOC_val_solution.csv", newline="") as f:
            earlier = {row[0] for row in list(csv.reader(f))[1:] if row}
    except (FileNotFoundError, NotADirectoryError):
        earlier = set()
    except (UnicodeDecodeError, csv.Error, OSError) as e:
        raise InputError(f"{out / 'LOC_val_solution.csv'} is there but cannot be read ({e}); choose an empty "
                         "folder for the synthetic set") from None
    left = earlier - set(stems)
    if left:
        raise InputError(f"{out} holds a set of {len(earlier)} images (LOC_val_solution.csv); writing {n} would leave "
                         f"{len(left)} of them without boxes: choose an empty folder, or delete that one first")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in tqdm(range(n), desc="synthetic", unit="img", disable=None if progress is None else not progress):
        img, label, (x0, y0, x1, y1) = synthetic_image(rng, size, label=i % len(CLASSES))
        stem = stems[i]
        Image.fromarray(img).save(out / f"{stem}.png")
        rows.append((stem, f"{CLASSES[label]} {x0} {y0} {x1 - 1} {y1 - 1}"))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["ImageId", "PredictionString"])
    w.writerows(rows)
    write_files_atomically({out / "LOC_val_solution.csv": buf.getvalue().encode(),
                            out / "classes.txt": ("\n".join(CLASSES) + "\n").encode()})
    return out
