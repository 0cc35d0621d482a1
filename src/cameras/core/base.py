"""Base class of every saliency method: input checks, state guarantees, timing."""

from __future__ import annotations

import abc
import functools
import inspect
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .capture import LayerCapture
from .errors import Cancelled, InputError, LayerError
from .guard import guarded, model_lock, unwrap_model
from .layers import module_name, resolve_layer
from .layouts import Layout, canvas_cover, model_size_errors, track_input_size
from .ops import check_batch, grad_safe, resize_maps
from .result import SaliencyResult
from .targets import Target, TargetLike, as_target


def sync(device: torch.device) -> None:
    """Wait for queued kernels on ``device`` (CUDA, MPS, XPU; no-op on CPU) so timings are honest.

    Example:
        >>> sync(torch.device("cpu"))
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type in ("mps", "xpu"):
        getattr(torch, device.type).synchronize()


class SaliencyMethod(abc.ABC):
    """Template for a saliency method: subclasses implement :meth:`explain_batch`.

    ``method(x, target=None)`` validates ``x`` (normalised B×C×H×W), turns ``target`` into a
    :class:`~cameras.targets.Target` (or None: each image's top-1; see :mod:`cameras.targets`
    for what ``target`` may be), switches the model to eval mode with frozen parameters and
    gradients enabled (also under ``torch.no_grad()`` or inference mode), calls
    :meth:`explain_batch`, and restores every training flag, ``requires_grad`` and ``.grad``.

    Subclasses set ``name`` and ``uses_layer``; layer methods get ``self.layer_name`` and
    ``self.layer`` resolved automatically when ``layer=None``, and ``self.to_spatial`` (for
    layers whose output is not B×K×h×w, see :class:`~cameras.core.capture.LayerCapture`).
    ``method.options`` holds every constructor argument, defaults included.

    ``method.stop`` may hold a :class:`threading.Event`: setting it from another thread
    makes a running call raise :class:`~cameras.core.errors.Cancelled` at its next progress
    step (a RISE mask batch, an Extremal iteration, a CAMERAS scale), state restored.

    Calls may come from several threads: calls on one model object take turns (they hold
    :func:`~cameras.core.guard.model_lock` for their whole duration), calls on different
    models run in parallel (``compile=True`` passes excepted: the compiler's settings are
    process-wide, so they take turns). A model wrapped in another module (``nn.Sequential(norm,
    model)``) is a different object from the model inside it: explain one of the two per
    process at a time, or from one thread.
    """

    stop: threading.Event | None = None

    name: ClassVar[str] = ""
    uses_layer: ClassVar[bool] = True
    # about how many forward (+ backward) passes one image costs at default settings; orders
    # methods fastest first where several run (the app)
    passes: ClassVar[int] = 1
    #: the map is a gradient at the input's pixels (noisy pixel by pixel): the pointing game smooths it first
    input_gradient: ClassVar[bool] = False
    #: a call with ``target=None`` gives what a call with each image's top-1 class id on that input gives
    #: (maps, probabilities and logits, from one pass over the input as given): a wrapper may then leave the
    #: class to the method's own pass instead of a pass of its own. A subclass that changes how the class is
    #: chosen (its own ``explain_batch``) sets it to False again
    untargeted_is_top1: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        sig = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self, *args, **kw):
            if "_options" not in self.__dict__:  # the most derived constructor records its arguments
                bound = sig.bind(self, *args, **kw)
                bound.apply_defaults()
                self._options = {k: v for k, v in list(bound.arguments.items())[1:] if k != "model"}
            init(self, *args, **kw)

        cls.__init__ = recording_init

    def __init__(self, model: nn.Module, layer: str | nn.Module | None = None,
                 to_spatial: Callable[[Tensor], Tensor] | None = None) -> None:
        self.model = unwrap_model(model)
        self._layer_arg = layer
        self.layer_name: str | None = None
        self.layer: nn.Module | None = None
        if to_spatial is not None and not callable(to_spatial):
            raise InputError(f"to_spatial must be a function of the layer's output, got {type(to_spatial).__name__}")
        self.to_spatial = to_spatial
        self.layout = Layout.of(self.model)  # how token and channels-last layers become maps
        if self.uses_layer and layer is not None:
            self.layer_name, self.layer = resolve_layer(self.model, layer)

    @property
    def options(self) -> dict[str, Any]:
        """Every constructor argument (defaults included) as JSON-ready values, as given.

        A layer given as a module is recorded by its name (None stays None: the layer found
        at the first call is ``self.layer_name``).

        Example:
            >>> import torchvision
            >>> from cameras.methods import GradCAM
            >>> GradCAM(torchvision.models.resnet18(), layer="layer3").options
            {'layer': 'layer3', 'to_spatial': None, 'channels_last': 'auto', 'fold_batchnorm': False}
        """
        out = {}
        for k, v in getattr(self, "_options", {}).items():
            if k == "layer" and isinstance(v, nn.Module):
                v = module_name(self.model, v)
            elif k == "layer" and isinstance(v, (list, tuple)):
                v = [module_name(self.model, i) if isinstance(i, nn.Module) else i for i in v]
            out[k] = _jsonable(v)
        return out

    #: options that do not change the maps (speed, memory, progress display): left out of
    #: the settings a resumed run must share
    neutral_options: ClassVar[tuple[str, ...]] = ("progress",)

    def result_options(self) -> dict[str, Any]:
        """:attr:`options` without :attr:`neutral_options`: the settings that determine the maps.

        Example:
            >>> import torchvision
            >>> from cameras.methods import RISE
            >>> RISE(torchvision.models.resnet18(), n_masks=8).result_options()
            {'n_masks': 8, 'grid': 8, 'p': 0.1, 'seed': 0}
        """
        return {k: v for k, v in self.options.items() if k not in self.neutral_options}

    def convergence_warning(self) -> str | None:
        """A warning when the settings are too small for the method to give a meaningful map, else None.

        Example:
            >>> import torchvision
            >>> from cameras.methods import ExtremalPerturbation
            >>> ExtremalPerturbation(torchvision.models.resnet18(), iterations=50).convergence_warning()[:39]
            'extremal: 50 iterations are too few for'
        """
        return None

    def check_stop(self) -> None:
        """Raise :class:`Cancelled` if ``self.stop`` is set (called between steps)."""
        if self.stop is not None and self.stop.is_set():
            raise Cancelled(f"{self.name} was cancelled")

    def _ensure_layer(self, x: Tensor) -> None:
        self.layout.input_hw = (int(x.shape[2]), int(x.shape[3]))
        if self.uses_layer and self.layer is None:
            m = self.layout.patch
            if m is not None:  # a transformer: probed at the input's size, rounded to its patch multiple
                size = (int(x.shape[1]), *(max(m, round(int(v) / m) * m) for v in x.shape[2:]))
                self.layer_name, self.layer = resolve_layer(self.model, None, size)
                return
            try:  # other models at 224×224, as always; at the input's size if they cannot take that
                self.layer_name, self.layer = resolve_layer(self.model, None, (int(x.shape[1]), 224, 224))
            except (AssertionError, RuntimeError, LayerError):
                self.layer_name, self.layer = resolve_layer(self.model, None, tuple(int(v) for v in x.shape[1:]))

    def capture(self, layer: nn.Module | None = None, name: str | None = None, record: bool = True) -> LayerCapture:
        """A :class:`LayerCapture` of the method's layer (or ``layer``) with its ``to_spatial`` (``record=False``: no
        graph above the layer, for gradient-free methods)."""
        return LayerCapture(self.layer if layer is None else layer, self.layer_name if name is None else name,
                            self.to_spatial, self.layout, record)

    def to_input(self, maps: Tensor, size: tuple[int, int]) -> Tensor:
        """B×h×w maps at a layer's resolution resized bilinearly to the B×H×W input ``size`` they explain (for a
        detector, which pads its input, over the padded canvas and cropped to the image: :func:`canvas_cover`).

        Example:
            >>> from cameras import Gradient
            >>> m = Gradient(torch.nn.Conv2d(3, 2, 1))
            >>> m.to_input(torch.ones(1, 2, 2), (4, 4)).shape
            torch.Size([1, 4, 4])
        """
        size = (int(size[0]), int(size[1]))
        return resize_maps(maps, size, canvas_cover(self.model, size))

    def _run(self, x: Tensor, work: Callable[[Tensor], Any]) -> tuple[Any, float]:
        """Check ``x``, find the layer, and run ``work(x)`` with the model's state guarded and any
        input size allowed; return its value and the seconds it took (device synchronised)."""
        x = grad_safe(check_batch(x).detach())
        lock = model_lock(self.model)  # calls on one model from several threads take turns
        while not lock.acquire(timeout=0.05):
            self.check_stop()  # a call waiting for its turn can be cancelled too
        try:
            with model_size_errors(self.model, x):
                self._ensure_layer(x)
            self.check_stop()
            start = time.perf_counter()
            with guarded(self.model), model_size_errors(self.model, x), track_input_size(self.model, self.layout), \
                    torch.enable_grad():
                out = work(x)
            sync(x.device)
            return out, time.perf_counter() - start
        finally:
            lock.release()

    @torch.inference_mode(False)
    def __call__(self, x: Tensor, target: TargetLike = None) -> SaliencyResult:
        result, seconds = self._run(x, lambda x: self.explain_batch(x, as_target(target, x.shape[0], x.device, _hw(x))))
        result.seconds = seconds
        return result

    @torch.inference_mode(False)
    def explain_targets(self, x: Tensor, targets: Sequence[TargetLike]) -> list[SaliencyResult]:
        """One result per target for the same batch, e.g. the top-1 (None) and other classes.

        Methods that can share work among the targets do (CAMERAS: one forward pass per
        scale, one backward per target); the maps equal separate calls ``method(x, t)``.
        Each result's ``seconds`` is the call's time divided by the number of targets.

        Example:
            >>> import torch, torchvision
            >>> from cameras.methods import CAMERAS
            >>> cam = CAMERAS(torchvision.models.resnet18(num_classes=5), scales=[64, 96])
            >>> [r.targets.tolist() for r in cam.explain_targets(torch.randn(1, 3, 64, 64), [2, 4])]
            [[2], [4]]
        """
        if not targets:
            raise InputError("explain_targets needs at least one target (None: each image's top-1)")
        results, seconds = self._run(
            x, lambda x: self.explain_batch_many(x, [as_target(t, x.shape[0], x.device, _hw(x)) for t in targets]))
        for r in results:
            r.seconds = seconds / len(results)
        return results

    def explain_batch_many(self, x: Tensor, targets: list[Target | None]) -> list[SaliencyResult]:
        """:meth:`explain_batch` for each target; methods that can share work override it."""
        return [self.explain_batch(x, t) for t in targets]

    def result(self, maps: Tensor, target: Target, probs: Tensor, logits: Tensor | None, **fields) -> SaliencyResult:
        """The :class:`SaliencyResult` of a bound ``target``: labels, probabilities, method and layer filled in."""
        B = maps.shape[0]
        notes = target.notes()
        if notes:
            fields.setdefault("extras", {})["target"] = notes
        return SaliencyResult(maps, target.labels(B, maps.device), probs, self.name,
                              self.layer_name if self.uses_layer else None,
                              logits=logits, target=target, **fields)

    @abc.abstractmethod
    def explain_batch(self, x: Tensor, target: Target | None) -> SaliencyResult:
        """Compute maps for a validated batch; ``target`` is a Target for this batch, or None (top-1)."""


def _hw(x: Tensor) -> tuple[int, int]:
    return int(x.shape[-2]), int(x.shape[-1])


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(i) for i in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(i) for k, i in v.items()}
    if isinstance(v, nn.Module):
        return type(v).__name__
    return getattr(v, "__name__", None) or repr(v)


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
