"""Find the layer to explain: by name, by module, by architecture, or by a dummy forward."""

from __future__ import annotations

import difflib

import torch
from torch import nn

from .errors import LayerError
from .guard import frozen_eval, model_lock
from .layouts import Layout, any_input_size
from .targets import model_logits


def _vgg_layer(model: nn.Module) -> str | None:
    feats = getattr(model, "features", None)
    if not isinstance(feats, nn.Sequential):
        return None
    relus = [i for i, m in enumerate(feats) if isinstance(m, nn.ReLU)]
    return f"features.{relus[-1]}" if relus else None


def _torchvision_vit_layer(model: nn.Module) -> str | None:
    layers = getattr(getattr(model, "encoder", None), "layers", None)
    # the last block's first norm, as timm's ViT (blocks.<last>.norm1): its tokens, before the block mixes them
    return f"encoder.layers.{list(layers.named_children())[-1][0]}.ln_1" if isinstance(layers, nn.Sequential) else None


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
    ("torchvision.models.vision_transformer", "VisionTransformer"): _torchvision_vit_layer,
    ("timm.models.vgg", "VGG"): _vgg_layer,
    ("timm.models.efficientnet", "EfficientNet"): "bn2",
    ("timm.models.resnet", "ResNet"): "layer4",
    ("timm.models.mobilenetv3", "MobileNetV3"): "blocks",
}


def _backbone_layer(model: nn.Module) -> str | None:
    """Segmentation and detection models: the last feature map of their ``backbone``.

    torchvision FCN, DeepLabV3 and LRASPP keep their backbone's layers up to the last one
    they read (``backbone.layer4`` for ResNets, ``backbone.16`` for MobileNetV3). FPN
    detectors (Faster R-CNN, RetinaNet, FCOS) get ``backbone.body.<last>`` (C5, ResNet's
    ``layer4``): the one map that every pyramid level reads (through the top-down pathway),
    so the gradient of any detection reaches it whatever level its box was pooled from; the
    finer levels also read earlier stages, which a map at C5 does not show. SSD detectors
    get the last module of ``backbone.features``, the trunk their extra feature maps are computed from.
    """
    bb = getattr(model, "backbone", None)
    if not isinstance(bb, nn.Module):
        return None
    prefix = "backbone"
    if isinstance(getattr(bb, "body", None), nn.Module) and hasattr(bb, "fpn"):
        bb, prefix = bb.body, "backbone.body"
    elif isinstance(getattr(bb, "features", None), nn.Module) and hasattr(bb, "extra"):
        bb, prefix = bb.features, "backbone.features"  # SSD: the trunk every extra feature map is computed from
    if not isinstance(bb, (nn.ModuleDict, nn.Sequential)):
        return None
    names = [n for n, _ in bb.named_children()]
    return f"{prefix}.{names[-1]}" if names else None


def _segformer_layer(model: nn.Module) -> str | None:
    """SegFormer's last encoder stage: ``segformer.stages.3`` (a B×C×h×w map; transformers 5) or, in
    older transformers, the last stage's norm ``segformer.encoder.layer_norm.3`` (tokens)."""
    enc = getattr(model, "segformer", None)
    stages = getattr(enc, "stages", None)
    if isinstance(stages, nn.ModuleList) and len(stages):
        return f"segformer.stages.{len(stages) - 1}"
    norms = getattr(getattr(enc, "encoder", None), "layer_norm", None)
    return f"segformer.encoder.layer_norm.{len(norms) - 1}" if isinstance(norms, nn.ModuleList) and len(norms) else None


