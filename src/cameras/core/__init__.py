"""The core: safe capture of activations and gradients, shared result type, shared ops."""

from .base import SaliencyMethod, sync
from .capture import LayerCapture
from .errors import CamerasError, Cancelled, ImageError, InputError, LayerError, ModelError
from .fusion import fuse_multiscale
from .guard import frozen_eval, unwrap_model
from .layers import resolve_layer
from .ops import interp_matrix, normalize_maps, resize_maps, resolve_targets
from .result import SaliencyResult

__all__ = [
    "CamerasError",
    "Cancelled",
    "ImageError",
    "InputError",
    "LayerCapture",
    "LayerError",
    "ModelError",
    "SaliencyMethod",
    "SaliencyResult",
    "frozen_eval",
    "fuse_multiscale",
    "interp_matrix",
    "normalize_maps",
    "resize_maps",
    "resolve_layer",
    "resolve_targets",
    "sync",
    "unwrap_model",
]
