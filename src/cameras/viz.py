"""Turning maps into pictures: colour overlays and figures (matplotlib)."""

from __future__ import annotations

import numpy as np
from PIL import Image


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
