"""Small tensor operations shared by the methods: input checks, resizing, normalisation, blur."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import InputError


def grad_safe(t: Tensor) -> Tensor:
    """``t`` (any shape) usable in a recorded graph: a tensor made under ``torch.inference_mode()`` is cloned out of
    it (autograd cannot save an inference tensor for the backward), any other is returned as it is.

    Example:
        >>> with torch.inference_mode():
        ...     t = torch.ones(2)
        >>> grad_safe(t).is_inference(), grad_safe(torch.ones(2)).is_inference()
        (False, False)
    """
    return t.clone() if t.is_inference() else t


def check_batch(x: object) -> Tensor:
    """Validate a normalised image batch: a floating B×C×H×W tensor with H, W >= 8.

    Example:
        >>> import torch
        >>> check_batch(torch.zeros(2, 3, 16, 16)).shape
        torch.Size([2, 3, 16, 16])
    """
    if not isinstance(x, Tensor):
        raise InputError(f"x must be a torch.Tensor of shape B×C×H×W, got {type(x).__name__}")
    if x.dim() == 3:
        raise InputError(f"x has shape {tuple(x.shape)}; add the batch dimension: x.unsqueeze(0)")
    if x.dim() != 4:
        raise InputError(f"x must have shape B×C×H×W, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InputError(f"x must be a floating tensor (normalised image), got {x.dtype}")
    if x.shape[0] == 0:
        raise InputError("x is an empty batch")
    if min(x.shape[-2:]) < 8:
        raise InputError(f"image {tuple(x.shape[-2:])} is under 8 px on a side; use a larger image")
    return x


def interp_matrix(n_in: int, n_out: int, device=None, dtype=torch.float32, cover: float = 1.0) -> Tensor:
    """The n_out×n_in matrix of 1-D linear resampling with ``align_corners=False``.

    ``interp_matrix(h, H) @ A @ interp_matrix(w, W).T`` equals
    ``F.interpolate(A, (H, W), mode="bilinear", align_corners=False)`` for each channel.
    With ``cover`` in (0, 1] the n_out outputs span only the first ``cover`` of the input's
    extent: the rows of ``F.interpolate`` to n_out / cover outputs that come first (exactly
    that when n_out / cover is a whole number). A detector's feature map covers the image
    padded at the bottom and right; ``cover`` = image / padded size puts it on the image.

    Example:
        >>> interp_matrix(2, 4)
        tensor([[1.0000, 0.0000],
                [0.7500, 0.2500],
                [0.2500, 0.7500],
                [0.0000, 1.0000]])
    """
    if cover == 1.0:
        eye = torch.eye(n_in, device=device, dtype=dtype).unsqueeze(0)  # 1×n_in(channels)×n_in
        out = F.interpolate(eye, size=n_out, mode="linear", align_corners=False)  # 1×n_in×n_out
        return out[0].T.contiguous()
    if not 0.0 < cover < 1.0:
        raise InputError(f"cover must lie in (0, 1], got {cover!r}")
    # F.interpolate's rule, with the output spacing of n_out / cover outputs
    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in * cover / n_out) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    frac = src - i0
    rows = torch.arange(n_out)
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    m.index_put_((rows, i0), 1 - frac, accumulate=True)
    m.index_put_((rows, i1), frac, accumulate=True)
    return m.to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=32)
def _resampling_matrix(n_in: int, n_out: int, mode: str, device: torch.device, dtype: torch.dtype) -> Tensor:
    # F.interpolate of the identity along one axis, in float64: the other axis keeps its size, where
    # both modes reproduce their input exactly (source coordinate = destination, weight 1 on it)
    with torch.inference_mode(False), torch.no_grad():  # a normal tensor, also when first built in inference mode
        eye = torch.eye(n_in, device=device, dtype=torch.float64)[None, None]
        exact = F.interpolate(eye, size=(n_out, n_in), mode=mode, align_corners=False)[0, 0]
        m = exact.to(dtype)
        if torch.finfo(dtype).bits < 32:
            # each row's weights sum to 1, so a flat image stays flat: rounded to bf16 they sum to 1 only
            # up to a few rounding steps, always in the same direction where the rows repeat, which would
            # darken or brighten the image in stripes; the row's smallest weight (the finest step) takes
            # the difference
            rows = torch.arange(n_out, device=device)
            smallest = exact.abs().masked_fill(exact == 0, float("inf")).argmin(1)
            m[rows, smallest] = (exact[rows, smallest] + 1 - m.double().sum(1)).to(dtype)
        return m


def resize_images(x: Tensor, size: tuple[int, int], mode: str = "bicubic") -> Tensor:
    """Resize B×C×h×w floating images to B×C×H×W as two matrix products, in ``x``'s dtype.

    The same rule as ``F.interpolate(x, size, mode=mode, align_corners=False)`` (``mode``
    ``"bicubic"`` or ``"bilinear"``, no antialiasing; the border is clamped), written as
    ``R_h @ x @ R_w.T`` with the 1-D resampling matrices: equal to it up to the rounding of the
    sums. The matrices are dense (H×h and W×w) and cached, the 32 last used (per size, mode,
    device and dtype; memory H·h + W·w values each), so the products suit model inputs of up to
    a few thousand pixels a side; they run outside any autocast. For bfloat16 images they run as
    bf16 products with float32 sums, which CPUs with AMX or AVX512-BF16 (and GPUs) compute
    several times faster than ``F.interpolate``'s float32 resize. The bf16 weights are rounded
    so that each row still sums to 1 (a flat image stays flat); the result differs from the
    float32 resize by at most about three bf16 steps (2^-8 relative) of the image's largest value
    (the cast to bf16 alone: one).

    Example:
        >>> x = torch.rand(1, 3, 8, 10)
        >>> ref = F.interpolate(x, size=(12, 15), mode="bicubic", align_corners=False)
        >>> (resize_images(x, (12, 15)) - ref).abs().max().item() < 1e-5
        True
    """
    if mode not in ("bicubic", "bilinear"):
        raise InputError(f"mode must be 'bicubic' or 'bilinear', got {mode!r}")
    if not x.is_floating_point():
        raise InputError(f"resize_images needs floating images, got {x.dtype}; convert them with x.float()")
    rows = _resampling_matrix(int(x.shape[-2]), int(size[0]), mode, x.device, x.dtype)
    cols = _resampling_matrix(int(x.shape[-1]), int(size[1]), mode, x.device, x.dtype)
    with torch.autocast(x.device.type, enabled=False):
        return rows @ x @ cols.T


def resize_maps(maps: Tensor, size: tuple[int, int], cover: tuple[float, float] = (1.0, 1.0)) -> Tensor:
    """Bilinearly resize B×h×w maps to B×H×W (``align_corners=False``).

    ``cover`` (rows, columns, each in (0, 1]): the H×W output spans only that first part of the
    maps' extent (see :func:`interp_matrix`; :func:`~cameras.core.layouts.canvas_cover` gives
    it for a model that pads its input).

    Example:
        >>> resize_maps(torch.ones(1, 2, 2), (4, 6)).shape
        torch.Size([1, 4, 6])
        >>> resize_maps(torch.tensor([[[0.0, 8.0]]]), (1, 2), cover=(1.0, 0.5)).tolist()  # the left half
        [[[0.0, 2.0]]]
    """
    cy, cx = float(cover[0]), float(cover[1])
    if cy == 1.0 and cx == 1.0:
        if tuple(maps.shape[-2:]) == tuple(size):
            return maps
        return F.interpolate(maps.unsqueeze(1), size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    ry = interp_matrix(maps.shape[-2], int(size[0]), maps.device, maps.dtype, cy)
    rx = interp_matrix(maps.shape[-1], int(size[1]), maps.device, maps.dtype, cx)
    return ry @ maps @ rx.T


def normalize_maps(s: Tensor) -> Tensor:
    """Min-max normalise each B×H×W map to [0, 1]; a constant map becomes all zeros (no NaN).

    Example:
        >>> normalize_maps(torch.tensor([[[1.0, 3.0]], [[2.0, 2.0]]])).tolist()
        [[[0.0, 1.0]], [[0.0, 0.0]]]
    """
    s = s.float()
    flat = s.flatten(1)
    lo = flat.min(1).values.view(-1, 1, 1)
    hi = flat.max(1).values.view(-1, 1, 1)
    rng = hi - lo
    ok = rng > 0
    out = (s - lo) / torch.where(ok, rng, torch.ones_like(rng))
    out = torch.where(ok, out, torch.zeros_like(out))
    return torch.nan_to_num(out, nan=0.0).clamp_(0.0, 1.0)


def gaussian_blur(x: Tensor, sigma: float, radius: int | None = None) -> Tensor:
    """Separable Gaussian blur of B×C×H×W with replicate padding (any image size), radius 3σ or ``radius``.

    Example:
        >>> gaussian_blur(torch.ones(1, 3, 8, 8), 5.0).allclose(torch.ones(1, 3, 8, 8))
        True
    """
    r = max(1, math.ceil(3 * sigma)) if radius is None else int(radius)
    t = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    C = x.shape[1]
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)
    return F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)
