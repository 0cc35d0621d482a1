"""Pointing game (Zhang et al., ECCV 2016), with TorchRay's protocol (15 px tolerance)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

import torch
from torch import Tensor

from ..core.errors import InputError
from ..core.ops import gaussian_blur, resize_maps


def smooth_input_level(saliency: Tensor, fraction: float = 0.02) -> Tensor:
    """Gaussian smoothing of B×H×W input-level maps with σ = fraction·max(H, W).

    Example:
        >>> smooth_input_level(torch.rand(1, 20, 30)).shape
        torch.Size([1, 20, 30])
    """
    sigma = fraction * max(saliency.shape[-2:])
    return gaussian_blur(saliency.unsqueeze(1).float(), sigma)[:, 0]


def pointing_hit(saliency: Tensor, region: Tensor, tolerance: float = 15.0) -> bool | None:
    """One pointing-game trial: does the map's maximum fall within ``tolerance`` px of the region?

    Args:
        saliency: H×W map already at the original image size.
        region: H×W bool tensor, the union of the class's boxes or masks.
        tolerance: a hit when some region pixel lies at Euclidean distance < tolerance.

    The maximum is the first arg-max in row-major order, so a constant map points at its
    first pixel. Returns None for an empty region (the trial cannot be scored). A map with
    NaN or infinite values is refused (arg-max would point at one).

    Example:
        >>> m = torch.zeros(40, 40); m[5, 5] = 1
        >>> r = torch.zeros(40, 40, dtype=torch.bool); r[5, 19] = True
        >>> pointing_hit(m, r), pointing_hit(m, r, tolerance=14)
        (True, False)
    """
    if saliency.shape != region.shape:
        raise InputError(f"map {tuple(saliency.shape)} and region {tuple(region.shape)} differ; resize the map first")
    if not bool(torch.isfinite(saliency).all()):  # arg-max would point at a NaN
        raise InputError("the map contains NaN or infinite values; replace them (e.g. torch.nan_to_num) first")
    if not bool(region.any()):
        return None
    idx = int(torch.argmax(saliency.flatten()))
    y, x = divmod(idx, saliency.shape[1])
    r = math.ceil(tolerance)
    H, W = region.shape
    y0, y1, x0, x1 = max(0, y - r), min(H, y + r + 1), max(0, x - r), min(W, x + r + 1)
    win = region[y0:y1, x0:x1]
    yy = torch.arange(y0, y1, device=region.device).view(-1, 1) - y
    xx = torch.arange(x0, x1, device=region.device).view(1, -1) - x
    return bool((win & ((yy**2 + xx**2) < tolerance**2)).any())


def pointing_trial(saliency: Tensor, region: Tensor, input_level: bool = False, tolerance: float = 15.0) -> bool | None:
    """Resize an h×w map to the region's size (bilinear), smooth input-level maps, score it.

    A constant map (all zero, say) points at its first pixel whatever its size: resizing and
    smoothing would leave float-rounding ripples whose arg-max lands anywhere.

    Example:
        >>> r = torch.zeros(375, 500, dtype=torch.bool); r[:10, :10] = True
        >>> pointing_trial(torch.full((7, 7), 0.7), r), pointing_trial(torch.full((7, 7), 0.7), r, input_level=True)
        (True, True)
    """
    s = saliency.float()
    if bool(s.max() == s.min()):
        return pointing_hit(torch.zeros(region.shape, device=region.device), region, tolerance)
    full = resize_maps(s[None], tuple(region.shape))
    if input_level:
        full = smooth_input_level(full)
    return pointing_hit(full[0], region, tolerance)


def is_difficult(class_area: float, image_area: float, other_classes: bool) -> bool:
    """TorchRay's "difficult" subset: the class covers < 1/4 of the image and another class is present.

    Example:
        >>> is_difficult(10, 100, True), is_difficult(10, 100, False)
        (True, False)
    """
    return class_area < image_area / 4 and other_classes


def pointing_accuracy(trials: Iterable[tuple[int, bool | None]]) -> float | None:
    """Mean over classes of each class's hit rate; trials are (class, hit) and None hits are skipped.

    Example:
        >>> pointing_accuracy([(0, True), (0, False), (1, True)])
        0.75
    """
    per: dict[int, list[bool]] = defaultdict(list)
    for cls, hit in trials:
        if hit is not None:
            per[int(cls)].append(bool(hit))
    if not per:
        return None
    return sum(sum(v) / len(v) for v in per.values()) / len(per)
