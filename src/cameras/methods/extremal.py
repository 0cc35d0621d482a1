"""Extremal Perturbation (Fong, Patrick, Vedaldi, ICCV 2019), preservation game."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from ..core.base import SaliencyMethod, progress_bar
from ..core.checks import check_count
from ..core.errors import InputError
from ..core.ops import gaussian_blur
from ..core.result import SaliencyResult
from ..core.targets import InputView, Target, bind_target, logits_or_none

# The mask's range (max − min) on chelsea with the embedded model: 0.20 after 50 iterations (nearly
# flat, area 0.87 for 0.3 asked), 0.38 after 100, 0.65 after 200, 0.85 after 300 (the default);
# scripts/extremal_convergence.py measures it
MIN_ITERATIONS = 200


def _flat_top(d: Tensor, sigma: float) -> Tensor:
    """Radial kernel of the distance d: 1 for d ≤ σ/2, then a Gaussian fall-off."""
    return torch.exp(-2.0 * ((d / sigma - 0.5).clamp(min=0) ** 2))


class _SmoothMax(torch.autograd.Function):
    """Smooth maximum over K neighbours, m = Σ_k v_k softmax(T·v)_k with v_k = p_k·w_k, per cell.

    Cell-major layout: ``p`` is N×K (N = batch × cells, the K grid values around each cell),
    ``tw`` = T·w is K×P (each neighbour's kernel weight at each of the P = step² pixels of a
    cell, the same in every cell, times the temperature); the result is N×P. Since p is
    constant over a cell, the weighted sums over neighbours are per-cell matrix products:
    T·Σ_k v_k e_k = p·(T·w ⊙ e) in the forward pass and Σ_pixels (T·w ⊙ e)·(…) in the
    backward pass, so one N×K×P tensor is written, exponentiated and scaled in place, and
    read by batched matrix products; nothing of that size is upsampled, gathered or kept
    twice. With ``shift=False`` the caller promises |v| ≤ 1 and K·T·e^T far below the
    dtype's range, so neither exp(T·v) nor the sums overflow or underflow and the per-pixel
    max-shift is skipped.
    """

    @staticmethod
    def forward(ctx, p: Tensor, tw: Tensor, temperature: float, shift: bool) -> Tensor:
        u = p[:, :, None] * tw  # T·v, N×K×P
        e = (u - u.amax(1, keepdim=True)).exp_() if shift else u.exp_()
        del u
        z = e.sum(1)  # N×P
        ew = e.mul_(tw)  # T·w ⊙ e
        m = torch.bmm(p[:, None], ew)[:, 0].div_(z * temperature)  # Σ_k p_k T w_k e_k / (T z)
        ctx.save_for_backward(p, ew, z, m, tw)
        ctx.temperature = temperature
        return m

    @staticmethod
    @once_differentiable
    def backward(ctx, g: Tensor):
        p, ew, z, m, tw = ctx.saved_tensors
        t = ctx.temperature
        # ∂m/∂v_k = softmax_k·(1 + T·v_k − T·m) and ∂v_k/∂p_k = w_k, summed over the cell:
        # ∂L/∂p_k = Σ_pixels T w_k e_k·(p_k·T w_k + 1 − T m)·G with G = g / (T z)
        gz = g / (z * t)
        lin = torch.bmm(ew, ((1 - t * m) * gz)[:, :, None])[:, :, 0]
        quad = torch.bmm(ew * tw, gz[:, :, None])[:, :, 0]
        return quad.mul_(p).add_(lin), None, None, None


class SmoothMask(nn.Module):
    """Maps a coarse parameter grid (one value per ``step`` px) to a smooth H×W mask.

    Grid points sit every ``step`` px on a canvas extended by ``margin`` = σ px on each side;
    each pixel takes the smooth maximum (softmax with temperature ``temperature``) over the
    (2r+1)² grid points within r = 1 + ⌈σ/step⌉ cells of its own cell, of value × a radial
    flat-top kernel of width σ of the distance; the result is clamped to [0, 1] and the
    margin cropped. Every cell holds exactly ``step`` pixels per side with the same offsets,
    so the kernel weights repeat from cell to cell and are computed once.

    Example:
        >>> gen = SmoothMask((20, 30))
        >>> params = torch.ones(2, *gen.grid_shape)
        >>> m = gen(params)
        >>> tuple(m.shape), float(m.min()) > 0.97  # a smooth maximum of ones stays just under 1
        ((2, 20, 30), True)
    """

    def __init__(self, size: tuple[int, int], step: int = 7, sigma: float = 21.0, temperature: float = 20.0):
        super().__init__()
        if int(step) != step or step < 1 or sigma <= 0 or temperature <= 0:
            raise InputError(f"step must be a positive integer and sigma, temperature positive; "
                             f"got {step}, {sigma}, {temperature}")
        self.size, self.step, self.sigma, self.temperature = size, int(step), float(sigma), float(temperature)
        step = self.step
        margin = self.sigma
        self.radius = radius = 1 + math.ceil(self.sigma / step)
        # grid points every `step` px from -(margin + radius·step) to n + margin + radius·step,
        # so that every pixel sees all of its 2·radius+1 neighbours in each direction (no
        # border effect that would bias the ranking of a uniform mask)
        self.grid_shape = tuple(math.ceil((n + 2 * margin) / step) + 1 + 2 * radius for n in size)
        offs = torch.arange(-radius, radius + 1, dtype=torch.float64)
        self.cells, self.crop, dist = [], [], []
        for n in size:
            # pixel y lies in cell floor((y + margin) / step); the cells covering 0..n-1, the
            # first pixel of the first one (≤ 0), and the in-cell positions of its pixels
            first, last = math.floor(margin / step), math.floor((n - 1 + margin) / step)
            start = math.ceil(first * step - margin)
            self.cells.append((first, last + 1))
            self.crop.append(-start)
            pos = torch.arange(step, dtype=torch.float64) + start + margin - first * step
            dist.append(pos[:, None] - offs[None] * step)  # step×(2r+1): pixel to neighbour
        d = torch.sqrt(dist[0][:, None, :, None] ** 2 + dist[1][None, :, None, :] ** 2)  # in-cell y, x × neighbour y, x
        k = (2 * radius + 1) ** 2
        w = _flat_top(d, self.sigma).reshape(step * step, k).t()  # K×(step·step), row-major in-cell
        self._tw64 = (self.temperature * w).contiguous()  # T·w in float64, cast once per dtype and device
        self._tw: dict[tuple[torch.dtype, torch.device], Tensor] = {}

    def weight(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        """T·w, K×step²: the temperature times each neighbour's kernel weight at each in-cell pixel."""
        key = (dtype, torch.device(device))
        if key not in self._tw:
            self._tw[key] = self._tw64.to(device=device, dtype=dtype)
        return self._tw[key]

    def forward(self, params: Tensor, bounded: bool = False) -> Tensor:
        """params B×gh×gw → mask B×H×W in [0, 1].

        ``bounded=True`` promises every parameter lies in [-1, 1] (Extremal Perturbation clamps
        them to [0, 1]), which lets float32/float64 with a moderate temperature (K·T·e^T < 1e30,
        T ≲ 60 for K = 81) skip the softmax's per-pixel max-shift.
        """
        B = params.shape[0]
        k, s = 2 * self.radius + 1, self.step
        gh, gw = self.grid_shape
        p = F.unfold(params[:, None], k).view(B, k * k, gh - k + 1, gw - k + 1)
        p = p[:, :, self.cells[0][0] : self.cells[0][1], self.cells[1][0] : self.cells[1][1]]
        cy, cx = p.shape[2:]
        p = p.permute(0, 2, 3, 1).reshape(B * cy * cx, k * k)  # one row of K neighbours per cell
        k2, t = k * k, self.temperature
        shift = not (bounded and params.dtype in (torch.float32, torch.float64)
                     and k2 * t * math.exp(min(t, 80.0)) < 1e30)
        m = _SmoothMax.apply(p, self.weight(params.dtype, params.device), t, shift)  # (B·cells)×(s·s)
        m = m.view(B, cy, cx, s, s).transpose(2, 3).reshape(B, cy * s, cx * s)
        (oy, ox), (H, W) = self.crop, self.size
        return m[:, oy : oy + H, ox : ox + W].clamp(0, 1)


