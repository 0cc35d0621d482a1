"""torch.compile (inductor) of the layers below an explained layer, for the no-grad part of each pass.

CAMERAS runs the model up to the explained layer without recording a graph and only the
head above it with gradients. That lower part is nearly all of the cost, and it is an
inference computation: inductor can compile it with *freezing* (weights folded into the
compiled code: batch norms merged into the convolutions, weights pre-packed for oneDNN).
On a 2-core CPU CAMERAS then ran at 0.68–0.81× the eager NCHW forward passes (see
BENCHMARKS.md), at the price of a compilation per module, input
shape and set of weights (seconds to a minute each).

:class:`CompiledBelow` finds the largest submodules that run entirely below the layer (the
layer itself included: its forward hooks, which capture the activation, stay outside the
compiled code because only ``forward`` is compiled), and swaps their ``forward`` for a
compiled one inside :meth:`CompiledBelow.active`. Frozen weights would go stale if the
weights changed, so every entry into the block compares the weights' fingerprint (storage,
version counter and sum of each tensor) with the one compiled, and compiles afresh (a new
backend, so old code is never reused) when they differ. Weights in another dtype for the
call (``precision="bf16"``) must be the same tensors from call to call (see
:class:`~cameras.core.memory.HeldCopies`), or every call compiles.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import torch
from torch import nn

from .errors import InputError
from .guard import model_lock
from .memory import HeldCopies, weights_fingerprint

#: held around the compiler settings patched for a compiled block: they are process-wide, and two blocks on
#: different models overlapping in time would restore each other's values (freezing left on for the user's own
#: torch.compile calls)
_COMPILER_SETTINGS_LOCK = threading.RLock()

# modules whose forward is swapped now, by id: (thread ident, depth)
_SWAPPED: dict[int, tuple[int, int]] = {}
_SWAPPED_LOCK = threading.Lock()

#: dynamo's per-function limit of compiled variants, raised inside the block: a shared
#: ``forward`` (every ``nn.Sequential`` stage of a ResNet) is compiled once per module and input shape.
RECOMPILE_LIMIT = 512


def _owns_tensors(m: nn.Module) -> bool:
    return any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False))


def compiled_roots(model: nn.Module, layer: nn.Module, below: set[nn.Module]) -> list[nn.Module]:
    """The largest submodules of ``model`` that run entirely below ``layer`` (or are ``layer``), in model order.

    A child is taken whole when it is the layer, or when every module with weights in it runs
    below the layer (``below``, from :func:`~cameras.core.memory.modules_below`) and it does
    not hold the layer; a child that holds the layer is searched inside; the rest (the head,
    modules without weights) stay as they are.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1), nn.Flatten(), nn.LazyLinear(2))
        >>> [type(m).__name__ for m in compiled_roots(net, net[2], {net[0], net[2]})]
        ['Conv2d', 'Conv2d']
    """
    roots = []
    for child in model.children():
        holds_layer = any(m is layer for m in child.modules())
        owners = [m for m in child.modules() if _owns_tensors(m)]
        if child is layer or (not holds_layer and owners and all(m in below for m in owners)):
            roots.append(child)
        elif holds_layer:
            roots.extend(compiled_roots(child, layer, below))
    return roots


class CompiledBelow:
    """The modules below ``layer`` compiled by inductor with frozen weights, active inside :meth:`active`.

    Args:
        model: the network (eval mode; its weights are read, never changed).
        layer: the module whose output is explained; it and everything that runs before it
            are compiled, the rest is not.
        below: the modules that run below the layer (from
            :func:`~cameras.core.memory.modules_below`, which finds them by one forward pass).

    Use it for forward passes under ``torch.no_grad()`` (frozen code is inference code);
    outputs equal the eager ones up to float rounding (batch norms folded into convolutions:
    about 1e-5 relative).

    Example:
        >>> from cameras.core.memory import modules_below
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2)).eval()
        >>> below = CompiledBelow(net, net[0], modules_below(net, net[0], torch.zeros(1, 3, 8, 8)))
        >>> [type(m).__name__ for m in below.roots]
        ['Conv2d']
        >>> with below.active():
        ...     "forward" in vars(net[0])  # the compiled forward, swapped in
        True
        >>> "forward" in vars(net[0])
        False
    """

    def __init__(self, model: nn.Module, layer: nn.Module, below: list[nn.Module]) -> None:
        self.model, self.layer = model, layer
        self.roots = compiled_roots(model, layer, set(below))
        self._fingerprint: tuple | None = None
        self._forwards: list = []
        self.compilations = 0  # how many times the weights were (re)compiled

    @contextlib.contextmanager
    def active(self, held: HeldCopies | None = None) -> Iterator[None]:
        """Inside the block the roots run their compiled ``forward``; the original is restored after, also on errors.

        ``held``: the :class:`~cameras.core.memory.HeldCopies` whose copies are swapped into the
        roots for the call (bf16 weights), identified by storage alone (see
        :func:`~cameras.core.memory.weights_fingerprint`)."""
        # the copies' generation too: a fresh copy may land at a freed copy's address
        now = (held.conversions if held is not None else None, weights_fingerprint(tensors_of(self.roots), held))
        if now != self._fingerprint:  # new weights (or the first call): frozen code must not be reused
            self._forwards = [torch.compile(r.forward, backend=_fresh_inductor(), dynamic=False) for r in self.roots]
            self._fingerprint = now
            self.compilations += 1
        import torch._dynamo.config as dynamo_config
        import torch._inductor.config as inductor_config

        limits = dynamo_config.patch(recompile_limit=RECOMPILE_LIMIT, accumulated_recompile_limit=16 * RECOMPILE_LIMIT)
        with model_lock(self.model), _COMPILER_SETTINGS_LOCK, swapped_forwards(self.roots, self._forwards), \
                inductor_config.patch(freezing=True), limits:
            yield


@contextlib.contextmanager
def swapped_forwards(modules: list[nn.Module], forwards: list[Callable]) -> Iterator[None]:
    """Inside the block each module's ``forward`` is the matching one of ``forwards`` (an instance attribute,
    so ``__call__`` and its hooks stay the module's); its own ``forward`` is back after, also on errors.

    The caller holds the model's :func:`~cameras.core.guard.model_lock` (the fast paths' blocks
    do). Another thread swapping forwards on the same modules meanwhile (a second model object
    sharing them: a wrapper and the model inside it) would take this block's swapped-in
    forward for the module's own and leave it behind for good, so it is refused with an
    :class:`~cameras.core.errors.InputError`; the same thread may swap again inside the block.

    Example:
        >>> relu = nn.ReLU()
        >>> with swapped_forwards([relu], [lambda x: x + 1]):
        ...     relu(torch.zeros(1)).item()
        1.0
        >>> relu(torch.zeros(1)).item(), "forward" in vars(relu)
        (0.0, False)
    """
    me = threading.get_ident()
    with _SWAPPED_LOCK:
        busy = [m for m in modules if _SWAPPED.get(id(m), (me, 0))[0] != me]
        if busy:
            raise InputError(f"another thread is explaining a model that shares the module {type(busy[0]).__name__} "
                             "with this one (a wrapper and the model inside it, say); explain them one at a time")
        for m in modules:
            _SWAPPED[id(m)] = (me, _SWAPPED.get(id(m), (me, 0))[1] + 1)
    swapped = []
    try:
        for m, f in zip(modules, forwards, strict=True):
            swapped.append((m, vars(m).get("forward")))
            m.forward = f
        yield
    finally:
        for m, own in reversed(swapped):
            if own is None:
                del m.forward
            else:
                m.forward = own
        with _SWAPPED_LOCK:
            for m in modules:
                depth = _SWAPPED[id(m)][1] - 1
                if depth:
                    _SWAPPED[id(m)] = (me, depth)
                else:
                    del _SWAPPED[id(m)]


def tensors_of(modules: list[nn.Module]) -> list[torch.Tensor]:
    """Every parameter and buffer of ``modules`` (and their submodules), in order.

    Example:
        >>> len(tensors_of([nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)]))  # weight, bias; weight, bias, 3 buffers
        7
    """
    return [t for m in modules for t in [*m.parameters(), *m.buffers()]]


def _fresh_inductor():
    """A backend callable of its own: dynamo keeps code compiled by another backend object apart."""
    from torch._inductor import compile_fx

    def inductor(gm, example_inputs):
        return compile_fx.compile_fx(gm, example_inputs)

    return inductor


__all__ = ["CompiledBelow", "compiled_roots", "swapped_forwards", "tensors_of"]
