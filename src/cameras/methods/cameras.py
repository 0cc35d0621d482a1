"""CAMERAS: multi-scale accumulation of activations and gradients (Jalwana et al., CVPR 2021)."""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import graphs
from ..core.base import SaliencyMethod
from ..core.checks import check_count
from ..core.compiled import CompiledBelow
from ..core.eager import EagerFastPaths
from ..core.errors import InputError
from ..core.fusion import DEFAULT_CHUNK_ELEMENTS, fuse_multiscale, fuse_on_grid
from ..core.gradients import LayerGradients, layer_gradients
from ..core.layouts import canvas_cover
from ..core.memory import HeldCopies, fast_bf16, low_precision_below, modules_below
from ..core.ops import normalize_maps, resize_images
from ..core.result import SaliencyResult
from ..core.targets import InputView, Target, bind_target, logits_or_none
from ..names import DEFAULT_SCALE_RULE

DEFAULT_SCALES: tuple[int, ...] = tuple(range(224, 1000, 100))  # 224, 324, ..., 924
# batch_pixels="auto": on a CPU, one forward pass over a large batch ran slower per image
# than passes over about two 324×324 images (see BENCHMARKS.md); on a GPU the whole batch
# runs at once.
AUTO_BATCH_PIXELS: dict[str, int | None] = {"cpu": 2 * 324 * 324}
_AMP = {None: False, "bf16": torch.bfloat16, "fp16": torch.float16}  # None: float32 even in an autocast block
_FP16_GRAD_SCALE = 1024.0
# which scales a map of the image's own top-1 class uses (with a given target, every scale)
SCALE_RULES: dict[str, str] = {
    "paper": "a scale is kept when its top-1 is the class (the paper's sanity-preserving rule)",
    "top5": "a scale is kept while the class stays in its top 5",
    "all": "every scale is kept, with the class as the target at each",
}


def scale_schedule(steps: int, max_size: int, base: int = 224) -> list[int]:
    """``steps`` sizes evenly spaced from ``base`` to ``max_size`` inclusive (rounded).

    Example:
        >>> scale_schedule(5, 1000)
        [224, 418, 612, 806, 1000]
    """
    steps = check_count(steps, "steps")
    if steps > 1 and max_size <= base:
        raise InputError(f"max_size ({max_size}) must exceed the base size ({base}) for {steps} steps")
    return [int(round(v)) for v in np.linspace(base, max_size, steps)] if steps > 1 else [int(base)]


def parse_scales(text: str | Sequence[int] | None) -> list[int] | None:
    """Scale sizes from text: ``"224,324,424"`` (commas and/or spaces) or a range ``"224:1000:100"``
    (stop exclusive).

    A list of sizes and None pass through unchanged. Raises InputError for other text.

    Example:
        >>> parse_scales("224:524:100"), parse_scales("224, 300 400")
        ([224, 324, 424], [224, 300, 400])
    """
    if text is None or not isinstance(text, str):
        return text
    try:
        if ":" in text:
            start, stop, step = (int(v) for v in text.split(":"))
            return list(range(start, stop, step))
        return [int(v) for v in re.split(r"[,\s]+", text.strip()) if v]
    except ValueError:
        raise InputError(f"scales '{text}' is not a list like 224,324,424 or a range like 224:1000:100") from None


def check_scales(scales: str | Sequence[int]) -> list[int]:
    """Validate a scale list (or its text, see :func:`parse_scales`): positive, strictly increasing integers.

    Example:
        >>> check_scales([224, 324]), check_scales("224,324")
        ([224, 324], [224, 324])
    """
    scales = parse_scales(scales)
    try:
        vals = [int(s) for s in scales]
    except (TypeError, ValueError):
        raise InputError(f"scales must be a list of integer sizes, got {scales!r}") from None
    if not vals:
        raise InputError("scales must hold at least one size")
    if any(v < 8 for v in vals):
        raise InputError(f"every scale must be at least 8 px, got {vals}")
    if any(b <= a for a, b in zip(vals, vals[1:])):
        raise InputError(f"scales must be strictly increasing, got {vals}")
    return vals


