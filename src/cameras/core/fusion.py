"""Multi-scale accumulation and fusion of activations and gradients: CAMERAS's last two steps.

Bilinear resizing is linear and separable, so resizing a h_t×w_t channel to H×W is
``R_t @ A @ C_tᵀ`` with R_t (H×h_t) and C_t (W×w_t) from :func:`interp_matrix`. The
scale-average of resized channels is then ``[R_0 … R_T] @ stack_t(c_t · A_t @ C_tᵀ)``, with
the per-image scale weights c_t (1/#kept or 0) folded in. Each row of ``[R_0 … R_T]`` has
at most two non-zeros per scale, so the product is computed in bands of output rows, each
touching only the few input rows its band needs (a dense product would multiply mostly
zeros). Activations and gradients are averaged separately, multiplied and summed over
channels chunk by chunk, so at most one chunk of full-resolution channels exists at a time.

When every gradient map is constant over space per channel, as it is for a layer followed
by global average pooling and a linear classifier (ResNet ``layer4``, EfficientNet ``bn2``,
Inception ``Mixed_7c``), the channel sum is taken at layer resolution first, which is
exact by linearity and makes the fusion nearly free.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .ops import interp_matrix, resize_maps

DEFAULT_CHUNK_ELEMENTS = 1 << 23  # elements of one B×k×H×W full-resolution chunk (32 MB in fp32)
ROW_BAND = 32  # output rows per band of the row-resizing product


def _row_bands(rows: Tensor, band: int) -> list[tuple[int, int, Tensor, Tensor]]:
    """Split the H×N row-resizing matrix into bands (i0, i1, needed input rows, sub-matrix)."""
    H = rows.shape[0]
    out = []
    for i0 in range(0, H, band):
        i1 = min(H, i0 + band)
        block = rows[i0:i1]
        need = torch.nonzero(block.abs().sum(0) > 0).flatten()
        out.append((i0, i1, need, block[:, need].contiguous()))
    return out


def _spatially_constant(g: Tensor) -> bool:
    """True when every B×K channel of ``g`` holds one value (a global-average-pooling head)."""
    g = g.float()
    return bool(((g - g[:, :, :1, :1]).abs() <= 1e-6 * g.abs().amax().clamp_min(1e-30)).all())


def _fuse_constant_gradients(acts, grads, weights, used, size, covers=None) -> Tensor:
    """Exact shortcut when each W_t is constant over space per channel (GAP + linear heads).

    Then W̄_k = c̄_k = Σ_t w_t W_t,k (a constant), and by linearity of resizing
    Σ_k c̄_k Ā_k = Σ_t w_t · up_t(Σ_k c̄_k A_t,k): the channel sum happens at layer
    resolution and only one map per scale is resized.
    """
    B = acts[0].shape[0]
    covers = covers or [(1.0, 1.0)] * len(acts)
    w = weights.to(device=acts[0].device, dtype=torch.float32)
    cbar = sum(w[:, t, None] * grads[t][:, :, 0, 0].float() for t in used)  # B×K
    out = 0
    for t in used:
        low = torch.einsum("bk,bkhw->bhw", cbar, acts[t].float()).unsqueeze(1)  # B×1×h_t×w_t
        out = out + w[:, t].view(B, 1, 1) * resize_maps(low[:, 0], tuple(size), covers[t])
    return out.clamp_(min=0)


def fuse_multiscale(
    acts: list[Tensor],
    grads: list[Tensor],
    weights: Tensor,
    size: tuple[int, int],
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    covers: list[tuple[float, float]] | None = None,
) -> Tensor:
    """S = ReLU(Σ_k mean_t up(A_t)_k ⊙ mean_t up(W_t)_k), computed exactly and in chunks.

    Args:
        acts: per scale t, activations B×K×h_t×w_t (any float dtype; fused in float32).
        grads: per scale t, gradients of the same shapes.
        weights: B×T float tensor, weight of scale t for image b (e.g. kept/#kept; rows sum
            to 1 for a mean over kept scales; zero drops the scale for that image).
        size: output (H, W).
        chunk_elements: bound on B·k·H·W for one channel chunk.
        covers: per scale, the part (rows, columns) of the layer's grid the image fills (see
            :func:`~cameras.core.layouts.canvas_cover`; a detector pads its input); default whole.

    Returns:
        B×H×W float32 tensor, non-negative, on the device of ``acts``.

    Example:
        >>> a = [torch.ones(1, 2, 2, 2)]
        >>> fuse_multiscale(a, a, torch.ones(1, 1), (4, 4)).unique().tolist()
        [2.0]
    """
    B, K = acts[0].shape[:2]
    H, W = size
    device = acts[0].device
    used = [t for t in range(len(acts)) if bool((weights[:, t] != 0).any())]
    covers = covers or [(1.0, 1.0)] * len(acts)
    if all(_spatially_constant(grads[t]) for t in used):
        return _fuse_constant_gradients(acts, grads, weights, used, size, covers)
    rows = torch.cat([interp_matrix(acts[t].shape[-2], H, device, cover=covers[t][0]) for t in used], dim=1)  # H×Σh
    bands = _row_bands(rows, ROW_BAND)
    cols = [interp_matrix(acts[t].shape[-1], W, device, cover=covers[t][1]).T for t in used]  # w_t×W
    w = weights.to(device=device, dtype=torch.float32)
    chunk = max(1, min(K, chunk_elements // max(1, B * H * W)))
    out = torch.zeros(B, H, W, device=device, dtype=torch.float32)

    def columns(stack: list[Tensor], k0: int, k1: int) -> Tensor:
        parts = [(stack[t][:, k0:k1].float() @ c) * w[:, t].view(B, 1, 1, 1) for t, c in zip(used, cols)]
        return torch.cat(parts, dim=2)  # B×k×Σh×W, columns already at full width

    for k0 in range(0, K, chunk):
        k1 = min(K, k0 + chunk)
        ca, cg = columns(acts, k0, k1), columns(grads, k0, k1)
        for i0, i1, need, sub in bands:
            a = sub @ ca.index_select(2, need)  # B×k×band×W
            g = sub @ cg.index_select(2, need)
            out[:, i0:i1] += a.mul_(g).sum(1)
        del ca, cg
    return out.clamp_(min=0)


def fuse_on_grid(acts: list[Tensor], grads: list[Tensor], weights: Tensor, size: tuple[int, int],
                 covers: list[tuple[float, float]] | None = None,
                 chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> Tensor:
    """Approximate fast fusion: average and fuse at the largest used layer grid, then upsample.

    Activations and gradients of every used scale are resized bilinearly to the layer grid
    of the largest scale with a non-zero weight, averaged with ``weights``, fused as
    ReLU(Σ_k W̄_k ⊙ Ā_k) there, and the B×h×w result is resized bilinearly to ``size``.
    Not CAMERAS's exact map (the product is taken before, not after, upsampling), except
    when every gradient map is spatially constant (GAP heads): then the exact shortcut of
    :func:`fuse_multiscale` is used, which is exact and costs less than this approximation.
    With ``covers`` other than whole (a detector's padded input; the scales' grids then do not
    line up), the exact :func:`fuse_multiscale` is used too.

    Example:
        >>> a = [torch.ones(1, 2, 2, 2), torch.ones(1, 2, 3, 3)]
        >>> fuse_on_grid(a, a, torch.full((1, 2), 0.5), (6, 6)).unique().tolist()
        [2.0]
    """
    if covers and any(tuple(c) != (1.0, 1.0) for c in covers):
        return fuse_multiscale(acts, grads, weights, size, chunk_elements, covers)
    used = [t for t in range(len(acts)) if bool((weights[:, t] != 0).any())]
    if all(_spatially_constant(grads[t]) for t in used):
        return _fuse_constant_gradients(acts, grads, weights, used, size)  # exact and cheaper still
    grid = tuple(acts[used[-1]].shape[-2:])
    B = acts[0].shape[0]
    w = weights.to(device=acts[0].device, dtype=torch.float32)

    def average(stack: list[Tensor]) -> Tensor:
        return sum(
            F.interpolate(stack[t].float(), size=grid, mode="bilinear", align_corners=False) * w[:, t].view(B, 1, 1, 1)
            for t in used
        )

    low = torch.relu((average(acts) * average(grads)).sum(1, keepdim=True))
    return F.interpolate(low, size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
