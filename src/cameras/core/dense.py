"""Targets beyond classification: a region of a segmentation, a box of a detector.

- :class:`RegionTarget` explains a semantic segmentation model (torchvision FCN, DeepLabV3,
  LRASPP, whose output is a dict with ``"out"``; Hugging Face SegFormer-style models, whose
  ``logits`` are at a fraction of the input's resolution; any model returning B×C×h×w
  scores): the mean (or sum) of one class's logits over a region of the image.
- :class:`BoxTarget` explains an object detector returning one dict of ``boxes``,
  ``labels`` and ``scores`` per image (torchvision Faster R-CNN, RetinaNet, FCOS, …): the
  score of the detection of a label that best matches a box.

Both are given in the pixel coordinates of the input the method is called with, and follow
it through every view a method makes of it (CAMERAS's scales and mirrored border,
test-time flips): see :class:`~cameras.core.targets.InputView`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from .errors import InputError
from .ops import grad_safe
from .targets import InputView, Target, _IdsTarget, check_target_range, class_ids


def segmentation_logits(output: Any) -> Tensor:
    """The B×C×h×w per-pixel class scores in a segmentation model's output.

    A 4-D tensor is returned as is; a mapping gives its ``"out"`` (torchvision) or
    ``"logits"``; an object with ``logits`` (Hugging Face) gives those; a tuple or list its
    first element.

    Example:
        >>> segmentation_logits({"out": torch.zeros(1, 3, 8, 8), "aux": None}).shape
        torch.Size([1, 3, 8, 8])
    """
    if isinstance(output, Tensor):
        if output.dim() != 4:
            raise InputError(f"a segmentation model must return B×classes×h×w scores, got shape {tuple(output.shape)}; "
                             "for a classifier use a class target (an int)")
        return output
    if isinstance(output, Mapping):
        for key in ("out", "logits"):
            if key in output:
                return segmentation_logits(output[key])
        raise InputError(f"the segmentation model returned a mapping without 'out' or 'logits' "
                         f"(keys: {', '.join(map(str, output))}); wrap it to return B×classes×h×w scores")
    if isinstance(getattr(output, "logits", None), Tensor):
        return segmentation_logits(output.logits)
    if isinstance(output, (tuple, list)) and output and not isinstance(output[0], Mapping):
        return segmentation_logits(output[0])
    raise InputError(f"cannot find per-pixel class scores in a model output of type {type(output).__name__}; "
                     "RegionTarget needs a segmentation model (B×classes×h×w scores, a dict with 'out', or .logits)")


def _as_masks(mask: Any, batch: int, device: torch.device) -> Tensor:
    """A mask (H×W or B×H×W; bool, 0/1 or weights in [0, 1]) as B×H×W float32 on ``device``."""
    if not isinstance(mask, Tensor):
        try:
            mask = torch.as_tensor(mask)
        except (TypeError, ValueError, RuntimeError):
            raise InputError(f"mask must be an H×W or B×H×W array, got {type(mask).__name__}") from None
    if mask.dim() == 2:
        mask = mask[None]
    if mask.dim() != 3 or mask.shape[0] not in (1, batch):
        raise InputError(f"mask must be H×W or B×H×W with B = {batch}, got shape {tuple(mask.shape)}")
    m = mask.detach().to(device=device, dtype=torch.float32)
    m = grad_safe(m)
    if bool(((m < 0) | (m > 1)).any()) or not bool(torch.isfinite(m).all()):
        raise InputError("mask values must lie in [0, 1] (a bool mask, 0/1, or weights)")
    return m.expand(batch, -1, -1) if m.shape[0] != batch else m


def box_mask(boxes: Sequence[float] | Tensor, hw: tuple[int, int]) -> Tensor:
    """B×H×W float masks, 1 on the pixels whose centres lie inside each box (x0, y0, x1, y1), else 0.

    Example:
        >>> box_mask([1, 0, 3, 2], (2, 4))[0]
        tensor([[0., 1., 1., 0.],
                [0., 1., 1., 0.]])
    """
    b = _as_boxes(boxes, None, torch.device("cpu"))
    H, W = int(hw[0]), int(hw[1])
    xs, ys = torch.arange(W) + 0.5, torch.arange(H) + 0.5
    inx = (xs[None] >= b[:, 0:1]) & (xs[None] < b[:, 2:3])
    iny = (ys[None] >= b[:, 1:2]) & (ys[None] < b[:, 3:4])
    return (iny[:, :, None] & inx[:, None, :]).float()


class _PlacedTarget(_IdsTarget):
    """What region and box targets share: views of the input."""

    ids: Tensor
    unbound_hint = "call for_batch(B, device) first"

    def view(self, view: InputView):
        base = self.input_view
        if base is not None and base.src_hw != view.src_hw:
            raise InputError(f"a view of a {view.src_hw} input was given to a target placed on {base.src_hw}")
        return self._copy(input_view=view)


class RegionTarget(_PlacedTarget):
    """The logits of a class over a region of a segmentation: ``reduce="mean"`` (default) or ``"sum"``.

    Args:
        class_id: the class (an int for every image, or B ints).
        mask: the region, at the input's size: H×W or B×H×W, bool or weights in [0, 1]
            (``box_mask`` makes one from a box). None: the pixels the model assigns to the
            class (its arg-max) on the input as given.
        reduce: ``"mean"``: the class logit averaged over the region (the same weight for
            every scale of CAMERAS, whose larger scales have more output pixels), or
            ``"sum"`` (pytorch-grad-cam's semantic segmentation target). An empty region
            scores 0, so its map is all zero; ``result.extras["target"]["region_fraction"]``
            says how much of the image the region covered.

    The model's scores may be at any resolution (SegFormer: a quarter of the input's): the
    region is read at the centre of each output cell (:meth:`InputView.sample`), and it
    follows the input to every scale of CAMERAS. ``result.probs`` is the class's softmax
    probability averaged over the region.

    Example:
        >>> out = torch.zeros(1, 3, 2, 2); out[0, 1, 0, 0] = 4.0
        >>> t = RegionTarget(1, mask=torch.tensor([[1.0, 1.0], [0.0, 0.0]])).for_batch(1, torch.device("cpu"))
        >>> t.bind(out).score(out).tolist()  # the mean of 4 and 0 over the top row
        [2.0]
        >>> RegionTarget(1).for_batch(1, torch.device("cpu")).bind(out).score(out).tolist()  # where class 1 wins
        [4.0]
    """

    def __init__(self, class_id: int | Sequence[int] | Tensor, mask: Any = None, reduce: str = "mean") -> None:
        if class_id is None:
            raise InputError("RegionTarget needs the class to explain (an int, or one per image)")
        self.ids = class_ids(class_id)
        if reduce not in ("mean", "sum"):
            raise InputError(f"reduce must be 'mean' or 'sum', got {reduce!r}")
        self.reduce = reduce
        self.mask = mask
        self.given = mask is not None
        self.box: Tensor | None = None  # the box a region was made from (for drawing)
        self.input_view: InputView | None = None

    @classmethod
    def from_box(cls, class_id: int | Sequence[int] | Tensor, box: Sequence[float] | Tensor, hw: tuple[int, int],
                 reduce: str = "mean") -> "RegionTarget":
        """The class over the pixels inside a box (x0, y0, x1, y1) of an input of ``hw`` = (H, W) pixels.

        Example:
            >>> RegionTarget.from_box(2, [0, 0, 8, 4], (16, 16)).mask.sum().item()
            32.0
        """
        boxes = _as_boxes(box, None, torch.device("cpu"))
        mask = box_mask(boxes, hw)
        empty = mask.flatten(1).sum(1) == 0
        if bool(empty.any()):
            b = boxes[empty][0].tolist()
            raise InputError(f"box {b} covers no pixel of the {int(hw[1])}×{int(hw[0])} input; give boxes "
                             "(x0, y0, x1, y1) in the pixels of the input the method is called with")
        t = cls(class_id, mask, reduce)
        t.box = boxes
        return t

    def for_batch(self, batch: int, device: torch.device) -> "RegionTarget":
        ids = class_ids(self.ids, batch, device)
        mask = None if self.mask is None else _as_masks(self.mask, batch, device)
        box = None if self.box is None else _as_boxes(self.box, batch, device)
        return self._copy(ids=ids, mask=mask, box=box)

    def placed(self, hw: tuple[int, int]) -> "RegionTarget":
        if self.input_view is not None:
            return self
        if self.given and isinstance(self.mask, Tensor) and tuple(self.mask.shape[-2:]) != tuple(hw):
            raise InputError(f"the region mask is {tuple(self.mask.shape[-2:])} pixels but the input is {tuple(hw)}; "
                             "give the mask at the input's size (resize it as the image was resized)")
        return self._copy(input_view=InputView.identity(hw))

    def bind(self, output: Any) -> "RegionTarget":
        logits = segmentation_logits(output)
        B, C = logits.shape[:2]
        ids = class_ids(self.ids, B, logits.device)
        check_target_range(ids, C)
        if self.mask is not None:
            return self._copy(ids=ids)
        v = self.input_view
        if v is not None and not v.is_identity:
            raise InputError("a RegionTarget without a mask takes the class's pixels from the input as given; "
                             "bind it on the input's own forward pass, not on a resized or padded view")
        mask = (logits.detach().argmax(1) == ids[:, None, None]).float()  # at the output's resolution
        return self._copy(ids=ids, mask=mask)

    def is_bound(self) -> bool:
        return self.mask is not None

    def weights(self, out_hw: tuple[int, int]) -> Tensor:
        """B×h×w weights of the region on an output grid of ``out_hw`` cells (the region read at each cell's centre)."""
        if self.mask is None:
            raise InputError("RegionTarget has no region yet; bind it to an output first")
        v = self.input_view or InputView.identity(tuple(self.mask.shape[-2:]))
        if v.is_identity and tuple(self.mask.shape[-2:]) == tuple(out_hw):
            return self.mask
        return v.sample(self.mask, out_hw)

    def _over_region(self, scores: Tensor, reduce: str) -> Tensor:
        """The class's plane of B×C×h×w ``scores`` summed (or averaged) over the region: B values."""
        B, _, h, w = scores.shape
        plane = scores.gather(1, self._ids().view(B, 1, 1, 1).expand(B, 1, h, w))[:, 0].float()
        wts = self.weights((h, w))
        total = (plane * wts).flatten(1).sum(1)
        if reduce == "sum":
            return total
        return total / wts.flatten(1).sum(1).clamp_min(1e-12)  # an empty region scores 0

    def score(self, output: Any) -> Tensor:
        return self._over_region(segmentation_logits(output), self.reduce)

    def probability(self, output: Any) -> Tensor:
        return self._over_region(segmentation_logits(output).detach().float().softmax(1), "mean")

    def select(self, index: slice | Tensor) -> "RegionTarget":
        if self.ids.dim() == 0:
            return self
        return self._copy(ids=self.ids[index], mask=None if self.mask is None else self.mask[index],
                          box=None if self.box is None else self.box[index])

    def join(self, parts: list[Target]) -> "RegionTarget":
        masks = [p.mask for p in parts]
        boxes = [p.box for p in parts]
        return self._copy(ids=torch.cat([p._ids() for p in parts]),
                          mask=None if any(m is None for m in masks) else torch.cat(masks),
                          box=None if any(b is None for b in boxes) else torch.cat(boxes))

    def notes(self) -> dict[str, Any]:
        if not isinstance(self.mask, Tensor) or self.ids.dim() != 1:
            return {}
        frac = self.mask.flatten(1).mean(1)
        return {"region": "given" if self.given else "predicted", "reduce": self.reduce,
                "region_fraction": [round(float(f), 6) for f in frac],
                "empty": [bool(f == 0) for f in frac]}

    def describe(self) -> str:
        where = "given region" if self.given else "predicted region"
        return f"class logit {self.reduce} over the {where}"

    def __repr__(self) -> str:
        ids = self.ids.tolist()
        return f"RegionTarget({ids}, mask={'given' if self.given else None}, reduce={self.reduce!r})"


def _as_boxes(box: Any, batch: int | None, device: torch.device) -> Tensor:
    """A box (x0, y0, x1, y1) or B boxes as an N×4 float32 tensor (N = 1 or ``batch``), checked."""
    try:
        b = torch.as_tensor(box, dtype=torch.float32).detach().to(device)
        b = grad_safe(b)
    except (TypeError, ValueError, RuntimeError):
        raise InputError(f"a box must be four numbers x0, y0, x1, y1 (or B×4), got {box!r}") from None
    if b.dim() == 1:
        b = b[None]
    if b.dim() != 2 or b.shape[1] != 4 or (batch is not None and b.shape[0] not in (1, batch)):
        raise InputError(f"a box must be four numbers x0, y0, x1, y1 (or one row per image), got shape "
                         f"{tuple(b.shape)}")
    if not bool(torch.isfinite(b).all()) or bool(((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])).any()):
        raise InputError(f"a box needs x0 < x1 and y0 < y1 (pixels, x1/y1 exclusive), got {b.tolist()}")
    return b if batch is None or b.shape[0] == batch else b.expand(batch, 4)


