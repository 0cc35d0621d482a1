"""Insertion and deletion curves and their areas (Petsiuk et al., BMVC 2018)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..core.checks import check_count, check_images, check_maps
from ..core.guard import frozen_model
from ..core.ops import gaussian_blur
from ..core.targets import TargetLike, as_target, bind_target


def auc(curve: Tensor) -> Tensor:
    """Trapezoid area under curves sampled evenly over [0, 1] (last dim).

    Insertion/deletion curves are taken as evenly spaced, as RISE's code takes them: exact
    when H·W is a multiple of the step; otherwise the last point lies less than a step after
    the one before and its interval still weighs as a full one.

    Example:
        >>> float(auc(torch.tensor([0.0, 1.0])))
        0.5
    """
    n = curve.shape[-1] - 1
    return (curve[..., :-1] + curve[..., 1:]).sum(-1) / (2 * n)


@torch.no_grad()
@frozen_model  # batch norms neither use nor update batch statistics, dropout is off
def insertion_deletion(
    model: nn.Module, x: Tensor, maps: Tensor, step: int = 224, batch_size: int = 32, target: TargetLike = None
) -> dict[str, Tensor]:
    """Insertion and deletion curves of B normalised images ordered by their maps.

    Pixels are taken in decreasing saliency. Deletion sets ``step`` pixels per step to 0 (in
    normalised space) starting from the image; insertion starts from an 11×11, σ = 5
    Gaussian blur of the image and copies original pixels in. The score is the softmax
    probability of ``target`` (class ids; default: the clean top-1), or the probability of
    any target of :mod:`cameras.targets`. Curves have ⌈HW/step⌉ + 1 points
    over the fraction of pixels in [0, 1]; AUCs use the trapezoid rule. The model runs in
    eval mode (its mode and parameters restored after). Maps must be B×H×W (or B×1×H×W) on
    x's grid, finite, and on any device (they are moved to x's).

    Returns:
        dict with ``insertion``, ``deletion`` (B×(n+1)), ``insertion_auc``,
        ``deletion_auc`` (B), and ``target`` (B label ids, -1 for a target without labels).

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3))
        >>> r = insertion_deletion(net, torch.randn(1, 3, 4, 4), torch.rand(1, 4, 4), step=4)
        >>> tuple(r["deletion"].shape)
        (1, 5)
    """
    B, C, H, W = check_images(x)
    if isinstance(maps, Tensor) and maps.dim() == 4 and maps.shape[1] == 1:  # B×1×H×W, as earlier versions took
        maps = maps[:, 0]
    maps = check_maps(maps, x)
    step, batch_size = check_count(step, "step"), check_count(batch_size, "batch_size")
    target = bind_target(as_target(target, B, x.device, (H, W)), model(x))
    n_steps = math.ceil(H * W / step)
    order = maps.flatten(1).argsort(dim=1, descending=True, stable=True)  # B×HW
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(H * W, device=x.device).expand(B, -1))
    blurred = gaussian_blur(x, 5.0, radius=5)  # 11×11, σ = 5
    curves = {}
    for kind, start, finish in (("deletion", x, torch.zeros_like(x)), ("insertion", blurred, x)):
        scores = torch.empty(B, n_steps + 1, device=x.device)
        ks = torch.arange(n_steps + 1, device=x.device) * step  # pixels changed at each point
        for b in range(B):
            for s0 in range(0, n_steps + 1, batch_size):
                kk = ks[s0 : s0 + batch_size]
                changed = (rank[b].view(1, H, W) < kk.view(-1, 1, 1)).unsqueeze(1)  # n×1×H×W
                inp = torch.where(changed, finish[b : b + 1], start[b : b + 1])
                rows = target.select(torch.full((len(kk),), b, dtype=torch.long, device=x.device))
                p = rows.probability(model(inp))
                scores[b, s0 : s0 + len(kk)] = p
        curves[kind] = scores
    return {
        "insertion": curves["insertion"],
        "deletion": curves["deletion"],
        "insertion_auc": auc(curves["insertion"]),
        "deletion_auc": auc(curves["deletion"]),
        "target": target.labels(B, x.device),
    }
