"""Base class of every saliency method: input checks, state guarantees, timing."""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from .errors import Cancelled, InputError
from .guard import frozen_eval, unwrap_model
from .layers import resolve_layer
from .ops import check_batch, check_target_range, resolve_targets
from .result import SaliencyResult


def sync(device: torch.device) -> None:
    """Wait for queued kernels on ``device`` (no-op on CPU) so timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class SaliencyMethod(abc.ABC):
    """Template for a saliency method: subclasses implement :meth:`explain_batch`.

    ``method(x, target=None)`` validates ``x`` (normalised B×C×H×W), turns ``target`` into a
    B-vector (or None: each image's top-1), switches the model to eval mode with frozen
    parameters and gradients enabled (also under ``torch.no_grad()`` or inference mode), calls
    :meth:`explain_batch`, and restores every training flag, ``requires_grad`` and ``.grad``.

    Subclasses set ``name`` and ``uses_layer``; layer methods get ``self.layer_name`` and
    ``self.layer`` resolved automatically when ``layer=None``.

    ``method.stop`` may hold a :class:`threading.Event`: setting it from another thread
    makes a running call raise :class:`~cameras.core.errors.Cancelled` at its next progress
    step (a RISE mask batch, an Extremal iteration, a CAMERAS scale), state restored.
    """

    stop: threading.Event | None = None

    name: ClassVar[str] = ""
    uses_layer: ClassVar[bool] = True

    def __init__(self, model: nn.Module, layer: str | nn.Module | None = None) -> None:
        self.model = unwrap_model(model)
        self._layer_arg = layer
        self.layer_name: str | None = None
        self.layer: nn.Module | None = None
        if self.uses_layer and layer is not None:
            self.layer_name, self.layer = resolve_layer(self.model, layer)

    def check_stop(self) -> None:
        """Raise :class:`Cancelled` if ``self.stop`` is set (called between steps)."""
        if self.stop is not None and self.stop.is_set():
            raise Cancelled(f"{self.name} was cancelled")

    def _ensure_layer(self, x: Tensor) -> None:
        if self.uses_layer and self.layer is None:
            self.layer_name, self.layer = resolve_layer(self.model, None, (x.shape[1], 224, 224))

    @torch.inference_mode(False)
    def __call__(self, x: Tensor, target: int | Sequence[int] | Tensor | None = None) -> SaliencyResult:
        x = check_batch(x).detach()
        if x.is_inference():
            x = x.clone()
        self._ensure_layer(x)
        self.check_stop()
        start = time.perf_counter()
        with frozen_eval(self.model), torch.enable_grad():
            targets = resolve_targets(target, x.shape[0], None, x.device)
            result = self.explain_batch(x, targets)
        sync(x.device)
        result.seconds = time.perf_counter() - start
        return result

    @staticmethod
    def pick_targets(logits: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
        """Targets (given, range-checked, or top-1) and their softmax probabilities.

        ``logits`` is B×N; returns (B int64, B float32).
        """
        if logits.dim() != 2:
            raise InputError(f"the model must return B×classes logits, got shape {tuple(logits.shape)}")
        if target is None:
            target = logits.argmax(1)
        else:
            check_target_range(target, logits.shape[1])
        probs = logits.detach().float().softmax(1).gather(1, target[:, None])[:, 0]
        return target, probs

    @abc.abstractmethod
    def explain_batch(self, x: Tensor, target: Tensor | None) -> SaliencyResult:
        """Compute maps for a validated batch; ``target`` is a B int64 tensor or None."""


def progress_bar(total: int, desc: str, progress: bool | None, stop: threading.Event | None = None):
    """A tqdm bar: ``progress=None`` shows it on a terminal only, True always, False never.

    With ``stop``, every ``update`` first raises :class:`Cancelled` if the event is set.

    Example:
        >>> ev = threading.Event()
        >>> with progress_bar(3, "demo", False, ev) as bar:
        ...     bar.update(1)
        ...     ev.set()
        ...     bar.update(1)
        Traceback (most recent call last):
        ...
        cameras.core.errors.Cancelled: demo was cancelled
    """
    from tqdm import tqdm

    class Bar(tqdm):
        def update(self, n=1):
            if stop is not None and stop.is_set():
                raise Cancelled(f"{desc} was cancelled")
            return super().update(n)

    return Bar(total=total, desc=desc, leave=False, disable=None if progress is None else not progress)
