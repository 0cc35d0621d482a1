"""Capture a layer's activation as a gradient leaf, with the hook scoped to one call."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .errors import LayerError


class LayerCapture:
    """Forward hook that turns ``layer``'s output into a leaf tensor requiring gradients.

    Inside ``with LayerCapture(layer, name) as cap:`` each forward pass stores the layer's
    output ``cap.activation`` (shape of the layer output, e.g. B×K×h×w) as a detached leaf
    with ``requires_grad=True`` and feeds a clone of it to the rest of the network. (When
    the output already requires gradients, because a lower layer is captured too, it is
    kept in the graph instead, so several captures can be nested.) Run the forward pass under
    ``torch.no_grad()``: the hook switches gradient recording on at the layer, so nothing
    below it records a graph (that is cheaper than a grad-mode forward with frozen weights). Hence
    ``torch.autograd.grad(score, cap.activation)`` backpropagates from the score down to the
    layer only, in-place operations after the layer (DenseNet's functional ReLU) cannot
    corrupt it, and the hook is removed on exit even when the forward raised.

    ``to_spatial`` is the seam for layers whose output is not a B×K×h×w map (token
    sequences B×N×C, channels-last B×h×w×C): a function that rearranges the output into
    B×K×h×w by reshaping, permuting and selecting entries (e.g. dropping a class token).
    :meth:`spatial` applies it to the captured activation and to its gradient alike, so the
    gradient of each spatial entry is the gradient of the output entry it came from. It
    must not compute new values (no arithmetic). Without it, ``layout`` (a
    :class:`~cameras.core.layouts.Layout`) reads token sequences and channels-last maps
    by the model's own description; B×K×h×w maps pass unchanged.

    ``record=False`` (gradient-free methods such as Score-CAM): the activation is stored
    detached and the hook leaves gradient recording as the caller set it, so under
    ``torch.no_grad()`` no graph is built above the layer either.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
        >>> with LayerCapture(net[0], "0") as cap, torch.no_grad():
        ...     y = net(torch.rand(1, 3, 8, 8))
        >>> tuple(cap.activation.shape), cap.activation.requires_grad
        ((1, 4, 6, 6), True)
    """

    def __init__(self, layer: nn.Module, name: str = "layer",
                 to_spatial: Callable[[Tensor], Tensor] | None = None, layout=None, record: bool = True) -> None:
        self.layer = layer
        self.record = record
        self.name = name
        self.to_spatial = to_spatial
        self.layout = layout
        self.activation: Tensor | None = None
        self.calls = 0
        self._handle = None

    def reset(self) -> None:
        """Forget the last activation before a new forward pass."""
        self.activation = None
        self.calls = 0

    def _hook(self, module: nn.Module, inputs: tuple, output: object) -> Tensor:
        if not isinstance(output, Tensor):
            raise LayerError(
                f"layer '{self.name}' returns {type(output).__name__}, not a tensor; "
                "choose a module whose output is a B×K×h×w feature map"
            )
        self.calls += 1
        if self.calls > 1:
            raise LayerError(
                f"layer '{self.name}' runs more than once per forward pass (a shared module); "
                "choose a module that runs once, e.g. its parent block"
            )
        if not self.record:
            self.activation = output.detach()
            return self.activation.clone()  # the stored one stays as the layer gave it
        # The layers below ran without recording a graph (callers run the forward under
        # torch.no_grad()); from here on the graph is needed, so switch it on for the rest of
        # this forward pass. The caller's no_grad block restores the mode when it exits.
        torch.set_grad_enabled(True)
        if output.requires_grad:
            # a layer above another captured layer: keep it in the graph (gradients w.r.t. the
            # lower capture must flow through it); the clone protects it from in-place ops.
            self.activation = output
        else:
            self.activation = output.detach().requires_grad_(True)
        return self.activation.clone()

    def __enter__(self) -> "LayerCapture":
        self.reset()
        self._handle = self.layer.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def get(self) -> Tensor:
        """The captured activation of the last forward; a clear error if the hook never fired."""
        if self.activation is None:
            raise LayerError(
                f"the forward hook on layer '{self.name}' did not fire: the layer is not used in "
                "forward, or the model is compiled/scripted. Pass a layer the model calls, on the "
                "uncompiled model."
            )
        return self.activation

    def spatial(self, t: Tensor) -> Tensor:
        """``t`` (the captured activation or its gradient) as a B×K×h×w map, through ``to_spatial``.

        Example:
            >>> cap = LayerCapture(torch.nn.Identity(), "tokens",
            ...                    to_spatial=lambda t: t.transpose(1, 2).reshape(1, 2, 2, 3))
            >>> tuple(cap.spatial(torch.zeros(1, 6, 2)).shape)
            (1, 2, 2, 3)
        """
        if self.to_spatial is None:
            out = t if self.layout is None else self.layout.to_map(t)
        else:
            try:
                out = self.to_spatial(t)
            except (ValueError, RuntimeError, IndexError, TypeError) as e:
                raise LayerError(f"to_spatial failed on layer '{self.name}', whose output has shape {tuple(t.shape)}: "
                                 f"{e}; give a to_spatial that fits this layer (NormGrad applies one to every "
                                 "listed layer)") from e
        if not isinstance(out, Tensor) or out.dim() != 4:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            fix = "its to_spatial function must return" if self.to_spatial is not None else \
                "pass to_spatial= that rearranges it into"
            raise LayerError(f"layer '{self.name}' gives shape {got}; {fix} a B×K×h×w feature map, "
                             "or choose a layer that outputs one")
        return out
