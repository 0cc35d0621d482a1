"""HiResCAM (Draelos & Carin, 2020)."""

from __future__ import annotations

from torch import Tensor

from ..core.cam import GradientCAM


class HiResCAM(GradientCAM):
    """S = ReLU(Σ_k ∂y/∂A_k ⊙ A_k): the element-wise product of gradients and activations.

    With a head that ends in global average pooling and a linear layer, the gradient is
    constant over space and HiResCAM equals Grad-CAM; with other heads (flattening,
    attention) HiResCAM follows the locations the score actually used. The paper leaves
    the final ReLU optional; it is applied here as in every CAM of this package (and in
    pytorch-grad-cam). One forward and one backward pass to the layer; maps bilinearly
    upsampled and min-max normalised. Local weights: ``MultiScale(HiResCAM(model))`` is
    CAMERAS's accumulation, and equals :class:`~cameras.CAMERAS` on the same scales.

    Example:
        >>> import torch, torchvision
        >>> cam = HiResCAM(torchvision.models.resnet18(num_classes=4))
        >>> tuple(cam(torch.randn(1, 3, 64, 64), target=1).maps.shape)
        (1, 64, 64)
    """

    name = "hirescam"
    local_weights = True

    def weights(self, act: Tensor, grad: Tensor) -> Tensor:
        """Per location g itself, B×K×h×w.

        Example:
            >>> import torch, torchvision
            >>> g = torch.tensor([-1.0, 2.0]).view(1, 1, 1, 2)
            >>> HiResCAM(torchvision.models.resnet18()).weights(torch.ones_like(g), g).flatten().tolist()
            [-1.0, 2.0]
        """
        return grad
