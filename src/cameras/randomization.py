"""Model-randomisation sanity check (Adebayo et al., NeurIPS 2018)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from .core.errors import InputError
from .core.result import SaliencyResult


def blocks_top_down(model: nn.Module) -> list[str]:
    """Names of the model's top-level children that hold parameters, logits first.

    Example:
        >>> import torchvision
        >>> blocks_top_down(torchvision.models.resnet18())[:3]
        ['fc', 'layer4', 'layer3']
    """
    return [n for n, m in reversed(list(model.named_children())) if any(True for _ in m.parameters())]


def _reinit(module: nn.Module, generator_seed: int) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(generator_seed)
        for m in module.modules():
            if hasattr(m, "reset_parameters") and callable(m.reset_parameters):
                m.reset_parameters()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                m.reset_running_stats()


def _rank(a: np.ndarray) -> np.ndarray:
    order = a.argsort(kind="stable")
    r = np.empty_like(order, dtype=np.float64)
    r[order] = np.arange(a.size)
    # average ranks of ties
    _, inv, counts = np.unique(a, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=r)
    return (sums / counts)[inv]


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def similarity(a: Tensor, b: Tensor) -> dict[str, float]:
    """Spearman rank correlation (signed and of absolute values), SSIM and HOG correlation of two H×W maps.

    Correlation coefficients only, never p-values; a constant map gives 0, so every value is finite.

    Example:
        >>> m = torch.rand(32, 32)
        >>> similarity(m, m)["spearman"]
        1.0
    """
    from skimage.feature import hog
    from skimage.metrics import structural_similarity

    x = a.detach().float().cpu().numpy().astype(np.float64)
    y = b.detach().float().cpu().numpy().astype(np.float64)
    out = {
        "spearman": _corr(_rank(x.ravel()), _rank(y.ravel())),
        "spearman_abs": _corr(_rank(np.abs(x).ravel()), _rank(np.abs(y).ravel())),
        "ssim": float(structural_similarity(x, y, data_range=1.0)),
    }
    size = min(x.shape)
    ppc = max(2, size // 8)
    hx = hog(x, pixels_per_cell=(ppc, ppc), cells_per_block=(2, 2), feature_vector=True)
    hy = hog(y, pixels_per_cell=(ppc, ppc), cells_per_block=(2, 2), feature_vector=True)
    out["hog"] = _corr(hx, hy)
    return {k: (v if np.isfinite(v) else 0.0) for k, v in out.items()}


def randomization_check(
    model: nn.Module,
    x: Tensor,
    method: Callable[[nn.Module], Callable[..., SaliencyResult]],
    mode: str = "cascading",
    blocks: list[str] | None = None,
    target: int | Tensor | None = None,
    seed: int = 0,
) -> list[dict]:
    """Re-initialise the model block by block, logits first, and compare each map with the trained one.

    Args:
        model: the trained classifier (never modified: a copy is randomised).
        x: 1×C×H×W normalised image.
        method: builds an explainer from a model, e.g. ``lambda m: cameras.GradCAM(m, layer="layer4")``.
        mode: ``"cascading"`` (blocks re-initialised cumulatively from the top) or
            ``"independent"`` (one block at a time, the others trained).
        blocks: top-level child names to re-initialise, top first (default: all with
            parameters, see :func:`blocks_top_down`).
        target: class explained throughout (default: the trained model's top-1).
        seed: re-initialisation seed (block i uses seed + i).

    Returns:
        One dict per step: ``{"step", "block", "reinitialized" (list of blocks), "spearman",
        "spearman_abs", "ssim", "hog", "map"}``; step 0 is the trained model (similarity 1).

    Example:
        >>> import torchvision, cameras
        >>> net = torchvision.models.resnet18(num_classes=3)
        >>> out = randomization_check(net, torch.randn(1, 3, 64, 64), lambda m: cameras.GradCAM(m, layer="layer4"))
        >>> out[0]["spearman"], out[1]["block"]
        (1.0, 'fc')
    """
    if mode not in ("cascading", "independent"):
        raise InputError(f"mode must be 'cascading' or 'independent', got {mode!r}")
    names = blocks_top_down(model)
    blocks = names if blocks is None else list(blocks)
    unknown = [b for b in blocks if b not in dict(model.named_children())]
    if unknown:
        raise InputError(f"unknown block {unknown[0]!r}; blocks of this model: {', '.join(names)}")
    work = copy.deepcopy(model)
    trained = method(work)(x, target=target)
    target = trained.targets
    ref = trained.maps[0]
    out = [{"step": 0, "block": None, "reinitialized": [], "map": ref, **similarity(ref, ref)}]
    done: list[str] = []
    for i, name in enumerate(blocks, start=1):
        if mode == "independent":
            work = copy.deepcopy(model)
            done = []
        _reinit(dict(work.named_children())[name], seed + i)
        done.append(name)
        m = method(work)(x, target=target).maps[0]
        out.append({"step": i, "block": name, "reinitialized": list(done), "map": m, **similarity(ref, m)})
    return out
