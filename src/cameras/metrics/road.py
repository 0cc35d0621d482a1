"""ROAD: RemOve And Debias (Rong et al., "A Consistent and Efficient Evaluation Strategy for
Attribution Methods", ICML 2022).

A fraction of each image's pixels, chosen by its saliency map, is removed and filled in by
*noisy linear imputation*: every removed pixel is set to the weighted mean of its eight
neighbours (edge neighbours weigh 1/6, corner neighbours 1/12), all removed pixels solved
jointly as one sparse linear system, and a little Gaussian noise is added to the filled-in
values so the model cannot read the removal pattern from perfectly smooth patches. The
model's probability of the target is then read on the imputed image.

MoRF (most relevant first) removes the top of the map, LeRF (least relevant first) its
bottom; a good map makes the MoRF probability fall fast and the LeRF probability stay high.
:func:`road` returns both curves over the removal percentages, their means and the
combined score (LeRF mean − MoRF mean) / 2.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import splu
from torch import Tensor, nn

from ..core.checks import check_count, check_images, check_maps, check_seed
from ..core.errors import InputError
from ..core.guard import frozen_model
from ..core.targets import TargetLike, as_target, bind_target

# (row step, column step, weight) of the eight neighbours of a pixel.
_EDGE, _CORNER = 1 / 6, 1 / 12
_NEIGHBOURS = (
    (-1, 0, _EDGE), (1, 0, _EDGE), (0, -1, _EDGE), (0, 1, _EDGE),
    (-1, -1, _CORNER), (-1, 1, _CORNER), (1, -1, _CORNER), (1, 1, _CORNER),
)

ORDERS = ("morf", "lerf", "both")


def _check_noise(noise: float) -> float:
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not math.isfinite(noise) or noise < 0:
        raise InputError(f"noise must be a finite standard deviation >= 0, got {noise!r}; "
                         "use 0 for the deterministic imputation or the paper's 0.01")
    return float(noise)


def _fill_one(img: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """C×H×W float64 image with its removed pixels (H×W bool) replaced by the linear imputation."""
    C, H, W = img.shape
    flat = img.reshape(C, H * W)
    unknown = np.flatnonzero(removed.reshape(-1))
    n = unknown.size
    if n == 0:
        return img
    var = np.full(H * W, -1, dtype=np.int64)  # pixel index -> unknown's row in the system
    var[unknown] = np.arange(n)
    row, col = np.divmod(unknown, W)
    diag = np.zeros(n)
    rhs = np.zeros((n, C))
    ii, jj, vv = [], [], []
    # Equation of unknown i:  (Σ_j w_ij) x_i − Σ_{removed j} w_ij x_j = Σ_{kept j} w_ij v_j,
    # over the neighbours j inside the image: x_i is the renormalised weighted mean of its neighbours.
    for dr, dc, w in _NEIGHBOURS:
        r, c = row + dr, col + dc
        inside = (r >= 0) & (r < H) & (c >= 0) & (c < W)
        diag[inside] += w
        eq = np.flatnonzero(inside)
        q = r[inside] * W + c[inside]
        other = var[q]
        solved = other >= 0
        ii.append(eq[solved])
        jj.append(other[solved])
        vv.append(np.full(int(solved.sum()), -w))
        np.add.at(rhs, eq[~solved], w * flat[:, q[~solved]].T)
    ii = np.concatenate([np.arange(n), *ii])
    jj = np.concatenate([np.arange(n), *jj])
    vv = np.concatenate([diag, *vv])
    system = csc_matrix((vv, (ii, jj)), shape=(n, n))
    values = splu(system).solve(rhs)  # n×C: every channel is one right-hand side
    out = flat.copy()
    out[:, unknown] = values.T
    return out.reshape(C, H, W)


def noisy_linear_impute(
    x: Tensor, removed: Tensor, noise: float = 0.01, generator: torch.Generator | None = None
) -> Tensor:
    """Fill the removed pixels of B images by noisy linear imputation (ROAD's debiasing step).

    Every removed pixel becomes the weighted mean of its 8 neighbours, edge neighbours
    weighing 1/6 and corner neighbours 1/12, the weights renormalised over the neighbours
    inside the image (a corner pixel averages 3 neighbours with weights 2/5, 2/5, 1/5).
    Neighbours that are themselves removed enter as unknowns, so all removed pixels of an
    image are solved together: one sparse system per image, its C channels as C right-hand
    sides (solved in float64 on the CPU). Kept pixels are returned unchanged; Gaussian
    noise of standard deviation ``noise`` is then added to the imputed pixels only.

    Args:
        x: B×C×H×W float images (normalised; any range), on any device.
        removed: B×H×W bool, True where a pixel is removed and imputed. Each image must
            keep at least one pixel.
        noise: standard deviation (≥ 0, in x's units) of the noise added to imputed pixels;
            0 gives the deterministic imputation. The paper and pytorch-grad-cam use 0.01.
        generator: torch.Generator for the noise; image b gets the b-th C×H×W draw
            (``torch.randn`` on the generator's device). None uses torch's global RNG.

    Returns:
        B×C×H×W tensor with x's dtype and device.

    Example:
        >>> x = torch.arange(9.0).view(1, 1, 3, 3)
        >>> removed = torch.zeros(1, 3, 3, dtype=torch.bool)
        >>> removed[0, 1, 1] = True  # the centre: mean of the ring, edges 1/6, corners 1/12
        >>> round(float(noisy_linear_impute(x, removed, noise=0)[0, 0, 1, 1]), 4)
        4.0
    """
    noise = _check_noise(noise)
    B, C, H, W = check_images(x)
    if not isinstance(removed, Tensor) or tuple(removed.shape) != (B, H, W):
        got = tuple(removed.shape) if isinstance(removed, Tensor) else type(removed).__name__
        raise InputError(f"removed must be a B×H×W bool tensor matching x, expected {(B, H, W)}, got {got}")
    if removed.dtype != torch.bool:
        raise InputError(f"removed must be a bool tensor (True = impute), got {removed.dtype}; use removed.bool()")
    rem = removed.detach().cpu().numpy()
    full = rem.reshape(B, -1).all(1)
    if full.any():
        raise InputError(f"image {int(np.flatnonzero(full)[0])} has every pixel removed; keep at least one pixel "
                         "so the imputation has values to start from")
    img = x.detach().cpu().double().numpy()
    filled = np.stack([_fill_one(img[b], rem[b]) for b in range(B)])
    out = torch.from_numpy(filled).to(device=x.device, dtype=x.dtype)
    if noise > 0:
        dev = generator.device if generator is not None else x.device
        eps = torch.stack([torch.randn((C, H, W), generator=generator, device=dev) for _ in range(B)])
        out = out + noise * eps.to(device=x.device, dtype=x.dtype)
    return torch.where(removed[:, None].to(x.device), out, x)


def removed_count(percentile: float, n: int) -> int:
    """How many of n pixels ROAD removes at ``percentile`` (0 < p < 100): N − ⌈(1 − p/100)(N − 1)⌉.

    These are the pixels at or above the (100 − p)-th percentile of a tie-free map under
    linear interpolation (``numpy.percentile``'s default), the rule pytorch-grad-cam's ROAD
    applies; for N ≥ 2 the count lies in 1..N−1, about p % of N.

    Example:
        >>> [removed_count(p, 16) for p in (10, 50, 90)], removed_count(99.9999999999, 16)
        ([2, 8, 14], 15)
    """
    # clamped: a p so close to 100 that the rounding gives N
    return min(n - 1, max(1, n - math.ceil(round((100 - percentile) / 100 * (n - 1), 9))))


def _check_percentiles(percentiles: Sequence[float]) -> list[float]:
    if isinstance(percentiles, (str, bytes)) or not isinstance(percentiles, (Sequence, Tensor, np.ndarray)):
        raise InputError(f"percentiles must be a sequence of numbers in (0, 100), got {percentiles!r}")
    values = percentiles.tolist() if isinstance(percentiles, (Tensor, np.ndarray)) else percentiles
    try:
        ps = [float(p) for p in values]
    except (TypeError, ValueError):
        raise InputError(f"percentiles must be numbers in (0, 100), got {percentiles!r}") from None
    if not ps:
        raise InputError("percentiles is empty; pass e.g. (10, 20, 30, 40, 50, 60, 70, 80, 90)")
    bad = [p for p in ps if not (0 < p < 100)]
    if bad:
        raise InputError(f"percentiles must lie strictly between 0 and 100 (the share of pixels removed), "
                         f"got {bad[0]!r}")
    return ps


@torch.no_grad()
@frozen_model  # batch norms neither use nor update batch statistics, dropout is off
def road(
    model: nn.Module,
    x: Tensor,
    maps: Tensor,
    percentiles: Sequence[float] = (10, 20, 30, 40, 50, 60, 70, 80, 90),
    order: str = "both",
    target: TargetLike = None,
    noise: float = 0.01,
    seed: int | None = 0,
    batch_size: int = 32,
    relative: bool = False,
) -> dict[str, Tensor]:
    """ROAD curves of B normalised images for their saliency maps (Rong et al., ICML 2022).

    For each percentile p, the p % most relevant pixels of each map (MoRF) or its p % least
    relevant (LeRF) are removed and filled by :func:`noisy_linear_impute`; the score is
    the softmax probability of ``target`` on the imputed image (class ids; default: each
    image's clean top-1), or the probability of any target of :mod:`cameras.targets`.
    Masked images are run ``batch_size`` per forward pass, the model in eval mode (its mode
    and parameters restored after).

    Pixel selection: p % of N pixels means exactly :func:`removed_count` (p, N) pixels,
    taken by a stable argsort of the map (descending for MoRF, ascending for LeRF), so
    ties are split by pixel index. pytorch-grad-cam instead thresholds the map at its
    ``numpy.percentile`` value and removes every pixel at or above it (all of a tie
    together, so a constant map removes every pixel there and its linear system is
    singular); on tie-free maps both remove the same pixels. Note that its ``percentile``
    argument is the share of pixels *kept*: ``ROADMostRelevantFirst(percentile=q)`` and
    ``ROADLeastRelevantFirst(percentile=q)`` remove 100 − q %, i.e. they equal this
    function's p = 100 − q column. Over the symmetric default percentiles the means agree.

    What pytorch-grad-cam returns, with ``ClassifierOutputSoftmaxTarget(c)`` targets
    (``ClassifierOutputTarget`` would give logits instead): the target's score after
    imputation minus its score on the clean image (< 0 when removal hurts). So, with
    ``relative=True``, ``ROADMostRelevantFirst(100 − p)`` is ``morf[:, i]``,
    ``ROADMostRelevantFirstAverage([100 − p for p in percentiles])`` is ``morf_mean`` (and
    likewise for LeRF), and ``ROADCombined`` (its (LeRF average − MoRF average) / 2) is
    ``combined``, which does not depend on ``relative``. Its imputer adds the same
    N(0, 0.01²) noise to imputed pixels, drawn from torch's global RNG.

    Noise: one torch.Generator seeded with ``seed`` (on the CPU, so results match across
    devices) draws one C×H×W noise image per (order, percentile), MoRF's first, shared by
    every image of the batch, so an image's values depend neither on the other images in
    its batch nor on ``batch_size``, and MoRF values do not depend on ``order``.
    ``seed=None`` uses torch's global RNG.

    Args:
        model: classifier returning B×N scores (or any output a target can read).
        x: B×C×H×W float images, normalised as the model expects; H·W ≥ 2.
        maps: B×H×W saliency maps on x's grid (any real values; larger = more relevant).
        percentiles: shares of pixels removed, each strictly between 0 and 100.
        order: ``"morf"``, ``"lerf"`` or ``"both"``.
        target: what to score (see :mod:`cameras.core.targets`); None = clean top-1 class.
        noise: standard deviation of the imputation noise, ≥ 0 (0.01 as in the paper).
        seed: seed of the noise generator, or None for torch's global RNG.
        batch_size: masked images per forward pass, ≥ 1.
        relative: report curves and means minus the clean probability, as pytorch-grad-cam does.

    Returns:
        dict of tensors on x's device: ``percentiles`` (P), ``clean`` (B, probability on
        the unmodified images), ``morf`` and/or ``lerf`` (B×P, probabilities in [0, 1],
        or changes in [−1, 1] with ``relative``), ``morf_mean`` / ``lerf_mean`` (B, mean
        over percentiles), ``combined`` (B, (lerf_mean − morf_mean) / 2, in [−0.5, 0.5] for
        probabilities; only for ``order="both"``; higher is better), and ``target`` (B label
        ids, -1 for a target without labels).

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3))
        >>> r = road(net, torch.randn(1, 3, 4, 4), torch.rand(1, 4, 4), percentiles=(25, 50, 75))
        >>> tuple(r["morf"].shape), tuple(r["combined"].shape)
        ((1, 3), (1,))
    """
    B, C, H, W = check_images(x)
    maps = check_maps(maps, x)
    if H * W < 2:
        raise InputError(f"images of {H}×{W} pixels are too small for ROAD; it needs at least 2 pixels")
    ps = _check_percentiles(percentiles)
    if order not in ORDERS:
        raise InputError(f"unknown order {order!r}; choose one of {', '.join(ORDERS)}")
    noise = _check_noise(noise)
    batch_size = check_count(batch_size, "batch_size")
    seed = None if seed is None else check_seed(seed)
    device = x.device
    scores_map = maps.detach() if maps.is_floating_point() else maps.detach().float()
    out = model(x)
    target = bind_target(as_target(target, B, device, tuple(x.shape[-2:])), out)
    clean = target.probability(out)
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    N, P = H * W, len(ps)
    # one noise image per (order, percentile), shared by the images: index 0 is MoRF's, 1 LeRF's
    eps = torch.randn((2, P, C, H, W), generator=generator).to(device=device, dtype=x.dtype) * noise
    counts = torch.tensor([removed_count(p, N) for p in ps], device=device)
    kinds = ("morf", "lerf") if order == "both" else (order,)
    result: dict[str, Tensor] = {"percentiles": torch.tensor(ps, device=device), "clean": clean}
    for kind in kinds:
        ranking = scores_map.flatten(1).argsort(dim=1, descending=kind == "morf", stable=True)  # B×N
        rank = torch.empty_like(ranking)
        rank.scatter_(1, ranking, torch.arange(N, device=maps.device).expand(B, -1))
        rank = rank.to(device)
        # row j of the job list: image j // P at percentile j % P
        scores = torch.empty(B * P, device=device)
        for s0 in range(0, B * P, batch_size):
            jobs = torch.arange(s0, min(s0 + batch_size, B * P), device=device)
            img, pct = jobs // P, jobs % P
            removed = (rank[img] < counts[pct, None]).view(-1, H, W)
            filled = noisy_linear_impute(x[img], removed, 0.0)
            inp = torch.where(removed[:, None], filled + eps[ORDERS.index(kind), pct], filled)
            scores[jobs] = target.select(img).probability(model(inp)).to(device)
        curve = scores.view(B, P)
        if relative:
            curve = curve - clean[:, None]
        result[kind] = curve
        result[f"{kind}_mean"] = curve.mean(1)
    if order == "both":
        result["combined"] = (result["lerf_mean"] - result["morf_mean"]) / 2
    result["target"] = target.labels(B, device)
    return result


__all__ = ["noisy_linear_impute", "removed_count", "road"]
