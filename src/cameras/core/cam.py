"""The template of the gradient CAM family: one forward, one backward to the layer, a weighted channel sum.

Every gradient CAM (Grad-CAM, Grad-CAM++, XGrad-CAM, LayerCAM, HiResCAM) computes, at the
explained layer with activations A (B×K×h×w) and gradients G = ∂y/∂A of the target's score
y, a weight tensor W (B×K×1×1 per channel, or B×K×h×w per location) and the map

    S = normalise(upsample(ReLU(Σ_k W_k ⊙ A_k)))

upsampled bilinearly (``align_corners=False``) to the input size and min-max normalised per
image (an all-zero map stays zero). A method is one function ``weights(A, G) -> W``.

The forward pass runs without gradients up to the layer, so the exact eager fast paths of
:class:`~cameras.core.eager.EagerFastPaths` apply: channels-last on a CPU by default, batch-norm
folding on request (``fold_batchnorm=True``).

Methods whose weights are *local* (the weight at a location depends on the gradient at
that location only: HiResCAM's G, LayerCAM's ReLU(G)) set ``local_weights = True``; only
they can be accumulated over scales by :class:`~cameras.methods.multiscale.MultiScale`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor, nn

from .base import SaliencyMethod
from .eager import EagerFastPaths
from .gradients import LayerGradients, layer_gradients
from .ops import normalize_maps
from .result import SaliencyResult
from .targets import Target


class GradientCAM(EagerFastPaths, SaliencyMethod):
    """Base class of the gradient CAMs: subclasses implement :meth:`weights` (and set ``name``).

    ``result.extras["low_res"]`` holds the B×h×w layer-resolution map ReLU(Σ_k W_k ⊙ A_k)
    before upsampling. Activations and gradients are read in float32.

    Args:
        model, layer, to_spatial: as for every layer method (see :class:`SaliencyMethod`).
        channels_last: the forward pass in channels-last memory format, the model's 4-D weights
            swapped for channels-last copies for the call (kept between calls while the weights
            are unchanged; memory: one copy). ``"auto"`` (default): convolutional networks on a
            CPU, where oneDNN runs them faster; True: always; False: never (the NCHW reference
            path). Maps equal the NCHW ones to 1e-5.
        fold_batchnorm: False (default) or True: below the layer, each batch norm that only
            rescales a convolution's output is folded into it for the call (see
            :class:`~cameras.core.folding.FoldedBelow`; maps equal to 1e-5). With one forward
            per call the check that the weights are unchanged costs about what folding saves on
            one 224-px image; it pays at larger batches (see the README's "Below the eager floor").

    Example:
        >>> import torch, torchvision
        >>> class Plain(GradientCAM):
        ...     name = "plain"
        ...     def weights(self, act, grad):
        ...         return torch.ones_like(act[:, :, :1, :1])
        >>> Plain(torchvision.models.resnet18(num_classes=3))(torch.randn(1, 3, 64, 64)).maps.shape
        torch.Size([1, 64, 64])
    """

    #: True when the weight at a location depends on that location's gradient only
    local_weights: ClassVar[bool] = False
    untargeted_is_top1 = True  # the class is bound on the one forward pass over the input
    neutral_options = (*SaliencyMethod.neutral_options, "channels_last", "fold_batchnorm")

    def __init__(self, model: nn.Module, layer: str | nn.Module | None = None,
                 to_spatial: Callable[[Tensor], Tensor] | None = None,
                 channels_last: bool | str = "auto", fold_batchnorm: bool = False) -> None:
        super().__init__(model, layer, to_spatial)
        self.init_fast_paths(channels_last, fold_batchnorm)

    @abc.abstractmethod
    def weights(self, act: Tensor, grad: Tensor) -> Tensor:
        """B×K×1×1 (per channel) or B×K×h×w (per location) weights from float32 B×K×h×w ``act`` and ``grad``.

        Example:
            >>> class Ones(GradientCAM):
            ...     def weights(self, act, grad):
            ...         return torch.ones_like(act[:, :, :1, :1])
            >>> Ones(torch.nn.Conv2d(3, 2, 1)).weights(torch.ones(1, 2, 1, 1), torch.ones(1, 2, 1, 1)).shape
            torch.Size([1, 2, 1, 1])
        """

    def _gradients(self, x: Tensor, target: Target | None, nhwc: bool) -> LayerGradients:
        """The forward and backward pass, in channels-last when ``nhwc`` (weights swapped for the call)."""
        with self.eager_block(x, nhwc), self.capture() as cap:
            return layer_gradients(self.model, self.in_layout(x), [cap], target)

    def low_res(self, act: Tensor, grad: Tensor) -> Tensor:
        """ReLU(Σ_k W_k ⊙ A_k) at the layer's resolution, B×h×w float32.

        Example:
            >>> class Signed(GradientCAM):
            ...     def weights(self, act, grad):
            ...         return grad
            >>> cam = Signed(torch.nn.Conv2d(3, 2, 1))
            >>> cam.low_res(torch.ones(1, 2, 1, 2), torch.tensor([[1.0, 2.0], [-3.0, 0.0]]).view(1, 2, 1, 2)).tolist()
            [[[0.0, 2.0]]]
        """
        act, grad = act.float(), grad.float()
        return torch.relu((self.weights(act, grad) * act).sum(1))

    def explain_batch(self, x: Tensor, target: Target | None) -> SaliencyResult:
        g = self.with_layout(x, lambda nhwc: self._gradients(x, target, nhwc))
        low = self.low_res(g.activations[0], g.gradients[0])
        maps = normalize_maps(self.to_input(low, x.shape[-2:]))
        return self.result(maps, g.target, g.probs, g.logits, extras={"low_res": low})
