"""Average Drop and Increase in Confidence (Chattopadhyay et al., WACV 2018)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core.checks import check_count, check_images, check_maps
from ..core.errors import InputError
from ..core.guard import frozen_model
from ..core.targets import TargetLike, as_target, bind_target


@torch.no_grad()
@frozen_model  # batch norms neither use nor update batch statistics, dropout is off
def confidence_change(model: nn.Module, x: Tensor, maps: Tensor, target: TargetLike = None,
                      batch_size: int = 32) -> dict[str, Tensor]:
    """Average Drop and Increase in Confidence of B images explained by their maps.

    Y is the target's probability on the image, O on the image multiplied by its map
    (x ⊙ S in normalised space, so pixels with S = 0 become the dataset mean colour, as
    Score-CAM and RISE mask). Per item: drop = max(0, Y − O) / Y, and increase = O > Y.
    Average Drop % is 100 · mean(drop) (lower is better), Increase in Confidence % is
    100 · mean(increase) (higher is better). ``target``: class ids (softmax probability)
    or any target of :mod:`cameras.targets` whose values are probabilities (a target whose
    clean values fall outside [0, 1] or are not finite, e.g. a raw logit, is refused); default
    each image's clean top-1.

    Args:
        model: classifier; it runs in eval mode (its mode and parameters restored after).
        x: B×C×H×W normalised images.
        maps: B×H×W saliency maps in [0, 1] on x's grid.
        target: what to score.
        batch_size: masked images per forward pass.

    Returns:
        dict of tensors on x's device: ``clean`` (Y, B), ``masked`` (O, B), ``drop`` (B, in
        [0, 1]), ``increase`` (B bool), ``average_drop`` and ``increase_in_confidence``
        (percent, scalars over the batch) and ``target`` (B label ids).

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3))
        >>> r = confidence_change(net, torch.randn(2, 3, 4, 4), torch.ones(2, 4, 4))
        >>> r["drop"].tolist(), float(r["average_drop"])  # a map of ones keeps the image
        ([0.0, 0.0], 0.0)
    """
    B = check_images(x)[0]
    maps = check_maps(maps, x, unit=True)
    batch_size = check_count(batch_size, "batch_size")
    out = model(x)
    target = bind_target(as_target(target, B, x.device, tuple(x.shape[-2:])), out)
    clean = target.probability(out).float()
    if bool((~torch.isfinite(clean) | (clean < 0) | (clean > 1)).any()):
        raise InputError("Average Drop compares probabilities, but the target's values on the clean images lie "
                         f"outside [0, 1] ({clean.min().item():.4g} … {clean.max().item():.4g}); explain a class "
                         "(softmax or sigmoid target), not a raw score")
    masked = torch.empty(B, device=x.device)
    for s in range(0, B, batch_size):
        rows = torch.arange(s, min(B, s + batch_size), device=x.device)
        inp = x[rows] * maps[rows].unsqueeze(1).to(x.dtype)
        masked[rows] = target.select(rows).probability(model(inp)).float()
    drop = torch.clamp(clean - masked, min=0) / clean.clamp_min(1e-12)
    increase = masked > clean
    return {"clean": clean, "masked": masked, "drop": drop, "increase": increase,
            "average_drop": 100 * drop.mean(), "increase_in_confidence": 100 * increase.float().mean(),
            "target": target.labels(B, x.device)}
