"""The one gradient path of the CAM family: forward, pick the target, backward to the layer(s)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .capture import LayerCapture
from .errors import LayerError
from .targets import Target, bind_target, logits_or_none


@dataclass
class LayerGradients:
    """What one forward and one backward pass to the captured layers give.

    Attributes:
        output: the model's output as returned (detached tensors inside are not guaranteed).
        target: the target bound to this batch (ids resolved, e.g. the top-1).
        logits: B×N float32 class scores (detached), or None when the output has none.
        probs: B float32 target probabilities (``target.probability``).
        activations: per capture, the B×K×h×w activation (detached, through ``to_spatial``).
        gradients: per capture, the gradient of the summed target score, same shape.
        more: for each further target of the same forward pass, (bound target, probs,
            gradients per capture).
    """

    output: Any
    target: Target
    logits: Tensor | None
    probs: Tensor
    activations: list[Tensor]
    gradients: list[Tensor]
    more: list[tuple[Target, Tensor, list[Tensor]]] = field(default_factory=list)


def layer_gradients(
    model: nn.Module,
    x: Tensor,
    captures: list[LayerCapture],
    target: Target | None,
    autocast_dtype: torch.dtype | bool | None = None,
    score_scale: float = 1.0,
    more_targets: list[Target | None] = (),
) -> LayerGradients:
    """Forward ``x``, bind ``target`` (None: each image's top-1), and backpropagate its score to each capture.

    The forward runs under ``torch.no_grad()``; each capture's hook switches recording on at
    its layer, so the backward goes from the score down to the lowest captured layer only.
    Run it inside the captures' ``with`` blocks. ``autocast_dtype``: a dtype runs the forward
    under autocast in it, ``False`` with autocast switched off (float32 even inside a
    caller's autocast block), None as the caller's context has it. ``score_scale``
    multiplies the score before the backward (fp16 underflow). ``more_targets`` are explained
    from the same forward pass, one backward each (``result.more``).

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.Flatten(), torch.nn.Linear(32, 3))
        >>> with LayerCapture(net[0], "0") as cap:
        ...     g = layer_gradients(net, torch.rand(1, 3, 4, 4), [cap], None)
        >>> tuple(g.activations[0].shape), tuple(g.gradients[0].shape), g.target.ids.shape
        ((1, 2, 4, 4), (1, 2, 4, 4), torch.Size([1]))
    """
    for cap in captures:
        cap.reset()
    if autocast_dtype is None:
        amp = contextlib.nullcontext()
    elif autocast_dtype is False:
        amp = torch.autocast(x.device.type, enabled=False)
    else:
        amp = torch.autocast(x.device.type, dtype=autocast_dtype)
    with torch.no_grad(), amp:
        output = model(x)
    leaves = [cap.get() for cap in captures]
    acts = [cap.spatial(a) for cap, a in zip(captures, leaves)]  # checks the layout before the backward
    bound, grads = [], []
    for i, t in enumerate([target, *more_targets]):
        t = bind_target(t, output)
        score = t.score(output).sum()
        if score_scale != 1.0:
            score = score * score_scale
        if not score.requires_grad:
            raise LayerError(_unreached(captures, "the score does not depend on it"))
        g = torch.autograd.grad(score, leaves, retain_graph=i < len(more_targets), allow_unused=True)
        unused = [cap for cap, gi in zip(captures, g) if gi is None]
        if unused:
            raise LayerError(_unreached(unused, "the score does not depend on it"))
        bound.append(t)
        grads.append([cap.spatial(gi) for cap, gi in zip(captures, g)])
    return LayerGradients(
        output=output,
        target=bound[0],
        logits=logits_or_none(output),
        probs=bound[0].probability(output),
        activations=[a.detach() for a in acts],
        gradients=grads[0],
        more=[(t, t.probability(output), g) for t, g in zip(bound[1:], grads[1:])],
    )


def _unreached(captures: list[LayerCapture], why: str) -> str:
    names = ", ".join(f"'{cap.name}'" for cap in captures)
    return (f"layer {names} ran, but {why} (it feeds no part of the output the target scores, e.g. an auxiliary "
            "branch, or the target's score is not computed from the model's output); pick a layer the output is "
            "computed from (`cameras layers MODEL` lists them) or a target that reads the output")
