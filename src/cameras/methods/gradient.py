"""Gradient saliency (Simonyan, Vedaldi, Zisserman, ICLR workshop 2014)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core.base import SaliencyMethod
from ..core.ops import normalize_maps
from ..core.result import SaliencyResult
from ..core.targets import Target, bind_target, logits_or_none


class Gradient(SaliencyMethod):
    """|∂y/∂I| maximised over colour channels (y: the target's score), min-max normalised per image.

    for class ids ``y`` is the pre-softmax logit; the raw (unnormalised) map is in
    ``result.extras["raw"]``.

    Example:
        >>> import torch, torchvision
        >>> res = Gradient(torchvision.models.resnet18(num_classes=4))(torch.randn(1, 3, 32, 40), target=1)
        >>> tuple(res.maps.shape)
        (1, 32, 40)
    """

    untargeted_is_top1 = True
    name = "gradient"
    uses_layer = False
    input_gradient = True

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)

    def explain_batch(self, x: Tensor, target: Target | None) -> SaliencyResult:
        xg = x.clone().requires_grad_(True)
        output = self.model(xg)
        target = bind_target(target, output)
        (grad,) = torch.autograd.grad(target.score(output).sum(), xg)
        raw = grad.float().abs().amax(1)
        return self.result(normalize_maps(raw), target, target.probability(output), logits_or_none(output),
                           extras={"raw": raw.detach()})
