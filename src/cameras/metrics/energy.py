"""Energy-based pointing game (Wang et al., Score-CAM, CVPR-W 2020): the share of a map's mass on the object."""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.errors import InputError
from ..core.ops import resize_maps


def energy_in_region(saliency: Tensor, region: Tensor) -> Tensor:
    """Σ_{region} S / Σ S for B maps: 1 when all of the map lies on the object, 0 when none does.

    Maps of another size are resized bilinearly to the region's size first; maps are
    taken as they are (in [0, 1], not renormalised). An all-zero map scores 0, an empty
    region NaN (it cannot be scored).

    Args:
        saliency: B×h×w (or h×w) non-negative maps.
        region: B×H×W (or H×W) bool masks, e.g. the union of the class's boxes.

    Returns:
        B float32 tensor in [0, 1] (NaN for an empty region).

    Example:
        >>> s = torch.zeros(1, 4, 4); s[0, :2, :2] = 1.0; s[0, 3, 3] = 1.0
        >>> r = torch.zeros(1, 4, 4, dtype=torch.bool); r[0, :2, :2] = True
        >>> energy_in_region(s, r).tolist()
        [0.800000011920929]
    """
    if saliency.dim() == 2:
        saliency = saliency[None]
    if region.dim() == 2:
        region = region[None]
    if saliency.dim() != 3 or region.dim() != 3 or saliency.shape[0] != region.shape[0]:
        raise InputError(f"saliency {tuple(saliency.shape)} and region {tuple(region.shape)} must be B×h×w and B×H×W")
    s = resize_maps(saliency.float(), tuple(region.shape[-2:])).clamp_min(0)
    r = region.to(device=s.device, dtype=torch.bool)
    total = s.flatten(1).sum(1)
    inside = (s * r).flatten(1).sum(1)
    out = torch.where(total > 0, inside / total.clamp_min(1e-30), torch.zeros_like(total))
    return torch.where(r.flatten(1).any(1), out, torch.full_like(out, float("nan")))
