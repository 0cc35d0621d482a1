"""Batch norms folded into the convolutions that feed them, for the no-grad passes below an explained layer.

In inference a batch norm is an affine map per channel, ``y = (x - mean) / sqrt(var + eps) * gamma
+ beta``; when its input is a convolution's output and nothing else reads that output, the pair
is one convolution with weights ``W * s`` and bias ``(b - mean) * s + beta``, where
``s = gamma / sqrt(var + eps)``. The CAM family runs the layers below the explained one without
recording gradients, so there the fold is exact up to float rounding (maps equal to about
2e-6) and saves one pass over every batch-normed activation.

A pair is folded only when it is certain to compute the same thing. :func:`foldable_pairs`
watches one forward pass and keeps a plain ``nn.Conv2d`` and a ``BatchNorm2d`` (or subclass), both
float32 or float64, neither with a ``forward`` of its own set on the instance, when

- both run below the layer, each exactly once, and the convolution is not the layer itself;
- the batch norm's input *is* the convolution's output, and no other torch call reads that
  tensor's values (no residual branch, no in-place edit; shape queries are allowed), as a
  :class:`~torch.overrides.TorchFunctionMode` over the pass sees them;
- the batch norm normalises it with exactly one ``batch_norm`` call in inference form: its
  own running statistics, weight and bias, its ``eps``, no batch statistics (a subclass such
  as timm's ``BatchNormAct2d``, normalisation then activation, qualifies).

Readers that a torch function mode cannot see (TorchScript functions, C++ extensions, other
threads) are caught by a check: :class:`FoldedBelow` runs the same input once more with the
pairs folded and folds nothing if the layer's output differs by more than float rounding.

Inside :meth:`FoldedBelow.active` each convolution's ``forward`` is swapped for one with the
folded weights and each batch norm's normalisation for the identity (a subclass's other work,
such as its activation, still runs). Pairs whose batch norm is in training mode or lost its
running statistics, modules with hooks of their own, and every pair while global module
hooks are registered are left as they are for that call. The folded weights are computed once
(in float64, float32 where the device has no float64; stored in the convolution's dtype and
memory format) and kept while the weights' fingerprint and the norms' ``eps`` are unchanged. An
input of another dtype (bfloat16, for ``precision="bf16"``) gets the folded weights cast to it,
kept likewise.

With ``fuse_activations`` (used for bfloat16 on a CPU, where oneDNN's convolution applies an
activation as it writes its output, and a separate bfloat16 activation pass costs more than the
convolution) a pair's activation is fused too, when the batch norm's output is first read by a
call of a plain ``nn.ReLU``, ``nn.ReLU6``, ``nn.Hardtanh``, ``nn.SiLU``, ``nn.Hardswish`` or
``nn.GELU`` module with it as the module's input (the norm's own, as in timm's ``BatchNormAct2d``,
or one after it, shared or not, as in torchvision's ResNets), and that call is in place or the
only read. The convolution then runs as ``torch.ops.mkldnn._convolution_pointwise`` with the
activation, and that module call returns its input unchanged for the fused output alone (the
explained layer, and a module with hooks of its own, stay modules). The check pass runs with
the activations fused (in float32); if it fails or the fused convolution raises, without them.
A bfloat16 input on a CPU whose oneDNN has no bf16 support runs unfused. The activation
modules' ``forward`` is swapped for the call like the pairs': two models sharing one activation
module object cannot be explained in two threads at once.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import Counter
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.modules import module as module_hooks
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from .compiled import swapped_forwards
from .guard import model_lock
from .memory import HeldCopies, fast_bf16, recording_below, weights_fingerprint

#: torch calls that read a tensor's metadata, not its values: they do not make it "read by something else"
_METADATA = frozenset({"dim", "ndim", "size", "shape", "dtype", "device", "layout", "stride", "numel", "nelement",
                       "is_contiguous", "is_floating_point", "is_complex", "requires_grad", "is_cuda", "is_sparse",
                       "is_quantized", "element_size", "__len__", "names", "is_nested"})
#: F.batch_norm's parameters, in order
_NORM_ARGS = ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")
_FLOATS = (torch.float32, torch.float64)


def _name(func) -> str:
    name = getattr(func, "__name__", "")
    if name == "__get__":  # a property such as ``tensor.shape``: the property's own name
        name = getattr(getattr(func, "__self__", None), "__name__", name)
    return name


def _inference_norm(bn: nn.Module | None, args: tuple, kwargs: dict) -> bool:
    """Whether a ``batch_norm`` call made by ``bn`` normalises with its own running statistics, weight, bias and eps."""
    if bn is None:
        return False
    given = {**dict(zip(_NORM_ARGS, args)), **kwargs}
    return (given.get("running_mean") is bn.running_mean is not None
            and given.get("running_var") is bn.running_var is not None
            and given.get("weight") is bn.weight and given.get("bias") is bn.bias
            and given.get("training", False) is False and given.get("eps", 1e-5) == bn.eps)


class _NormOutput:
    """A batch_norm call's output as the watch follows it: its value reads and the first reader (the activation
    module whose input it was, or None; whether that call returned it itself: in place). Held by a weak
    reference, so that the pass keeps no activations alive for it."""

    __slots__ = ("norm", "ref", "reads", "first")

    def __init__(self, norm: nn.Module, out: torch.Tensor) -> None:
        self.norm, self.ref, self.reads = norm, weakref.ref(out), 0
        self.first: tuple[nn.Module | None, bool] | None = None


class _Watch(TorchFunctionMode):
    """Counts value reads of the watched tensors by torch calls, and notes each batch_norm call and its batch norm.

    A tensor is watched from the moment it is added to ``watched`` (kept alive there, so that
    its id is its own for the rest of the pass: ids of freed tensors are reused)."""

    def __init__(self) -> None:
        super().__init__()
        self.watched: dict[int, tuple[nn.Module, torch.Tensor]] = {}  # id -> (convolution, its output)
        self.reads: Counter[int] = Counter()
        # (running batch norm, id of the normalised input, whether the call is the norm's own inference form)
        self.norm_calls: list[tuple[nn.Module | None, int, bool]] = []
        self.running: list[nn.Module] = []
        self.norm_outputs: dict[int, _NormOutput] = {}  # by id of the output while it lives
        self.norm_records: list[_NormOutput] = []  # every batch_norm call's, in order
        self.layer_done = False  # reads after the explained layer finished are not fused into it
        self.activations: list[tuple[nn.Module, int]] = []  # running activation modules and their input's id

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _name(func)
        if name in _METADATA:
            return func(*args, **kwargs)
        norm_read = []
        for t in tree_leaves((args, kwargs)):
            if isinstance(t, torch.Tensor):
                if id(t) in self.watched:
                    self.reads[id(t)] += 1
                rec = self.norm_outputs.get(id(t))
                if rec is not None and rec.ref() is t:
                    rec.reads += 1
                    norm_read.append((t, rec))
        bn = None
        if name == "batch_norm":
            bn = self.running[-1] if self.running else None
            x = args[0] if args else kwargs.get("input")
            self.norm_calls.append((bn, id(x), _inference_norm(bn, args, kwargs)))
        out = func(*args, **kwargs)
        for t, rec in norm_read:
            if rec.first is None:
                act = self.activations[-1] if self.activations and not self.layer_done else None
                rec.first = (act[0] if act is not None and act[1] == id(t) else None, out is t)
        if bn is not None and isinstance(out, torch.Tensor):
            rec = _NormOutput(bn, out)
            self.norm_outputs[id(out)] = rec
            self.norm_records.append(rec)
        return out


class _SkipNorm(TorchFunctionMode):
    """Inside the block ``batch_norm(x, ...)`` returns ``x``: a batch norm subclass's other work still runs."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if _name(func) == "batch_norm":
            return args[0] if args else kwargs["input"]
        return func(*args, **(kwargs or {}))


