"""What a method explains: a target turns the model's output into one score per image.

Gradient methods differentiate the score; perturbation methods and metrics read the
target's :meth:`~Target.probability`. Every method, metric and attack accepts

- ``None``: each image's top-1 class (with the class rules: CAMERAS's scale-dropping rule);
- an int, a list of B ints or an integer tensor: class ids, explained through their
  pre-softmax logit (a :class:`ClassTarget`);
- a :class:`Target` (:class:`ClassTarget`, :class:`SigmoidTarget`, :class:`SoftmaxTarget`,
  :class:`OutputTarget`) or any callable ``fn(output) -> Tensor[B]`` (wrapped in an
  :class:`OutputTarget`).

Model outputs may be a tensor, a tuple or list (its first element is the scores), a
mapping or an object with ``logits`` (Hugging Face ``ModelOutput``): :func:`model_logits`
finds the B×N scores in each. A custom callable receives the output exactly as the model
returned it.

A target must score each image from that image's own row of the output: methods split a
batch into sub-batches (CAMERAS under a pixel budget) or repeat images (RISE's masked
copies), and give the target the matching rows (:meth:`Target.select`).

Targets that refer to places in the image (a segmentation region, a detection box; see
:mod:`cameras.core.dense`) are given in the coordinates of the input the method is called
with. A method that feeds the model another view of that input (CAMERAS's scales and
mirrored border, test-time flips and rescalings) tells the target how the view relates to
the input with an :class:`InputView` (:meth:`Target.view`), so the region or box follows
the image.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from .errors import InputError
from .ops import grad_safe


def model_logits(output: Any) -> Tensor:
    """The B×N score tensor in a model's output.

    A tensor is returned as is; a mapping or an object with ``logits`` (Hugging Face
    ``ModelOutput``) gives its ``logits``; a tuple or list gives its first element.

    Example:
        >>> model_logits((torch.zeros(2, 3), "aux")).shape
        torch.Size([2, 3])
        >>> model_logits({"logits": torch.ones(1, 4)}).shape
        torch.Size([1, 4])
    """
    if isinstance(output, Tensor):
        return output
    if isinstance(output, Mapping):
        if "logits" in output:
            return model_logits(output["logits"])
        raise InputError(f"the model returned a mapping without 'logits' (keys: {', '.join(map(str, output))}); "
                         "wrap the model so it returns B×classes scores, or pass a target callable that reads them")
    if isinstance(getattr(output, "logits", None), Tensor):
        return output.logits
    if isinstance(output, (tuple, list)) and output:
        return model_logits(output[0])
    raise InputError(f"cannot find class scores in a model output of type {type(output).__name__}; return a B×classes "
                     "tensor, a tuple whose first element is one, or an object with .logits")


def class_scores(output: Any) -> Tensor:
    """:func:`model_logits` as float32, checked to be B×N (N ≥ 1).

    Example:
        >>> class_scores(torch.zeros(2, 5, dtype=torch.float16)).dtype
        torch.float32
    """
    logits = model_logits(output)
    if logits.dim() != 2:
        raise InputError(f"the model must return B×classes logits, got shape {tuple(logits.shape)}; "
                         "for other outputs pass a target callable fn(output) -> B scores")
    return logits.float()


def logits_or_none(output: Any) -> Tensor | None:
    """:func:`class_scores` detached, or None when the output holds no B×N scores.

    Example:
        >>> logits_or_none(torch.zeros(2, 3, 4, 4)) is None
        True
    """
    try:
        return class_scores(output).detach()
    except InputError:
        return None


def check_target_range(t: Tensor, num_classes: int) -> Tensor:
    """Raise InputError unless every class id in ``t`` lies in 0..num_classes-1.

    Example:
        >>> check_target_range(torch.tensor([0, 9]), 10).tolist()
        [0, 9]
    """
    bad = (t < 0) | (t >= num_classes)
    if bool(bad.any()):
        raise InputError(
            f"target {int(t[bad][0])} is out of range for a model with {num_classes} classes (0..{num_classes - 1})"
        )
    return t


def class_ids(target: int | Sequence[int] | Tensor, batch: int | None = None, device=None) -> Tensor:
    """Class ids as an int64 tensor: 0-D for one int, 1-D for a list; with ``batch``, exactly B ids.

    An int (or 0-D tensor) applies to every image; a sequence or 1-D tensor must have
    exactly ``batch`` entries.

    Example:
        >>> class_ids(3, 2).tolist()
        [3, 3]
        >>> class_ids([1, 2]).tolist()
        [1, 2]
    """
    if isinstance(target, bool):
        raise InputError("target must be a class index, not a bool")
    if isinstance(target, np.ndarray):  # checked as a tensor (an int() of a float array would truncate it)
        target = torch.as_tensor(target)
    if isinstance(target, Tensor):
        t = grad_safe(target.detach())  # made under torch.inference_mode(): usable in the backward
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise InputError(f"target tensor must hold integer class ids, got {t.dtype}")
        if t.dim() > 1:
            raise InputError(f"target tensor must be 0-D or 1-D (B,), got shape {tuple(t.shape)}")
        t = t.long()
    elif isinstance(target, int) or hasattr(target, "__index__"):
        t = torch.tensor(int(target), dtype=torch.long)
    elif isinstance(target, Sequence) and not isinstance(target, str):
        vals = list(target)
        if (not all(isinstance(v, int) or hasattr(v, "__index__") for v in vals)
                or any(isinstance(v, bool) for v in vals)):
            raise InputError(f"target list must hold integer class ids, got {vals!r}")
        t = torch.tensor([int(v) for v in vals], dtype=torch.long)
    else:
        raise InputError(f"target must be None, an int, a sequence of ints, a tensor, a Target or a callable, "
                         f"got {type(target).__name__}")
    if batch is not None:
        if t.dim() == 0:
            t = t.expand(batch)
        elif t.numel() != batch:
            raise InputError(f"got {t.numel()} targets for a batch of {batch}; give one int or exactly {batch}")
    return t if device is None else t.to(device)


@dataclass(frozen=True)
class InputView:
    """How the input of a forward pass relates to the input a target was given for.

    A point (x, y) of the source input (``src_hw`` = H×W pixels, continuous coordinates:
    the pixel (i, j) covers [j, j+1) × [i, i+1)) lies at (ax·x + bx, ay·y + by) in the
    view, which is ``dst_hw`` pixels. Views compose: :meth:`resized` (the whole view
    resized to another size), :meth:`padded` (extended by pixels on every side) and
    :meth:`flipped` (mirrored left-right) each return the view of the result.

    Example:
        >>> v = InputView.identity((100, 200)).padded(10).resized((240, 440))
        >>> v.dst_hw, v.map_boxes(torch.tensor([[0.0, 0.0, 200.0, 100.0]])).tolist()
        ((240, 440), [[20.0, 20.0, 420.0, 220.0]])
        >>> InputView.identity((4, 8)).flipped().map_boxes(torch.tensor([[0.0, 0.0, 2.0, 4.0]])).tolist()
        [[6.0, 0.0, 8.0, 4.0]]
    """

    src_hw: tuple[int, int]
    dst_hw: tuple[int, int]
    ax: float = 1.0
    bx: float = 0.0
    ay: float = 1.0
    by: float = 0.0

    @classmethod
    def identity(cls, hw: tuple[int, int]) -> "InputView":
        """The input itself (H, W)."""
        hw = (int(hw[0]), int(hw[1]))
        return cls(hw, hw)

    def resized(self, hw: tuple[int, int]) -> "InputView":
        """This view resized to ``hw`` = (h, w) pixels."""
        sy, sx = hw[0] / self.dst_hw[0], hw[1] / self.dst_hw[1]
        return replace(self, dst_hw=(int(hw[0]), int(hw[1])), ax=self.ax * sx, bx=self.bx * sx,
                       ay=self.ay * sy, by=self.by * sy)

    def padded(self, pixels: int) -> "InputView":
        """This view extended by ``pixels`` on every side."""
        p = int(pixels)
        return replace(self, dst_hw=(self.dst_hw[0] + 2 * p, self.dst_hw[1] + 2 * p), bx=self.bx + p, by=self.by + p)

    def flipped(self) -> "InputView":
        """This view mirrored left-right."""
        return replace(self, ax=-self.ax, bx=self.dst_hw[1] - self.bx)

    @property
    def is_identity(self) -> bool:
        return self.src_hw == self.dst_hw and (self.ax, self.bx, self.ay, self.by) == (1.0, 0.0, 1.0, 0.0)

    def map_boxes(self, boxes: Tensor) -> Tensor:
        """N×4 boxes (x0, y0, x1, y1) in source pixels → the same boxes in this view's pixels."""
        xs = boxes[:, 0::2] * self.ax + self.bx
        ys = boxes[:, 1::2] * self.ay + self.by
        xs = xs.sort(1).values  # a flip swaps the left and right edges
        return torch.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], 1)

    def unmap_boxes(self, boxes: Tensor) -> Tensor:
        """N×4 boxes in this view's pixels → the same boxes in source pixels (the inverse of :meth:`map_boxes`).

        Example:
            >>> v = InputView.identity((10, 10)).padded(2).resized((28, 28)).flipped()
            >>> v.unmap_boxes(v.map_boxes(torch.tensor([[1.0, 2.0, 5.0, 9.0]]))).tolist()
            [[1.0, 2.0, 5.0, 9.0]]
        """
        xs = ((boxes[:, 0::2] - self.bx) / self.ax).sort(1).values
        ys = (boxes[:, 1::2] - self.by) / self.ay
        return torch.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], 1)

    def sample(self, mask: Tensor, out_hw: tuple[int, int]) -> Tensor:
        """A source-frame mask read at the centres of an ``out_hw`` grid laid over this view.

        ``mask`` (B×h×w, values in [0, 1], any resolution covering the whole source input)
        is read bilinearly (edge values repeated) at the source point under each grid
        cell's centre, and is 0 where that point lies outside the source input (a mirrored
        border). Returns B×out_h×out_w float32. For a view that only resizes, this equals
        ``F.interpolate(mask, out_hw, mode="bilinear", align_corners=False)``.

        Example:
            >>> m = torch.ones(1, 4, 4)
            >>> InputView.identity((4, 4)).padded(2).sample(m, (4, 4))[0]
            tensor([[0., 0., 0., 0.],
                    [0., 1., 1., 0.],
                    [0., 1., 1., 0.],
                    [0., 0., 0., 0.]])
        """
        import torch.nn.functional as F

        oh, ow = int(out_hw[0]), int(out_hw[1])
        H, W = self.src_hw
        dev = mask.device
        # centres of the output cells in view pixels, then in source pixels
        xv = (torch.arange(ow, device=dev, dtype=torch.float64) + 0.5) * (self.dst_hw[1] / ow)
        yv = (torch.arange(oh, device=dev, dtype=torch.float64) + 0.5) * (self.dst_hw[0] / oh)
        xs, ys = (xv - self.bx) / self.ax, (yv - self.by) / self.ay
        inside = ((ys >= 0) & (ys < H))[:, None] & ((xs >= 0) & (xs < W))[None, :]
        gx, gy = (2 * xs / W - 1).float(), (2 * ys / H - 1).float()
        grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], -1)  # oh×ow×(x, y)
        B = mask.shape[0]
        out = F.grid_sample(mask[:, None].float(), grid.expand(B, oh, ow, 2), mode="bilinear",
                            padding_mode="border", align_corners=False)[:, 0]
        return out * inside


