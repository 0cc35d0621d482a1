"""The core: safe capture of activations and gradients, shared result type, shared ops."""

from .base import SaliencyMethod, sync
from .capture import LayerCapture
from .errors import CamerasError, Cancelled, ImageError, InputError, LayerError, ModelError
from .fusion import fuse_multiscale
from .gradients import LayerGradients, layer_gradients
from .guard import frozen_eval, unwrap_model
from .layers import resolve_layer
from .ops import interp_matrix, normalize_maps, resize_maps
from .result import SaliencyResult
from .targets import (
    ClassTarget,
    OutputTarget,
    SigmoidTarget,
    SoftmaxTarget,
    Target,
    as_target,
    bind_target,
    model_logits,
    resolve_targets,
)

__all__ = [
    "CamerasError",
    "Cancelled",
    "ClassTarget",
    "ImageError",
    "InputError",
    "LayerCapture",
    "LayerError",
    "LayerGradients",
    "ModelError",
    "OutputTarget",
    "SaliencyMethod",
    "SaliencyResult",
    "SigmoidTarget",
    "SoftmaxTarget",
    "Target",
    "as_target",
    "bind_target",
    "frozen_eval",
    "fuse_multiscale",
    "interp_matrix",
    "layer_gradients",
    "model_logits",
    "normalize_maps",
    "resize_maps",
    "resolve_layer",
    "resolve_targets",
    "sync",
    "unwrap_model",
]