_SEG_DET_MODULES = ("torchvision.models.segmentation.", "torchvision.models.detection.")
_KNOWN[("transformers.models.segformer.modeling_segformer", "SegformerForSemanticSegmentation")] = _segformer_layer


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
    """The layer name known for this architecture, or None for unknown architectures.

    Classifiers: the last spatial feature map before global pooling. Segmentation and
    detection models (torchvision's, and any model with ``task = "segmentation"`` or
    ``"detection"`` and a ``backbone``): the backbone's last feature map; Hugging Face
    SegFormer: its encoder's last stage (``segformer.stages.3``).

    Example:
        >>> import torchvision
        >>> known_layer(torchvision.models.detection.fcos_resnet50_fpn(weights_backbone=None))
        'backbone.body.layer4'
    """
    cls = type(model)
    entry = _KNOWN.get((cls.__module__, cls.__name__))
    if entry is None and (cls.__module__.startswith(_SEG_DET_MODULES) or getattr(model, "task", None)
                          in ("segmentation", "detection")):
        entry = _backbone_layer
    if entry is None:
        return None
    name = entry(model) if callable(entry) else entry
    if name is None or name not in dict(model.named_modules(remove_duplicate=False)):
        return None
    return name


def trace_layers(model: nn.Module, input_shape: tuple[int, int, int] = (3, 224, 224),
                 layout: Layout | None = None) -> list[dict]:
    """Every named submodule that runs in one dummy forward pass, in the order it finishes.

    Returns one dict per module: ``name``, ``type`` (class name), ``shape`` (its output's
    shape for a 1×``input_shape`` input, None when the output is not a tensor), ``calls``
    (how often it ran), ``layout`` (``"nchw"``, ``"nhwc"``, ``"tokens"`` or None, see
    :class:`~cameras.core.layouts.Layout`; by default the model's own) and ``spatial`` (a
    map with h·w > 1 could be made of it: a B×K×h×w map, channels-last map or token sequence).
    Transformers run at the given size through :func:`~cameras.core.layouts.any_input_size`.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1))
        >>> [(r["name"], r["shape"], r["spatial"]) for r in trace_layers(net, (3, 8, 8))]
        [('0', (1, 4, 6, 6), True), ('1', (1, 4, 1, 1), False)]
    """
    layout = layout or Layout.of(model)
    layout = Layout(layout.prefix, layout.channels_last, (int(input_shape[1]), int(input_shape[2])), layout.patch)
    rows: dict[str, dict] = {}
    order: list[str] = []
    handles = []

    def make(name: str, mod: nn.Module):
        def hook(_m, _i, out):
            is_t = isinstance(out, torch.Tensor)
            row = rows.setdefault(name, {"name": name, "type": type(mod).__name__, "calls": 0})
            row["calls"] += 1
            row["shape"] = tuple(out.shape) if is_t else None
            kind = layout.kind(tuple(out.shape)) if is_t else None
            row["layout"] = kind
            if is_t and out.dim() == 4 and kind != "nhwc":  # feature maps, as always: any 4-D map with h·w > 1
                row["spatial"] = out.shape[-1] * out.shape[-2] > 1
            else:
                row["spatial"] = kind in ("nhwc", "tokens") and layout.spatial_size(tuple(out.shape)) > 1
            if name in order:
                order.remove(name)
            order.append(name)

        return hook

    with model_lock(model):  # the hooks see this pass only, not another thread's call on the model
        for name, mod in model.named_modules():
            if name:
                handles.append(mod.register_forward_hook(make(name, mod)))
        try:
            with frozen_eval(model), any_input_size(model), torch.no_grad():
                model(_dummy(model, input_shape, random=False))
        finally:
            for h in handles:
                h.remove()
    return [rows[n] for n in order]


def _dummy(model: nn.Module, input_shape: tuple[int, int, int], random: bool = True) -> torch.Tensor:
    """A seeded random (or all-zero) 1×input_shape input on the model's device and dtype."""
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    if not random:
        return torch.zeros(1, *input_shape, device=device, dtype=dtype)
    g = torch.Generator().manual_seed(0)
    return torch.randn(1, *input_shape, generator=g).to(device=device, dtype=dtype)