def _candidate(m: nn.Module, kind: type) -> bool:
    """A module of this kind that may be folded at all: float weights, no instance ``forward`` of its own."""
    if "forward" in vars(m) or not isinstance(m, kind):
        return False
    if kind is nn.Conv2d:
        return type(m) is nn.Conv2d and m.weight.dtype in _FLOATS
    return m.running_mean is not None and m.running_var is not None and m.running_mean.dtype in _FLOATS


def foldable_pairs(model: nn.Module, layer: nn.Module, x: torch.Tensor, layer_output: list | None = None,
                   activations: dict | None = None) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """The (convolution, batch norm) pairs below ``layer`` that can be folded into one convolution.

    Found by one forward pass of ``x`` (no gradients; one image is enough) under the rules in
    this module's description; the same pass finds which modules run before ``layer``
    finishes (:func:`~cameras.core.memory.recording_below`). ``layer_output``: a list that
    receives the layer's output of that pass (for a check against a folded pass).
    ``activations``: a dict that receives, for each pair's batch norm, the activation module
    that may be fused into the pair (see the module's description), where there is one.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1),
        ...                     nn.BatchNorm2d(2)).eval()
        >>> pairs = foldable_pairs(net, net[2], torch.zeros(1, 3, 8, 8))  # the layer: the first ReLU
        >>> [(type(c).__name__, type(b).__name__) for c, b in pairs]
        [('Conv2d', 'BatchNorm2d')]
    """
    convs = [m for m in model.modules() if _candidate(m, nn.Conv2d) and m is not layer]
    norms = [m for m in model.modules() if _candidate(m, nn.BatchNorm2d)]
    if not convs or not norms:
        return []
    watch = _Watch()
    fed: dict[nn.Module, list[tuple[int, nn.Module | None]]] = {m: [] for m in norms}  # (input id, its conv)
    calls: Counter[nn.Module] = Counter()
    handles = []

    def conv_done(m, _args, out):
        calls[m] += 1
        if isinstance(out, torch.Tensor):
            watch.watched[id(out)] = (m, out)

    def norm_starts(m, args):
        calls[m] += 1
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        made = watch.watched.get(id(x))
        # resolved now: the input may be freed after the call and its id reused by a later convolution's output
        fed[m].append((id(x), made[0] if made is not None and made[1] is x else None))
        watch.running.append(m)

    def norm_done(m, _args, _out):
        watch.running.pop()

    def act_starts(m, args):
        watch.activations.append((m, id(args[0]) if args and isinstance(args[0], torch.Tensor) else None))

    def act_done(m, _args, _out):
        watch.activations.pop()

    # the hooks sit on the caller's model: no other thread's call on it runs meanwhile
    with model_lock(model):
        try:
            for m in convs:
                handles.append(m.register_forward_hook(conv_done))
            for m in norms:
                handles.append(m.register_forward_pre_hook(norm_starts))
                handles.append(m.register_forward_hook(norm_done))
            if activations is not None:
                handles.append(layer.register_forward_hook(lambda *_: setattr(watch, "layer_done", True)))
                for m in model.modules():
                    if _fusable_activation(m):
                        handles.append(m.register_forward_pre_hook(act_starts))
                        handles.append(m.register_forward_hook(act_done))
            if layer_output is not None:
                handles.append(layer.register_forward_hook(lambda _m, _i, out: layer_output.append(out)))
            with recording_below(model, layer) as below, torch.no_grad(), watch:
                model(x)
        except Exception:  # noqa: BLE001 - a model that cannot run under the watch is simply not folded
            return []
        finally:
            for h in handles:
                h.remove()
    own_calls: dict[nn.Module, list[tuple[int, bool]]] = {m: [] for m in norms}
    for m, i, inference in watch.norm_calls:
        if m is not None:
            own_calls[m].append((i, inference))
    pairs = []
    below_set = set(below)
    records: dict[nn.Module, list[_NormOutput]] = {}  # each norm's batch_norm outputs (a pair's norm: one)
    for rec in watch.norm_records:
        records.setdefault(rec.norm, []).append(rec)
    for bn in norms:
        if calls[bn] != 1 or len(fed[bn]) != 1 or bn not in below_set:
            continue
        fed_id, conv = fed[bn][0]
        if conv is None or calls[conv] != 1 or conv not in below_set:
            continue
        if own_calls[bn] != [(fed_id, True)] or watch.reads[fed_id] != 1:  # one read: the batch_norm call itself
            continue
        pairs.append((conv, bn))
        if activations is not None:
            recs = records.get(bn, [])
            act, in_place = (recs[0].first or (None, False)) if len(recs) == 1 else (None, False)
            if act is not None and (in_place or recs[0].reads == 1):
                activations[bn] = act
    return pairs


