"""Map density ρ⁺ and ρ⁻, the CAMERAS paper's metrics (higher ρ⁺ and lower ρ⁻ are better)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..core.checks import check_images, check_maps
from ..core.errors import InputError
from ..core.guard import frozen_model
from ..core.targets import TargetLike, as_target, bind_target

RANGE_SLACK = 0.25  # maps and images this far outside [0, 1] are clamped; further out they are refused


@torch.no_grad()
@frozen_model  # batch norms neither use nor update batch statistics, dropout is off
def map_density(
    model: nn.Module, image01: Tensor, maps: Tensor, target: TargetLike, normalize: Callable[[Tensor], Tensor],
    minus: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """ρ⁺ = P(K(I ⊙ Ψ)) / mean(Ψ) and ρ⁻ = P(K(I ⊙ (1 − Ψ))) / mean(1 − Ψ), per image.

    Args:
        model: classifier on normalised input.
        image01: B×3×H×W RGB images in [0, 1] (before normalisation).
        maps: B×H×W maps Ψ in [0, 1] at the same size (soft masks, no threshold).
        target: B class ids whose softmax probability P is read, or any target of
            :mod:`cameras.targets` (its probability is read); None: each image's top-1.
        normalize: turns a [0, 1] batch into model input (e.g. ``bundle.normalize``).
        minus: False skips ρ⁻ (and its forward pass) and returns None in its place.

    Returns:
        (ρ⁺, ρ⁻), two B float tensors; a mean of 0 gives ρ = 0 instead of a division by 0.

    The model runs in eval mode (its mode and parameters restored after). Maps and images
    within ``RANGE_SLACK`` (0.25) of [0, 1] are clamped to it (a bicubic resize overshoots);
    further out, or not finite, they are refused (a raw map; an image already normalised
    would be normalised twice). The masks take the image's dtype and device.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
        >>> p, m = map_density(net, torch.rand(1, 3, 2, 2), torch.ones(1, 2, 2), torch.tensor([0]), lambda t: t)
        >>> float(m)
        0.0
    """
    check_images(image01)
    # within RANGE_SLACK of [0, 1] (a bicubic resize overshoots) values are clamped; beyond, the map is a raw one
    # or the image already normalised, and the result would mean nothing
    psi = check_maps(maps, image01, unit=True, slack=RANGE_SLACK).clamp(0, 1).unsqueeze(1).to(image01.dtype)
    lo, hi = float(image01.min()), float(image01.max())
    if lo < -RANGE_SLACK or hi > 1 + RANGE_SLACK:
        raise InputError(f"image01 must lie in [0, 1] (the image before normalisation), got values in "
                         f"{lo:.3g} … {hi:.3g}; pass the unnormalised image and let `normalize` normalise it")
    image01 = image01.clamp(0, 1)
    target = as_target(target, image01.shape[0], image01.device, tuple(image01.shape[-2:]))
    if target is None or not target.is_bound():  # the top-1 (or a predicted region) of the image as given
        target = bind_target(target, model(normalize(image01)))
    out = []
    for mask in (psi, 1 - psi) if minus else (psi,):
        output = model(normalize(image01 * mask))
        probs = target.bind(output).probability(output)
        mean = mask.flatten(1).float().mean(1)
        out.append(torch.where(mean > 0, probs / mean.clamp_min(1e-12), torch.zeros_like(probs)))
    return out[0], out[1] if minus else None
