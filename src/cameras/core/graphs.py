"""CUDA graphs of the layers below an explained layer: one capture per module and input shape, then replays.

On a GPU at batch 1 a forward pass is bound by the CPU issuing kernels (hundreds of launches
of a few microseconds of GPU work each), not by the GPU. A CUDA graph records a module's
kernels once for a fixed input shape and replays them with one launch. CAMERAS runs the
model up to the explained layer without recording an autograd graph, at a fixed set of
scales: exactly the case graphs serve.

:class:`GraphedBelow` takes the same modules :class:`~cameras.core.compiled.CompiledBelow`
compiles (the largest submodules that run entirely below the layer, the layer included)
and, inside :meth:`GraphedBelow.active`, swaps each one's ``forward`` for one that copies
its input into a static buffer, replays the graph captured for that shape, and returns a
copy of the graph's output. The layer's forward hooks (the activation capture) stay outside
the graph. A call with gradients enabled, with more than one argument or with keyword
arguments runs the module as it is, and so does a module with forward hooks inside it (or
global ones: they would fire while capturing only, never on replays).

A graph reads the weights from the addresses they had when it was captured, so in-place
edits of the weights (``.data.mul_``, an optimiser step) are seen by the next replay; a
weight that moved (a new tensor assigned, ``.to()``, a held converted copy remade) makes
:meth:`GraphedBelow.active` drop every graph and capture afresh. The graphs share one
memory pool; at most :data:`MAX_GRAPHS` are kept, after which all are dropped and captured
again as shapes come. Each graph holds its module's input and output at its shape, so the
memory held grows with the sizes and batch sizes seen (for ResNet-50 at batch 32 and 8
scales up to 924 px, tens of GB): call :meth:`GraphedBelow.release` to give it back.
A compiled ``forward`` (``compile=True``) that is recompiled is captured afresh too.

A capture that fails (a module that synchronises with the CPU, for example) turns graphs
off for the object, with one warning: after a failed capture PyTorch may leave the CUDA
allocator's capture state inconsistent, so no further capture is tried.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from .compiled import compiled_roots, swapped_forwards, tensors_of
from .guard import model_lock

#: graphs kept at most (all modules and shapes together) before all are dropped and recaptured
MAX_GRAPHS = 512
#: eager runs on a side stream before a capture (cuDNN and cuBLAS pick their algorithms and workspaces)
WARMUP_RUNS = 2


def weights_addresses(tensors: list[Tensor]) -> tuple:
    """Where each tensor's values live and how they are laid out: what a captured graph depends on.

    Unlike :func:`~cameras.core.memory.weights_fingerprint` it reads no values (no device
    synchronisation): a graph reads the weights at replay, so only a move invalidates it.

    Example:
        >>> w = torch.ones(2, 2)
        >>> a = weights_addresses([w])
        >>> _ = w.mul_(2)  # edited in place: same address
        >>> weights_addresses([w]) == a
        True
        >>> w.data = torch.zeros(2, 2)  # moved
        >>> weights_addresses([w]) == a
        False
    """
    return tuple((t.data_ptr(), t.dtype, tuple(t.shape), tuple(t.stride()), t.device) for t in tensors)


def capture_cuda_graph(forward: Callable[[Tensor], Tensor], static_in: Tensor,
                       pool) -> tuple[Callable[[], None], Tensor]:
    """Capture ``forward(static_in)`` as a CUDA graph: returns ``(replay, static_out)``.

    ``replay()`` reruns the recorded kernels on whatever ``static_in`` holds and leaves the
    result in ``static_out``. ``pool`` (from ``torch.cuda.graph_pool_handle()``) is shared by
    the graphs of one :class:`GraphedBelow`.

    Example (on a GPU; not run as a doctest, CI has none)::

        conv = nn.Conv2d(3, 4, 3).cuda()
        x = torch.randn(1, 3, 8, 8, device="cuda")
        static_in = x.clone()
        replay, out = capture_cuda_graph(conv, static_in, torch.cuda.graph_pool_handle())
        static_in.copy_(x * 2)
        replay()  # out now holds conv(x * 2)
    """
    device = static_in.device
    with torch.cuda.device(device):  # capture on the tensors' device, whichever is current
        current = torch.cuda.current_stream(device)
        side = torch.cuda.Stream(device=device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            for _ in range(WARMUP_RUNS):
                forward(static_in)
        current.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, pool=pool, stream=side, capture_error_mode="thread_local"):
                static_out = forward(static_in)
        finally:  # a capture that fails at its end leaves the capture stream current: put the caller's back
            torch.cuda.set_stream(current)
    return graph.replay, static_out


def new_pool(device: torch.device):
    """A memory pool for the graphs of one :class:`GraphedBelow` (None off CUDA)."""
    return torch.cuda.graph_pool_handle() if device.type == "cuda" else None


def supports_graphs(device: torch.device) -> bool:
    """Whether CUDA graphs can run on ``device``: a CUDA device.

    Example:
        >>> supports_graphs(torch.device("cpu"))
        False
    """
    return device.type == "cuda"


class GraphedBelow:
    """The modules below ``layer`` replayed from CUDA graphs, one per module and input shape, inside :meth:`active`.

    Args:
        model: the network (eval mode; its weights are read, never changed).
        layer: the module whose output is explained; it and everything that runs before it
            are graphed, the rest is not.
        below: the modules that run below the layer (from
            :func:`~cameras.core.memory.modules_below`).
        capture: how one graph is made: ``capture(forward, static_in, pool) -> (replay,
            static_out)``; :func:`capture_cuda_graph` by default.

    Outputs equal the eager ones exactly (the same kernels run); each is a fresh tensor. After
    a failed capture (a module that synchronises with the CPU, for example) every module runs
    eagerly from then on, with one warning (``disabled`` says why). ``captures`` counts the
    graphs made, ``replays`` their runs.

    Example (a stand-in for the CUDA capture, so that it runs on a CPU):
        >>> def rerun(forward, static_in, pool):
        ...     out = forward(static_in)
        ...     return (lambda: out.copy_(forward(static_in))), out
        >>> from cameras.core.memory import modules_below
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2)).eval()
        >>> x = torch.zeros(1, 3, 8, 8)
        >>> graphs = GraphedBelow(net, net[0], modules_below(net, net[0], x), capture=rerun)
        >>> with graphs.active(), torch.no_grad():
        ...     _ = net(x); _ = net(x)
        >>> graphs.captures, graphs.replays
        (1, 2)
    """

    def __init__(self, model: nn.Module, layer: nn.Module, below: list[nn.Module],
                 capture: Callable | None = None) -> None:
        self.model, self.layer = model, layer
        self.roots = compiled_roots(model, layer, set(below))
        self._capture = capture or capture_cuda_graph
        self._graphs: dict[tuple, tuple[Callable[[], None], Tensor, Tensor] | None] = {}
        self._addresses: tuple | None = None
        self._forwards: list = []  # the roots' own forwards when captured (compile=True swaps in compiled ones)
        self._pool = None
        self.disabled: str | None = None  # why graphs are off for good (a capture failed), else None
        self._hooked: list[bool] = []  # per root: a forward hook inside it now (checked at each active())
        self.captures = 0  # graphs made
        self.replays = 0  # graph runs

    def release(self) -> None:
        """Drop every graph and its memory (they are captured again as shapes come)."""
        self._graphs.clear()
        self._pool = None

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Inside the block the roots run from their graphs; their own ``forward`` is restored after, also on errors.

        Graphs are captured afresh when a weight moved or when a root's ``forward`` is another
        object than at the capture (a recompiled forward of ``compile=True``: its frozen weights
        are new constants). After a failed capture every root runs eagerly (see ``disabled``).
        """
        if self.disabled:
            yield
            return
        with model_lock(self.model):  # the graphs' bookkeeping too: another thread's block may be running
            now = weights_addresses(tensors_of(self.roots))
            forwards = [vars(r).get("forward") for r in self.roots]
            stale = len(forwards) != len(self._forwards) or any(a is not b for a, b in zip(forwards, self._forwards))
            if now != self._addresses or stale:  # the graphs would read old weights or run old code
                self.release()
                self._addresses, self._forwards = now, forwards  # held: no id is reused while compared
            # looked at every call: a hook added after a capture would never fire on its replays
            self._hooked = [_hooks_inside(r) for r in self.roots]
            with swapped_forwards(self.roots, [self._graphed(i, r, r.forward) for i, r in enumerate(self.roots)]):
                yield

    def _graphed(self, index: int, root: nn.Module, forward: Callable) -> Callable:
        def run(*args, **kwargs):
            if (kwargs or len(args) != 1 or not isinstance(args[0], Tensor) or torch.is_grad_enabled()
                    or self.disabled or self._hooked[index]):  # hooks inside fire only when run eagerly
                return forward(*args, **kwargs)
            x = args[0]
            key = (index, tuple(x.shape), tuple(x.stride()), x.dtype, x.device)
            if key not in self._graphs:
                self._graphs[key] = self._new_graph(root, forward, x)
            entry = self._graphs[key]
            if entry is None:  # not graphed (hooks inside, or not one tensor out, or the capture failed): eager
                return forward(x)
            replay, static_in, static_out = entry
            static_in.copy_(x)
            # one stream, and the output copied before any other replay: graphs sharing the pool may
            # overwrite each other's outputs, never a copy
            replay()
            self.replays += 1
            return static_out.clone(memory_format=torch.preserve_format)

        return run

    def _new_graph(self, root: nn.Module, forward: Callable, x: Tensor):
        if len(self._graphs) >= MAX_GRAPHS:
            self.release()
        if self._pool is None:
            self._pool = new_pool(x.device)
        static_in = torch.empty_like(x, memory_format=torch.preserve_format)  # dense, also for an expanded x
        static_in.copy_(x)
        try:
            replay, static_out = self._capture(forward, static_in, self._pool)
        except Exception as err:  # noqa: BLE001 - any capture failure turns graphs off
            self.disabled = f"capture of a {type(root).__name__} at input {tuple(x.shape)} failed " \
                            f"({type(err).__name__}: {err})"
            self.release()
            warnings.warn(f"CUDA graph {self.disabled}; every module runs eagerly from now on (a failed capture "
                          "can leave CUDA's allocator inconsistent: if later CUDA calls fail, restart the process)",
                          RuntimeWarning, stacklevel=4)
            return None
        if not isinstance(static_out, Tensor):
            return None
        self.captures += 1
        return replay, static_in, static_out


def _hooks_inside(root: nn.Module) -> bool:
    """Whether a forward hook (global, or on a module inside ``root``) would run during its forward."""
    from torch.nn.modules import module as _module

    if _module._global_forward_hooks or _module._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in root.modules() if m is not root)


__all__ = ["GraphedBelow", "capture_cuda_graph", "supports_graphs", "weights_addresses", "MAX_GRAPHS"]
