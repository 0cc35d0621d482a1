"""Registry of saliency methods: one line per method."""

from __future__ import annotations

import difflib

from torch import nn

from ..core.base import SaliencyMethod
from ..core.errors import InputError
from .cameras import CAMERAS
from .extremal import ExtremalPerturbation
from .gradcam import GradCAM
from .gradient import Gradient
from .normgrad import NormGrad
from .rise import RISE

_REGISTRY: dict[str, type[SaliencyMethod]] = {
    "cameras": CAMERAS,
    "gradcam": GradCAM,
    "gradient": Gradient,
    "normgrad": NormGrad,
    "rise": RISE,
    "extremal": ExtremalPerturbation,
}


def available_methods() -> list[str]:
    """Names accepted by :func:`get_method` and ``cameras explain --method``.

    Example:
        >>> "cameras" in available_methods()
        True
    """
    return list(_REGISTRY)


def method_class(name: str) -> type[SaliencyMethod]:
    """The class registered under ``name`` (case-insensitive), or a clear InputError."""
    key = str(name).lower().strip().replace("-", "").replace("_", "")
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, list(_REGISTRY), n=3)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise InputError(f"unknown method '{name}'.{hint} Available: {', '.join(_REGISTRY)}")
    return _REGISTRY[key]


def get_method(name: str, model: nn.Module, **options) -> SaliencyMethod:
    """Build the method ``name`` on ``model`` with its options.

    Example:
        >>> import torchvision
        >>> get_method("cameras", torchvision.models.resnet18(), scales=[224, 324]).scales
        [224, 324]
    """
    return method_class(name)(model, **options)


__all__ = [
    "CAMERAS",
    "RISE",
    "ExtremalPerturbation",
    "GradCAM",
    "Gradient",
    "NormGrad",
    "available_methods",
    "get_method",
    "method_class",
]