#: activation modules a oneDNN convolution can apply as it writes its output, by exact type
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.SiLU, nn.Hardswish, nn.GELU)


def _fusable_activation(m: nn.Module) -> bool:
    return type(m) in _ACTIVATIONS and "forward" not in vars(m)


def _post_op(act: nn.Module) -> tuple[str, list, str]:
    """oneDNN's name, scalars and algorithm for an activation module of :data:`_ACTIVATIONS`."""
    if isinstance(act, nn.Hardtanh):  # ReLU6 too
        return "hardtanh", [float(act.min_val), float(act.max_val)], ""
    if isinstance(act, nn.GELU):
        return "gelu", [], act.approximate
    return {nn.ReLU: "relu", nn.SiLU: "swish", nn.Hardswish: "hardswish"}[type(act)], [], ""


def fusion_available() -> bool:
    """Whether this PyTorch has oneDNN's fused convolution and activation (CPU builds with MKLDNN).

    Example:
        >>> isinstance(fusion_available(), bool)
        True
    """
    return (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and hasattr(torch.ops.mkldnn, "_convolution_pointwise"))


def _hooked(m: nn.Module) -> bool:
    return bool(m._forward_hooks or m._forward_pre_hooks or getattr(m, "_forward_hooks_with_kwargs", None)
                or getattr(m, "_forward_pre_hooks_with_kwargs", None))


