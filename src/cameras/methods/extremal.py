"""Extremal Perturbation (Fong, Patrick, Vedaldi, ICCV 2019), preservation game."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..core.base import SaliencyMethod, progress_bar
from ..core.errors import InputError
from ..core.ops import gaussian_blur
from ..core.result import SaliencyResult


def _flat_top(d: Tensor, sigma: float) -> Tensor:
    """Radial kernel of the distance d: 1 for d ≤ σ/2, then a Gaussian fall-off."""
    return torch.exp(-2.0 * ((d / sigma - 0.5).clamp(min=0) ** 2))


class SmoothMask(nn.Module):
    """Maps a coarse parameter grid (one value per ``step`` px) to a smooth H×W mask.

    Grid points sit every ``step`` px on a canvas extended by ``margin`` px on each side;
    each pixel takes the smooth maximum (softmax with temperature ``temperature``) over the
    grid points within ``radius`` cells of value × a radial flat-top kernel of width σ;
    the result is clamped to [0, 1] and the margin cropped.
    """

    def __init__(self, size: tuple[int, int], step: int = 7, sigma: float = 21.0, temperature: float = 20.0):
        super().__init__()
        self.size, self.step, self.sigma, self.temperature = size, step, float(sigma), float(temperature)
        margin = sigma
        radius = 1 + math.ceil(sigma / step)
        # grid points every `step` px from -(margin + radius·step) to n + margin + radius·step,
        # so that every pixel sees all of its 2·radius+1 neighbours in each direction (no
        # border effect that would bias the ranking of a uniform mask)
        self.grid_shape = tuple(math.ceil((n + 2 * margin) / step) + 1 + 2 * radius for n in size)
        idx, dist = [], []
        offs = torch.arange(-radius, radius + 1)
        for n in size:
            pos = torch.arange(n, dtype=torch.float32)
            centre = torch.floor((pos + margin) / step).long() + radius
            cell = centre[:, None] + offs[None]  # n×(2r+1), always inside the grid
            idx.append(cell)
            dist.append(pos[:, None] - ((cell - radius).float() * step - margin))
        d = torch.sqrt(dist[0][:, :, None, None] ** 2 + dist[1][None, None] ** 2)  # H×a×W×b
        self.register_buffer("iy", idx[0], persistent=False)
        self.register_buffer("ix", idx[1], persistent=False)
        self.register_buffer("weight", _flat_top(d, sigma), persistent=False)

    def forward(self, params: Tensor) -> Tensor:
        """params B×gh×gw → mask B×H×W in [0, 1]."""
        v = params[:, self.iy][:, :, :, self.ix]  # B×H×a×W×b
        v = v * self.weight
        v = v.permute(0, 1, 3, 2, 4).flatten(3)  # B×H×W×(a·b)
        m = (v * torch.softmax(self.temperature * v, dim=-1)).sum(-1)
        return m.clamp(0, 1)


class ExtremalPerturbation(SaliencyMethod):
    """Find the smooth mask of area ``area`` whose preserved region maximises the class logit.

    Perturbation by a blur pyramid (``levels`` Gaussian blurs, σ from ``max_blur`` to 0,
    linear between levels; mask 1 keeps the pixel, 0 blurs it most). Loss per image:
    −logit + λ·mean_j (sort(m)_j − r_j)², with r = 0 for the first ⌊(1−a)·|Ω|⌋ entries and
    1 after; SGD (lr 0.01, momentum 0.9, dampening 0.9) on the grid parameters initialised
    to 1 and clamped to [0, 1]; λ starts at 300 and grows ×1.0035 per iteration; the input
    is flipped horizontally on even iterations. Each iteration is one forward and one
    backward for the whole batch. ``maps`` are the final masks (in [0, 1], not rescaled).

    CPU-friendly default ``iterations=300``; the method's default is 800 and the CAMERAS
    timing used ``area=0.3, iterations=1000``.

    Example:
        >>> import torch, torchvision
        >>> ep = ExtremalPerturbation(torchvision.models.resnet18(num_classes=3), iterations=2)
        >>> ep(torch.randn(1, 3, 32, 32), target=0).maps.shape
        torch.Size([1, 32, 32])
    """

    name = "extremal"
    uses_layer = False

    def __init__(
        self,
        model: nn.Module,
        area: float = 0.3,
        iterations: int = 300,
        step: int = 7,
        sigma: float = 21.0,
        levels: int = 8,
        max_blur: float = 20.0,
        lr: float = 0.01,
        lambda_start: float = 300.0,
        lambda_growth: float = 1.0035,
        jitter: bool = True,
        init: float = 1.0,
        progress: bool | None = None,
    ) -> None:
        super().__init__(model)
        if not 0.0 < float(area) < 1.0:
            raise InputError(f"area must lie in (0, 1), got {area!r}")
        if not isinstance(iterations, int) or iterations < 1:
            raise InputError(f"iterations must be a positive integer, got {iterations!r}")
        if not isinstance(levels, int) or levels < 2:
            raise InputError(f"levels must be an integer >= 2, got {levels!r}")
        if step < 1 or sigma <= 0 or max_blur <= 0 or lr <= 0:
            raise InputError("step, sigma, max_blur and lr must be positive")
        self.area, self.iterations, self.step, self.sigma = float(area), iterations, int(step), float(sigma)
        self.levels, self.max_blur, self.lr = levels, float(max_blur), float(lr)
        self.lambda_start, self.lambda_growth, self.jitter, self.progress = lambda_start, lambda_growth, jitter, progress
        if not 0.0 <= float(init) <= 1.0:
            raise InputError(f"init must lie in [0, 1], got {init!r}")
        self.init = float(init)

    def _pyramid(self, x: Tensor) -> Tensor:
        """L×B×C×H×W: level 0 blurred with σ = max_blur, … , level L−1 the input itself."""
        out = []
        for k in range(self.levels):
            s = self.max_blur * (1 - k / (self.levels - 1))
            if s <= 0:
                out.append(x)
            else:
                out.append(gaussian_blur(x, s))
        return torch.stack(out)

    @staticmethod
    def _perturb(pyr: Tensor, mask: Tensor) -> Tensor:
        L = pyr.shape[0]
        pos = mask.unsqueeze(1) * (L - 1)  # B×1×H×W in [0, L-1]
        lo = pos.floor().clamp(max=L - 2)
        frac = pos - lo
        lo_i = lo.long().unsqueeze(0).expand(1, *pyr.shape[1:])
        a = pyr.gather(0, lo_i)[0]
        b = pyr.gather(0, lo_i + 1)[0]
        return a + (b - a) * frac

    def explain_batch(self, x: Tensor, target: Tensor | None) -> SaliencyResult:
        B, _, H, W = x.shape
        with torch.no_grad():
            logits = self.model(x).detach().float()
            target, probs = self.pick_targets(logits, target)
            pyr = self._pyramid(x)
        gen = SmoothMask((H, W), self.step, self.sigma).to(x.device)
        params = torch.full((B, *gen.grid_shape), self.init, device=x.device, requires_grad=True)
        opt = torch.optim.SGD([params], lr=self.lr, momentum=0.9, dampening=0.9)
        n = H * W
        ref = torch.zeros(n, device=x.device)
        ref[int(math.floor((1 - self.area) * n)) :] = 1.0
        lam = self.lambda_start
        with progress_bar(self.iterations, "extremal", self.progress, self.stop) as bar:
            for it in range(self.iterations):
                mask = gen(params)
                xp = self._perturb(pyr, mask)
                if self.jitter and it % 2 == 0:
                    xp = xp.flip(-1)
                logit = self.model(xp).float().gather(1, target[:, None])[:, 0]
                reg = ((mask.flatten(1).sort(dim=1).values - ref) ** 2).mean(1)
                loss = (-logit + lam * reg).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward(inputs=[params])
                opt.step()
                with torch.no_grad():
                    params.clamp_(0, 1)
                lam *= self.lambda_growth
                bar.update(1)
        with torch.no_grad():
            maps = gen(params).float()
        return SaliencyResult(
            maps, target, probs, self.name,
            logits=logits,
            extras={"area": self.area, "iterations": self.iterations, "achieved_area": maps.flatten(1).mean(1)},
        )
