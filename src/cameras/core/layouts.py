"""Layer layouts (feature maps, channels-last maps, token sequences) and models that take other sizes.

A layer's output is explained as a B×K×h×w map. Convolutional layers give one; transformers
give token sequences B×N×C (N = prefix tokens + h·w patch tokens: class, distillation and
register tokens come first) or channels-last maps B×h×w×C (Swin). :class:`Layout` turns
each into B×K×h×w by reshaping, permuting and dropping prefix tokens only, so an
activation and its gradient are rearranged alike. What it needs from the model is read from
the model: timm's ``num_prefix_tokens`` and ``output_fmt``, a Hugging Face config's model
type; the grid comes from the input's size.

:func:`any_input_size` lets a model take inputs of other sizes for the duration of a
call: timm ViT-family models switch on their dynamic image size (position embeddings
resampled as timm does), Hugging Face models get ``interpolate_pos_encoding=True``, and
torchvision detectors stop resizing their input (so a method's own resizing is what they see).
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Iterator
from dataclasses import dataclass

from torch import Tensor, nn

from .errors import InputError

# Hugging Face model types → prefix tokens before the patch tokens (read from the config)
_HF_PREFIX = {"vit": 1, "deit": 2, "beit": 1, "data2vec-vision": 1, "vit_msn": 1, "vit_mae": 1, "swin": 0,
              "swinv2": 0, "dinov2": 1, "dinov2_with_registers": None}
_ASPECT_TOLERANCE = 0.2  # |log(stride_h / stride_w)| allowed for a grid to match the input


def _hf_config(model: nn.Module):
    cfg = getattr(model, "config", None)
    return cfg if cfg is not None and hasattr(cfg, "model_type") else None


def prefix_tokens(model: nn.Module) -> int | None:
    """How many tokens precede the patch tokens in the model's token layers, if the model says.

    timm models give ``num_prefix_tokens``; Hugging Face models are read from their config
    (ViT 1, DeiT 2, Swin 0, DINOv2 1 + its register tokens). None: the model does not say.

    Example:
        >>> import timm
        >>> prefix_tokens(timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False))
        2
    """
    n = getattr(model, "num_prefix_tokens", None)
    if isinstance(n, int):
        return n
    cfg = _hf_config(model)
    if cfg is not None:
        if cfg.model_type == "dinov2_with_registers":
            return 1 + int(getattr(cfg, "num_register_tokens", 0))
        return _HF_PREFIX.get(cfg.model_type)
    return None


def patch_size(model: nn.Module) -> int | None:
    """The side (pixels) that token-model inputs must be a multiple of, or None (any size).

    Example:
        >>> import timm
        >>> patch_size(timm.create_model("vit_tiny_patch16_224", pretrained=False))
        16
    """
    pe = getattr(model, "patch_embed", None)
    if pe is not None and hasattr(pe, "patch_size"):
        if getattr(pe, "dynamic_img_pad", False):
            return None
        ps = pe.patch_size
        ps = int(max(ps)) if isinstance(ps, (tuple, list)) else int(ps)
        if _timm_swin(model):  # each stage after the first halves the grid
            ps *= 2 ** (len(getattr(model, "layers", [])) - 1)
        return ps
    cfg = _hf_config(model)
    if cfg is not None and getattr(cfg, "patch_size", None):
        ps = cfg.patch_size
        return int(max(ps)) if isinstance(ps, (tuple, list)) else int(ps)
    return None


def _matches(h: int, w: int, input_hw: tuple[int, int]) -> float | None:
    """How far an h×w grid is from covering the input with square cells (|log ratio|), None if too far."""
    if h < 1 or w < 1:
        return None
    err = abs(math.log((input_hw[0] / h) / (input_hw[1] / w)))
    return err if err <= _ASPECT_TOLERANCE else None


def token_grid(count: int, input_hw: tuple[int, int]) -> tuple[int, int] | None:
    """The h×w grid of ``count`` patch tokens for an input of ``input_hw``: the factor pair
    whose cells are closest to square, or None when none is close.

    Example:
        >>> token_grid(14 * 21, (224, 336))
        (14, 21)
    """
    found = _token_grid(count, input_hw)
    return None if found is None else found[1]


def _token_grid(count: int, input_hw: tuple[int, int]) -> tuple[float, tuple[int, int]] | None:
    """(error, grid) of the best factor pair, see :func:`token_grid`."""
    best = None
    for h in range(1, int(math.isqrt(count)) + 1):
        if count % h:
            continue
        for gh, gw in ((h, count // h), (count // h, h)):
            err = _matches(gh, gw, input_hw)
            if err is not None and (best is None or err < best[0]):
                best = (err, (gh, gw))
    return best


@dataclass
class Layout:
    """Reads a layer output as a B×K×h×w map.

    Attributes:
        prefix: tokens before the patch tokens (None: the model does not say; then the
            smallest count from 0 to 8 that leaves a grid matching the input is used).
        channels_last: the model's 4-D feature maps are B×h×w×C (timm ``output_fmt="NHWC"``).
        patch: the model's patch multiple (:func:`patch_size`), read once.
        input_hw: the size (H, W) of the model's current input (set before every forward pass
            by :func:`track_input_size`); grids are matched to it.

    Example:
        >>> import torch
        >>> lay = Layout(prefix=1, input_hw=(32, 48))
        >>> tuple(lay.to_map(torch.zeros(2, 1 + 2 * 3, 5)).shape)  # class token + 2×3 patches, 5 channels
        (2, 5, 2, 3)
        >>> lay.kind((2, 7, 5))
        'tokens'
    """

    prefix: int | None = None
    channels_last: bool = False
    input_hw: tuple[int, int] | None = None
    patch: int | None = None  # input sides must be multiples of it (None: any size), see patch_size

    @classmethod
    def of(cls, model: nn.Module) -> Layout:
        """The layout a model declares (prefix tokens, channels-last maps, patch size)."""
        fmt = str(getattr(model, "output_fmt", "")).upper()
        return cls(prefix_tokens(model), fmt.endswith("NHWC"), patch=patch_size(model))

    def _prefix_and_grid(self, n: int) -> tuple[int, tuple[int, int]] | None:
        if self.input_hw is None:
            return None
        # the model's own prefix count; otherwise the count (0–8) whose grid fits the input best
        best = None
        for p in ([self.prefix] if self.prefix is not None else range(0, 9)):
            if n - p >= 1:
                found = _token_grid(n - p, self.input_hw)
                if found is not None and (best is None or found[0] < best[0] - 1e-9):
                    best = (found[0], p, found[1])
        return None if best is None else (best[1], best[2])

    def kind(self, shape: tuple[int, ...]) -> str | None:
        """``"nchw"``, ``"nhwc"``, ``"tokens"`` or None (not a spatial layout) for an output shape."""
        if len(shape) == 4 and self.input_hw is not None:
            nchw = _matches(shape[2], shape[3], self.input_hw) is not None
            nhwc = _matches(shape[1], shape[2], self.input_hw) is not None
            # channels-last when the model says so, or when only that reading fits and the last
            # dimension is the largest (channels), so a small convolutional map is never permuted
            if nhwc and (self.channels_last or (not nchw and shape[3] > max(shape[1], shape[2]))):
                return "nhwc"
            return "nchw" if nchw else None
        if len(shape) == 4:
            return "nhwc" if self.channels_last else "nchw"
        if len(shape) == 3 and self._prefix_and_grid(shape[1]) is not None:
            return "tokens"
        return None

    def spatial_size(self, shape: tuple[int, ...]) -> int:
        """h·w of the map the output becomes (0 when it is not spatial)."""
        kind = self.kind(shape)
        if kind == "nchw":
            return shape[2] * shape[3]
        if kind == "nhwc":
            return shape[1] * shape[2]
        if kind == "tokens":
            gh, gw = self._prefix_and_grid(shape[1])[1]
            return gh * gw
        return 0

    def to_map(self, t: Tensor) -> Tensor:
        """``t`` as B×K×h×w (unchanged when it is already one or is not a known layout)."""
        kind = self.kind(tuple(t.shape))
        if kind == "nhwc":
            return t.permute(0, 3, 1, 2)
        if kind == "tokens":
            p, (gh, gw) = self._prefix_and_grid(t.shape[1])
            return t[:, p:].transpose(1, 2).reshape(t.shape[0], t.shape[2], gh, gw)
        return t


def _timm_swin(model: nn.Module) -> bool:
    pe = getattr(model, "patch_embed", None)
    return pe is not None and hasattr(pe, "strict_img_size") and \
        any(hasattr(m, "dynamic_mask") for m in model.modules())


def _timm_dynamic(model: nn.Module) -> bool:
    pe = getattr(model, "patch_embed", None)
    return hasattr(model, "dynamic_img_size") and pe is not None and hasattr(pe, "strict_img_size") \
        and hasattr(pe, "output_fmt") and hasattr(model, "_pos_embed")


def _detector_transform(model: nn.Module) -> nn.Module | None:
    """The resizing transform of a torchvision detector (``GeneralizedRCNNTransform``), or None."""
    tr = getattr(model, "transform", None)
    if isinstance(tr, nn.Module) and all(hasattr(tr, a) for a in ("min_size", "max_size", "fixed_size")) \
            and hasattr(tr, "postprocess"):
        return tr
    return None


def canvas_cover(model: nn.Module, hw: tuple[int, int]) -> tuple[float, float]:
    """The part (rows, columns) of the canvas the model's layers see that an H×W input fills.

    (1.0, 1.0), except for torchvision detectors: their transform pads each batch at the
    bottom and right to a multiple of its ``size_divisible`` (32), so their feature maps
    cover more than the image, and a map upsampled over the whole feature map would be
    stretched up and to the left. Methods pass this to
    :func:`~cameras.core.ops.resize_maps`, which then upsamples over the padded canvas and
    keeps the image's part.

    Example:
        >>> canvas_cover(nn.Conv2d(3, 3, 1), (100, 150))
        (1.0, 1.0)
        >>> class Detector(nn.Module):  # stands in for a torchvision detector's transform
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.transform = nn.Module()
        ...         self.transform.min_size, self.transform.max_size, self.transform.fixed_size = (800,), 1333, None
        ...         self.transform.size_divisible, self.transform.postprocess = 32, None
        >>> canvas_cover(Detector(), (100, 150))
        (0.78125, 0.9375)
    """
    tr = _detector_transform(model)
    d = int(getattr(tr, "size_divisible", 1) or 1) if tr is not None else 1
    H, W = int(hw[0]), int(hw[1])
    if d <= 1:
        return (1.0, 1.0)
    return (H / (math.ceil(H / d) * d), W / (math.ceil(W / d) * d))


_UNSET = object()


def _keep_size(image: Tensor, target=None):
    """A detector transform's ``resize`` that keeps the image (and its boxes) as they are."""
    return image, target


