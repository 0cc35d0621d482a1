"""What a method explains: class ids, or a target object turning the model's output into B scores.

See :mod:`cameras.core.targets` for the protocol; this module is its public face.

Example:
    >>> import torch
    >>> from cameras.targets import SigmoidTarget
    >>> out = torch.tensor([[1.5, -0.5]])
    >>> SigmoidTarget(1).for_batch(1, torch.device("cpu")).bind(out).score(out).tolist()
    [-0.5]
"""

from .core.dense import BoxTarget, RegionTarget, box_mask, detections, segmentation_logits
from .core.targets import (
    TARGET_KINDS,
    ClassTarget,
    InputView,
    OutputTarget,
    RankTarget,
    SigmoidTarget,
    SoftmaxTarget,
    Target,
    TargetLike,
    as_target,
    bind_target,
    class_ids,
    class_scores,
    label_target,
    logits_or_none,
    model_logits,
)

__all__ = [
    "TARGET_KINDS",
    "BoxTarget",
    "ClassTarget",
    "InputView",
    "RegionTarget",
    "box_mask",
    "detections",
    "segmentation_logits",
    "OutputTarget",
    "RankTarget",
    "SigmoidTarget",
    "SoftmaxTarget",
    "Target",
    "TargetLike",
    "as_target",
    "bind_target",
    "class_ids",
    "class_scores",
    "label_target",
    "logits_or_none",
    "model_logits",
]
