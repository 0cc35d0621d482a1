"""NormGrad (Rebuffi, Fong, Ji, Vedaldi, CVPR 2020)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ..core.base import SaliencyMethod
from ..core.errors import InputError
from ..core.gradients import layer_gradients
from ..core.layers import resolve_layer
from ..core.ops import normalize_maps
from ..core.result import SaliencyResult
from ..core.targets import Target


class NormGrad(SaliencyMethod):
    """Per location u: ‖a_u‖₂·‖g_u‖₂ over channels (the 1×1 "virtual identity" variant).

    ``selective=True`` uses ‖ReLU(a_u ⊙ g_u)‖₂ instead. Maps are upsampled bilinearly to
    the input size. With several layers (``layer=["layer3", "layer4"]``) each layer's
    upsampled map is min-max normalised and the maps are multiplied ("combined").
    One forward pass and one backward to the lowest layer.

    The CAMERAS paper's NormGrad numbers correspond to single-layer NormGrad at ResNet-50
    ``layer3`` and VGG16 ``features.22``; the default here is the last spatial layer.

    Example:
        >>> import torch, torchvision
        >>> net = torchvision.models.resnet18(num_classes=4)
        >>> NormGrad(net, layer=["layer3", "layer4"])(torch.randn(1, 3, 64, 64)).maps.shape
        torch.Size([1, 64, 64])
    """

    name = "normgrad"

    def __init__(
        self,
        model: nn.Module,
        layer: str | nn.Module | Sequence[str | nn.Module] | None = None,
        selective: bool = False,
        to_spatial: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        layers = list(layer) if isinstance(layer, (list, tuple)) else None
        if layers is not None and not layers:
            raise InputError("layer list is empty; give at least one layer")
        super().__init__(model, None if layers is not None else layer, to_spatial)
        self.selective = bool(selective)
        self.layers: list[tuple[str, nn.Module]] | None = None
        if layers is not None:
            self.layers = [resolve_layer(self.model, item) for item in layers]
            self.layer_name = ",".join(n for n, _ in self.layers)
            self.layer = self.layers[-1][1]

    def _ensure_layer(self, x: Tensor) -> None:
        super()._ensure_layer(x)
        if self.layers is None:
            self.layers = [(self.layer_name, self.layer)]

    def _score(self, a: Tensor, g: Tensor) -> Tensor:
        a, g = a.float(), g.float()
        if self.selective:
            return torch.relu(a * g).norm(dim=1)
        return a.norm(dim=1) * g.norm(dim=1)

    def explain_batch(self, x: Tensor, target: Target | None) -> SaliencyResult:
        with contextlib.ExitStack() as stack:
            caps = [stack.enter_context(self.capture(mod, name)) for name, mod in self.layers]
            g = layer_gradients(self.model, x, caps, target)
        size = tuple(x.shape[-2:])
        maps = None
        for a, grad in zip(g.activations, g.gradients):
            m = self.to_input(self._score(a, grad), size)
            if len(caps) > 1:
                m = normalize_maps(m)
            maps = m if maps is None else maps * m
        return self.result(normalize_maps(maps), g.target, g.probs, g.logits, extras={"selective": self.selective})