class Target(abc.ABC):
    """A score per image, computed from the model's output.

    Subclasses implement :meth:`score` (differentiable, B) and may override
    :meth:`probability` (what ``result.probs`` reports and perturbation methods read),
    :meth:`bind` (resolve defaults against an output), :meth:`select` (the target of some
    rows of the batch) and :meth:`join`. ``is_class`` marks softmax class targets, for
    which class rules (CAMERAS's top-1 scale rule, top-k lists) are defined.
    """

    is_class: ClassVar[bool] = False
    #: how the input the model sees now relates to the input the target was given for
    #: (None: it is that input); set by :meth:`view` on targets with a place in the image
    input_view: InputView | None = None

    @abc.abstractmethod
    def score(self, output: Any) -> Tensor:
        """B scores of the target on ``output`` (differentiable)."""

    def __call__(self, output: Any) -> Tensor:
        return self.score(output)

    def probability(self, output: Any) -> Tensor:
        """B float32 values reported as ``result.probs`` (default: the score itself)."""
        return self.score(output).detach().float()

    def for_batch(self, batch: int, device: torch.device) -> "Target":
        """This target for a batch of ``batch`` images on ``device`` (checked before any forward pass)."""
        return self

    def bind(self, output: Any) -> "Target":
        """The target with every default resolved against ``output`` (e.g. the top-1 class)."""
        return self

    def is_bound(self) -> bool:
        """False while :meth:`bind` would still take something from an output (the top-1 class, a
        predicted region): bind it on the clean input's output before scoring perturbed copies."""
        return True

    def select(self, index: slice | Tensor) -> "Target":
        """The target of the rows ``index`` of the batch (a slice or an index tensor)."""
        return self

    def join(self, parts: list["Target"]) -> "Target":
        """The target of a batch made of ``parts`` (this one first), concatenated in order."""
        return self

    def labels(self, batch: int, device: torch.device) -> Tensor:
        """B int64 label ids for ``result.targets`` (-1 where the target has no label)."""
        return torch.full((batch,), -1, dtype=torch.long, device=device)

    def describe(self) -> str:
        """A short human-readable name of the target kind."""
        return type(self).__name__

    def placed(self, hw: tuple[int, int]) -> "Target":
        """This target for an input of ``hw`` pixels, the input it was given for (checked where it matters).

        Targets without a place in the image return themselves; region and box targets
        check their size and take the identity :class:`InputView`.
        """
        return self

    def view(self, view: InputView) -> "Target":
        """This target on another view of its input (resized, padded, mirrored): see :class:`InputView`.

        Targets without a place in the image return themselves.
        """
        return self

    def notes(self) -> dict[str, Any]:
        """JSON-ready facts about the bound target worth stating in a result (``extras["target"]``), or {}."""
        return {}


