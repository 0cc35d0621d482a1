"""Scoped model state: eval mode, frozen parameters, everything restored afterwards."""

from __future__ import annotations

import contextlib
import functools
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import torch
from torch import nn

from .errors import InputError
from .layouts import any_input_size


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the module whose submodules really run, refusing models whose hooks never fire.

    A ``torch.compile`` wrapper is unwrapped to its original module (with a warning, since
    hooks on compiled graphs are not guaranteed to fire); a TorchScript module is refused.

    Example:
        >>> import torch
        >>> unwrap_model(torch.nn.Linear(2, 2)).__class__.__name__
        'Linear'
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, torch.jit.ScriptModule):
        raise InputError(
            "TorchScript models cannot be explained: forward hooks do not fire inside scripted "
            "code. Pass the original (unscripted) nn.Module instead."
        )
    orig = getattr(model, "_orig_mod", None)
    if isinstance(orig, nn.Module):
        warnings.warn(
            "explaining the original module of a torch.compile'd model: hooks do not fire "
            "reliably inside compiled graphs",
            stacklevel=3,
        )
        return orig
    return model


T = TypeVar("T")


class PerModel(Generic[T]):
    """One value per live model object, made on first use and dropped when the model is garbage-collected.

    Keyed by ``id(model)`` rather than by the module (a module may define ``__eq__``); the
    entry is removed by a finalizer when the model dies, before its id can be reused. Making
    a value is serialised, so two threads asking for one model's value get the same object.

    Example:
        >>> import torch
        >>> counters = PerModel(list)
        >>> net = torch.nn.Linear(2, 2)
        >>> counters(net) is counters(net), counters(net) is counters(torch.nn.Linear(2, 2))
        (True, False)
    """

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._values: dict[int, T] = {}
        self._lock = threading.Lock()

    def __call__(self, model: nn.Module) -> T:
        key = id(model)
        with self._lock:
            value = self._values.get(key)
            if value is None:
                weakref.finalize(model, self._values.pop, key, None)  # first: a model without weakrefs stores nothing
                value = self._values[key] = self._make()
            return value


_MODEL_LOCKS: PerModel[threading.RLock] = PerModel(threading.RLock)


def model_lock(model: nn.Module) -> threading.RLock:
    """The re-entrant lock a saliency method holds on ``model`` for the whole of one call.

    A call changes the model for its duration: hooks on the explained layer, eval mode and
    frozen parameters, weights swapped for channels-last copies, folded ``forward`` s. Two
    threads explaining one model object at once would see each other's changes, so every
    call (any method, any instance) holds this lock, as do :func:`frozen_eval` (the metrics
    and attacks) and the fast paths' swaps, and calls on one model take turns; calls on
    different models still run in parallel. The lock is re-entrant (a method that calls
    another on the same model from inside its call does not wait for itself) and lives as
    long as the model.

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(2, 2)
        >>> model_lock(net) is model_lock(net), model_lock(net) is model_lock(torch.nn.Linear(2, 2))
        (True, False)
    """
    return _MODEL_LOCKS(model)


def _walk(model: nn.Module) -> tuple[list[nn.Module], list[tuple[torch.nn.Parameter, object]]]:
    """Modules in training mode and parameters requiring gradients (with their ``.grad``).

    One pass over the module tree, reading each module's dicts directly: ``model.modules()``
    and ``model.parameters()`` build name strings and walk the tree twice, which costs
    milliseconds on a 300-module network, a visible share of a GPU Grad-CAM call.
    """
    seen: set[int] = set()
    seen_params: set[int] = set()
    training: list[nn.Module] = []
    params: list[tuple[torch.nn.Parameter, object]] = []
    stack = [model]
    while stack:
        mod = stack.pop()
        if id(mod) in seen:
            continue
        seen.add(id(mod))
        if mod.training:
            training.append(mod)
        for p in mod._parameters.values():
            if p is not None and p.requires_grad and id(p) not in seen_params:
                seen_params.add(id(p))
                params.append((p, p.grad))
        stack.extend(c for c in mod._modules.values() if c is not None)
    return training, params


