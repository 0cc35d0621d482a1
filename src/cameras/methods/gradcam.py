"""Grad-CAM (Selvaraju et al., ICCV 2017)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core.base import SaliencyMethod
from ..core.capture import LayerCapture
from ..core.ops import normalize_maps, resize_maps
from ..core.result import SaliencyResult


class GradCAM(SaliencyMethod):
    """α_k = spatial mean of ∂y_ℓ/∂A_k; S = ReLU(Σ_k α_k A_k), bilinearly upsampled, normalised.

    One forward pass; the gradient goes from the logit to the layer only. The same layer
    as CAMERAS by default (the last spatial feature map). The layer-resolution map before
    upsampling is in ``result.extras["low_res"]``.

    Example:
        >>> import torch, torchvision
        >>> res = GradCAM(torchvision.models.resnet18(num_classes=4))(torch.randn(2, 3, 64, 80))
        >>> tuple(res.maps.shape), res.layer
        ((2, 64, 80), 'layer4')
    """

    name = "gradcam"

    def __init__(self, model: nn.Module, layer: str | nn.Module | None = None) -> None:
        super().__init__(model, layer)

    def explain_batch(self, x: Tensor, target: Tensor | None) -> SaliencyResult:
        with LayerCapture(self.layer, self.layer_name) as cap, torch.no_grad():
            logits = self.model(x)
            act = cap.get()
        target, probs = self.pick_targets(logits, target)
        (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), act)
        alpha = grad.float().mean((2, 3), keepdim=True)
        low = torch.relu((alpha * act.detach().float()).sum(1))
        maps = normalize_maps(resize_maps(low, tuple(x.shape[-2:])))
        return SaliencyResult(maps, target, probs, self.name, self.layer_name, extras={"low_res": low}, logits=logits.detach().float())