class _IdsTarget(Target):
    """What every target with per-image ids (class labels, detector labels) shares: checked ids, copies with changes.

    ``ids`` is a 0-d tensor (one id for every image), B ids once bound to a batch, or None
    (a class target whose ids come from the output: each image's top-1).
    """

    ids: Tensor | None
    #: what the error of an unbound target asks for
    unbound_hint: ClassVar[str] = "call bind(output) first"

    def _copy(self, **changes: Any) -> "_IdsTarget":
        """A shallow copy with some attributes changed (targets are never changed in place)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    def _ids(self) -> Tensor:
        if self.ids is None or self.ids.dim() != 1:
            raise InputError(f"{type(self).__name__} is not bound to a batch; {self.unbound_hint}")
        return self.ids

    def labels(self, batch: int, device: torch.device) -> Tensor:
        return class_ids(self._ids(), batch, device)


class _LabelTarget(_IdsTarget):
    """A target that reads one label's entry of the B×N scores per image."""

    def __init__(self, ids: int | Sequence[int] | Tensor | None = None) -> None:
        self.ids = None if ids is None else class_ids(ids)

    def for_batch(self, batch: int, device: torch.device) -> "_LabelTarget":
        return self if self.ids is None else self._copy(ids=class_ids(self.ids, batch, device))

    def default_ids(self, logits: Tensor) -> Tensor:
        """Ids used when none were given: each image's top-1."""
        return logits.argmax(1)

    def is_bound(self) -> bool:
        return self.ids is not None

    def bind(self, output: Any) -> "_LabelTarget":
        logits = class_scores(output)
        if self.ids is None:
            return self._copy(ids=self.default_ids(logits))
        ids = class_ids(self.ids, logits.shape[0], logits.device)
        check_target_range(ids, logits.shape[1])
        return self._copy(ids=ids)

    def logit(self, output: Any) -> Tensor:
        """The float32 pre-softmax score of each image's label (the one gather in the library)."""
        return class_scores(output).gather(1, self._ids()[:, None])[:, 0]

    def select(self, index: slice | Tensor) -> "_LabelTarget":
        if self.ids is None or self.ids.dim() == 0:
            return self
        return self._copy(ids=self.ids[index])

    def join(self, parts: list[Target]) -> "_LabelTarget":
        return self._copy(ids=torch.cat([p._ids() for p in parts]))

    def __repr__(self) -> str:
        ids = None if self.ids is None else self.ids.tolist()
        return f"{type(self).__name__}({ids})"


