"""Multi-scale accumulation (CAMERAS's) for any CAM with per-location weights."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from ..core.cam import GradientCAM
from ..core.errors import InputError
from ..core.fusion import DEFAULT_CHUNK_ELEMENTS
from ..names import DEFAULT_SCALE_RULE
from .cameras import CAMERAS


class MultiScale(CAMERAS):
    """CAMERAS's multi-scale accumulation around a gradient CAM with per-location weights.

    For each scale ζ_t the input is resized as in :class:`~cameras.CAMERAS`, the CAM's
    per-location weights W_t = f(G_t) (LayerCAM: ReLU(G_t); HiResCAM: G_t) and the
    activations A_t are resized bilinearly to the input size and averaged over the kept
    scales *separately*, and the map is ReLU(Σ_k W̄_k ⊙ Ā_k), min-max normalised. The same
    ``scale_rule`` decides which scales a map of the image's own top-1 keeps (``"paper"``:
    those whose top-1 agrees), and every other option means what it means for CAMERAS.
    ``MultiScale(HiResCAM(model))`` is exactly CAMERAS, whose weights are the gradient
    itself; CAMERAS itself is unchanged.

    Which CAMs: those whose weight at a location depends only on the gradient at that
    location (``method.local_weights``: LayerCAM, HiResCAM), so a weight resized to the
    input grid still describes the pixels it covers. Grad-CAM, Grad-CAM++ and XGrad-CAM
    weight each channel by a statistic pooled over the whole layer grid (a mean, or sums
    normalised by Σ A), whose size depends on how many locations each scale's grid has:
    averaging those over scales mixes incomparable quantities, so they are refused.
    Score-CAM has no gradients (its weights are masked forward passes at one scale).

    Example:
        >>> import torch, torchvision
        >>> from cameras.methods import LayerCAM
        >>> ms = MultiScale(LayerCAM(torchvision.models.resnet18(num_classes=4)), scales=[64, 96])
        >>> res = ms(torch.randn(1, 3, 64, 64), target=1)
        >>> res.method, res.kept_scales
        ('multiscale-layercam', [[64, 96]])
    """

    name = "multiscale"

    def __init__(
        self,
        method: GradientCAM,
        scales: Sequence[int] | None = None,
        steps: int | None = None,
        max_size: int = 1000,
        base_size: int = 224,
        resample: str = "bicubic",
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
        fusion: str = "exact",
        amp: str | None = None,
        channels_last: bool | str = "auto",
        precision: str = "fp32",
        batch_pixels: int | str | None = "auto",
        scale_rule: str = DEFAULT_SCALE_RULE,
        border_pad: float = 0.0,
        compile: bool = False,
        cuda_graphs: bool = False,
        fold_batchnorm: bool = True,
    ) -> None:
        if not isinstance(method, GradientCAM):
            got = getattr(method, "name", None) or type(method).__name__
            raise InputError(f"MultiScale wraps a built gradient CAM (e.g. MultiScale(LayerCAM(model))), got {got}")
        if not method.local_weights:
            raise InputError(
                f"MultiScale cannot accumulate {method.name}: its weights are pooled over each scale's whole layer "
                "grid, so their averages over scales are not comparable; use layercam or hirescam "
                "(MultiScale(HiResCAM(model)) is CAMERAS)")
        layer = method.layer if method.layer is not None else method._layer_arg
        super().__init__(method.model, layer, scales, steps, max_size, base_size, resample, chunk_elements, fusion,
                         amp, channels_last, precision, batch_pixels, method.to_spatial, scale_rule, border_pad,
                         compile=compile, cuda_graphs=cuda_graphs, fold_batchnorm=fold_batchnorm)
        self.method = method
        self.name = f"multiscale-{method.name}"

    @property
    def options(self) -> dict:
        """CAMERAS's options, with ``method`` as the wrapped CAM's name and its layer."""
        out = super().options
        out["method"] = self.method.name
        out["layer"] = self.method.options.get("layer")
        return out

    def location_weights(self, act: Tensor, grad: Tensor) -> Tensor:
        """The wrapped CAM's per-location weights at one scale (float32), B×K×h×w.

        Example:
            >>> import torch, torchvision
            >>> from cameras.methods import LayerCAM
            >>> ms = MultiScale(LayerCAM(torchvision.models.resnet18()), scales=[224, 324])
            >>> g = torch.tensor([-1.0, 2.0]).view(1, 1, 1, 2)
            >>> ms.location_weights(torch.ones_like(g), g).flatten().tolist()
            [0.0, 2.0]
        """
        return self.method.weights(act.float(), grad.float())
