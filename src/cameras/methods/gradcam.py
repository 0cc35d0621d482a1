"""Grad-CAM (Selvaraju et al., ICCV 2017)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..core.base import SaliencyMethod
from ..core.gradients import layer_gradients
from ..core.ops import normalize_maps, resize_maps
from ..core.result import SaliencyResult
from ..core.targets import Target


class GradCAM(SaliencyMethod):
    """α_k = spatial mean of ∂y/∂A_k; S = ReLU(Σ_k α_k A_k), bilinearly upsampled, normalised.

    y is the target's score (for class ids, the pre-softmax logit). One forward pass; the
    gradient goes from the score to the layer only. The same layer
    as CAMERAS by default (the last spatial feature map). The layer-resolution map before
    upsampling is in ``result.extras["low_res"]``.

    Example:
        >>> import torch, torchvision
        >>> res = GradCAM(torchvision.models.resnet18(num_classes=4))(torch.randn(2, 3, 64, 80))
        >>> tuple(res.maps.shape), res.layer
        ((2, 64, 80), 'layer4')
    """

    name = "gradcam"

    def __init__(self, model: nn.Module, layer: str | nn.Module | None = None,
                 to_spatial: Callable[[Tensor], Tensor] | None = None) -> None:
        super().__init__(model, layer, to_spatial)

    def explain_batch(self, x: Tensor, target: Target | None) -> SaliencyResult:
        with self.capture() as cap:
            g = layer_gradients(self.model, x, [cap], target)
        act, grad = g.activations[0], g.gradients[0]
        alpha = grad.float().mean((2, 3), keepdim=True)
        low = torch.relu((alpha * act.float()).sum(1))
        maps = normalize_maps(resize_maps(low, tuple(x.shape[-2:])))
        return self.result(maps, g.target, g.probs, g.logits, extras={"low_res": low})