class ClassTarget(_LabelTarget):
    """The pre-softmax logit of a class: what an int target means (``ids=None``: the top-1).

    ``result.probs`` is the class's softmax probability.

    Example:
        >>> t = ClassTarget([2, 0]).bind(torch.tensor([[0.0, 1.0, 3.0], [5.0, 1.0, 0.0]]))
        >>> t.score(torch.tensor([[0.0, 1.0, 3.0], [5.0, 1.0, 0.0]])).tolist()
        [3.0, 5.0]
    """

    is_class = True

    def score(self, output: Any) -> Tensor:
        return self.logit(output)

    def probability(self, output: Any) -> Tensor:
        return class_scores(output).detach().softmax(1).gather(1, self._ids()[:, None])[:, 0]

    def describe(self) -> str:
        return "class logit"


class RankTarget(Target):
    """The class at a rank of each image's own scores: 0 is the top-1, 1 the second, …

    It binds to a :class:`ClassTarget` (the class logit) on the output it first sees, so
    ``explain_targets(x, [None, RankTarget(1), RankTarget(2)])`` explains each image's top 3
    from one forward pass per scale.

    Example:
        >>> RankTarget(1).bind(torch.tensor([[0.1, 0.7, 0.2]]))
        ClassTarget([2])
    """

    is_class = True

    def __init__(self, rank: int) -> None:
        if not isinstance(rank, int) or rank < 0:
            raise InputError(f"rank must be a non-negative integer, got {rank!r}")
        self.rank = rank

    def is_bound(self) -> bool:
        return False

    def bind(self, output: Any) -> "ClassTarget":
        logits = class_scores(output)
        if self.rank >= logits.shape[1]:
            raise InputError(f"rank {self.rank} is out of range for a model with {logits.shape[1]} classes")
        return ClassTarget(logits.topk(self.rank + 1, dim=1).indices[:, self.rank]).bind(output)

    def score(self, output: Any) -> Tensor:
        return self.bind(output).score(output)

    def describe(self) -> str:
        return f"class at rank {self.rank}"

    def __repr__(self) -> str:
        return f"RankTarget({self.rank})"