def detections(output: Any) -> list[Mapping[str, Tensor]]:
    """The per-image detections of a detector's output: a list of dicts with ``boxes``, ``labels``, ``scores``.

    Example:
        >>> d = detections([{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0), "scores": torch.zeros(0)}])
        >>> len(d)
        1
    """
    if isinstance(output, Mapping) and "boxes" in output:
        output = [output]
    if isinstance(output, (list, tuple)) and output and all(isinstance(d, Mapping) for d in output):
        missing = set().union(*({"boxes", "labels", "scores"} - set(d) for d in output))  # in any image's dict
        if not missing:
            return list(output)
        raise InputError(f"detections lack {', '.join(sorted(missing))}; BoxTarget needs boxes, labels and scores "
                         "per image (torchvision detectors in eval mode)")
    raise InputError(f"BoxTarget needs a detector's output (one dict of boxes, labels and scores per image), got "
                     f"{type(output).__name__}; put the detector in eval mode")


class BoxTarget(_PlacedTarget):
    """The score of the detection of ``label`` that best matches ``box`` (highest IoU, at least ``iou``).

    Args:
        box: (x0, y0, x1, y1) in the input's pixels, or one row per image (B×4).
        label: the detector's label id (an int, or B ints).
        iou: the least intersection over union a detection needs to match (0 < iou ≤ 1).

    Among a detector's outputs of that label, the one with the highest IoU with the box is
    explained (on equal IoU the higher score); with none at ``iou`` or above the score is 0
    (a zero map), which ``result.extras["target"]`` states per image (``matched``, the
    matched detection's ``iou``, ``score`` and ``matched_box`` on the input as given). The box
    follows the image to every scale of CAMERAS; the detector's own resizing is switched
    off for the call (see :func:`~cameras.core.layouts.any_input_size`), so the detector
    sees each scale at its size. ``result.probs`` is the matched detection's score.

    Example:
        >>> out = [{"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]),
        ...         "labels": torch.tensor([3, 3]), "scores": torch.tensor([0.9, 0.6])}]
        >>> t = BoxTarget([19, 21, 30, 30], label=3).for_batch(1, torch.device("cpu")).bind(out)
        >>> t.score(out).tolist(), t.notes()["matched"]
        ([0.6000000238418579], [True])
        >>> BoxTarget([19, 21, 30, 30], label=2).for_batch(1, torch.device("cpu")).bind(out).score(out).tolist()
        [0.0]
    """

    def __init__(self, box: Sequence[float] | Tensor, label: int | Sequence[int] | Tensor, iou: float = 0.5) -> None:
        self.boxes = _as_boxes(box, None, torch.device("cpu"))
        if label is None:
            raise InputError("BoxTarget needs the label of the detection to explain")
        self.ids = class_ids(label)
        if not (isinstance(iou, (int, float)) and 0 < iou <= 1):
            raise InputError(f"iou must be in (0, 1], got {iou!r}")
        self.iou = float(iou)
        self.input_view: InputView | None = None
        self.match: dict[str, list] | None = None

    def for_batch(self, batch: int, device: torch.device) -> "BoxTarget":
        return self._copy(boxes=_as_boxes(self.boxes, batch, device), ids=class_ids(self.ids, batch, device))

    def placed(self, hw: tuple[int, int]) -> "BoxTarget":
        if self.input_view is not None:
            return self
        H, W = int(hw[0]), int(hw[1])
        b = self.boxes
        outside = (b[:, 0] >= W) | (b[:, 1] >= H) | (b[:, 2] <= 0) | (b[:, 3] <= 0)
        if bool(outside.any()):
            raise InputError(f"box {b[outside][0].tolist()} lies outside the {W}×{H} input; give boxes in the pixels "
                             "of the input the method is called with (scale them as the image was resized)")
        return self._copy(input_view=InputView.identity(hw))

    def current_boxes(self) -> Tensor:
        """The B boxes in the pixels of the view the model sees now (the input's own without a view)."""
        return self.boxes if self.input_view is None else self.input_view.map_boxes(self.boxes)

    def _matches(self, output: Any) -> list[tuple[int | None, float]]:
        """Per image: the index of the matched detection (None if none) and its IoU."""
        from torchvision.ops import box_iou

        dets = detections(output)
        ids, boxes = self._ids(), self.current_boxes()
        if len(dets) != len(ids):
            raise InputError(f"the detector returned {len(dets)} images' detections for {len(ids)} targets")
        found = []
        for b, d in enumerate(dets):
            ok = (d["labels"] == ids[b]).nonzero()[:, 0]
            if ok.numel() == 0:
                found.append((None, 0.0))
                continue
            ious = box_iou(d["boxes"].detach()[ok].float(), boxes[b:b + 1])[:, 0]
            best = int(ious.argmax())  # detections come sorted by score: the first of equal IoUs scores highest
            found.append((int(ok[best]), float(ious[best])) if float(ious[best]) >= self.iou else (None, 0.0))
        return found

    def bind(self, output: Any) -> "BoxTarget":
        dets = detections(output)
        found = self._matches(output)
        boxes = []
        for (i, _), d in zip(found, dets):
            if i is None:
                boxes.append(None)
                continue
            b = d["boxes"][i].detach().float()[None]
            b = b if self.input_view is None else self.input_view.unmap_boxes(b)  # in the input's own pixels
            boxes.append([round(float(c), 3) for c in b[0]])
        match = {"matched": [i is not None for i, _ in found], "iou": [round(v, 6) for _, v in found],
                 "score": [0.0 if i is None else float(d["scores"][i].detach()) for (i, _), d in zip(found, dets)],
                 "matched_box": boxes}
        return self._copy(match=match)

    def score(self, output: Any) -> Tensor:
        dets = detections(output)
        out = []
        for (i, _), d in zip(self._matches(output), dets):
            s = d["scores"]
            out.append(s.sum() * 0 if i is None else s[i])  # zero, still on the graph of the output
        return torch.stack(out).float()

    def probability(self, output: Any) -> Tensor:
        return self.score(output).detach().float()

    def select(self, index: slice | Tensor) -> "BoxTarget":
        if self.ids.dim() == 0:
            return self
        match = None
        if self.match is not None:
            rows = list(range(len(self.ids)))
            rows = rows[index] if isinstance(index, slice) else [rows[int(i)] for i in index.reshape(-1)]
            match = {k: [v[r] for r in rows] for k, v in self.match.items()}
        return self._copy(ids=self.ids[index], boxes=self.boxes[index], match=match)

    def join(self, parts: list[Target]) -> "BoxTarget":
        matches = [p.match for p in parts]
        match = None if any(m is None for m in matches) else {k: sum((m[k] for m in matches), []) for k in matches[0]}
        return self._copy(ids=torch.cat([p._ids() for p in parts]), boxes=torch.cat([p.boxes for p in parts]),
                          match=match)

    def notes(self) -> dict[str, Any]:
        if self.match is None:
            return {}
        return {"box": [[round(float(c), 3) for c in b] for b in self.boxes], "iou_threshold": self.iou, **self.match}

    def describe(self) -> str:
        return "detection score"

    def __repr__(self) -> str:
        return f"BoxTarget({self.boxes.tolist()}, label={self.ids.tolist()}, iou={self.iou})"


__all__ = ["BoxTarget", "RegionTarget", "box_mask", "detections", "segmentation_logits"]