def inside_attention(model: nn.Module, name: str) -> bool:
    """Whether module ``name`` is an attention module or lies inside one (``attn``, ``attention``,
    or a class named ``*Attention*``): its output is not a token map to explain.

    Example:
        >>> import timm
        >>> vit = timm.create_model("vit_tiny_patch16_224", pretrained=False)
        >>> inside_attention(vit, "blocks.11.attn.k_norm"), inside_attention(vit, "blocks.11.norm1")
        (True, False)
    """
    mods = dict(model.named_modules())
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        mod = mods.get(".".join(parts[:i]))
        if parts[i - 1] in ("attn", "attention", "self_attn"):
            return True
        if mod is not None and "Attention" in type(mod).__name__:
            return True
    return False


def _last_with_gradient(model: nn.Module, names: list[str], input_shape: tuple[int, int, int],
                        layout: Layout) -> str | None:
    """The last of ``names`` whose spatial positions receive a non-zero gradient of the top-1 logit
    (one forward and backward pass with a seeded random input), or None."""
    with model_lock(model):  # the hooks see this pass only, not another thread's call on the model
        return _probe_gradients(model, names, input_shape, layout)


def _probe_gradients(model: nn.Module, names: list[str], input_shape: tuple[int, int, int],
                     layout: Layout) -> str | None:
    mods = dict(model.named_modules())
    outs: dict[str, torch.Tensor] = {}
    handles = [mods[n].register_forward_hook(lambda _m, _i, o, n=n: outs.__setitem__(n, o)) for n in names]
    layout = Layout(layout.prefix, layout.channels_last, (int(input_shape[1]), int(input_shape[2])), layout.patch)
    try:
        x = _dummy(model, input_shape).requires_grad_(True)
        with frozen_eval(model), any_input_size(model), torch.enable_grad():
            score = model_logits(model(x))[0].max()
            got = [n for n in names if n in outs and outs[n].requires_grad]
            grads = torch.autograd.grad(score, [outs[n] for n in got], allow_unused=True)
    except RuntimeError as e:  # e.g. an in-place operation after a candidate: no gradient probe possible
        if "inplace" not in str(e):
            raise
        return None
    finally:
        for h in handles:
            h.remove()
    for n, g in reversed(list(zip(got, grads))):
        if g is not None and bool(layout.to_map(g).abs().sum() > 0) and layout.kind(tuple(g.shape)) is not None:
            return n
    return None


def probe_layer(model: nn.Module, input_shape: tuple[int, int, int] = (3, 224, 224)) -> str:
    """Find the layer to explain by a dummy forward pass at the input's size.

    Among the modules that run exactly once, the one that finishes last with a spatial output
    is chosen: for convolutional networks a B×K×h×w map with h·w > 1 (before global pooling).
    When that last output is a token sequence or a channels-last map (transformers), modules
    inside attention are skipped and the last one whose spatial positions receive a gradient
    of the top-1 logit is chosen (one backward pass): after the final norm of a class-token
    ViT only the class token reaches the head, so the patch tokens' gradients there are zero,
    and the choice falls on the last block's first norm (the input of its attention, through
    which the class token reads the patches).

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
        ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        >>> probe_layer(net, (3, 16, 16))
        '1'
        >>> import timm
        >>> probe_layer(timm.create_model("vit_tiny_patch16_224", pretrained=False), (3, 224, 224))
        'blocks.11.norm1'
    """
    layout = Layout.of(model)
    rows = [r for r in trace_layers(model, input_shape, layout) if r["calls"] == 1 and r["spatial"]]
    if rows and rows[-1]["layout"] not in ("nhwc", "tokens"):
        return rows[-1]["name"]
    names = [r["name"] for r in rows if not inside_attention(model, r["name"])]
    found = _last_with_gradient(model, names, input_shape, layout) if names else None
    if found is not None:
        return found
    raise LayerError(
        f"no module of {type(model).__name__} outputs a spatial map (B×K×h×w, B×h×w×C or tokens) that the "
        f"top-1 logit depends on, for a {input_shape} input; pass layer= explicitly "
        "(`cameras layers MODEL` lists the layers with their output shapes)"
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