@contextlib.contextmanager
def frozen_eval(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode with every parameter frozen, and restore it on exit.

    Restores each module's ``training`` flag and each parameter's ``requires_grad`` and
    ``.grad`` exactly, on success and on exception; exceptions propagate unchanged.
    Freezing the parameters means a backward pass never reaches them, and no graph is kept
    for the layers below a detached capture point. Only what needs changing is touched: a
    model already in eval mode is not switched, a frozen parameter is left alone, so the
    guard costs a fraction of a millisecond. The block holds :func:`model_lock`: another
    thread's block (or method call) on the same model waits for this one to end, so inside
    the block do not wait for other threads that explain the same model (they would wait
    for the block: a deadlock); explain from the block's own thread instead.

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(2, 2).train()
        >>> with frozen_eval(m):
        ...     m.training, m.weight.requires_grad
        (False, False)
        >>> m.training, m.weight.requires_grad
        (True, True)
    """
    with model_lock(model):  # another thread's call on this model would restore its state mid-way through ours
        yield from _frozen(model)


@contextlib.contextmanager
def input_copies(model: nn.Module) -> Iterator[None]:
    """Within the block, ``model`` is given copies of its tensor arguments, so a model that edits its input in
    place (``x.sub_(mean)``, a first ``ReLU(inplace=True)``) leaves the caller's tensor, and the one a method
    goes on using, as they were. A copy costs far less than the forward it feeds.

    Example:
        >>> import torch
        >>> net = torch.nn.ReLU(inplace=True)
        >>> x = torch.tensor([-1.0, 2.0])
        >>> with input_copies(net):
        ...     y = net(x)
        >>> x.tolist(), y.tolist()
        ([-1.0, 2.0], [0.0, 2.0])
    """
    if isinstance(model, torch.jit.ScriptModule):  # takes no hooks (the metrics run scripted models as they are)
        yield
        return
    handle = model.register_forward_pre_hook(_copy_tensors)
    try:
        yield
    finally:
        handle.remove()


def _copy_tensors(module: nn.Module, args: tuple) -> tuple:
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)


@contextlib.contextmanager
def guarded(model: nn.Module) -> Iterator[None]:
    """What every method and metric runs a model under: :func:`frozen_eval` (batch norms neither use nor update
    batch statistics, dropout is off, parameters take no gradients; all restored after), :func:`input_copies`
    (a model that edits its input in place changes neither the caller's tensors nor the ones a method or
    metric goes on using) and :func:`~cameras.core.layouts.any_input_size` (a detector runs at the size it is
    given; a timm ViT takes any size).

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.ReLU(inplace=True), torch.nn.Dropout()).train()
        >>> x = torch.tensor([[-1.0, 2.0]])
        >>> with guarded(net):
        ...     net(x).tolist(), net.training
        ([[0.0, 2.0]], False)
        >>> x.tolist(), net.training
        ([[-1.0, 2.0]], True)
    """
    with frozen_eval(model), input_copies(model), any_input_size(model):
        yield


def frozen_model(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorator: ``fn(model, ...)`` runs under :func:`guarded` of its first argument (metrics that score a model: eval
    mode, the caller's images untouched, the model restored after; a detector scored at the size it is given, as
    the methods explain it).

    Example:
        >>> import torch
        >>> @frozen_model
        ... def mode(model):
        ...     return model.training
        >>> net = torch.nn.Linear(2, 2).train()
        >>> mode(net), net.training
        (False, True)
    """
    @functools.wraps(fn)
    def wrapper(model: nn.Module, *args, **kwargs) -> T:
        with guarded(model):
            return fn(model, *args, **kwargs)
    return wrapper


def _frozen(model: nn.Module) -> Iterator[nn.Module]:
    training, params = _walk(model)
    try:
        if training:
            model.eval()
        for p, _ in params:
            p.requires_grad_(False)
        yield model
    finally:
        if training:
            # eval() may have switched modules that were already in eval mode only through
            # an overridden train(); restore every flag it could have touched.
            was = {id(m) for m in training}
            for m in model.modules():
                m.training = id(m) in was
        for p, grad in params:
            p.requires_grad_(True)
            if p.grad is not grad:
                p.grad = grad
