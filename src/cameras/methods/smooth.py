"""Smoothing for any method: noise averaging (SmoothGrad-style) or test-time augmentation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.base import SaliencyMethod, progress_bar
from ..core.checks import check_count, check_seed
from ..core.errors import InputError
from ..core.ops import normalize_maps, resize_maps
from ..core.result import SaliencyResult
from ..core.targets import InputView, Target, bind_target, logits_or_none

AUGMENTS = ("noise", "tta")


class Smooth(SaliencyMethod):
    """The average of a method's maps over noisy copies (``augment="noise"``) or flips and rescalings (``"tta"``).

    ``augment="noise"`` (SmoothGrad, Smilkov et al. 2017, for any method): ``n`` copies
    x + ε, ε ~ N(0, σ²) with σ = ``noise`` · (max(x) − min(x)) per image (the noise level
    relative to the input's range, as SmoothGrad defines it), drawn from a CPU generator
    seeded with ``seed`` (the same copies on every device) and shared by the images of a
    batch (an image's map does not depend on what it is batched with). Copies are made and
    explained ``batch_size`` rows at a time.

    ``augment="tta"``: the views are the image and its horizontal mirror, each resized by
    every factor of ``tta_scales`` (bilinear); each view's map is mapped back (mirrored
    again, resized to the input size) before averaging. ``n`` and ``noise`` are unused.

    The class is fixed on the clean input first (``target=None``: each image's top-1 there),
    so every copy or view explains the same class (for CAMERAS this means every scale is
    kept, as for a given class). With ``"tta"``, a view at the input's own size (a factor of 1,
    or one that rounds to it) and a method whose own pass fixes the class that way
    (``untargeted_is_top1``: the gradient CAMs, ``Gradient``), the unchanged view is explained
    first and its pass fixes the class: no pass of its own. The
    maps of the copies (each in [0, 1]) are averaged and min-max normalised again;
    ``result.extras["views"]`` says how many were averaged. Probabilities and logits are those
    of the clean input.

    Args:
        method: a built method, e.g. ``GradCAM(model)``.
        noise: noise level σ / (max − min) in [0, 1] (default 0.15).
        n: number of noisy copies (default 16).
        augment: ``"noise"`` or ``"tta"``.
        seed: seed of the noise.
        batch_size: the most copies (rows) the method explains at once (default 16).
        tta_scales: resize factors of the TTA views, each in [0.25, 4].

    Example:
        >>> import torch, torchvision
        >>> from cameras.methods import GradCAM
        >>> sm = Smooth(GradCAM(torchvision.models.resnet18(num_classes=4)), n=4)
        >>> res = sm(torch.randn(2, 3, 64, 64))
        >>> res.method, tuple(res.maps.shape), res.extras["views"]
        ('smooth-gradcam', (2, 64, 64), 4)
    """

    name = "smooth"
    neutral_options = ("progress", "batch_size")

    def __init__(
        self,
        method: SaliencyMethod,
        noise: float = 0.15,
        n: int = 16,
        augment: str = "noise",
        seed: int = 0,
        batch_size: int = 16,
        tta_scales: Sequence[float] = (0.9, 1.0, 1.1),
        progress: bool | None = None,
    ) -> None:
        if not isinstance(method, SaliencyMethod):
            raise InputError(f"Smooth wraps a built method (e.g. Smooth(GradCAM(model))), got {type(method).__name__}")
        self.method = method
        self.uses_layer = method.uses_layer
        self.input_gradient = method.input_gradient  # smooth-gradient and tta-gradient are input gradients too
        super().__init__(method.model)
        if augment not in AUGMENTS:
            raise InputError(f"augment must be one of {', '.join(AUGMENTS)}, got {augment!r}")
        if not (isinstance(noise, (int, float)) and 0 <= noise <= 1):
            raise InputError(f"noise must be a level in [0, 1] (σ over the input's range), got {noise!r}")
        n, batch_size = check_count(n, "n"), check_count(batch_size, "batch_size")
        scales = [float(s) for s in tta_scales]
        if not scales or any(not 0.25 <= s <= 4 for s in scales):
            raise InputError(f"tta_scales must be factors in [0.25, 4], got {list(tta_scales)!r}")
        self.noise, self.n, self.augment, self.seed = float(noise), n, augment, check_seed(seed)
        self.batch_size, self.tta_scales, self.progress = batch_size, scales, progress
        self.name = f"smooth-{method.name}" if augment == "noise" else f"tta-{method.name}"
        self.passes = method.passes * (n if augment == "noise" else 2 * len(scales))

    @property
    def options(self) -> dict:
        """The smoothing options, with ``method`` as the wrapped method's name and ``method_options`` its own."""
        out = super().options
        out["method"] = self.method.name
        out["method_options"] = self.method.options
        return out

    def result_options(self) -> dict:
        """The options that determine the maps: without the wrapped method's neutral options (also
        under their ``method_`` names), without the options the chosen ``augment`` does not use.

        Example:
            >>> import torchvision
            >>> from cameras.methods import GradCAM
            >>> sorted(Smooth(GradCAM(torchvision.models.resnet18()), augment="tta").result_options())
            ['augment', 'method', 'method_options', 'tta_scales']
        """
        drop = set(self.method.neutral_options) | {"method_" + k for k in self.method.neutral_options}
        drop |= {"noise", "n", "seed"} if self.augment == "tta" else {"tta_scales"}
        out = {k: v for k, v in super().result_options().items() if k not in drop}
        out["method_options"] = self.method.result_options()
        return out

    def _ensure_layer(self, x: Tensor) -> None:
        self.method.stop = self.stop
        return None  # the wrapped method finds its own layer

    def _sizes(self, H: int, W: int) -> list[tuple[int, int]]:
        """The (h, w) of each TTA view of an H×W input, in the order of ``tta_scales``."""
        return [(max(8, round(H * s)), max(8, round(W * s))) for s in self.tta_scales]

    def explain_batch(self, x: Tensor, target: Target | None) -> SaliencyResult:
        B, _, H, W = x.shape
        own = None  # the unchanged view, explained first when its pass can also fix the class
        if self.augment == "tta" and (H, W) in self._sizes(H, W) and self.method.untargeted_is_top1:
            own = self.method(x, target=target)  # binds the class (None: each image's top-1) on x itself
            target, probs, logits = own.target, own.probs, own.logits
        else:
            with torch.no_grad():
                output = self.model(x)
            target = bind_target(target, output)
            probs, logits = target.probability(output).detach().float(), logits_or_none(output)
        total = torch.zeros(B, H, W, device=x.device, dtype=torch.float32)
        layer = None
        if self.augment == "noise":
            # the n noise images are shared by every image of the batch (scaled by each one's range), so
            # an image's map does not depend on the other images it is batched with
            gen = torch.Generator().manual_seed(self.seed)
            eps = torch.randn((self.n, *x.shape[1:]), generator=gen).to(device=x.device, dtype=x.dtype)
            sigma = self.noise * (x.flatten(1).amax(1) - x.flatten(1).amin(1))  # B
            image_of = torch.arange(B, device=x.device).repeat_interleave(self.n)  # row r is a copy of image r // n
            copy_of = torch.arange(self.n, device=x.device).repeat(B)
            with progress_bar(B * self.n, f"{self.name} copies", self.progress, self.stop) as bar:
                for s in range(0, B * self.n, self.batch_size):
                    rows, k = image_of[s:s + self.batch_size], copy_of[s:s + self.batch_size]
                    copies = x[rows] + eps[k] * sigma[rows].view(-1, 1, 1, 1)
                    res = self.method(copies, target=target.select(rows))
                    total.index_add_(0, rows, res.maps.float())
                    layer = res.layer
                    bar.update(len(rows))
            views = self.n
        else:
            idx = torch.arange(B, device=x.device)
            views = 0
            base = target.input_view or InputView.identity((H, W))  # regions and boxes follow each view
            with progress_bar(2 * len(self.tta_scales), f"{self.name} views", self.progress, self.stop) as bar:
                for flip in (False, True):
                    for size in self._sizes(H, W):
                        if own is not None and not flip and size == (H, W):
                            res, own = own, None
                        else:
                            v = x if size == (H, W) else F.interpolate(x, size=size, mode="bilinear",
                                                                      align_corners=False)
                            v = v.flip(-1) if flip else v
                            seen = base.resized(size).flipped() if flip else base.resized(size)
                            res = self.method(v, target=target.select(idx).view(seen))
                        m = res.maps.float().flip(-1) if flip else res.maps.float()
                        total += resize_maps(m, (H, W))
                        layer = res.layer
                        views += 1
                        bar.update(1)
        out = SaliencyResult(normalize_maps(total / views), target.labels(B, x.device), probs, self.name, layer,
                             logits=logits, target=target,
                             extras={"views": views, "augment": self.augment})
        if target.notes():
            out.extras["target"] = target.notes()
        return out
