"""Model-randomisation sanity check (Adebayo et al., NeurIPS 2018) and its `cameras randomize` runner."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .core.base import progress_bar
from .core.checks import check_images
from .core.errors import InputError
from .core.guard import frozen_eval
from .core.ops import resize_maps
from .core.result import SaliencyResult
from .core.targets import class_scores
from .images import load_image
from .io import encode_json, write_files_atomically
from .methods import build_method
from .viz import figure_png, overlay, pyplot


def blocks_top_down(model: nn.Module) -> list[str]:
    """Names of the model's top-level children that hold parameters, logits first.

    Example:
        >>> import torchvision
        >>> blocks_top_down(torchvision.models.resnet18())[:3]
        ['fc', 'layer4', 'layer3']
    """
    return [n for n, m in reversed(list(model.named_children())) if any(True for _ in m.parameters())]


def _reinit(module: nn.Module, generator_seed: int) -> None:
    kinds = {p.device.type for p in module.parameters()}
    if not kinds <= {"cpu", "cuda"}:  # other accelerators (mps, xpu): every generator seeded, as torch.manual_seed does
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(generator_seed)
            _reset(module)
        return
    # the generators the draws use (the CPU's, and those of the module's CUDA devices) are seeded and restored after;
    # torch.manual_seed would also reseed every CUDA device, and the caller's CUDA random stream with it
    cuda = sorted({p.device.index if p.device.index is not None else torch.cuda.current_device()
                   for p in module.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(generator_seed)
        for d in cuda:
            torch.cuda.default_generators[d].manual_seed(generator_seed)
        _reset(module)


def _reset(module: nn.Module) -> None:
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
    target=None,
    seed: int = 0,
    progress: bool | None = False,
    label: str = "randomization",
) -> list[dict]:
    """Re-initialise the model block by block, logits first, and compare each map with the trained one.

    Args:
        model: the trained classifier (never modified: a copy is randomised).
        x: 1×C×H×W normalised image.
        method: builds an explainer from a model, e.g. ``lambda m: cameras.GradCAM(m, layer="layer4")``.
        mode: ``"cascading"`` (blocks re-initialised cumulatively from the top) or
            ``"independent"`` (one block at a time, the others trained).
        blocks: names of the modules to re-initialise, top first (default: the top-level
            children with parameters, see :func:`blocks_top_down`). Any submodule with
            parameters may be named (``"blocks.6"``, ``"features.28"``), for a finer walk
            than the top level where a network keeps its layers in one container.
        target: class (or any target of :mod:`cameras.targets`) explained throughout
            (default: the trained model's top-1).
        seed: re-initialisation seed (block i uses seed + i).
        progress: a bar over the maps (the trained one, then one per block): False (default)
            never, None on a terminal only, True always. ``label``: the bar's title.

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
    if check_images(x)[0] != 1:
        raise InputError(f"x must be one image, 1×C×H×W, got {tuple(x.shape)}; check the images one at a time "
                         "(x[i:i + 1])")
    names = blocks_top_down(model)
    blocks = names if blocks is None else list(blocks)
    if not blocks:
        raise InputError(f"no blocks to re-initialise; name some, e.g. {', '.join(names[:2])}")
    modules = dict(model.named_modules())
    unknown = [b for b in blocks if b not in modules or not b]
    if unknown:
        raise InputError(f"unknown block {unknown[0]!r}; blocks of this model: {', '.join(names)} (or any submodule "
                         "with parameters, by its dotted name, e.g. from model.named_modules())")
    empty = [b for b in blocks if not any(True for _ in modules[b].parameters())]
    if empty:
        raise InputError(f"block {empty[0]!r} has no parameters, so re-initialising it changes nothing; name "
                         "modules that hold weights")
    work = copy.deepcopy(model)
    with progress_bar(len(blocks) + 1, label, progress) as bar:
        if target is None:  # the trained top-1, given explicitly to every map (the trained one too: made the same way)
            with frozen_eval(work), torch.no_grad():
                target = class_scores(work(x)).argmax(1)
        trained = method(work)(x, target=target)
        target = trained.target if trained.target is not None else trained.targets  # the same target throughout
        ref = trained.maps[0]
        bar.update(1)
        out = [{"step": 0, "block": None, "reinitialized": [], "map": ref, **similarity(ref, ref)}]
        done: list[str] = []
        for i, name in enumerate(blocks, start=1):
            if mode == "independent":
                work = copy.deepcopy(model)
                done = []
            _reinit(work.get_submodule(name), seed + i)
            done.append(name)
            m = method(work)(x, target=target).maps[0]
            bar.update(1)
            out.append({"step": i, "block": name, "reinitialized": list(done), "map": m, **similarity(ref, m)})
        return out


def randomize_image(bundle, path: Path, methods: list[str], out_dir: Path, mode: str, seed: int,
                    square: bool, blocks: list[str] | None = None, progress: bool | None = None) -> dict:
    """`cameras randomize`: :func:`randomization_check` for each method, a grid of maps per step and
    the similarity curves; writes ``<stem>.randomize.png``, ``.similarity.png`` and ``.randomize.json``.
    ``blocks``: the modules to re-initialise, top first (None: the top-level blocks). ``progress``:
    a bar per method (None: on a terminal only; False: never).

    ``bundle`` is a :class:`~cameras.ModelBundle`; every method is built on each randomised
    copy of its model with the bundle's layer. Returns the JSON summary.
    """
    plt = pyplot()
    x = bundle.prepare(load_image(path), square, normalized=False)
    xn = bundle.normalize(x)
    with torch.no_grad():
        target = int(class_scores(bundle.model(xn)).argmax(1)[0])
    def on(m: str):
        return lambda mod: build_method(m, dataclasses.replace(bundle, model=mod))

    results = {m: randomization_check(bundle.model, xn, on(m), mode=mode, blocks=blocks, target=target, seed=seed,
                                      progress=progress, label=f"randomization ({m})") for m in methods}
    steps = len(next(iter(results.values())))
    rgb = (x[0].permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
    fig, axes = plt.subplots(len(methods), steps, figsize=(1.6 * steps, 1.7 * len(methods)), squeeze=False)
    for r, m in enumerate(methods):
        for c, o in enumerate(results[m]):
            sal = resize_maps(o["map"][None], rgb.shape[:2])[0].cpu().numpy()
            axes[r][c].imshow(overlay(rgb, np.clip(sal, 0, 1)))
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
            if r == 0:
                axes[r][c].set_title("trained" if o["block"] is None else f"−{o['block']}", fontsize=7)
        axes[r][0].set_ylabel(m, fontsize=8)
    fig.suptitle(f"{mode} randomisation, logits first ({bundle.name})", fontsize=9)
    fig.tight_layout()
    fig2, axs = plt.subplots(1, 3, figsize=(11, 3.2))
    for m in methods:
        xs = range(steps)
        for ax, key in zip(axs, ("spearman_abs", "ssim", "hog")):
            ax.plot(xs, [o[key] for o in results[m]], "o-", label=m)
            ax.set_title(key.replace("_", " "), fontsize=9)
    labels = ["trained"] + [o["block"] for o in results[methods[0]][1:]]
    for ax in axs:
        ax.set_xticks(range(steps), labels, rotation=60, fontsize=7)
        ax.legend(fontsize=7)
    fig2.tight_layout()
    summary = {"model": bundle.name, "image": str(path), "mode": mode, "seed": seed, "target": target,
               "methods": {m: [{k: v for k, v in o.items() if k != "map"} for o in results[m]] for m in methods}}
    write_files_atomically({out_dir / f"{path.stem}.randomize.png": figure_png(fig),
                            out_dir / f"{path.stem}.similarity.png": figure_png(fig2),
                            out_dir / f"{path.stem}.randomize.json": encode_json(summary)})
    return summary
