"""Input checks shared by the metrics and attacks: an :class:`~cameras.core.errors.InputError` naming the problem
and the fix."""

from __future__ import annotations

import operator

import numpy as np
import torch
from torch import Tensor

from .errors import InputError


def check_images(x: Tensor) -> tuple[int, int, int, int]:
    """B, C, H, W of a B×C×H×W float tensor, or an InputError naming what is wrong.

    Example:
        >>> check_images(torch.zeros(2, 3, 4, 5))
        (2, 3, 4, 5)
        >>> check_images(torch.zeros(3, 4, 5))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        cameras.core.errors.InputError: x must be a B×C×H×W float tensor, got (3, 4, 5); add a batch dimension ...
    """
    if not isinstance(x, Tensor) or x.dim() != 4 or not x.is_floating_point():
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise InputError(f"x must be a B×C×H×W float tensor, got {got}; add a batch dimension with x[None]")
    return tuple(x.shape)


def check_maps(maps: Tensor, x: Tensor, unit: bool = False, slack: float = 0.0) -> Tensor:
    """``maps`` (B×H×W on the grid of the B×C×H×W ``x``, finite; in [0, 1] when ``unit``) on x's device.

    ``slack`` widens the [0, 1] range by that much on both sides (float rounding of resized maps).

    Example:
        >>> check_maps(torch.rand(1, 4, 5), torch.zeros(1, 3, 4, 5)).shape
        torch.Size([1, 4, 5])
        >>> check_maps(torch.rand(1, 5, 4), torch.zeros(1, 3, 4, 5))
        Traceback (most recent call last):
        ...
        cameras.core.errors.InputError: maps must be B×H×W on x's grid, expected (1, 4, 5), got (1, 5, 4)
    """
    B, _, H, W = x.shape
    if not isinstance(maps, Tensor) or tuple(maps.shape) != (B, H, W):
        got = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
        hint = "; drop the channel with maps[:, 0]" if isinstance(maps, Tensor) and maps.dim() == 4 else ""
        raise InputError(f"maps must be B×H×W on x's grid, expected {(B, H, W)}, got {got}{hint}")
    if not bool(torch.isfinite(maps).all()):
        raise InputError("maps contain NaN or infinite values; replace them (e.g. torch.nan_to_num) first")
    if unit and (float(maps.min()) < -slack or float(maps.max()) > 1 + slack):
        raise InputError("maps must lie in [0, 1]; min-max normalise them first (cameras.normalize_maps)")
    return maps.to(x.device)


def check_seed(value: int) -> int:
    """``value`` as an int when it is a whole number (as :func:`check_count`, any sign), else an InputError.

    Example:
        >>> check_seed("abc")
        Traceback (most recent call last):
        ...
        cameras.core.errors.InputError: seed must be an integer, got 'abc'
    """
    n = _integer(value)
    if n is None:
        raise InputError(f"seed must be an integer, got {value!r}")
    return n


def check_count(value: int, name: str) -> int:
    """``value`` as an int when it is a whole number ≥ 1 (an int, a NumPy integer or a float such as 7.0; not a
    bool), else an InputError.

    Example:
        >>> check_count(0, "step")
        Traceback (most recent call last):
        ...
        cameras.core.errors.InputError: step must be a positive integer, got 0
    """
    n = _integer(value)
    if n is None or n < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return n


def _integer(value) -> int | None:
    """``value`` as an int when it is a whole number (an int, a NumPy integer, or a float such as 7.0 from JSON or
    ``--set``), else None; booleans are not numbers here."""
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        return operator.index(value)
    except TypeError:
        pass
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return None
