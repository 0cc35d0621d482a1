"""Grad-CAM (Selvaraju et al., ICCV 2017)."""

from __future__ import annotations

from torch import Tensor

from ..core.cam import GradientCAM


class GradCAM(GradientCAM):
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

    def weights(self, act: Tensor, grad: Tensor) -> Tensor:
        """α = the spatial mean of the gradient, B×K×1×1.

        Example:
            >>> import torch, torchvision
            >>> g = torch.tensor([1.0, 3.0]).view(1, 1, 1, 2)
            >>> GradCAM(torchvision.models.resnet18()).weights(torch.ones(1, 1, 1, 2), g).flatten().tolist()
            [2.0]
        """
        return grad.mean((2, 3), keepdim=True)