class CAMERAS(EagerFastPaths, SaliencyMethod):
    """CAMERAS saliency (Jalwana et al., CVPR 2021): exact, batched, on the input's device.

    For each scale ζ_t the (normalised) batch is resized by ζ_t/ζ_0 on both sides (scale 0
    is the input as given; bicubic, ``align_corners=False``), the layer's activations A_t
    and the gradients W_t of the target's score (for class ids: the pre-softmax logit) are
    captured, both are resized
    bilinearly to the input size and averaged over the kept scales separately, and the map
    is ReLU(Σ_k W̄_k ⊙ Ā_k), min-max normalised per image (an all-zero map stays zero).
    Without a target, the target is each image's top-1 at scale 0, and ``scale_rule``
    says which scales its map uses: by default all of them; with ``scale_rule="paper"`` a
    scale is kept for an image only if its own top-1 agrees (the paper's "sanity
    preserving" rule). With a target (class ids or any :class:`~cameras.targets.Target`)
    every scale is kept, and ``result.extras["scale_rule"]`` says which rule applied. Gradients flow from the score
    to the layer only.

    Args:
        model: classifier taking normalised B×C×H×W input and returning B×classes logits.
        layer: name or module to explain; None finds the last spatial feature map.
        scales: strictly increasing sizes ζ_0 < ζ_1 < …; default 224, 324, …, 924.
        steps, max_size: alternatively, ``steps`` sizes from ``base_size`` to ``max_size``.
        base_size: ζ_0 for ``steps`` (the model's input size), default 224.
        resample: ``"bicubic"`` (default, as the reference code) or ``"bilinear"``.
        chunk_elements: memory bound on one full-resolution channel chunk during fusion.
        fusion: ``"exact"`` (default, the definition above) or ``"grid"``, an approximate fast mode
            that averages and fuses at the largest kept scale's layer grid and upsamples the
            fused map bilinearly (see BENCHMARKS.md for its measured difference).
        amp: None (float32), ``"bf16"`` or ``"fp16"``: forward passes under autocast;
            activations and gradients are still fused in float32.
        channels_last: run the passes in channels-last memory format: the model's 4-D
            weights are converted for the call (and restored after; values unchanged) and
            the inputs fed channels-last; the converted weights are kept between calls while the
            weights are unchanged (memory: one copy). ``"auto"`` (default): on a CPU for convolutional
            networks (not transformers), where oneDNN runs them faster (maps equal to NCHW
            ones to 1e-5; see BENCHMARKS.md); True: always; False: never.
        precision: ``"fp32"`` (default, exact) or ``"bf16"``: the layers below the explained
            one run with bfloat16 weights and activations (fast bf16 kernels on CPUs with
            AMX/AVX512-BF16 and on GPUs), the input is cast to bf16 and resized to each scale by
            bf16 matrix products (:func:`~cameras.core.ops.resize_images`, the same bicubic or
            bilinear rule), the layer's output is cast back to float32, and the
            layers above it (the head the gradients go through) and the fusion stay float32.
            Batch norms below the layer are folded as with ``fold_batchnorm`` (in float64, then
            cast to bf16; ``fold_batchnorm=False`` turns folding and fusion off), and on a CPU
            each folded convolution also applies the activation
            module that follows it (ReLU, ReLU6, Hardtanh, SiLU, Hardswish, GELU; oneDNN post-ops),
            since a separate bf16 activation pass costs more than the convolution there.
            Approximate: maps differ from fp32 ones (on ImageNet EfficientNet-Lite0/1/2,
            ResNet-50 and a ViT the smallest Pearson r over four photos was 0.996–1.000, and
            the arg-max can move by a few pixels; see BENCHMARKS.md). It is fast only with bf16
            instructions (on a CPU with AMX: 0.29–0.37× the fp32 forward passes of a CNN, about
            0.6× for a ViT, whose last block lies above its layer and stays float32); elsewhere it
            warns. Check the fidelity on your model before relying on it.
        batch_pixels: the most pixels (images × height × width) one forward pass holds; a
            batch is split into near-equal sub-batches per scale to stay under it (results
            are the same). ``"auto"`` (default): 2×324² on a CPU, where big passes run slower
            per image, and the whole batch on a GPU; None: always the whole batch.
        to_spatial: for a layer whose output is not B×K×h×w, a function rearranging it
            into that layout (see :class:`~cameras.core.capture.LayerCapture`).
        scale_rule: which scales a map of the image's own top-1 (``target=None``) uses:
            ``"all"`` (default) every scale, ``"paper"`` (the paper's rule) a scale where its
            top-1 is that class, ``"top5"`` while the class stays in the scale's top 5. With a
            given target every scale is kept whatever the rule.
        border_pad: 0 (default) or a fraction in (0, 0.5] of the input's shorter side: the
            input is first extended on every side by that many pixels, mirrored (reflect
            padding), explained as a whole at every scale (the scale rule also looks at the
            padded image; the class of ``target=None`` and the reported probabilities come
            from the input as given), and the map is cropped back to the input and min-max
            normalised again. At large scales the layer's zero padding darkens a band a few pixels wide
            along the image border; mirroring moves that band outside the cropped map. It costs
            (1 + 2·border_pad)² the pixels.
        compile: False (default) or True: ``torch.compile`` (inductor) the layers below the
            explained one, with their weights frozen into the compiled code (batch norms folded
            into convolutions), for the no-grad part of every pass; the head above the layer
            and the fusion stay eager. Each new input size compiles once (seconds to a minute
            per scale) and a change of the weights compiles afresh, so it pays off over many
            images of one size (``cameras evaluate``; see BENCHMARKS.md for the measured
            compile time and speed). Maps equal the eager ones up to float rounding (1e-5).
            With ``precision="bf16"`` the bf16 lower layers are compiled; not with ``amp``.
        cuda_graphs: False (default) or True, on a CUDA device only: the layers below the
            explained one run from CUDA graphs, captured once per module and input size (the
            first call at a size runs each pass three times) and replayed with one launch. At
            batch 1 a GPU forward pass is bound by the CPU launching kernels; replays remove that.
            Nothing is folded (``fold_batchnorm`` does not apply), so maps equal those of the eager
            ``fold_batchnorm=False`` path exactly (the same kernels run) and the default path's up to
            the folding's rounding (about 1e-5 in float32; with ``precision="bf16"`` within bf16's
            fidelity). On an H200 at batch 1 this took ResNet-50 from 1.5× to 1.0–1.08× its eager
            forward passes; at batch 32, where launches no longer bound the pass, graphs were
            slower than eager (1.15× against 1.07×): leave it off for large batches. Weights edited in place
            are seen by the next replay; weights moved to new memory are captured afresh. The
            graphs hold their activations' memory between calls (one buffer per module and
            size). Combines with ``compile`` and ``precision="bf16"``; not with ``amp``.
        fold_batchnorm: True (default) or False: below the explained layer, where the passes
            record no gradients, each batch norm that reads a convolution's output (and nothing
            else reads it) is folded into that convolution for the call (weights ``W·s``, bias
            ``(b − mean)·s + β`` with ``s = γ/√(var + ε)``, computed once and kept while the
            weights are unchanged), saving a pass over every batch-normed activation. Batch
            norms in training mode and modules with hooks of their own are left alone; the
            model is never changed. Maps equal the unfolded ones up to float rounding (1e-5;
            with ``precision="bf16"`` within bf16's own fidelity, since the folded weights
            round differently). Applies to eager passes, fp32 and ``precision="bf16"``; ``compile`` folds by
            itself, and with ``amp`` or ``cuda_graphs`` nothing is folded.

    Call: ``CAMERAS(model)(x, target=None)`` with x of shape B×C×H×W returns a
    :class:`~cameras.SaliencyResult` whose ``maps`` are B×H×W in [0, 1] and
    ``kept_scales[b]`` lists the sizes accumulated for image b.

    Example:
        >>> import torch, torchvision
        >>> net = torchvision.models.resnet18(num_classes=10)
        >>> res = CAMERAS(net, scales=[64, 96])(torch.randn(2, 3, 64, 80), target=[1, 2])
        >>> tuple(res.maps.shape), res.kept_scales
        ((2, 64, 80), [[64, 96], [64, 96]])
    """

    name = "cameras"
    passes = 8
    neutral_options = ("batch_pixels", "chunk_elements", "channels_last", "compile", "cuda_graphs", "fold_batchnorm")

    @property
    def options(self) -> dict:
        """Every constructor argument (see :class:`SaliencyMethod`), with ``scales`` as the sizes in use."""
        out = super().options
        out["scales"] = list(self.scales)
        return out

    def __init__(
        self,
        model: nn.Module,
        layer: str | nn.Module | None = None,
        scales: Sequence[int] | None = None,
        steps: int | None = None,
        max_size: int = 1000,
        base_size: int = 224,
        resample: str = "bicubic",
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
        fusion: str = "exact",
        amp: str | None = None,
        channels_last: bool | str = "auto",
        precision: str = "fp32",
        batch_pixels: int | str | None = "auto",
        to_spatial: Callable[[Tensor], Tensor] | None = None,
        scale_rule: str = DEFAULT_SCALE_RULE,
        border_pad: float = 0.0,
        compile: bool = False,
        cuda_graphs: bool = False,
        fold_batchnorm: bool = True,
    ) -> None:
        super().__init__(model, layer, to_spatial)
        if not (isinstance(border_pad, (int, float)) and 0 <= border_pad <= 0.5):
            raise InputError(f"border_pad must be a fraction of the shorter side in [0, 0.5], got {border_pad!r}")
        self.border_pad = float(border_pad)
        if scale_rule not in SCALE_RULES:
            raise InputError(f"scale_rule must be one of {', '.join(SCALE_RULES)}, got {scale_rule!r}")
        self.scale_rule = scale_rule
        if scales is not None and steps is not None:
            raise InputError("give either scales or steps (with max_size), not both")
        if steps is not None:
            scales = scale_schedule(steps, check_count(max_size, "max_size"), check_count(base_size, "base_size"))
        self.scales = check_scales(DEFAULT_SCALES if scales is None else scales)
        if resample not in ("bicubic", "bilinear"):
            raise InputError(f"resample must be 'bicubic' or 'bilinear', got {resample!r}")
        self.resample = resample
        if int(chunk_elements) < 1:
            raise InputError(f"chunk_elements must be positive, got {chunk_elements}")
        self.chunk_elements = int(chunk_elements)
        if fusion not in ("exact", "grid"):
            raise InputError(f"fusion must be 'exact' or 'grid', got {fusion!r}")
        self.fusion = fusion
        if amp not in (None, "bf16", "fp16"):
            raise InputError(f"amp must be None, 'bf16' or 'fp16', got {amp!r}")
        self.amp = amp
        if precision not in ("fp32", "bf16"):
            raise InputError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        if precision == "bf16" and amp is not None:
            raise InputError("give precision='bf16' or amp, not both (amp runs the whole forward under autocast)")
        self.precision = precision
        self._below: tuple[nn.Module, list[nn.Module]] | None = None  # (layer, modules below it), found once
        if compile not in (True, False):
            raise InputError(f"compile must be True or False, got {compile!r}")
        if compile and amp is not None:
            raise InputError("compile=True compiles the passes as they are; give it without amp (autocast)")
        self.compile = compile
        self._compiled: CompiledBelow | None = None  # the compiled lower layers, made on the first call
        if cuda_graphs not in (True, False):
            raise InputError(f"cuda_graphs must be True or False, got {cuda_graphs!r}")
        if cuda_graphs and amp is not None:
            raise InputError("cuda_graphs=True replays the passes as captured; give it without amp (autocast)")
        self.cuda_graphs = cuda_graphs
        self._graphed: graphs.GraphedBelow | None = None  # the lower layers' CUDA graphs, made on the first call
        self.init_fast_paths(channels_last, fold_batchnorm)  # channels-last copies and folded pairs, kept
        self._held_low = HeldCopies()
        p = next(self.model.parameters(), None)
        if precision == "bf16" and p is not None and not fast_bf16(p.device):
            warnings.warn(f"precision='bf16' on a {p.device.type} without bf16 instructions (no AVX512-BF16 or AMX): "
                          "bf16 is emulated there and runs slower than float32; use precision='fp32'",
                          RuntimeWarning, stacklevel=3)
        if not (batch_pixels is None or batch_pixels == "auto" or (type(batch_pixels) is int and batch_pixels >= 1)):
            raise InputError(f"batch_pixels must be a positive integer, 'auto' or None, got {batch_pixels!r}")
        self.batch_pixels = batch_pixels

    def result_options(self) -> dict:
        """The options that determine the maps; ``precision`` only when it is not the exact ``"fp32"``
        (so runs recorded before the option existed resume).

        Example:
            >>> import torchvision
            >>> "precision" in CAMERAS(torchvision.models.resnet18()).result_options()
            False
        """
        out = super().result_options()
        if out.get("precision") == "fp32":
            del out["precision"]
        return out

    def scale_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """Input sizes (h, w) of every scale for an H×W input, aspect ratio kept.

        For a transformer whose inputs must be multiples of its patch size, each size is
        rounded to the nearest multiple (the input itself too; it is then resized).

        Example:
            >>> import torchvision
            >>> CAMERAS(torchvision.models.resnet18(), scales=[224, 448]).scale_sizes(224, 300)
            [(224, 300), (448, 600)]
        """
        z0, m = self.scales[0], self.layout.patch or 1

        def fit(v: float) -> int:  # a multiple of the model's patch size (1 for convolutional networks)
            return max(m, round(v / m) * m)

        return [(fit(height), fit(width))] + [(fit(height * z / z0), fit(width * z / z0)) for z in self.scales[1:]]

    def sub_batches(self, batch: int, size: tuple[int, int], device: torch.device) -> list[slice]:
        """How one scale's forward passes split a batch: near-equal slices under the pixel budget.

        Example:
            >>> import torchvision
            >>> cam = CAMERAS(torchvision.models.resnet18(), batch_pixels=3 * 224 * 224)
            >>> cam.sub_batches(8, (224, 224), torch.device("cpu"))  # 3 per pass: 3 passes, sizes 3, 3, 2
            [slice(0, 3, None), slice(3, 6, None), slice(6, 8, None)]
        """
        budget = self.batch_pixels
        if budget == "auto":
            budget = AUTO_BATCH_PIXELS.get(device.type)
        if budget is None:
            return [slice(0, batch)]
        per = max(1, int(budget) // (size[0] * size[1]))
        n = -(-batch // per)  # passes needed
        q, r = divmod(batch, n)  # sizes q+1 (r of them) and q
        bounds = [0]
        for i in range(n):
            bounds.append(bounds[-1] + q + (i < r))
        return [slice(a, b) for a, b in zip(bounds, bounds[1:])]

    def _passes(self, x: Tensor, size: tuple[int, int], first: bool, targets: list[Target | None],
                cap) -> LayerGradients:
        """Forward and backward passes at one scale, sub-batched under the pixel budget, joined.

        One forward pass per sub-batch serves every target (one backward each).
        """
        parts = []
        for sl in self.sub_batches(x.shape[0], size, x.device):
            self.check_stop()
            xt = x[sl] if first else self._resized(x[sl], size)
            xt = self.in_layout(self._fed(xt))
            rows = [None if t is None else t.select(sl) for t in targets]
            # fp16 gradients underflow: scale the score (the normalised map is invariant to it)
            parts.append(layer_gradients(self.model, xt, [cap], rows[0], _AMP[self.amp],
                                         _FP16_GRAD_SCALE if self.amp == "fp16" else 1.0, rows[1:]))
        if len(parts) == 1:
            return parts[0]
        cat = torch.cat
        more = []
        for k in range(len(targets) - 1):
            ts = [p.more[k][0] for p in parts]
            more.append((ts[0].join(ts), cat([p.more[k][1] for p in parts]), [cat([p.more[k][2][0] for p in parts])]))
        return LayerGradients(
            output=None,
            target=parts[0].target.join([p.target for p in parts]),
            logits=None if parts[0].logits is None else cat([p.logits for p in parts]),
            probs=cat([p.probs for p in parts]),
            activations=[cat([p.activations[0] for p in parts])],
            gradients=[cat([p.gradients[0] for p in parts])],
            more=more,
        )

    def location_weights(self, act: Tensor, grad: Tensor) -> Tensor:
        """The per-location weights W_t (B×K×h×w) accumulated over scales: for CAMERAS the gradient itself.

        :class:`~cameras.MultiScale` overrides it with its CAM's local weights.

        Example:
            >>> import torchvision
            >>> g = torch.randn(1, 2, 3, 3)
            >>> CAMERAS(torchvision.models.resnet18()).location_weights(torch.ones_like(g), g) is g
            True
        """
        return grad

    def explain_batch(self, x: Tensor, target: Target | None) -> SaliencyResult:
        return self.explain_batch_many(x, [target])[0]

    def explain_batch_many(self, x: Tensor, targets: list[Target | None]) -> list[SaliencyResult]:
        # channels-last for convolutional networks on a CPU by default (NCHW for models that cannot take it)
        return self.with_layout(x, lambda nhwc: self._explain_many(x, targets, nhwc))

    def _explain_many(self, x: Tensor, targets: list[Target | None], nhwc: bool) -> list[SaliencyResult]:
        # float32 throughout, also inside a caller's autocast block; `amp` enables it for the passes only
        # converted weights (channels-last, bf16) are kept between calls while the weights are unchanged
        # compiled code picks the weights' layout itself; inputs are still NHWC
        if self.cuda_graphs and not graphs.supports_graphs(x.device):
            raise InputError(f"cuda_graphs=True needs the model and input on a CUDA device, got the input on "
                             f"{x.device}; leave cuda_graphs off there")
        fold = self.fold_batchnorm and self.amp is None and not self.compile and not self.cuda_graphs
        # bf16 on a CPU: the folded convolutions apply their activations (a bf16 activation pass costs more there)
        fuse = self.precision == "bf16" and x.device.type == "cpu"
        lower = self.precision == "bf16" or self.compile or self.cuda_graphs
        if lower and (self._below is None or self._below[0] is not self.layer):
            self._below = (self.layer, modules_below(self.model, self.layer, x[:1]))  # once per layer, one pass
        compiled = contextlib.nullcontext()
        if self.compile:
            if self._compiled is None or self._compiled.layer is not self.layer:
                self._compiled = CompiledBelow(self.model, self.layer, self._below[1])
            compiled = self._compiled.active(self._held_low)  # holds copies with precision="bf16" only
        graphed = contextlib.nullcontext()
        if self.cuda_graphs:  # entered after `compiled`: with compile=True the compiled code is captured
            if self._graphed is None or self._graphed.layer is not self.layer:
                self._graphed = graphs.GraphedBelow(self.model, self.layer, self._below[1])
            graphed = self._graphed.active()
        # folding excludes compile and graphs, so entering it before `compiled` and `graphed` is safe; before `low`
        # the pairs are found and checked in float32 (the folded weights are cast to the bf16 input)
        eager = self.eager_block(x, nhwc and not self.compile, fold, fuse)
        with torch.autocast(x.device.type, enabled=False), eager:
            low = contextlib.nullcontext()
            if self.precision == "bf16":  # the folded pairs run on their folded weights: theirs are not converted
                keep = self.folded.in_use if self.folded is not None else ()
                low = low_precision_below(self._below[1], self.layer, held=self._held_low, keep=keep)
            with low, compiled, graphed:
                return self._explain(x, list(targets))

    def _resized(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """The input resized to one scale: in float32 by ``F.interpolate``, as the reference does; with
        ``precision="bf16"`` the bf16 input by bf16 matrix products (the same rule, about one bf16 rounding
        step apart, and on a CPU with bf16 kernels a sixth of the float32 resize's time)."""
        if self.precision == "bf16":
            return resize_images(self._fed(x), size, self.resample)
        return F.interpolate(x, size=size, mode=self.resample, align_corners=False)

    def _fed(self, x: Tensor) -> Tensor:
        """The model's input as fed: bfloat16 with ``precision="bf16"``, else as given."""
        return x.to(torch.bfloat16) if self.precision == "bf16" else x

    def pad_pixels(self, height: int, width: int) -> int:
        """Pixels of mirrored border added on every side of an H×W input (``border_pad``).

        Example:
            >>> import torchvision
            >>> CAMERAS(torchvision.models.resnet18(), border_pad=0.1).pad_pixels(224, 300)
            22
        """
        return min(round(self.border_pad * min(height, width)), height - 1, width - 1)

    def _explain(self, x: Tensor, targets: list[Target | None]) -> list[SaliencyResult]:
        H, W = x.shape[2:]
        p = self.pad_pixels(H, W)
        if p == 0:
            return self._explain_padded(x, targets, 0)
        # the class (top-1 without a target) and its probability come from the image as given
        with torch.no_grad():
            out = self.model(self._fed(x))
        bound = [bind_target(t, out) for t in targets]
        results = self._explain_padded(F.pad(x, (p, p, p, p), mode="reflect"), bound, p, [t is None for t in targets])
        for r, t in zip(results, bound):
            r.maps = normalize_maps(r.maps[:, p:p + H, p:p + W].contiguous())
            r.probs, r.logits = t.probability(out).detach().float(), logits_or_none(out)
            r.target = t  # what was matched or predicted on the input as given
            if t.notes():
                r.extras["target"] = t.notes()
        return results

    def _explain_padded(self, x: Tensor, targets: list[Target | None], pad: int,
                        auto: list[bool] | None = None) -> list[SaliencyResult]:
        B, _, H, W = x.shape
        sizes = self.scale_sizes(H, W)
        # The scale-dropping rule is defined for the top-1 class only: with a given target
        # (class ids or any other target) every scale is kept.
        if auto is None:
            auto = [t is None for t in targets]
        acts: list[Tensor] = []
        grads: list[list[Tensor]] = [[] for _ in targets]
        keep: list[list[Tensor]] = [[] for _ in targets]
        notes: list[list[dict]] = [[] for _ in targets]  # each scale's facts of a region or box target
        # regions and boxes follow the image: each scale's view of the input they were given for
        bases = [None if t is None else t.input_view or InputView.identity((H - 2 * pad, W - 2 * pad))
                 for t in targets]
        with self.capture() as cap:
            for t, size in enumerate(sizes):
                viewed = [tg if tg is None or v is None else tg.view(v.padded(pad).resized(size))
                          for tg, v in zip(targets, bases)]
                g = self._passes(x, size, t == 0 and size == (H, W), viewed, cap)
                found = [(g.target, g.probs, g.gradients), *g.more]
                if t == 0:
                    targets = [f[0] for f in found]  # checked, or each image's top-1
                    probs, logits0 = [f[1] for f in found], g.logits
                acts.append(g.activations[0])
                for k, f in enumerate(found):
                    notes[k].append(f[0].notes())
                for k, (target, (_, _, grad)) in enumerate(zip(targets, found)):
                    if t == 0 or not auto[k] or self.scale_rule == "all":
                        kept = torch.ones(B, dtype=torch.bool, device=x.device)
                    elif self.scale_rule == "paper":
                        kept = g.logits.argmax(1) == target.ids
                    else:  # top5
                        top = g.logits.topk(min(5, g.logits.shape[1]), dim=1).indices
                        kept = (top == target.ids[:, None]).any(1)
                    grads[k].append(self.location_weights(g.activations[0], grad[0]))
                    keep[k].append(kept)
                del g, found
        covers = [canvas_cover(self.model, s) for s in sizes]  # a detector's layer sees its input padded
        results = []
        for k, target in enumerate(targets):
            keep_bt = torch.stack(keep[k], 1)  # B×T
            weights = keep_bt.float() / keep_bt.sum(1, keepdim=True).float()
            if self.fusion == "exact":
                fused = fuse_multiscale(acts, grads[k], weights, (H, W), self.chunk_elements, covers)
            else:
                fused = fuse_on_grid(acts, grads[k], weights, (H, W), covers, self.chunk_elements)
            grads[k] = None  # free this target's gradients before the next fusion
            kept_list = keep_bt.cpu().tolist()
            kept_scales = [[z for z, kk in zip(self.scales, row) if kk] for row in kept_list]
            if auto[k]:
                rule = self.scale_rule
            else:
                rule = "all (given class)" if target.is_class else "all (non-class target)"
            extras = {"scales": list(self.scales), "sizes": sizes, "resample": self.resample, "fusion": self.fusion,
                      "scale_rule": rule, "border_pad_pixels": pad}
            if any(notes[k]):  # e.g. whether a box found its detection at every scale
                extras["target_per_scale"] = notes[k]
            results.append(self.result(normalize_maps(fused), target, probs[k], logits0, kept_scales=kept_scales,
                                       extras=extras))
        return results
