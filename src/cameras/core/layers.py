"""Find the layer to explain: by name, by module, by architecture, or by a dummy forward."""

from __future__ import annotations

import difflib

import torch
from torch import nn

from .errors import LayerError
from .guard import frozen_eval


def _vgg_layer(model: nn.Module) -> str | None:
    feats = getattr(model, "features", None)
    if not isinstance(feats, nn.Sequential):
        return None
    relus = [i for i, m in enumerate(feats) if isinstance(m, nn.ReLU)]
    return f"features.{relus[-1]}" if relus else None


# Known layers by (module of the class, class name). The last spatial feature map before
# global pooling, as the CAMERAS reference uses (VGG: the last ReLU before the last max-pool).
_KNOWN: dict[tuple[str, str], str | object] = {
    ("torchvision.models.resnet", "ResNet"): "layer4",
    ("torchvision.models.densenet", "DenseNet"): "features",
    ("torchvision.models.inception", "Inception3"): "Mixed_7c",
    ("torchvision.models.googlenet", "GoogLeNet"): "inception5b",
    ("torchvision.models.vgg", "VGG"): _vgg_layer,
    ("torchvision.models.efficientnet", "EfficientNet"): "features",
    ("torchvision.models.mobilenetv2", "MobileNetV2"): "features",
    ("torchvision.models.mobilenetv3", "MobileNetV3"): "features",
    ("torchvision.models.convnext", "ConvNeXt"): "features",
    ("timm.models.efficientnet", "EfficientNet"): "bn2",
    ("timm.models.resnet", "ResNet"): "layer4",
    ("timm.models.mobilenetv3", "MobileNetV3"): "blocks",
}


def module_name(model: nn.Module, layer: nn.Module) -> str:
    """The dotted name of ``layer`` inside ``model`` (``""`` for the model itself)."""
    for name, mod in model.named_modules():
        if mod is layer:
            return name
    raise LayerError(
        f"the given layer ({type(layer).__name__}) is not a submodule of the model; pass a "
        "module from model.named_modules() or its name"
    )


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``, or a LayerError listing the closest names."""
    modules = dict(model.named_modules(remove_duplicate=False))
    if name in modules and name != "":
        return modules[name]
    close = difflib.get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise LayerError(
        f"unknown layer '{name}' for {type(model).__name__}.{hint} "
        "`cameras layers MODEL` lists the layers with their output shapes "
        "(in Python: cameras.core.layers.trace_layers(model))."
    )


def known_layer(model: nn.Module) -> str | None:
    """The layer name known for this architecture, or None for unknown architectures."""
    cls = type(model)
    entry = _KNOWN.get((cls.__module__, cls.__name__))
    if entry is None:
        return None
    name = entry(model) if callable(entry) else entry
    if name is None or name not in dict(model.named_modules(remove_duplicate=False)):
        return None
    return name


def trace_layers(model: nn.Module, input_shape: tuple[int, int, int] = (3, 224, 224)) -> list[dict]:
    """Every named submodule that runs in one dummy forward pass, in the order it finishes.

    Returns one dict per module: ``name``, ``type`` (class name), ``shape`` (its output's
    shape for a 1×``input_shape`` input, None when the output is not a tensor), ``calls``
    (how often it ran) and ``spatial`` (a 4-D map with h·w > 1 that could be explained).

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1))
        >>> [(r["name"], r["shape"], r["spatial"]) for r in trace_layers(net, (3, 8, 8))]
        [('0', (1, 4, 6, 6), True), ('1', (1, 4, 1, 1), False)]
    """
    rows: dict[str, dict] = {}
    order: list[str] = []
    handles = []

    def make(name: str, mod: nn.Module):
        def hook(_m, _i, out):
            is_t = isinstance(out, torch.Tensor)
            row = rows.setdefault(name, {"name": name, "type": type(mod).__name__, "calls": 0})
            row["calls"] += 1
            row["shape"] = tuple(out.shape) if is_t else None
            row["spatial"] = is_t and out.dim() == 4 and out.shape[-1] * out.shape[-2] > 1
            if name in order:
                order.remove(name)
            order.append(name)

        return hook

    for name, mod in model.named_modules():
        if name:
            handles.append(mod.register_forward_hook(make(name, mod)))
    try:
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        with frozen_eval(model), torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
    return [rows[n] for n in order]


def probe_layer(model: nn.Module, input_shape: tuple[int, int, int] = (3, 224, 224)) -> str:
    """Find the last module whose output is a spatial 4-D map, by one dummy forward pass.

    Among the modules that run exactly once, the one that finishes last with a
    B×K×h×w output where h·w > 1 (i.e. before global pooling) is chosen.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        >>> probe_layer(net, (3, 16, 16))
        '1'
    """
    for row in reversed(trace_layers(model, input_shape)):
        if row["calls"] == 1 and row["spatial"]:
            return row["name"]
    raise LayerError(
        f"no module of {type(model).__name__} outputs a spatial B×K×h×w map for a "
        f"{input_shape} input; pass layer= explicitly"
    )


def resolve_layer(
    model: nn.Module,
    layer: str | nn.Module | None = None,
    input_shape: tuple[int, int, int] = (3, 224, 224),
) -> tuple[str, nn.Module]:
    """Resolve ``layer`` (name, module or None for automatic) to ``(name, module)``.

    Example:
        >>> import torchvision
        >>> resolve_layer(torchvision.models.resnet18())[0]
        'layer4'
    """
    if layer is None:
        name = known_layer(model) or probe_layer(model, input_shape)
        return name, get_layer(model, name)
    if isinstance(layer, nn.Module):
        return module_name(model, layer), layer
    if isinstance(layer, str):
        return layer, get_layer(model, layer)
    raise LayerError(f"layer must be a name, a module or None, got {type(layer).__name__}")
