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


def overlay(image: np.ndarray | Image.Image, saliency: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a colour-mapped saliency map over an RGB image of the same H×W.

    Args:
        image: H×W×3 uint8 array or RGB PIL image.
        saliency: H×W float map in [0, 1] (resize it to the image first).
        alpha: weight of the heat map, 0 (image only) to 1 (map only).

    Returns:
        H×W×3 uint8 array.

    Example:
        >>> overlay(np.zeros((4, 5, 3), np.uint8), np.ones((4, 5))).shape
        (4, 5, 3)
    """
    img = np.asarray(image, dtype=np.float32)
    if img.shape[:2] != saliency.shape:
        raise ValueError(f"image {img.shape[:2]} and map {saliency.shape} differ in size; resize the map first")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    heat = colorize(saliency, cmap).astype(np.float32)
    return np.clip((1 - alpha) * img + alpha * heat + 0.5, 0, 255).astype(np.uint8)


def comparison_figure(image: np.ndarray, rows: list[dict], alpha: float = 0.5, cmap: str = "jet"):
    """A figure like the CAMERAS paper's Figures 4-6: the image, then one overlay per method.

    Args:
        image: H×W×3 uint8 RGB image.
        rows: one dict per model: ``{"label": str, "cells": [(title, H×W map in [0, 1]), ...]}``.

    Returns:
        A matplotlib Figure (save it with ``fig.savefig(path)``).

    Example:
        >>> fig = comparison_figure(np.zeros((8, 8, 3), np.uint8), [{"label": "m", "cells": [("a", np.zeros((8, 8)))]}])
        >>> len(fig.axes)
        2
    """
    plt = pyplot()
    ncol = 1 + max(len(r["cells"]) for r in rows)
    h, w = image.shape[:2]
    cell = 2.6
    fig, axes = plt.subplots(len(rows), ncol, figsize=(cell * ncol, cell * h / w * len(rows) + 0.6 * len(rows)),
                             squeeze=False)
    for r, row in enumerate(rows):
        axes[r][0].imshow(image)
        axes[r][0].set_title("image", fontsize=9)
        axes[r][0].set_ylabel(row["label"], fontsize=9)
        for c, (title, sal) in enumerate(row["cells"], start=1):
            axes[r][c].imshow(overlay(image, sal, alpha, cmap))
            axes[r][c].set_title(title, fontsize=9)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
        for ax in axes[r][1 + len(row["cells"]) :]:
            ax.axis("off")
    fig.tight_layout()
    return fig
