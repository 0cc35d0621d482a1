"""RISE: randomized input sampling (Petsiuk, Das, Saenko, BMVC 2018)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.base import SaliencyMethod, progress_bar
from ..core.checks import check_count, check_seed
from ..core.eager import EagerFastPaths
from ..core.errors import InputError
from ..core.ops import normalize_maps
from ..core.result import SaliencyResult
from ..core.targets import Target, bind_target, logits_or_none


def rise_grids(n: int, grid: int, p: float, size: tuple[int, int], generator: torch.Generator):
    """The random part of ``n`` RISE masks: n×1×grid×grid binary cells and per-mask shifts.

    Small (n·grid² values), drawn from ``generator`` (CPU) in one go, so masks do not depend
    on how they are later batched or on the device.
    """
    H, W = size
    ch, cw = math.ceil(H / grid), math.ceil(W / grid)
    cells = (torch.rand(n, 1, grid, grid, generator=generator) < p).float()
    dy = torch.randint(0, ch, (n,), generator=generator)
    dx = torch.randint(0, cw, (n,), generator=generator)
    return cells, dy, dx


def rise_masks(cells: Tensor, dy: Tensor, dx: Tensor, size: tuple[int, int], device=None) -> Tensor:
    """Full-resolution masks n×1×H×W in [0, 1] from :func:`rise_grids` output.

    Each binary grid is upsampled bilinearly to (grid+1)·⌈H/grid⌉ × (grid+1)·⌈W/grid⌉ and
    cropped to H×W at its shift.

    Example:
        >>> g = rise_grids(4, 8, 0.5, (32, 40), torch.Generator().manual_seed(0))
        >>> m = rise_masks(*g, (32, 40))
        >>> tuple(m.shape), bool(((m >= 0) & (m <= 1)).all())
        ((4, 1, 32, 40), True)
    """
    H, W = size
    grid = cells.shape[-1]
    ch, cw = math.ceil(H / grid), math.ceil(W / grid)
    up = F.interpolate(cells.to(device), size=((grid + 1) * ch, (grid + 1) * cw), mode="bilinear", align_corners=False)
    rows = (dy.to(up.device)[:, None] + torch.arange(H, device=up.device))[:, :, None]  # n×H×1
    cols = (dx.to(up.device)[:, None] + torch.arange(W, device=up.device))[:, None, :]  # n×1×W
    n = torch.arange(up.shape[0], device=up.device)[:, None, None]
    return up[:, 0][n, rows, cols].unsqueeze(1)  # every crop in one gather


MIN_MASKS = 500  # with fewer, the Monte-Carlo average is visibly noisy at 224 px


class RISE(EagerFastPaths, SaliencyMethod):
    """S = Σ_i P(I ⊙ M_i) · M_i / (N·p), P the target's probability (softmax for class ids).

    Masks are generated and evaluated ``batch_size`` at a time (memory does not grow with
    ``n_masks``), identical for every image of the batch, and deterministic for a ``seed``.
    Masking happens in normalised space (``x ⊙ M``). The unnormalised saliency S is in
    ``result.extras["raw"]``; ``maps`` are min-max normalised.

    Defaults are CPU-friendly (``n_masks=1000``); the paper's ImageNet settings are
    ``n_masks=6000, grid=8, p=0.1`` (the CAMERAS timing study used 6000 masks).

    ``channels_last`` (``"auto"``, the default: on a CPU for convolutional networks; True,
    False): the masked passes run in channels-last memory format, the model's 4-D weights
    swapped for channels-last copies for the call (kept between calls; the model is restored);
    the first pass, which fixes the class, stays in the input's format. Maps equal the NCHW
    ones to 1e-5 (1.4× faster on EfficientNet-Lite0 on a CPU).

    Example:
        >>> import torch, torchvision
        >>> r = RISE(torchvision.models.resnet18(num_classes=3), n_masks=16, batch_size=8)
        >>> r(torch.randn(1, 3, 32, 32), target=0).maps.shape
        torch.Size([1, 32, 32])
    """

    name = "rise"
    passes = 1000
    neutral_options = ("progress", "batch_size", "channels_last")
    uses_layer = False

    def __init__(
        self,
        model: nn.Module,
        n_masks: int = 1000,
        grid: int = 8,
        p: float = 0.1,
        batch_size: int = 32,
        seed: int = 0,
        progress: bool | None = None,
        channels_last: bool | str = "auto",
    ) -> None:
        super().__init__(model)
        self.init_fast_paths(channels_last, False)
        n_masks, grid = check_count(n_masks, "n_masks"), check_count(grid, "grid")
        if not 0.0 < float(p) <= 1.0:
            raise InputError(f"p must lie in (0, 1], got {p!r}")
        batch_size = check_count(batch_size, "batch_size")
        self.n_masks, self.grid, self.p = n_masks, grid, float(p)
        self.batch_size, self.seed, self.progress = batch_size, check_seed(seed), progress

    def convergence_warning(self) -> str | None:
        if self.n_masks < MIN_MASKS:
            return (f"rise: {self.n_masks} masks give a noisy map; use n_masks ≥ {MIN_MASKS} "
                    "(1000 by default, 6000 in the paper)")
        return None

    def explain_batch(self, x: Tensor, target: Target | None) -> SaliencyResult:
        B, C, H, W = x.shape
        with torch.no_grad():
            output = self.model(x)
            target = bind_target(target, output)
            probs = target.probability(output)
            cells, dy, dx = rise_grids(self.n_masks, self.grid, self.p, (H, W),
                                       torch.Generator().manual_seed(self.seed))
            per = max(1, self.batch_size // B)

            def masked_passes(nhwc: bool) -> Tensor:
                sal = torch.zeros(B, H, W, device=x.device, dtype=torch.float32)
                with self.eager_block(x, nhwc), \
                        progress_bar(self.n_masks, "RISE masks", self.progress, self.stop) as bar:
                    for start in range(0, self.n_masks, per):
                        n = min(per, self.n_masks - start)
                        sl = slice(start, start + n)
                        masks = rise_masks(cells[sl], dy[sl], dx[sl], (H, W), x.device)  # n×1×H×W
                        inp = (x.unsqueeze(1) * masks.unsqueeze(0).to(x.dtype)).reshape(B * n, C, H, W)
                        # image b's n masked copies are rows b·n … b·n+n-1
                        rows = target.select(torch.arange(B, device=x.device).repeat_interleave(n))
                        pt = rows.probability(self.model(self.in_layout(inp))).view(B, n)
                        sal += torch.einsum("bn,nhw->bhw", pt, masks[:, 0].float())
                        bar.update(n)
                return sal

            raw = self.with_layout(x, masked_passes) / (self.n_masks * self.p)
        return self.result(
            normalize_maps(raw), target, probs, logits_or_none(output),
            extras={"raw": raw, "n_masks": self.n_masks, "grid": self.grid, "p": self.p, "seed": self.seed},
        )
