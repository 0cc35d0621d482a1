"""cameras: high-resolution, sanity-preserving saliency maps for PyTorch image models.

Classifiers are explained for a class; segmentation models for a class over a region
(:class:`RegionTarget`) and detectors for a detection (:class:`BoxTarget`).

Example:
    >>> import cameras
    >>> bundle = cameras.load_model()              # embedded EfficientNet-Lite0, offline
    >>> x = cameras.preprocess(cameras.load_image("cat.jpg"))   # doctest: +SKIP
    >>> result = cameras.CAMERAS(bundle.model, layer=bundle.layer)(x)  # doctest: +SKIP
    >>> result.maps.shape, result.targets, result.kept_scales    # doctest: +SKIP
"""

from .lazy import lazy_exports

__version__ = "0.1.0"

# every public name, imported on first use: `import cameras` and `cameras --help` stay fast
_EXPORTS = {
    "CAMERAS": ".methods",
    "DEFAULT_SCALES": ".methods.cameras",
    "RISE": ".methods",
    "ExtremalPerturbation": ".methods",
    "GradCAM": ".methods",
    "GradCAMPlusPlus": ".methods",
    "Gradient": ".methods",
    "HiResCAM": ".methods",
    "LayerCAM": ".methods",
    "MultiScale": ".methods",
    "NormGrad": ".methods",
    "ScoreCAM": ".methods",
    "Smooth": ".methods",
    "XGradCAM": ".methods",
    "BoxTarget": ".core",
    "CamerasError": ".core",
    "Cancelled": ".core",
    "ClassTarget": ".core",
    "ImageError": ".core",
    "InputError": ".core",
    "LayerCapture": ".core",
    "LayerError": ".core",
    "ModelBundle": ".models",
    "ModelError": ".core",
    "OutputTarget": ".core",
    "RankTarget": ".core",
    "RegionTarget": ".core",
    "SaliencyMethod": ".core",
    "SaliencyResult": ".core",
    "SigmoidTarget": ".core",
    "SoftmaxTarget": ".core",
    "Target": ".core",
    "available_methods": ".methods",
    "build_method": ".methods",
    "get_method": ".methods",
    "load_image": ".images",
    "load_model": ".models",
    "normalize_maps": ".core",
    "overlay": ".viz",
    "preprocess": ".images",
    "recalibrate_batch_norms": ".models",
    "resize_maps": ".core",
    "resolve_layer": ".core",
    "scale_schedule": ".methods.cameras",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "CAMERAS",
    "DEFAULT_SCALES",
    "RISE",
    "ExtremalPerturbation",
    "GradCAM",
    "GradCAMPlusPlus",
    "Gradient",
    "HiResCAM",
    "LayerCAM",
    "MultiScale",
    "NormGrad",
    "ScoreCAM",
    "Smooth",
    "XGradCAM",
    "BoxTarget",
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
    "RankTarget",
    "RegionTarget",
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
    "recalibrate_batch_norms",
    "resize_maps",
    "resolve_layer",
    "scale_schedule",
]
