"""Timing and memory measurement of saliency methods against their floor (forward passes).

Used by ``cameras bench`` and by ``benchmarks/run.py`` (``make bench``). Times are medians
of repeated calls after a warm-up, with the device synchronised, all in one process.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .core.base import sync
from .methods import CAMERAS, GradCAM


def median_seconds(fn: Callable[[], object], device: torch.device, reps: int = 3, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``reps`` calls after ``warmup`` calls.

    Example:
        >>> median_seconds(lambda: sum(range(10)), torch.device("cpu"), reps=2) >= 0
        True
    """
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_seconds(fns: dict[str, Callable[[], object]], device: torch.device, reps: int = 3,
                        warmup: int = 1, block: int = 1, tick: Callable[[], object] | None = None) -> dict[str, float]:
    """Median seconds per call of each function, timed round-robin so that a noisy, drifting machine
    biases none of them (the ratios of these medians are what benchmarks report).

    ``block``: each timing runs the function that many times in a row and is divided by it (for
    calls of milliseconds, which one timer reading cannot resolve); ``warmup`` blocks run first.
    ``tick``: called after each function's warm-up and after each timing, ``len(fns) * (reps + 1)``
    times in all (``len(fns) * reps`` without warm-up), e.g. a progress bar's ``update``.

    Example:
        >>> sorted(interleaved_seconds({"a": lambda: 1, "b": lambda: 2}, torch.device("cpu"), reps=2, block=3))
        ['a', 'b']
    """
    tick = tick or (lambda: None)
    for fn in fns.values():
        for _ in range(warmup * block):
            fn()
        if warmup:
            tick()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            for _ in range(block):
                fn()
            sync(device)
            times[k].append((time.perf_counter() - start) / block)
            tick()
    return {k: statistics.median(v) for k, v in times.items()}


def scaled_inputs(x: torch.Tensor, method: CAMERAS) -> list[torch.Tensor]:
    """The inputs CAMERAS feeds the model, one per scale (for measuring the floor)."""
    sizes = method.scale_sizes(*x.shape[-2:])
    return [x if t == 0 else F.interpolate(x, size=s, mode=method.resample, align_corners=False)
            for t, s in enumerate(sizes)]


def forward_all(model: nn.Module, inputs: list[torch.Tensor]) -> None:
    """The floor: one inference-mode forward pass per input."""
    with torch.inference_mode():
        for xi in inputs:
            model(xi)


def pearson_rows(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    """The Pearson r of each pair of rows of two B×N tensors (maps flattened), in float64: 1.0 for two equal
    rows, NaN when one row is constant and the other is not.

    Example:
        >>> pearson_rows(torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[0.0, 2.0, 4.1]]))[0] > 0.99
        True
    """
    return [1.0 if torch.equal(p, q) else float(torch.corrcoef(torch.stack([p.double(), q.double()]))[0, 1])
            for p, q in zip(a, b)]


def min_pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """The smallest Pearson r between the rows of two B×N tensors (maps flattened): 1.0 for two equal rows,
    NaN when a row of one is constant and the other's is not (r is undefined there; NaN is never hidden
    by a smaller value).

    Example:
        >>> a = torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
        >>> min_pearson(a, a), min_pearson(a, a.flip(0))
        (1.0, nan)
    """
    rs = pearson_rows(a, b)
    return float("nan") if any(r != r for r in rs) else min(rs)


def bench_cameras(model: nn.Module, x: torch.Tensor, target: int = 0, layer=None, scales=None, reps: int = 3,
                  bf16: bool = False, progress: bool | None = False) -> dict:
    """Floor, CAMERAS (exact and grid), one forward and Grad-CAM, in seconds per batch.

    Returns a dict with ``floor``, ``cameras``, ``cameras_grid``, ``forward``, ``gradcam``
    and the ratios ``cameras/floor``, ``gradcam/forward``. With ``bf16``, also
    ``cameras_bf16`` (``precision="bf16"``, timed in the same round-robin as the floor),
    ``cameras_bf16/floor`` and ``bf16_pearson``, the smallest Pearson r over the batch between
    its maps and the exact ones (see :func:`min_pearson`; on ``x``: a fidelity on random input
    is a first look, not a verdict on photos). ``progress``: a tqdm bar over the timed calls
    (False: none, the default; None: on a terminal only).

    Example:
        >>> import torchvision
        >>> r = bench_cameras(torchvision.models.resnet18(), torch.randn(1, 3, 64, 64), scales=[64, 96], reps=1)
        >>> sorted(r)[:3]
        ['cameras', 'cameras/floor', 'cameras_grid']
        >>> r = bench_cameras(torchvision.models.resnet18(), torch.randn(1, 3, 64, 64), scales=[64], reps=1, bf16=True)
        >>> 0.9 < r["bf16_pearson"] <= 1.0
        True
    """
    import warnings

    model.eval()
    dev = x.device
    exact = CAMERAS(model, layer=layer, scales=scales)
    grid = CAMERAS(model, layer=layer, scales=scales, fusion="grid")
    gradcam = GradCAM(model, layer=exact.layer_name if exact.layer is not None else layer)
    inputs = scaled_inputs(x, exact)
    groups = {
        "floor": lambda: forward_all(model, inputs),
        "cameras": lambda: exact(x, target=target),
        "cameras_grid": lambda: grid(x, target=target),
    }
    if bf16:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # emulated bf16: the timing says it
            low = CAMERAS(model, layer=exact.layer_name if exact.layer is not None else layer, scales=scales,
                          precision="bf16")
        groups["cameras_bf16"] = lambda: low(x, target=target)
    singles = {"forward": lambda: forward_all(model, [x]), "gradcam": lambda: gradcam(x, target=target)}
    total = (len(groups) + len(singles)) * (reps + 1) + bf16  # + the bf16 maps' comparison
    with tqdm(total=total, desc=f"bench batch {x.shape[0]}", unit="call", leave=False,
              disable=None if progress is None else not progress) as bar:
        out = interleaved_seconds(groups, dev, reps, tick=bar.update)
        out.update(interleaved_seconds(singles, dev, reps, tick=bar.update))
        out["cameras/floor"] = out["cameras"] / out["floor"]
        out["cameras_grid/floor"] = out["cameras_grid"] / out["floor"]
        out["gradcam/forward"] = out["gradcam"] / out["forward"]
        if bf16:
            out["cameras_bf16/floor"] = out["cameras_bf16"] / out["floor"]
            ref, got = exact(x, target=target).maps, low(x, target=target).maps
            out["bf16_pearson"] = min_pearson(ref.flatten(1), got.flatten(1))
            bar.update()
    return out
