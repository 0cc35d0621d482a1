"""Map difference of the CAMERAS supplement A-2."""

from __future__ import annotations

from torch import Tensor

from ..core.errors import InputError


def map_difference(a: Tensor, b: Tensor) -> Tensor:
    """d = ‖Ψ1 − Ψ2‖₂ / ((‖Ψ1‖₂ + ‖Ψ2‖₂)/2) per map (B×H×W → B); 0 when both maps are zero.

    Example:
        >>> import torch
        >>> float(map_difference(torch.ones(1, 2, 2), torch.zeros(1, 2, 2)))
        2.0
    """
    if not isinstance(a, Tensor) or not isinstance(b, Tensor) or a.dim() != 3 or a.shape != b.shape:
        shapes = [tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__ for t in (a, b)]
        raise InputError(f"map_difference compares two B×H×W batches of one shape, got {shapes[0]} and {shapes[1]}; "
                         "resize one to the other (cameras.resize_maps) and add a batch dimension with m[None]")
    num = (a - b).flatten(1).norm(dim=1)
    den = (a.flatten(1).norm(dim=1) + b.flatten(1).norm(dim=1)) / 2
    return num / den.clamp_min(1e-12) * (den > 0)
