"""Exact eager fast paths for the passes below a method's layer: channels-last weights and folded batch norms.

The CAM family runs its forward passes under ``torch.no_grad()`` up to the explained layer
(:class:`~cameras.core.capture.LayerCapture` switches recording on there). Two changes make
those passes faster without changing what they compute beyond float rounding (maps equal to
1e-5):

- **channels-last**: the model's 4-D weights are swapped for channels-last copies for the
  call and the input is fed channels-last; oneDNN runs convolutions faster that way on a
  CPU. The copies are kept between calls while the weights are unchanged.
- **batch-norm folding**: below the layer, a batch norm that only rescales a convolution's
  output becomes part of that convolution for the call
  (:class:`~cameras.core.folding.FoldedBelow`).

:class:`EagerFastPaths` holds both for a method: the options, their checks and the state
kept from call to call. The model is never changed: swapped tensors and ``forward`` s are
restored after every call, also on errors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import ContextManager, TypeVar

import torch
from torch import Tensor

from .errors import InputError
from .folding import FoldedBelow
from .guard import PerModel
from .memory import HeldCopies, prefers_channels_last
from .memory import channels_last as channels_last_model

R = TypeVar("R")
# the channels-last copies of a model's weights, one set per model however many methods explain it (held as
# long as the model lives)
_LAYOUT_COPIES: PerModel[HeldCopies] = PerModel(HeldCopies)


class EagerFastPaths:
    """Mixin of a :class:`~cameras.core.base.SaliencyMethod`: the channels-last and folding options.

    A method calls :meth:`init_fast_paths` in its constructor and runs the passes that may take
    the fast paths (all of a CAM's; Score-CAM's and RISE's masked ones) through
    :meth:`with_layout`, which decides the layout and passes it on; inside, it enters
    :meth:`eager_block` (:meth:`layout_block`, then :meth:`fold_block`, which needs the
    method's layer) around those passes, feeding inputs through :meth:`in_layout`. The
    channels-last copies of the weights are shared by all methods on one model (one copy in
    memory, converted once).

    Example:
        >>> import torch, torchvision
        >>> from cameras.methods import GradCAM
        >>> cam = GradCAM(torchvision.models.resnet18(num_classes=3), fold_batchnorm=True)
        >>> _ = cam(torch.randn(1, 3, 64, 64))
        >>> cam.channels_last_now, len(cam.folded.pairs)  # on a CPU; all 20 norms lie below layer4's output
        (True, 20)
    """

    channels_last: bool | str = "auto"
    fold_batchnorm: bool = False
    channels_last_now: bool = False  # whether the current (or last) call runs channels-last
    folded: FoldedBelow | None = None  # the foldable pairs below the layer, found on the first folded call
    layout_refused: bool = False  # the model failed on channels-last tensors: "auto" runs NCHW from then on

    def init_fast_paths(self, channels_last: bool | str, fold_batchnorm: bool) -> None:
        """Check and keep the two options (see :meth:`use_channels_last`, :meth:`fold_block`).

        Example:
            >>> EagerFastPaths().init_fast_paths("yes", True)
            Traceback (most recent call last):
            ...
            cameras.core.errors.InputError: channels_last must be True, False or 'auto', got 'yes'
        """
        if channels_last not in (True, False, "auto"):  # 1 and 0 count as True and False
            raise InputError(f"channels_last must be True, False or 'auto', got {channels_last!r}")
        if fold_batchnorm not in (True, False):
            raise InputError(f"fold_batchnorm must be True or False, got {fold_batchnorm!r}")
        self.channels_last = channels_last if channels_last == "auto" else bool(channels_last)
        self.fold_batchnorm = bool(fold_batchnorm)
        self.folded, self.layout_refused = None, False

    @property
    def held_layout(self) -> HeldCopies:
        """The channels-last copies of the model's weights, kept while the weights are unchanged and shared by
        every method on this model.

        Example:
            >>> import torchvision
            >>> from cameras.methods import GradCAM, LayerCAM
            >>> net = torchvision.models.resnet18()
            >>> GradCAM(net).held_layout is LayerCAM(net).held_layout
            True
        """
        return _LAYOUT_COPIES(self.model)

    def use_channels_last(self, x: Tensor) -> bool:
        """Whether this call on ``x`` (B×C×H×W) runs channels-last; sets ``channels_last_now``.

        ``"auto"``: convolutional networks on a CPU, where oneDNN runs them faster; never
        transformers (a patch grid) or a GPU. True: always; False: never.

        Example:
            >>> import torch, torchvision
            >>> from cameras.methods import GradCAM
            >>> GradCAM(torchvision.models.resnet18()).use_channels_last(torch.zeros(1, 3, 8, 8))
            True
        """
        nhwc = self.channels_last
        if nhwc == "auto":
            nhwc = prefers_channels_last(self.model, x.device) and self.layout.patch is None and not self.layout_refused
        self.channels_last_now = bool(nhwc)
        return self.channels_last_now

    def with_layout(self, x: Tensor, run: Callable[[bool], R]) -> R:
        """``run(nhwc)`` with the layout :meth:`use_channels_last` picks for ``x`` (B×C×H×W).

        With ``channels_last="auto"``, a model that cannot take channels-last tensors (a
        ``.view`` of a feature map, as in ``x.view(x.size(0), -1)``) is run again in NCHW, and
        every later call runs NCHW (``layout_refused``); with ``channels_last=True`` the error
        is raised, with what to change.

        Example:
            >>> import torch
            >>> from cameras.methods import GradCAM
            >>> class Flat(torch.nn.Module):
            ...     def __init__(self):
            ...         super().__init__()
            ...         self.conv, self.fc = torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(4 * 6 * 6, 2)
            ...     def forward(self, x):
            ...         return self.fc(self.conv(x).view(x.shape[0], -1))
            >>> cam = GradCAM(Flat(), layer="conv")
            >>> _ = cam(torch.randn(1, 3, 8, 8))
            >>> cam.layout_refused, cam.channels_last_now
            (True, False)
        """
        nhwc = self.use_channels_last(x)
        try:
            return run(nhwc)
        except RuntimeError as e:
            if not (nhwc and "view size is not compatible" in str(e)):
                raise
            if self.channels_last is True:
                raise InputError(f"this model cannot run channels-last ({e}); use channels_last='auto' or False, "
                                 "or .reshape instead of .view in its forward") from e
            # the pairs were looked for on the channels-last pass that failed (none found): look again in NCHW
            self.layout_refused, self.folded = True, None
            return run(self.use_channels_last(x))  # "auto" with the layout refused: NCHW

    def in_layout(self, x: Tensor) -> Tensor:
        """``x`` (B×C×H×W) as this call feeds it to the model: channels-last when the call runs so.

        Example:
            >>> import torch
            >>> from cameras.methods import GradCAM
            >>> cam = GradCAM(torch.nn.Conv2d(3, 2, 3))
            >>> cam.use_channels_last(torch.zeros(1, 3, 4, 4)), cam.in_layout(torch.zeros(1, 3, 4, 4)).stride()
            (True, (48, 1, 12, 3))
        """
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last_now else x

    def layout_block(self, active: bool) -> ContextManager:
        """Inside it the model's 4-D weights are channels-last when ``active`` (held copies; restored after).

        Example:
            >>> import torch
            >>> from cameras.methods import GradCAM
            >>> cam = GradCAM(torch.nn.Conv2d(3, 2, 3))
            >>> with cam.layout_block(True):
            ...     cam.model.weight.is_contiguous(memory_format=torch.channels_last)
            True
        """
        return channels_last_model(self.model, self.held_layout) if active else contextlib.nullcontext()

    def fold_block(self, x: Tensor, fuse_activations: bool = False) -> ContextManager:
        """Inside it the foldable (convolution, batch norm) pairs below ``self.layer`` run as single convolutions.

        Enter it after :meth:`layout_block`: the pairs are found on ``x[:1]`` (B×C×H×W, fed as
        the passes will be) on the first call, and again when the layer or the model's modules
        changed; folded weights are kept while the weights are unchanged. ``fuse_activations``:
        fuse the pairs' activations too (bfloat16 passes on a CPU; see
        :class:`~cameras.core.folding.FoldedBelow`).

        Example:
            >>> import torch, torchvision
            >>> from cameras.methods import GradCAM
            >>> cam = GradCAM(torchvision.models.resnet18(num_classes=3).eval(), layer="layer4")
            >>> cam.use_channels_last(torch.zeros(1, 3, 64, 64)), cam.layer_name
            (True, 'layer4')
            >>> with cam.layout_block(True), cam.fold_block(torch.randn(1, 3, 64, 64)):
            ...     "forward" in vars(cam.model.conv1)  # folded with bn1 for the block
            True
            >>> "forward" in vars(cam.model.conv1)
            False
        """
        folded = self.folded
        if folded is None or folded.layer is not self.layer or not folded.current() \
                or folded.fuse_activations != fuse_activations:
            folded = self.folded = FoldedBelow(self.model, self.layer, self.in_layout(x[:1]), self.held_layout,
                                               fuse_activations)
        return folded.active(self.held_layout)

    @contextlib.contextmanager
    def eager_block(self, x: Tensor, nhwc: bool, fold: bool | None = None,
                    fuse_activations: bool = False) -> Iterator[None]:
        """:meth:`layout_block` (``nhwc``) and, inside it, :meth:`fold_block` on ``x`` (with
        ``fuse_activations``) when ``fold``.

        ``fold`` defaults to the ``fold_batchnorm`` option. The order matters: the pairs are
        found, and the folded weights take their format, under the chosen layout.

        Example:
            >>> import torch, torchvision
            >>> from cameras.methods import GradCAM
            >>> net = torchvision.models.resnet18(num_classes=3).eval()
            >>> cam = GradCAM(net, layer="layer4", fold_batchnorm=True)
            >>> with cam.eager_block(torch.randn(1, 3, 64, 64), cam.use_channels_last(torch.zeros(1, 3, 64, 64))):
            ...     "forward" in vars(cam.model.conv1), cam.model.conv1.weight.is_contiguous(
            ...         memory_format=torch.channels_last)
            (True, True)
        """
        with self.layout_block(nhwc):
            if self.fold_batchnorm if fold is None else fold:
                with self.fold_block(x, fuse_activations):
                    yield
            else:
                yield


__all__ = ["EagerFastPaths"]
