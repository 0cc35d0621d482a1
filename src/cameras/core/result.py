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
        targets: B int64 tensor, the explained class (or label) per image; -1 for a target
            without labels (an :class:`~cameras.targets.OutputTarget`).
        probs: B float32 tensor, the target's probability on the input as given: softmax
            for class ids, sigmoid for a ``SigmoidTarget``, the score for other targets.
        method: registry name of the method (``"cameras"``, ``"gradcam"``, ...).
        layer: name of the explained layer, or None for input-level methods.
        seconds: wall-clock seconds of the call (device synchronised).
        kept_scales: per image, the scale sizes ζ_t that were accumulated (CAMERAS only).
        extras: method-specific values (e.g. the scale schedule, per-scale sizes).
        logits: B×N float32 pre-softmax scores of every class on the input as given (the
            forward pass the method ran anyway), e.g. for a top-k list without another pass;
            None when the model's output holds no B×N scores.
        target: the :class:`~cameras.targets.Target` that was explained, bound to the batch.

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
    target: Any = None

    def __len__(self) -> int:
        return int(self.maps.shape[0])

    def all_zero(self) -> Tensor:
        """B bool tensor: which maps are zero everywhere (no positive evidence anywhere; shown as the photo alone).

        Example:
            >>> import torch
            >>> SaliencyResult(torch.tensor([[[0.0]], [[0.5]]]), torch.zeros(2), torch.zeros(2), "gradcam").all_zero()
            tensor([ True, False])
        """
        return ~(self.maps.flatten(1).amax(1) > 0)

    def target_facts(self, i: int) -> dict[str, Any]:
        """Image ``i``'s entries of the target's facts (``extras["target"]``: a box's match, a region's
        fraction, ...), JSON-ready; {} when the target states none.

        Example:
            >>> import torch
            >>> r = SaliencyResult(torch.zeros(2, 1, 1), torch.zeros(2), torch.zeros(2), "gradcam",
            ...                    extras={"target": {"matched": [True, False], "iou": 0.5}})
            >>> r.target_facts(1)
            {'matched': False, 'iou': 0.5}
        """
        notes = self.extras.get("target") or {}
        return {k: v[i] if isinstance(v, list) and len(v) == len(self) else v for k, v in notes.items()}

    def item(self, i: int) -> dict[str, Any]:
        """JSON-ready summary of image ``i`` (no map), e.g. for a results file."""
        out: dict[str, Any] = {
            "method": self.method,
            "target": int(self.targets[i]),
            "target_kind": "class logit" if self.target is None else self.target.describe(),
            "probability": float(self.probs[i]),
            "layer": self.layer,
            "seconds": self.seconds / max(len(self), 1),
        }
        if self.kept_scales is not None:
            out["kept_scales"] = list(self.kept_scales[i])
        return out
