"""cameras: high-resolution, sanity-preserving saliency maps for PyTorch image classifiers.

Example:
    >>> import cameras
    >>> bundle = cameras.load_model()              # embedded EfficientNet-Lite0, offline
    >>> x = cameras.preprocess(cameras.load_image("cat.jpg"))   # doctest: +SKIP
    >>> result = cameras.CAMERAS(bundle.model, layer=bundle.layer)(x)  # doctest: +SKIP
    >>> result.maps.shape, result.targets, result.kept_scales    # doctest: +SKIP
"""

from .core import (
    CamerasError,
    Cancelled,
    ClassTarget,
    ImageError,
    InputError,
    LayerCapture,
    LayerError,
    ModelError,
    OutputTarget,
    SaliencyMethod,
    SaliencyResult,
    SigmoidTarget,
    SoftmaxTarget,
    Target,
    normalize_maps,
    resize_maps,
    resolve_layer,
)
from .images import load_image, preprocess
from .methods import (
    CAMERAS,
    RISE,
    ExtremalPerturbation,
    GradCAM,
    Gradient,
    NormGrad,
    available_methods,
    build_method,
    get_method,
)
from .methods.cameras import DEFAULT_SCALES, scale_schedule
from .models import ModelBundle, load_model
from .viz import overlay

__version__ = "0.1.0"

__all__ = [
    "CAMERAS",
    "DEFAULT_SCALES",
    "RISE",
    "ExtremalPerturbation",
    "GradCAM",
    "Gradient",
    "NormGrad",
    "CamerasError",
    "Cancelled",
    "ClassTarget",
    "ImageError",
    "InputError",
    "LayerCapture",
    "LayerError",
    "ModelBundle",
    "ModelError",
    "OutputTarget",
    "SaliencyMethod",
    "SaliencyResult",
    "SigmoidTarget",
    "SoftmaxTarget",
    "Target",
    "available_methods",
    "build_method",
    "get_method",
    "load_image",
    "load_model",
    "normalize_maps",
    "overlay",
    "preprocess",
    "resize_maps",
    "resolve_layer",
    "scale_schedule",
]
