"""Score-CAM (Wang, Wang, Du, Yang, Zhang, Ding, Mardziel, Hu, CVPR Workshops 2020)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.base import SaliencyMethod, progress_bar
from ..core.checks import check_count
from ..core.eager import EagerFastPaths
from ..core.errors import InputError
from ..core.ops import normalize_maps
from ..core.result import SaliencyResult
from ..core.targets import Target, bind_target, logits_or_none

WEIGHTINGS = {
    "softmax": "α = softmax over channels of the target's score of each masked input (the paper's Algorithm 1)",
    "probability": "α_k = the target's probability of masked input k (the authors' released code)",
}


class ScoreCAM(EagerFastPaths, SaliencyMethod):
    """Gradient-free CAM: each channel's weight is the model's score on the image masked by that channel.

    For each channel k of the layer's activation A (B×K×h×w): H_k = the channel upsampled
    bilinearly to the input size and min-max normalised to [0, 1] (a constant channel gives
    H_k = 0); s_k = the target's score (for class ids, the pre-softmax logit) of x ⊙ H_k,
    masking in normalised space. With ``weighting="softmax"`` (default, the paper's
    Algorithm 1) α = softmax_k(s) per image: the score of a baseline image, f(X_b), that the
    paper subtracts is the same for every k and cancels in the softmax. With
    ``weighting="probability"`` α_k is the target's probability of x ⊙ H_k (softmax over
    classes for class ids), as in the authors' released code. Then S = ReLU(Σ_k α_k A_k),
    upsampled bilinearly and min-max normalised.

    Costs one forward per non-constant channel and image, run ``batch_size`` masked inputs
    at a time (memory does not grow with K), with a progress bar. Constant channels (dead
    ReLU channels are common) all give the same all-zero input, which is scored once per
    image; ``result.extras["masked_forwards"]`` counts the masked images run.

    ``channels_last`` (``"auto"``, the default: on a CPU for convolutional networks; True,
    False): the masked passes run in channels-last memory format, the model's 4-D weights
    swapped for channels-last copies for the call (kept between calls; the model is restored).
    The first pass, which reads the activations the masks are made of, stays in the input's
    format, so the masks are the NCHW ones and only the scores differ by float rounding (maps
    equal to 1e-5; 1.4–1.8× faster on EfficientNet-Lite0 on a CPU).

    pytorch-grad-cam implements the softmax weighting but upsamples with
    ``align_corners=True``; here ``align_corners=False`` as in every other resize of this
    package. That is the only difference: with the peer's upsampling switched to
    ``align_corners=False`` the maps agree to 1e-3 (Pearson ≥ 0.9999, tested); as it is,
    Pearson ≥ 0.99 (tested).

    Example:
        >>> import torch, torchvision
        >>> cam = ScoreCAM(torchvision.models.resnet18(num_classes=4), batch_size=64, progress=False)
        >>> tuple(cam(torch.randn(1, 3, 64, 64), target=2).maps.shape)
        (1, 64, 64)
    """

    name = "scorecam"
    passes = 1280  # one forward per channel (EfficientNet-Lite0's last layer has 1280)
    neutral_options = ("progress", "batch_size", "channels_last")

    def __init__(
        self,
        model: nn.Module,
        layer: str | nn.Module | None = None,
        weighting: str = "softmax",
        batch_size: int = 32,
        progress: bool | None = None,
        to_spatial: Callable[[Tensor], Tensor] | None = None,
        channels_last: bool | str = "auto",
    ) -> None:
        super().__init__(model, layer, to_spatial)
        self.init_fast_paths(channels_last, False)
        if weighting not in WEIGHTINGS:
            raise InputError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
        batch_size = check_count(batch_size, "batch_size")
        self.weighting, self.batch_size, self.progress = weighting, batch_size, progress

    def explain_batch(self, x: Tensor, target: Target | None) -> SaliencyResult:
        B, C, H, W = x.shape
        with self.capture(record=False) as cap, torch.no_grad():  # gradient-free: no graph above the layer
            output = self.model(x)
            act = cap.spatial(cap.get()).float()
        with torch.no_grad():
            target = bind_target(target, output)
            probs = target.probability(output)
            K = act.shape[1]
            flat = act.flatten(2)
            constant = flat.amax(2) == flat.amin(2)  # B×K: masks of zeros, scored once per image
            jobs = [(b, k) for b in range(B) for k in range(K) if not bool(constant[b, k])]
            scores = torch.empty(B, K, device=x.device, dtype=torch.float32)
            score_of = (lambda t, out: t.score(out)) if self.weighting == "softmax" else \
                (lambda t, out: t.probability(out))
            forwards = len(jobs) + (B if bool(constant.any()) else 0)

            def masked_passes(nhwc: bool) -> None:
                with self.eager_block(x, nhwc), \
                        progress_bar(len(jobs), "Score-CAM channels", self.progress, self.stop) as bar:
                    if bool(constant.any()):
                        idx = torch.arange(B, device=x.device)
                        zero = score_of(target.select(idx), self.model(self.in_layout(torch.zeros_like(x)))).float()
                        scores[constant] = zero[:, None].expand(B, K)[constant]
                    for start in range(0, len(jobs), self.batch_size):
                        chunk = jobs[start:start + self.batch_size]
                        rows = torch.tensor([b for b, _ in chunk], device=x.device)
                        chans = torch.tensor([k for _, k in chunk], device=x.device)
                        sel = act[rows, chans].unsqueeze(1)  # n×1×h×w
                        masks = normalize_maps(self.to_input(sel[:, 0], (H, W)))
                        inp = self.in_layout(x[rows] * masks.unsqueeze(1).to(x.dtype))
                        scores[rows, chans] = score_of(target.select(rows), self.model(inp)).float()
                        bar.update(len(chunk))

            self.with_layout(x, masked_passes)  # every score is written again if a layout is refused
            alpha = F.softmax(scores, dim=1) if self.weighting == "softmax" else scores
            low = torch.relu((alpha[:, :, None, None] * act).sum(1))
            maps = normalize_maps(self.to_input(low, (H, W)))
        return self.result(maps, target, probs, logits_or_none(output),
                           extras={"low_res": low, "channel_weights": alpha, "weighting": self.weighting,
                                   "masked_forwards": forwards})