def _accepts_interpolation(model: nn.Module) -> bool:
    try:
        return "interpolate_pos_encoding" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


@contextlib.contextmanager
def any_input_size(model: nn.Module) -> Iterator[None]:
    """Let a transformer take inputs of other sizes inside the block; everything is restored after.

    timm ViT-family models (``dynamic_img_size``) resample their position embeddings to the
    input's grid, as timm does when built with ``dynamic_img_size=True``; timm Swin models
    stop checking the size and build their attention masks for each input; Hugging Face
    models whose forward takes ``interpolate_pos_encoding`` get it set. torchvision
    detectors (Faster R-CNN, RetinaNet, FCOS, SSD, …), whose transform resizes every image
    to its ``min_size``/``max_size`` (or ``fixed_size``), keep each image at its own size
    for the call (the transform's resizing step is skipped; normalisation and batching
    stay), so they see the input at the size given (their boxes come back in its pixels)
    and a method's rescaling is not undone. Other models are left as they are.
    At the model's own size the outputs are unchanged.

    Example:
        >>> import timm, torch
        >>> vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3).eval()
        >>> with any_input_size(vit):
        ...     tuple(vit(torch.zeros(1, 3, 96, 160)).shape)
        (1, 3)
        >>> vit.dynamic_img_size
        False
    """
    restore = []
    handle = None
    try:
        tr = _detector_transform(model)
        if tr is not None:
            # each image keeps its own size (the batch is still padded to the transform's size_divisible:
            # canvas_cover puts the feature maps back on the image)
            had = "resize" in tr.__dict__
            restore = [(tr, "resize", tr.__dict__["resize"] if had else _UNSET)]
            tr.resize = _keep_size
        elif _timm_dynamic(model) and not model.dynamic_img_size:
            from timm.layers import Format

            pe = model.patch_embed
            restore = [(model, "dynamic_img_size", model.dynamic_img_size),
                       (pe, "strict_img_size", pe.strict_img_size), (pe, "flatten", pe.flatten),
                       (pe, "output_fmt", pe.output_fmt)]
            model.dynamic_img_size = True
            pe.strict_img_size, pe.flatten, pe.output_fmt = False, False, Format.NHWC
        elif _timm_swin(model) and model.patch_embed.strict_img_size:
            # Swin: any size the patch merging divides; attention masks made for each input's windows
            restore = [(model.patch_embed, "strict_img_size", True)]
            restore += [(m, "dynamic_mask", m.dynamic_mask) for m in model.modules() if hasattr(m, "dynamic_mask")]
            model.patch_embed.strict_img_size = False
            for m in model.modules():
                if hasattr(m, "dynamic_mask"):
                    m.dynamic_mask = True
        elif _hf_config(model) is not None and _accepts_interpolation(model):
            def add_interpolation(_m, args, kwargs):
                kwargs.setdefault("interpolate_pos_encoding", True)
                return args, kwargs

            handle = model.register_forward_pre_hook(add_interpolation, with_kwargs=True)
        yield
    finally:
        for obj, name, value in reversed(restore):
            if value is _UNSET:
                delattr(obj, name)
            else:
                setattr(obj, name, value)
        if handle is not None:
            handle.remove()


