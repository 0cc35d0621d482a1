"""Scoped model state: eval mode, frozen parameters, everything restored afterwards."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
from torch import nn

from .errors import InputError


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


@contextlib.contextmanager
def frozen_eval(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode with every parameter frozen, and restore it on exit.

    Restores each module's ``training`` flag and each parameter's ``requires_grad`` and
    ``.grad`` exactly, on success and on exception; exceptions propagate unchanged.
    Freezing the parameters means a backward pass never reaches them, and no graph is kept
    for the layers below a detached capture point.

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(2, 2).train()
        >>> with frozen_eval(m):
        ...     m.training, m.weight.requires_grad
        (False, False)
        >>> m.training, m.weight.requires_grad
        (True, True)
    """
    modes = [(m, m.training) for m in model.modules()]
    params = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _, _ in params:
            p.requires_grad_(False)
        yield model
    finally:
        for m, mode in modes:
            m.training = mode
        for p, req, grad in params:
            p.requires_grad_(req)
            p.grad = grad
