"""A model's memory format for the duration of a call: channels-last where its convolutions run faster.

On a CPU (oneDNN), convolutions over channels-last (NHWC) tensors ran 1.08–1.29× faster
than over NCHW ones for EfficientNet-Lite0 and ResNet-50 at 224–924 px, forward and backward
(see BENCHMARKS.md), with the same values up to float rounding (maps equal to 1e-5).
:func:`channels_last` converts a model's 4-D weights for the duration of a block and
restores each tensor's own layout afterwards; the values never change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator

import torch
from torch import nn


def has_convolutions(model: nn.Module) -> bool:
    """True if the model has a 2-D convolution (what channels-last speeds up).

    Example:
        >>> has_convolutions(nn.Sequential(nn.Conv2d(3, 4, 3))), has_convolutions(nn.Linear(3, 4))
        (True, False)
    """
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def prefers_channels_last(model: nn.Module, device: torch.device) -> bool:
    """The rule of ``channels_last="auto"``: on a CPU, for models with 2-D convolutions.

    On a GPU in float32 the gain depends on the card and cuDNN's kernels, so the default
    layout is kept there (pass ``channels_last=True`` to choose it).

    Example:
        >>> prefers_channels_last(nn.Sequential(nn.Conv2d(3, 4, 3)), torch.device("cpu"))
        True
    """
    return device.type == "cpu" and has_convolutions(model)


@contextlib.contextmanager
def channels_last(model: nn.Module, held: HeldCopies | None = None) -> Iterator[nn.Module]:
    """Inside the block the model's 4-D parameters and buffers are channels-last; each is restored after.

    Only the memory layout changes (``tensor.data`` is swapped for a channels-last copy and
    back), so parameters keep their identity, values and ``requires_grad``; tensors that
    were channels-last already are left alone. Restored also when the block raises. With
    ``held`` (a :class:`HeldCopies`) the copies are kept for the next call while the weights
    stay unchanged, instead of being made every call.

    Example:
        >>> net = nn.Conv2d(3, 4, 3)
        >>> with channels_last(net):
        ...     net.weight.is_contiguous(memory_format=torch.channels_last)
        True
        >>> net.weight.is_contiguous()
        True
    """
    tensors = [t for t in [*model.parameters(), *model.buffers()]
               if t.dim() == 4 and not t.is_contiguous(memory_format=torch.channels_last)]
    with _swapped_data(tensors, lambda d: d.contiguous(memory_format=torch.channels_last), held):
        yield model


def weights_fingerprint(tensors: list[torch.Tensor], held: HeldCopies | None = None) -> tuple:
    """What identifies a set of tensors' current values: each one's storage, version, dtype and strides, and
    a position-weighted sum of its values (weights in [0.5, 1.5) that repeat every 65,536
    elements), so that edits through ``.data`` (which bump no version counter) change it too,
    swapped elements included; an edit that leaves the weighted sum equal to float32 rounding
    is not seen. One pass over the tensors, one synchronisation per device.

    Tensors that are ``held``'s current copies (see :class:`HeldCopies`) are identified without
    their sums: those copies change only by being made afresh, in new storage, so reading them
    again would be a wasted pass over the weights.

    Example:
        >>> w = torch.tensor([1.0, 2.0])
        >>> a = weights_fingerprint([w])
        >>> w.data[:] = torch.tensor([2.0, 1.0])  # same sum, same version counter
        >>> weights_fingerprint([w]) == a
        False
    """
    if not tensors:
        return ()
    mine = held.holds(tensors) if held is not None else [False] * len(tensors)
    read = [t for t, m in zip(tensors, mine) if not m]
    values: dict[int, float] = {}
    with torch.no_grad():
        by_device: dict[torch.device, list[int]] = {}
        for k, t in enumerate(read):
            by_device.setdefault(t.device, []).append(k)
        for ks in by_device.values():  # a model split over devices: one stack per device
            # tensors of at most one period (biases, norms' statistics: most of a model's tensors, few of
            # its values) are summed together, a few operations for all; larger ones one by one
            together = read[ks[0]].device.type in ("cpu", "cuda")  # where segment_reduce has kernels
            fits = {k for k in ks if together and read[k].numel() <= _PERIOD}
            small, large = [k for k in ks if k in fits], [k for k in ks if k not in fits]
            parts = [_weighted_sums([read[k] for k in small])] if small else []
            parts += [torch.stack([_weighted_sum(read[k]) for k in large])] if large else []
            values.update(zip(small + large, torch.cat(parts).tolist()))
    sums = iter(values[k] for k in range(len(read)))
    return tuple((t.data_ptr(), t._version, t.dtype, tuple(t.stride()), None if m else next(sums))
                 for t, m in zip(tensors, mine))


_PERIOD = 1 << 16
_POSITION_WEIGHTS: dict[torch.device, torch.Tensor] = {}


def _position_weights(device: torch.device) -> torch.Tensor:
    """The 65,536 position weights in [0.5, 1.5) on ``device`` (the same on every device: seed 0)."""
    w = _POSITION_WEIGHTS.get(device)
    if w is None:
        g = torch.Generator().manual_seed(0)
        w = _POSITION_WEIGHTS[device] = (torch.rand(_PERIOD, generator=g) + 0.5).to(device)
    return w


def _weighted_sum(t: torch.Tensor) -> torch.Tensor:
    """Σ_i w_(i mod 65536) · t_i over the flattened tensor, float32 (a 0-d tensor on t's device)."""
    w = _position_weights(t.device)
    v = t.detach().reshape(-1).to(torch.float32)
    whole = v.numel() // _PERIOD * _PERIOD
    total = (v[whole:] * w[:v.numel() - whole]).sum()
    if whole:
        total = total + (v[:whole].view(-1, _PERIOD) @ w).sum()
    return total


_SEGMENTS: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _weighted_sums(tensors: list[torch.Tensor]) -> torch.Tensor:
    """:func:`_weighted_sum` of each of several tensors of at most 65,536 elements on one device, as one
    float32 vector: their values are concatenated and summed per tensor in one pass, the position
    weights and sizes kept per list of sizes (a model's sizes repeat from call to call)."""
    sizes = tuple(t.numel() for t in tensors)
    device = tensors[0].device
    key = (device, sizes)
    seg = _SEGMENTS.get(key)
    if seg is None:
        w = _position_weights(device)
        if len(_SEGMENTS) >= 32:  # a few models' sets; not a growing cache
            _SEGMENTS.clear()
        seg = _SEGMENTS[key] = (torch.cat([w[:n] for n in sizes]), torch.tensor(sizes, device=device))
    # each in float32 before joining (no promotion through a half-precision neighbour); lengths are ours: unsafe
    # skips segment_reduce's checks, which would synchronise a GPU twice
    flat = torch.cat([t.detach().reshape(-1).to(torch.float32) for t in tensors])
    return torch.segment_reduce(flat * seg[0], "sum", lengths=seg[1], unsafe=True)


class HeldCopies:
    """Converted copies of a model's tensors, kept from one call to the next while the tensors are unchanged.

    :func:`channels_last` and :func:`low_precision_below` swap each tensor's ``.data`` for a
    converted copy during a call. Converting every call costs a pass over the weights (for
    ResNet-50 about 100 MB); a method that keeps a ``HeldCopies`` converts once and reuses the
    copies while :func:`weights_fingerprint` of the sources is unchanged (any edit of the
    weights, also through ``.data``, makes fresh copies). The swapped-in storage then stays the
    same from call to call, which compiled code relies on. The cost is memory: one copy of the
    converted tensors, held as long as the object.

    Example:
        >>> net, held = nn.Conv2d(3, 4, 3), HeldCopies()
        >>> ptrs = []
        >>> for _ in range(2):
        ...     with channels_last(net, held):
        ...         ptrs.append(net.weight.data_ptr())
        >>> ptrs[0] == ptrs[1], held.conversions
        (True, 1)
    """

    def __init__(self) -> None:
        self._fingerprint: tuple | None = None
        self._copies: list[torch.Tensor] = []
        self.conversions = 0  # how many times the copies were made

    def holds(self, tensors: list[torch.Tensor]) -> list[bool]:
        """For each tensor, whether its storage is one of the current copies.

        Example:
            >>> held = HeldCopies()
            >>> made = held.copies([torch.ones(2)], lambda d: d * 2)
            >>> held.holds([made[0], torch.ones(2)])
            [True, False]
        """
        mine = {c.data_ptr() for c in self._copies}
        return [t.data_ptr() in mine for t in tensors]

    def copies(self, tensors: list[torch.Tensor], convert) -> list[torch.Tensor]:
        """``convert(t.data)`` for each tensor, made afresh only when the tensors changed."""
        now = weights_fingerprint(tensors)
        if now != self._fingerprint or len(self._copies) != len(tensors):
            self._copies = [convert(t.data) for t in tensors]
            self._fingerprint = now
            self.conversions += 1
        return self._copies


@contextlib.contextmanager
def _swapped_data(tensors, convert, held: HeldCopies | None = None) -> Iterator[None]:
    """Inside the block each tensor's ``.data`` is ``convert(data)`` (from ``held`` when given); the original
    storage is put back after."""
    new = held.copies(tensors, convert) if held is not None else None
    swapped = []
    try:
        for i, t in enumerate(tensors):
            swapped.append((t, t.data))
            t.data = new[i] if new is not None else convert(t.data)
        yield
    finally:
        for t, original in swapped:
            t.data = original


def fast_bf16(device: torch.device) -> bool:
    """Whether ``device`` has bfloat16 kernels faster than float32 ones: a GPU, or a CPU whose oneDNN has
    bf16 instructions (AVX512-BF16 or AMX). Without them a CPU emulates bf16, slower than float32.

    Example:
        >>> isinstance(fast_bf16(torch.device("cpu")), bool)
        True
    """
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def modules_below(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> list[nn.Module]:
    """The modules with parameters or buffers of their own that run before ``layer`` finishes (itself included).

    Found by one forward pass of ``x`` (no gradients) that records the order modules start in.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1), nn.Flatten())
        >>> [type(m).__name__ for m in modules_below(net, net[1], torch.zeros(1, 3, 8, 8))]
        ['Conv2d']
    """
    with recording_below(model, layer) as order, torch.no_grad():
        model(x)
    return order


@contextlib.contextmanager
def recording_below(model: nn.Module, layer: nn.Module) -> Iterator[list[nn.Module]]:
    """Inside the block a forward pass records, into the list it yields, the modules with parameters or
    buffers of their own that start before ``layer`` finishes, in the order they start (as
    :func:`modules_below`, for a caller that watches the same pass for more). The hooks are removed after.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))
        >>> with recording_below(net, net[0]) as below:
        ...     _ = net(torch.zeros(1, 3, 8, 8))
        >>> [type(m).__name__ for m in below]
        ['Conv2d']
    """
    order: list[nn.Module] = []
    finished = []
    handles = []

    def started(m, _args):
        if not finished and m not in order:
            order.append(m)

    try:
        for m in model.modules():
            if any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False)):
                handles.append(m.register_forward_pre_hook(started))
        handles.append(layer.register_forward_hook(lambda *_: finished.append(True)))
        yield order
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def low_precision_below(modules: list[nn.Module], layer: nn.Module, dtype: torch.dtype = torch.bfloat16,
                        held: HeldCopies | None = None, keep: Collection[nn.Module] = ()):
    """Inside the block ``modules`` hold their floating tensors in ``dtype`` and ``layer``'s output is cast to float32.

    The model's input must be given in ``dtype`` too. Everything above the layer (the head that
    the gradients are taken through) keeps its float32 weights and sees a float32 activation.
    Each tensor's original storage is put back afterwards, also when the block raises. With
    ``held`` the converted tensors are kept for the next call (see :class:`HeldCopies`).
    ``keep``: modules of ``modules`` left as they are, whose tensors the block does not read
    (a folded convolution and batch norm, which run on their folded weights cast per call).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(144, 2))
        >>> with low_precision_below([net[0]], net[0]):
        ...     net[0].weight.dtype, net(torch.zeros(1, 3, 8, 8, dtype=torch.bfloat16)).dtype
        (torch.bfloat16, torch.float32)
        >>> net[0].weight.dtype
        torch.float32
    """
    kept = {id(m) for m in keep}
    tensors = [t for m in modules if id(m) not in kept
               for t in [*m.parameters(recurse=False), *m.buffers(recurse=False)]
               if t.is_floating_point() and t.dtype != dtype]
    with _swapped_data(tensors, lambda d: d.to(dtype), held):
        handle = layer.register_forward_hook(lambda _m, _i, out: out.float() if torch.is_tensor(out) else out)
        try:
            yield
        finally:
            handle.remove()

__all__ = ["HeldCopies", "channels_last", "fast_bf16", "has_convolutions", "low_precision_below", "modules_below",
           "prefers_channels_last", "recording_below", "weights_fingerprint"]