def _global_hooks() -> bool:
    """Whether hooks registered for every module (``register_module_forward_hook`` and friends) are present."""
    return any(bool(getattr(module_hooks, n, None)) for n in
               ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_forward_hooks_always_called"))


def folded_weights(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight (O×I/g×kh×kw) and bias (O) of one convolution that computes ``bn(conv(x))`` in inference.

    Computed in float64 (float32 on a device without float64, such as Apple's MPS) and returned
    in the convolution's dtype and memory format, detached.

    Example:
        >>> conv, bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4).eval()
        >>> _ = nn.init.uniform_(bn.running_var, 0.5, 2.0), nn.init.normal_(bn.running_mean)
        >>> w, b = folded_weights(conv, bn)
        >>> x = torch.randn(1, 3, 8, 8)
        >>> torch.allclose(nn.functional.conv2d(x, w, b), bn(conv(x)), atol=1e-5)
        True
    """
    with torch.no_grad():
        w = conv.weight.detach()
        wide = torch.float32 if w.device.type == "mps" else torch.float64
        var, mean = bn.running_var.detach().to(wide), bn.running_mean.detach().to(wide)
        s = torch.rsqrt(var + bn.eps)
        if bn.weight is not None:
            s = s * bn.weight.detach().to(wide)
        b = conv.bias.detach().to(wide) if conv.bias is not None else torch.zeros_like(mean)
        b = (b - mean) * s
        if bn.bias is not None:
            b = b + bn.bias.detach().to(wide)
        fmt = torch.channels_last if w.dim() == 4 and w.is_contiguous(memory_format=torch.channels_last) \
            and not w.is_contiguous() else torch.contiguous_format
        folded = (w.to(wide) * s.reshape(-1, 1, 1, 1)).to(w.dtype).contiguous(memory_format=fmt)
        return folded, b.to(w.dtype)


def _close(a, b) -> bool:
    """Whether two outputs (tensors, or structures of them) are equal up to float rounding."""
    xs, ys = [t for t in tree_leaves(a) if torch.is_tensor(t)], [t for t in tree_leaves(b) if torch.is_tensor(t)]
    if len(xs) != len(ys):
        return False
    for p, q in zip(xs, ys):
        if p.shape != q.shape:
            return False
        if p.is_floating_point():
            p, q = p.double(), q.double()
            if not bool(((p - q).abs().max() <= 1e-4 * max(float(q.abs().max()), 1e-12)).item()):
                return False
        elif not torch.equal(p, q):
            return False
    return True


class FoldedBelow:
    """The (convolution, batch norm) pairs below ``layer`` folded into single convolutions inside :meth:`active`.

    Args:
        model: the network; its weights are read, never changed.
        layer: the explained module; pairs are folded only below it.
        x: an input like the ones to come (one image is enough), for the forward pass that finds
            the pairs and the one that checks them (the layer's output with the pairs folded
            must equal the unfolded one up to float rounding, or nothing is folded).
        held: as for :meth:`active`, when the model's weights are swapped for held copies.
        fuse_activations: fuse each pair's activation into its convolution where the module's
            description allows (a CPU build with oneDNN; for bfloat16 passes, where it pays).

    Use it for forward passes under ``torch.no_grad()`` up to the layer (as the CAM family
    runs them); outputs equal the unfolded ones up to float rounding. A model whose modules
    were replaced since (:meth:`current` is False) needs a new ``FoldedBelow``.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2)).eval()
        >>> x = torch.randn(1, 3, 8, 8)
        >>> folded = FoldedBelow(net, net[2], x)
        >>> len(folded.pairs)
        1
        >>> with torch.no_grad(), folded.active():
        ...     y = net(x)
        >>> torch.allclose(y, net(x), atol=1e-5), "forward" in vars(net[0])
        (True, False)
    """

    def __init__(self, model: nn.Module, layer: nn.Module, x: torch.Tensor, held: HeldCopies | None = None,
                 fuse_activations: bool = False) -> None:
        self.model, self.layer = model, layer
        self.fuse_activations = fuse_activations
        self._structure = list(model.modules())
        self._fingerprint: tuple | None = None
        self._weights: list[tuple[torch.Tensor, torch.Tensor] | None] = []
        self._cast: dict[tuple[int, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}  # folded weights per dtype
        self.folds = 0  # how many times the folded weights were computed
        #: the convolutions and batch norms running folded in the current :meth:`active` block (empty outside one)
        self.in_use: tuple[nn.Module, ...] = ()
        unfolded: list = []
        found: dict = {}
        watch_acts = found if fuse_activations and fusion_available() else None
        self.pairs = foldable_pairs(model, layer, x, unfolded, watch_acts)
        #: the activation module fused into each pair's convolution (None: not fused), by pair
        self.activations: list[nn.Module | None] = [found.get(bn) if _int_padding(conv) is not None else None
                                                    for conv, bn in self.pairs]
        # oneDNN refuses bf16 convolutions on CPUs without bf16 support (AVX512BW or AVX-NE-CONVERT): unfused there
        self._bf16_fusion = fast_bf16(torch.device("cpu")) if any(self.activations) else False
        self.checked = True  # whether the folded pass gave the unfolded layer output (False: nothing is folded)
        for _ in range(2 if any(self.activations) else 1):
            if not self.pairs or self._check(x, held, unfolded):
                return
            self.activations = [None] * len(self.pairs)  # fused activations failed the check: fold alone
        self.pairs, self._weights, self.activations, self.checked = [], [], [], False

    def _check(self, x: torch.Tensor, held: HeldCopies | None, unfolded: list) -> bool:
        """Whether a pass with the pairs folded gives the layer output of the unfolded pass up to float rounding."""
        folded: list = []
        with model_lock(self.model):  # the hook sees this pass only
            handle = self.layer.register_forward_hook(lambda _m, _i, out: folded.append(out))
            try:
                with torch.no_grad(), self.active(held):
                    self.model(x)
            except RuntimeError:
                if not any(self.activations):
                    raise
                return False  # the fused convolution refused something (a build, a post-op): fold alone
            finally:
                handle.remove()
        return len(folded) == 1 and len(unfolded) == 1 and _close(folded[0], unfolded[0])

    def current(self) -> bool:
        """Whether the model still has the modules it had when the pairs were found (none replaced or added).

        Example:
            >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
            >>> folded = FoldedBelow(net, net[2], torch.zeros(1, 3, 8, 8))
            >>> net[1] = nn.BatchNorm2d(4).eval()
            >>> folded.current()
            False
        """
        return list(self.model.modules()) == self._structure

    def _live(self) -> list[int]:
        """The pairs that may be folded for this call."""
        if _global_hooks():
            return []
        return [i for i, (c, b) in enumerate(self.pairs)
                if not b.training and b.running_mean is not None and b.running_var is not None
                and not _hooked(c) and not _hooked(b) and "forward" not in vars(c) and "forward" not in vars(b)]

    @contextlib.contextmanager
    def active(self, held: HeldCopies | None = None) -> Iterator[None]:
        """Inside the block the folded pairs run as single convolutions; every ``forward`` is restored after,
        also on errors.

        ``held``: the :class:`~cameras.core.memory.HeldCopies` whose copies are swapped into the
        model for the call (channels-last weights); they are identified by storage and the
        copies' generation, not summed again (see :func:`~cameras.core.memory.weights_fingerprint`)."""
        with model_lock(self.model):  # another thread's swapped-in forwards are not taken for the modules' own
            yield from self._active(held)

    def _active(self, held: HeldCopies | None) -> Iterator[None]:
        live = self._live()
        if not live:
            yield
            return
        tensors = [t for i in live for t in [*self.pairs[i][0].parameters(), *self.pairs[i][1].parameters(),
                                              *self.pairs[i][1].buffers()]]
        now = (tuple(live), tuple(self.pairs[i][1].eps for i in live), held.conversions if held else None,
               weights_fingerprint(tensors, held))
        if now != self._fingerprint:  # the first call, new weights or other live pairs: fold afresh
            self._weights = [folded_weights(*p) if i in live else None for i, p in enumerate(self.pairs)]
            self._cast.clear()
            self._fingerprint = now
            self.folds += 1
        # activations fused for this call: not hooked and not swapped (by the caller, or by the explained layer)
        acts = {i: a for i in live if (a := self.activations[i]) is not None and a is not self.layer
                and not _hooked(a) and "forward" not in vars(a)}
        fused: dict[int, tuple[torch.Tensor, nn.Module]] = {}  # id of a fused output -> (it, its activation)
        modules, forwards = [], []
        for i in live:
            conv, bn = self.pairs[i]
            modules += [conv, bn]
            forwards += [self._folded_forward(i, acts.get(i), fused), _identity_norm(bn)]
        for act in dict.fromkeys(acts.values()):  # a shared activation module once
            modules.append(act)
            forwards.append(_skipping_fused(act, fused))
        try:
            with swapped_forwards(modules, forwards):
                self.in_use = tuple(m for i in live for m in self.pairs[i])
                yield
        finally:
            self.in_use = ()
            fused.clear()

    def _weights_for(self, i: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Pair ``i``'s folded weight and bias in ``dtype`` (cast once per fold and kept)."""
        w, b = self._weights[i]
        if w.dtype == dtype:
            return w, b
        if (i, dtype) not in self._cast:
            self._cast[(i, dtype)] = (w.to(dtype), b.to(dtype))
        return self._cast[(i, dtype)]

    def _folded_forward(self, i: int, act: nn.Module | None, fused: dict):
        conv = self.pairs[i][0]
        padding = _int_padding(conv)
        post_op = _post_op(act) if act is not None else None

        def forward(x: torch.Tensor) -> torch.Tensor:
            w, b = self._weights_for(i, x.dtype)
            if post_op is None or padding is None or x.device.type != "cpu" or x.dim() != 4 \
                    or not (x.dtype == torch.float32 or x.dtype == torch.bfloat16 and self._bf16_fusion):
                return conv._conv_forward(x, w, b)
            out = torch.ops.mkldnn._convolution_pointwise(x, w, b, padding, list(conv.stride), list(conv.dilation),
                                                          conv.groups, *post_op)
            fused[id(out)] = (out, act)  # kept alive until its activation call, so its id stays its own
            return out

        return forward


def _int_padding(conv: nn.Conv2d) -> list[int] | None:
    """The convolution's zero padding as two numbers, or None where it pads otherwise (a mode, ``"same"``)."""
    if conv.padding_mode != "zeros" or conv.padding == "same":
        return None
    return [0, 0] if conv.padding == "valid" else [int(p) for p in conv.padding]


def _skipping_fused(act: nn.Module, fused: dict):
    """``act``'s forward that returns a fused convolution's output as it is (its activation was applied there)."""
    own = type(act).forward.__get__(act)

    def forward(x, *args, **kwargs):
        entry = fused.get(id(x)) if isinstance(x, torch.Tensor) else None
        if entry is not None and entry[0] is x and entry[1] is act and not args and not kwargs:
            del fused[id(x)]
            return x
        return own(x, *args, **kwargs)

    return forward


def _identity_norm(bn: nn.BatchNorm2d):
    if type(bn) is nn.BatchNorm2d:
        return lambda x: x
    own = type(bn).forward.__get__(bn)

    def forward(*args, **kwargs):
        with _SkipNorm():
            return own(*args, **kwargs)

    return forward


__all__ = ["FoldedBelow", "foldable_pairs", "folded_weights", "fusion_available"]