@contextlib.contextmanager
def track_input_size(model: nn.Module, layout: Layout) -> Iterator[None]:
    """Inside the block, every forward pass of ``model`` first records its input's (H, W) in ``layout``.

    Example:
        >>> import torch
        >>> lay, net = Layout(), torch.nn.Conv2d(3, 2, 3)
        >>> with track_input_size(net, lay):
        ...     _ = net(torch.zeros(1, 3, 20, 30))
        >>> lay.input_hw
        (20, 30)
    """
    def record(_m, args, kwargs):
        for v in (*args, *kwargs.values()):
            if isinstance(v, Tensor) and v.dim() == 4:
                layout.input_hw = (int(v.shape[2]), int(v.shape[3]))
                break

    handle = model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


_SIZE_WORDS = ("size", "height", "width", "divisible", "match", "shape")


_DTYPE_WORDS = ("should be the same", "must have the same dtype", "expected scalar type", "expected both inputs")


def _raised_in(model: nn.Module, e: BaseException) -> bool:
    """Whether ``e`` was raised inside a method of ``model`` or one of its submodules (its ``forward``, say)."""
    mods = {id(m) for m in model.modules()}
    tb = e.__traceback__
    while tb is not None:
        if id(tb.tb_frame.f_locals.get("self")) in mods:
            return True
        tb = tb.tb_next
    return False


