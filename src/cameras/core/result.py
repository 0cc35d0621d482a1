"""The one result type shared by every saliency method."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor


@dataclass
class SaliencyResult:
    """Saliency maps for a batch, with what produced them.

    Attributes:
        maps: B×H×W float32 tensor in [0, 1], same device and spatial size as the input.
        targets: B int64 tensor, the explained class per image.
        probs: B float32 tensor, softmax probability of the target on the input as given.
        method: registry name of the method (``"cameras"``, ``"gradcam"``, ...).
        layer: name of the explained layer, or None for input-level methods.
        seconds: wall-clock seconds of the call (device synchronised).
        kept_scales: per image, the scale sizes ζ_t that were accumulated (CAMERAS only).
        extras: method-specific values (e.g. the scale schedule, per-scale sizes).
        logits: B×N float32 pre-softmax scores of every class on the input as given (the
            forward pass the method ran anyway), e.g. for a top-k list without another pass.

    Example:
        >>> import torch
        >>> r = SaliencyResult(torch.zeros(1, 4, 4), torch.tensor([3]), torch.tensor([0.5]), "x")
        >>> r.maps.shape, len(r)
        (torch.Size([1, 4, 4]), 1)
    """

    maps: Tensor
    targets: Tensor
    probs: Tensor
    method: str
    layer: str | None = None
    seconds: float = 0.0
    kept_scales: list[list[int]] | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    logits: Tensor | None = None

    def __len__(self) -> int:
        return int(self.maps.shape[0])

    def item(self, i: int) -> dict[str, Any]:
        """JSON-ready summary of image ``i`` (no map), e.g. for a results file."""
        out: dict[str, Any] = {
            "method": self.method,
            "target": int(self.targets[i]),
            "probability": float(self.probs[i]),
            "layer": self.layer,
            "seconds": self.seconds / max(len(self), 1),
        }
        if self.kept_scales is not None:
            out["kept_scales"] = list(self.kept_scales[i])
        return out
