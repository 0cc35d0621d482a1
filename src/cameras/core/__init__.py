"""The core: safe capture of activations and gradients, shared result type, shared ops.

Names are imported on first use (see :mod:`cameras.lazy`), so importing a submodule such as
``cameras.core.errors`` does not load torch.
"""

from ..lazy import lazy_exports

_EXPORTS = {
    "CamerasError": ".errors",
    "Cancelled": ".errors",
    "ClassTarget": ".targets",
    "ImageError": ".errors",
    "InputError": ".errors",
    "LayerCapture": ".capture",
    "LayerError": ".errors",
    "LayerGradients": ".gradients",
    "ModelError": ".errors",
    "OutputTarget": ".targets",
    "RankTarget": ".targets",
    "SaliencyMethod": ".base",
    "SaliencyResult": ".result",
    "SigmoidTarget": ".targets",
    "SoftmaxTarget": ".targets",
    "Target": ".targets",
    "as_target": ".targets",
    "bind_target": ".targets",
    "frozen_eval": ".guard",
    "fuse_multiscale": ".fusion",
    "interp_matrix": ".ops",
    "layer_gradients": ".gradients",
    "model_logits": ".targets",
    "normalize_maps": ".ops",
    "resize_maps": ".ops",
    "resolve_layer": ".layers",
    "resolve_targets": ".targets",
    "sync": ".base",
    "unwrap_model": ".guard",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
    "RankTarget",
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