@contextlib.contextmanager
def model_size_errors(model: nn.Module, x: Tensor) -> Iterator[None]:
    """Turn a model's own assertion about its input size into an :class:`InputError` saying what to do.

    So too a model's refusal of the input's channels (a grayscale or RGBA batch for an RGB
    model), dtype (a float64 batch for a float32 model) or device (a CPU batch for a CUDA
    model), when raised inside the model and x does differ from its first layer or weights.

    Example:
        >>> import timm, torch
        >>> swin = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False).eval()
        >>> try:
        ...     with model_size_errors(swin, torch.zeros(1, 3, 224, 224)):
        ...         swin(torch.zeros(1, 3, 320, 320))
        ... except InputError as e:
        ...     print(str(e)[:60])
        SwinTransformer refused an input size (Input height (320) do
    """
    try:
        yield
    except RuntimeError as e:  # e.g. a position table of one grid added to tokens of another
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        inside = _raised_in(model, e)
        if inside and f"but got {int(x.shape[1])} channels" in msg:
            raise InputError(f"{type(model).__name__} refused an input of {int(x.shape[1])} channels ({msg}); give "
                             "images with the channels it was built for (an RGB model: 3; a grayscale batch: "
                             "x.expand(-1, 3, -1, -1))") from None
        w = next((p for p in model.parameters() if p.is_floating_point()), None)
        if inside and w is not None and x.device != w.device:
            raise InputError(f"x is on {x.device} but {type(model).__name__}'s weights are on {w.device} ({msg}); "
                             f"move x to the model's device (x.to('{w.device}'))") from None
        if inside and w is not None and x.dtype != w.dtype and any(s in msg for s in _DTYPE_WORDS):
            raise InputError(f"{type(model).__name__} refused a {str(x.dtype).replace('torch.', '')} input ({msg}); "
                             f"give x in the model's dtype (x.to({w.dtype}))") from None
        if getattr(model, "patch_embed", None) is None or "must match the size" not in str(e):
            raise
        raise InputError(
            f"{type(model).__name__} cannot take this input size ({e}). It may take only the size it was built "
            f"for: give inputs of that size, and for CAMERAS pass scales=[{int(x.shape[-2])}] (the input's own "
            f"size only; on the command line --square --scales {min(x.shape[-2:])}), or build the model to take any "
            "size (timm: dynamic_img_size=True)") from None
    except AssertionError as e:
        if not any(w in str(e).lower() for w in _SIZE_WORDS) or not _raised_in(model, e):
            raise  # not the model's own check (a target function's assertion, say): left as it is
        p = patch_size(model)
        H, W = int(x.shape[-2]), int(x.shape[-1])
        if p and (H % p or W % p):
            fit = [max(p, round(v / p) * p) for v in (H, W)]
            raise InputError(
                f"{type(model).__name__} refused a {H}×{W} input ({e}): its input sides must be multiples of {p} px; "
                f"resize it (e.g. to {fit[0]}×{fit[1]}); models loaded by cameras.load_model are prepared so "
                "(bundle.prepare)") from None
        raise InputError(
            f"{type(model).__name__} refused an input size ({e}). It may take only the size it was built for: give "
            f"inputs of that size, and for CAMERAS pass scales=[{H}] (the input's own size only; on the command "
            f"line --square --scales {min(H, W)}), or build the model to take any size (timm: dynamic_img_size=True)"
        ) from None