class SigmoidTarget(_LabelTarget):
    """Multi-label or binary models: the logit of a label, scored independently (sigmoid).

    ``ids`` are label ids (default: the label with the largest logit; label 0 for a B×1
    binary model). ``negative=True`` explains the other side of a binary decision: the
    score is the negated logit, whose sigmoid is 1 − p. ``result.probs`` is the sigmoid
    of the score.

    Example:
        >>> out = torch.tensor([[2.0], [-1.0]])  # a B×1 binary classifier
        >>> SigmoidTarget(negative=True).bind(out).score(out).tolist()
        [-2.0, 1.0]
    """

    def __init__(self, ids: int | Sequence[int] | Tensor | None = None, negative: bool = False) -> None:
        super().__init__(ids)
        self.negative = bool(negative)

    def default_ids(self, logits: Tensor) -> Tensor:
        return logits.argmax(1)  # B×1 outputs give label 0

    def score(self, output: Any) -> Tensor:
        s = self.logit(output)
        return -s if self.negative else s

    def probability(self, output: Any) -> Tensor:
        return torch.sigmoid(self.score(output).detach())

    def describe(self) -> str:
        return "sigmoid logit (negated)" if self.negative else "sigmoid logit"

    def __repr__(self) -> str:
        ids = None if self.ids is None else self.ids.tolist()
        return f"SigmoidTarget({ids}{', negative=True' if self.negative else ''})"


class SoftmaxTarget(_LabelTarget):
    """The softmax probability of a class (``ids=None``: the top-1), not its logit.

    Example:
        >>> out = torch.zeros(1, 4)
        >>> SoftmaxTarget(1).for_batch(1, torch.device("cpu")).bind(out).score(out).tolist()
        [0.25]
    """

    def score(self, output: Any) -> Tensor:
        return class_scores(output).softmax(1).gather(1, self._ids()[:, None])[:, 0]

    def describe(self) -> str:
        return "softmax probability"