def area_penalty(m: Tensor, n_zero: int) -> Tensor:
    """mean_j (sort(m)_j − r_j)² per row, r_j = 0 for the ``n_zero`` smallest entries and 1 after.

    Sorting only pairs each value with its reference, so the penalty equals
    mean_i (m_i − r_i)² where r_i = 1 marks the n − ``n_zero`` largest values; ties at the
    boundary go to the later indices, as a stable ascending sort orders them. One selection
    (``kthvalue``) instead of a full sort. ``m`` is B×n;
    returns B values, differentiable in ``m`` (the reference is a constant).

    Example:
        >>> area_penalty(torch.tensor([[0.2, 0.9, 0.5, 0.5]]), 2)  # r = [0, 1, 0, 1]
        tensor([0.1375])
    """
    with torch.no_grad():
        if n_zero <= 0:
            r = torch.ones_like(m)
        else:
            tau = m.kthvalue(n_zero + 1, dim=1, keepdim=True).values  # smallest of the kept
            above, tied = m > tau, m == tau
            need = (m.shape[1] - n_zero) - above.sum(1, keepdim=True)
            last_ties = tied.flip(1).cumsum(1).flip(1) <= need  # the `need` last tied entries
            r = (above | (tied & last_ties)).to(m.dtype)
    return ((m - r) ** 2).mean(1)


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

    The map is the same for the same call on one machine, but the iterations carry float
    rounding forward: the model run channels-last, or on another number of CPU threads,
    moved maps by up to 0.75 (Pearson r ≥ 0.93) on the sample photos at 300 iterations. So
    the model runs in the input's memory format, and maps from other implementations or
    machines compare by correlation.

    Example:
        >>> import torch, torchvision
        >>> ep = ExtremalPerturbation(torchvision.models.resnet18(num_classes=3), iterations=2)
        >>> ep(torch.randn(1, 3, 32, 32), target=0).maps.shape
        torch.Size([1, 32, 32])
    """

    name = "extremal"
    passes = 300
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
        iterations, step = check_count(iterations, "iterations"), check_count(step, "step")
        levels = check_count(levels, "levels")
        if levels < 2:
            raise InputError(f"levels must be an integer >= 2, got {levels!r}")
        for name, v in (("sigma", sigma), ("max_blur", max_blur), ("lr", lr), ("lambda_start", lambda_start)):
            if not v > 0:
                raise InputError(f"{name} must be positive, got {v!r}")
        if not lambda_growth >= 1:
            raise InputError(f"lambda_growth must be >= 1 (the area constraint grows, or stays), got {lambda_growth!r}")
        self.area, self.iterations, self.step, self.sigma = float(area), iterations, step, float(sigma)
        self.levels, self.max_blur, self.lr = levels, float(max_blur), float(lr)
        self.lambda_start, self.lambda_growth, self.jitter, self.progress = (
            float(lambda_start), float(lambda_growth), jitter, progress)
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

    def convergence_warning(self) -> str | None:
        if self.iterations < MIN_ITERATIONS:
            return (f"extremal: {self.iterations} iterations are too few for the mask to converge (its map stays "
                    f"nearly flat); use iterations ≥ {MIN_ITERATIONS} (300 by default, 800 in the method's paper)")
        return None

    def explain_batch(self, x: Tensor, target: Target | None) -> SaliencyResult:
        B, _, H, W = x.shape
        with torch.no_grad():
            output = self.model(x)
            target = bind_target(target, output)
            probs, logits = target.probability(output), logits_or_none(output)
            pyr = self._pyramid(x)
        gen = SmoothMask((H, W), self.step, self.sigma)  # its weights follow the parameters' device
        params = torch.full((B, *gen.grid_shape), self.init, device=x.device, requires_grad=True)
        opt = torch.optim.SGD([params], lr=self.lr, momentum=0.9, dampening=0.9)
        n_zero = int(math.floor((1 - self.area) * H * W))
        lam = self.lambda_start
        # a region or box follows the mirrored copies of the jitter
        mirrored = target.view((target.input_view or InputView.identity((H, W))).flipped()) if self.jitter else None
        with progress_bar(self.iterations, "extremal", self.progress, self.stop) as bar:
            for it in range(self.iterations):
                mask = gen(params, bounded=True)
                xp = self._perturb(pyr, mask.to(pyr.dtype))  # a half-precision model gets its own dtype
                if self.jitter and it % 2 == 0:
                    logit = mirrored.score(self.model(xp.flip(-1)))
                else:
                    logit = target.score(self.model(xp))
                reg = area_penalty(mask.flatten(1), n_zero)
                loss = (-logit + lam * reg).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward(inputs=[params])
                opt.step()
                with torch.no_grad():
                    params.clamp_(0, 1)
                lam *= self.lambda_growth
                bar.update(1)
        with torch.no_grad():
            maps = gen(params, bounded=True).float()
        return self.result(
            maps, target, probs, logits,
            extras={"area": self.area, "iterations": self.iterations, "achieved_area": maps.flatten(1).mean(1)},
        )
