"""XGrad-CAM (Fu, Hu, Dong, Guo, Gao, Li, BMVC 2020)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.cam import GradientCAM


class XGradCAM(GradientCAM):
    """w_k = Σ_ij (A_ij^k / Σ_ab A_ab^k) · ∂y/∂A_ij^k; S = ReLU(Σ_k w_k A_k).

    The weights the paper derives from its sensitivity and conservation axioms: the
    gradient averaged with the activation's own spatial distribution. A channel whose
    activations sum to zero gets weight 0. One forward and one backward pass to the layer;
    maps bilinearly upsampled and min-max normalised.

    pytorch-grad-cam adds 1e-7 to Σ_ab A_ab instead of the zero rule; the maps agree
    (Pearson ≥ 0.999, tested).

    Example:
        >>> import torch, torchvision
        >>> cam = XGradCAM(torchvision.models.resnet18(num_classes=4))
        >>> tuple(cam(torch.randn(1, 3, 64, 64), target=2).maps.shape)
        (1, 64, 64)
    """

    name = "xgradcam"

    def weights(self, act: Tensor, grad: Tensor) -> Tensor:
        """Per channel w_k (B×K×1×1) from the formula above.

        Example:
            >>> import torch, torchvision
            >>> a, g = torch.tensor([1.0, 3.0]).view(1, 1, 1, 2), torch.tensor([4.0, 8.0]).view(1, 1, 1, 2)
            >>> XGradCAM(torchvision.models.resnet18()).weights(a, g).flatten().tolist()  # (1·4 + 3·8) / 4
            [7.0]
        """
        total = act.sum((2, 3), keepdim=True)
        safe = torch.where(total != 0, total, torch.ones_like(total))
        return torch.where(total != 0, (act * grad).sum((2, 3), keepdim=True) / safe, torch.zeros_like(total))
