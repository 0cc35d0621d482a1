"""Gradient saliency (Simonyan, Vedaldi, Zisserman, ICLR workshop 2014)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core.base import SaliencyMethod
from ..core.ops import normalize_maps
from ..core.result import SaliencyResult


class Gradient(SaliencyMethod):
    """|∂y_ℓ/∂I| maximised over colour channels, min-max normalised per image.

    ``y_ℓ`` is the pre-softmax logit of the target; the raw (unnormalised) map is in
    ``result.extras["raw"]``.

    Example:
        >>> import torch, torchvision
        >>> res = Gradient(torchvision.models.resnet18(num_classes=4))(torch.randn(1, 3, 32, 40), target=1)
        >>> tuple(res.maps.shape)
        (1, 32, 40)
    """

    name = "gradient"
    uses_layer = False

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)

    def explain_batch(self, x: Tensor, target: Tensor | None) -> SaliencyResult:
        xg = x.clone().requires_grad_(True)
        logits = self.model(xg)
        target, probs = self.pick_targets(logits, target)
        (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), xg)
        raw = grad.float().abs().amax(1)
        return SaliencyResult(normalize_maps(raw), target, probs, self.name, extras={"raw": raw.detach()}, logits=logits.detach().float())
