"""Map difference of the CAMERAS supplement A-2."""

from __future__ import annotations

from torch import Tensor


def map_difference(a: Tensor, b: Tensor) -> Tensor:
    """d = ‖Ψ1 − Ψ2‖₂ / ((‖Ψ1‖₂ + ‖Ψ2‖₂)/2) per map (B×H×W → B); 0 when both maps are zero.

    Example:
        >>> import torch
        >>> float(map_difference(torch.ones(1, 2, 2), torch.zeros(1, 2, 2)))
        2.0
    """
    num = (a - b).flatten(1).norm(dim=1)
    den = (a.flatten(1).norm(dim=1) + b.flatten(1).norm(dim=1)) / 2
    return num / den.clamp_min(1e-12) * (den > 0)
