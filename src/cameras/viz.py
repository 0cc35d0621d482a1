"""Turning maps into pictures: colour overlays and figures (matplotlib)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed); the one set-up place.

    Example:
        >>> plt = pyplot()
        >>> plt.get_backend().lower()
        'agg'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def encode_png(rgb: np.ndarray) -> bytes:
    """An H×W×3 uint8 image (e.g. an :func:`overlay`) as PNG bytes.

    Example:
        >>> encode_png(np.zeros((2, 3, 3), np.uint8))[:4]
        b'\\x89PNG'
    """
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def figure_png(fig, dpi: int = 100) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it (files are written by :mod:`cameras.io`).

    Example:
        >>> fig = pyplot().figure(figsize=(1, 1))
        >>> figure_png(fig)[:4]
        b'\\x89PNG'
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    pyplot().close(fig)
    return buf.getvalue()


def colorize(saliency: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """H×W map in [0, 1] → H×W×3 uint8 colours from a matplotlib colormap.

    Example:
        >>> colorize(np.zeros((2, 3))).shape
        (2, 3, 3)
    """
    import matplotlib

    rgba = matplotlib.colormaps[cmap](np.clip(np.nan_to_num(saliency), 0.0, 1.0))
    return (rgba[..., :3] * 255.0 + 0.5).astype(np.uint8)


DEFAULT_FADE = 0.15  # saliency below this fades into the photo in `cameras explain`'s overlays


def overlay(image: np.ndarray | Image.Image, saliency: np.ndarray, alpha: float = 0.5, cmap: str = "jet",
            fade: float = 0.0) -> np.ndarray:
    """Blend a colour-mapped saliency map over an RGB image of the same H×W.

    Args:
        image: H×W×3 uint8 array or RGB PIL image.
        saliency: H×W float map in [0, 1] (resize it to the image first).
        alpha: weight of the heat map, 0 (image only) to 1 (map only).
        cmap: a matplotlib colour map name.
        fade: with ``fade`` > 0, a pixel's weight is ``alpha · min(1, s / fade)``, so zero
            saliency leaves the photo untinted and the colour comes in up to ``fade``; 0 gives
            every pixel the weight ``alpha``.

    Returns:
        H×W×3 uint8 array.

    Example:
        >>> overlay(np.zeros((4, 5, 3), np.uint8), np.ones((4, 5))).shape
        (4, 5, 3)
        >>> int(overlay(np.full((1, 1, 3), 200, np.uint8), np.zeros((1, 1)), fade=0.2).max())  # untinted
        200
    """
    img = np.asarray(image, dtype=np.float32)
    if img.shape[:2] != saliency.shape:
        raise ValueError(f"image {img.shape[:2]} and map {saliency.shape} differ in size; resize the map first")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if not 0.0 <= fade < 1.0:
        raise ValueError(f"fade must lie in [0, 1), got {fade}")
    heat = colorize(saliency, cmap).astype(np.float32)
    a = alpha if fade == 0 else alpha * np.clip(np.nan_to_num(saliency) / fade, 0.0, 1.0)[..., None]
    return np.clip((1 - a) * img + a * heat + 0.5, 0, 255).astype(np.uint8)


def outline(image: np.ndarray, boxes: list | None = None, mask: np.ndarray | None = None,
            colours: list[tuple[int, int, int]] | None = None, width: int | None = None) -> np.ndarray:
    """Draw boxes and a region's boundary over an RGB image: what a segmentation or detection map explains.

    Args:
        image: H×W×3 uint8. boxes: (x0, y0, x1, y1) in the image's pixels (x1/y1
            exclusive); the first is drawn white, further ones in ``colours`` (default:
            yellow, then cyan). mask: H×W bool region whose boundary is drawn white.
        width: line width in pixels (default: 1 per 150 pixels of the shorter side, at least 1).

    Returns:
        A new H×W×3 uint8 array.

    Example:
        >>> out = outline(np.zeros((10, 10, 3), np.uint8), boxes=[(2, 2, 8, 8)], width=1)
        >>> out[2, 5].tolist(), out[5, 5].tolist()
        ([255, 255, 255], [0, 0, 0])
    """
    from skimage.segmentation import find_boundaries

    out = np.array(image, dtype=np.uint8, copy=True)
    if width is None:
        width = max(1, round(min(out.shape[:2]) / 150))
    if mask is not None:
        m = np.asarray(mask, bool)
        if m.shape != out.shape[:2]:
            raise ValueError(f"mask {m.shape} and image {out.shape[:2]} differ in size")
        edge = find_boundaries(m, mode="inner")
        if width > 1:
            from scipy.ndimage import binary_dilation

            edge = binary_dilation(edge, iterations=width - 1) & m
        out[edge] = 255
    if boxes:
        draw_on = Image.fromarray(out)
        from PIL import ImageDraw

        draw = ImageDraw.Draw(draw_on)
        palette = colours or [(255, 255, 255), (255, 220, 0), (0, 230, 255)]
        for i, b in enumerate(boxes):
            x0, y0, x1, y1 = (float(v) for v in b)
            draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=palette[i % len(palette)], width=width)
        out = np.asarray(draw_on).copy()
    return out


def check_cmap(name: str) -> str:
    """``name`` if matplotlib knows the colour map, else a ValueError listing a few.

    Example:
        >>> check_cmap("viridis")
        'viridis'
    """
    import matplotlib

    if name not in matplotlib.colormaps:
        raise ValueError(f"unknown colour map '{name}'; e.g. jet, turbo, inferno, viridis, magma")
    return name


def explanation_figure(image: np.ndarray, saliency: np.ndarray, title: str, alpha: float = 0.5, cmap: str = "jet",
                       fade: float = DEFAULT_FADE, dpi: int = 100, shapes: dict | None = None):
    """One explained image for a person: the overlay at about the image's pixel size, a title and a colour bar.

    Args:
        image: H×W×3 uint8 RGB image. saliency: H×W map in [0, 1]. title: e.g. class,
            probability, method and scales. alpha, cmap, fade: as :func:`overlay`.
        shapes: ``{"boxes": [...], "mask": H×W bool}`` drawn over the overlay (:func:`outline`):
            the region or box a segmentation or detection map explains.

    Returns:
        A matplotlib Figure (render it with :func:`figure_png`).

    Example:
        >>> fig = explanation_figure(np.zeros((40, 60, 3), np.uint8), np.zeros((40, 60)), "cat")
        >>> len(fig.axes)  # the image and its colour bar
        2
    """
    import matplotlib

    plt = pyplot()
    h, w = image.shape[:2]
    fig = plt.figure(figsize=(w / dpi + 1.1, h / dpi + 0.55), dpi=dpi)
    ax = fig.add_axes((0.02, 0.02, w / dpi / (w / dpi + 1.1), h / dpi / (h / dpi + 0.55)))
    shown = overlay(image, saliency, alpha, cmap, fade)
    if shapes:
        shown = outline(shown, shapes.get("boxes"), shapes.get("mask"))
    ax.imshow(shown)
    ax.set_axis_off()
    fig.suptitle(title, fontsize=9, y=1 - 0.12 / (h / dpi + 0.55))
    sm = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, 1), cmap=cmap)
    cax = fig.add_axes((0.04 + w / dpi / (w / dpi + 1.1), 0.1, 0.15 / (w / dpi + 1.1), 0.7))
    fig.colorbar(sm, cax=cax, label="saliency")
    return fig


def file_label(name: str) -> str:
    """A class name as a file-name part: lower case, words joined by ``_``.

    Example:
        >>> file_label("Egyptian cat")
        'egyptian_cat'
    """
    import re

    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def comparison_figure(image: np.ndarray, rows: list[dict], alpha: float = 0.5, cmap: str = "jet",
                      max_columns: int = 8):
    """A figure like the CAMERAS paper's Figures 4-6: the image, then one overlay per method.

    Args:
        image: H×W×3 uint8 RGB image.
        rows: one dict per model: ``{"label": str, "cells": [(title, H×W map in [0, 1]), ...]}``.
        max_columns: panels per line; a model with more methods continues on further lines
            (the image column left empty there).

    Returns:
        A matplotlib Figure (save it with ``fig.savefig(path)``).

    Example:
        >>> fig = comparison_figure(np.zeros((8, 8, 3), np.uint8), [{"label": "m", "cells": [("a", np.zeros((8, 8)))]}])
        >>> len(fig.axes)
        2
    """
    plt = pyplot()
    per_line = max(1, max_columns - 1)
    ncol = 1 + min(per_line, max(len(r["cells"]) for r in rows))
    lines = [(r, k) for r, row in enumerate(rows) for k in range(max(1, -(-len(row["cells"]) // per_line)))]
    h, w = image.shape[:2]
    cell = 4.2  # inches at the 100 dpi figures are saved with: every panel at least 420 px wide
    fig, axes = plt.subplots(len(lines), ncol, figsize=(cell * ncol, cell * h / w * len(lines) + 0.6 * len(lines)),
                             squeeze=False)
    for i, (r, k) in enumerate(lines):
        row = rows[r]
        if k == 0:
            axes[i][0].imshow(image)
            axes[i][0].set_title("image", fontsize=9)
            axes[i][0].set_ylabel(row["label"], fontsize=9)
        cells = row["cells"][k * per_line:(k + 1) * per_line]
        for c, (title, sal) in enumerate(cells, start=1):
            axes[i][c].imshow(overlay(image, sal, alpha, cmap))
            axes[i][c].set_title(title, fontsize=9)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
        for ax in axes[i][1 + len(cells):]:
            ax.axis("off")
        if k > 0:
            axes[i][0].axis("off")
    fig.tight_layout()
    return fig


def zero_map_note(method: str, name: str, layer: str | None,
                  fix: str = "another --layer or method may show some", facts: dict | None = None) -> str:
    """The warning for a map that is zero everywhere (its overlay shows the photo alone); ``fix`` ends it.
    ``facts`` are the image's target facts: a box no detection matches, or an empty region, is the
    reason then (a zero map by definition), not missing evidence.

    Example:
        >>> zero_map_note("gradcam", "tabby", "layer4")[:44]
        'the gradcam map for tabby is all zero: at no'
        >>> zero_map_note("gradcam", "dog", "x", facts={"matched": False})
        'the gradcam map for dog is all zero: no detection of it matches the box'
        >>> zero_map_note("cameras", "person", "x", facts={"empty": True})[-54:]
        'empty (no pixel given, or none predicted as the class)'
    """
    head = f"the {method} map for {name} is all zero"
    if (facts or {}).get("matched") is False:
        return f"{head}: no detection of it matches the box"
    if (facts or {}).get("empty") is True:
        return f"{head}: its region is empty (no pixel given, or none predicted as the class)"
    where = f" at {layer}" if layer else ""
    return (f"{head}: at no location{where} does the method find positive evidence for the class (common with "
            f"untrained weights; a map that overflowed to NaN or inf, as fp16 can, is shown as zero too); {fix}")
