"""LayerCAM (Jiang, Zhang, Hou, Cheng, Wei, IEEE TIP 2021)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.cam import GradientCAM


class LayerCAM(GradientCAM):
    """S = ReLU(Σ_k ReLU(∂y/∂A_k) ⊙ A_k): every location weighted by its own positive gradient.

    Unlike Grad-CAM's one weight per channel, the weight is per location, so LayerCAM gives
    usable maps at shallow layers too (``layer="layer2"``). This is the paper's single-layer
    map; its fusion of several layers (a tanh rescaling of shallow maps) is not included.
    One forward and one backward pass to the layer; maps bilinearly upsampled and min-max
    normalised. Local weights: :class:`~cameras.MultiScale` can accumulate it over scales.

    Example:
        >>> import torch, torchvision
        >>> cam = LayerCAM(torchvision.models.resnet18(num_classes=4), layer="layer3")
        >>> tuple(cam(torch.randn(1, 3, 64, 64), target=1).extras["low_res"].shape)
        (1, 4, 4)
    """

    name = "layercam"
    local_weights = True

    def weights(self, act: Tensor, grad: Tensor) -> Tensor:
        """Per location ReLU(g), B×K×h×w.

        Example:
            >>> import torch, torchvision
            >>> g = torch.tensor([-1.0, 2.0]).view(1, 1, 1, 2)
            >>> LayerCAM(torchvision.models.resnet18()).weights(torch.ones_like(g), g).flatten().tolist()
            [0.0, 2.0]
        """
        return torch.relu(grad)