class OutputTarget(Target):
    """Any callable ``fn(output) -> Tensor[B]`` of the model's output, as the model returned it.

    The score must come from each image's own row of the output (see the module notes);
    ``result.probs`` holds the score and ``result.targets`` holds -1.

    Example:
        >>> t = OutputTarget(lambda out: out[:, 0] - out[:, 1])
        >>> t(torch.tensor([[3.0, 1.0]])).tolist()
        [2.0]
    """

    def __init__(self, fn: Callable[[Any], Tensor], name: str | None = None) -> None:
        if not callable(fn):
            raise InputError(f"OutputTarget needs a callable fn(output) -> B scores, got {type(fn).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "output")

    def score(self, output: Any) -> Tensor:
        s = self.fn(output)
        if not isinstance(s, Tensor) or s.dim() != 1:
            got = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
            raise InputError(f"target function {self.name} must return one score per image (a 1-D tensor), got {got}")
        return s

    def describe(self) -> str:
        return f"output function {self.name}"

    def __repr__(self) -> str:
        return f"OutputTarget({self.name})"


TargetLike = int | Sequence[int] | Tensor | Target | Callable[[Any], Tensor] | None

TARGET_KINDS: dict[str, type[_LabelTarget]] = {"class": ClassTarget, "sigmoid": SigmoidTarget, "softmax": SoftmaxTarget}


def label_target(kind: str, ids: int | Sequence[int] | Tensor | None = None) -> _LabelTarget:
    """The label target of a kind named on the command line: ``"class"``, ``"sigmoid"`` or ``"softmax"``.

    Example:
        >>> label_target("sigmoid", [3])
        SigmoidTarget([3])
    """
    if kind not in TARGET_KINDS:
        raise InputError(f"unknown target kind '{kind}'; choose one of {', '.join(TARGET_KINDS)}")
    return TARGET_KINDS[kind](ids)


def as_target(target: TargetLike, batch: int, device: torch.device,
              hw: tuple[int, int] | None = None) -> Target | None:
    """Turn what a user passes as ``target=`` into a :class:`Target` for a batch (None stays None).

    Ints, lists and integer tensors become a :class:`ClassTarget` with exactly ``batch``
    ids; a callable becomes an :class:`OutputTarget`. With ``hw`` (the input's H, W),
    region and box targets are checked against that size (:meth:`Target.placed`).

    Example:
        >>> as_target([1, 2], 2, torch.device("cpu"))
        ClassTarget([1, 2])
        >>> as_target(None, 2, torch.device("cpu")) is None
        True
    """
    if target is None:
        return None
    if isinstance(target, Target):
        target = target.for_batch(batch, device)
        return target if hw is None else target.placed(hw)
    if isinstance(target, type):
        raise InputError(f"target={target.__name__} is a class; pass an instance, e.g. {target.__name__}(3)")
    if callable(target) and not isinstance(target, Tensor):
        return OutputTarget(target)
    return ClassTarget(class_ids(target, batch, device))


def bind_target(target: Target | None, output: Any) -> Target:
    """``target`` resolved against the model's ``output``; None means each image's top-1 class.

    Example:
        >>> bind_target(None, torch.tensor([[0.1, 0.9]]))
        ClassTarget([1])
    """
    return (ClassTarget() if target is None else target).bind(output)


def resolve_targets(target, batch: int, num_classes: int | None, device: torch.device) -> Tensor | None:
    """Class ids as a B int64 tensor on ``device`` (None stays None), range-checked if ``num_classes``.

    Example:
        >>> resolve_targets(3, 2, 10, torch.device("cpu")).tolist()
        [3, 3]
    """
    if target is None:
        return None
    t = class_ids(target, batch, device)
    if num_classes is not None:
        check_target_range(t, num_classes)
    return t


__all__ = [
    "ClassTarget",
    "InputView",
    "OutputTarget",
    "RankTarget",
    "SigmoidTarget",
    "SoftmaxTarget",
    "TARGET_KINDS",
    "Target",
    "TargetLike",
    "as_target",
    "bind_target",
    "check_target_range",
    "class_ids",
    "class_scores",
    "label_target",
    "logits_or_none",
    "model_logits",
    "resolve_targets",
]
