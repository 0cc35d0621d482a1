"""Registry of saliency methods (one line per method) and the one factory that builds them.

The registry names each method's module and class; a class is imported when it is first
used, so listing the methods (``cameras methods``) does not load torch.

Wrapped methods are named ``WRAPPER-METHOD``: ``multiscale-layercam`` (:class:`MultiScale`
around LayerCAM), ``smooth-gradcam`` (:class:`Smooth`, noise) and ``tta-gradcam``
(:class:`Smooth` with ``augment="tta"``). They are accepted wherever a method name is
(``build_method``, ``cameras explain/compare/evaluate --method(s)``) and take the options
of the wrapper and of the wrapped method together; a wrapped method's option that has a
wrapper option's name is ``method_<name>`` (``smooth-rise``: ``seed`` seeds the noise,
``method_seed`` RISE's masks). Wrappers are not nested by name.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib
import inspect
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..core.errors import CamerasError, InputError
from ..lazy import lazy_exports

if TYPE_CHECKING:
    from ..core.base import SaliencyMethod

_REGISTRY: dict[str, str] = {  # name → "module:Class" in this package
    "cameras": "cameras:CAMERAS",
    "gradcam": "gradcam:GradCAM",
    "gradient": "gradient:Gradient",
    "normgrad": "normgrad:NormGrad",
    "rise": "rise:RISE",
    "extremal": "extremal:ExtremalPerturbation",
    "gradcampp": "gradcampp:GradCAMPlusPlus",
    "xgradcam": "xgradcam:XGradCAM",
    "layercam": "layercam:LayerCAM",
    "hirescam": "hirescam:HiResCAM",
    "scorecam": "scorecam:ScoreCAM",
}
_CLASSES = {cls: f".{mod}" for mod, cls in (v.split(":") for v in _REGISTRY.values())}
_CLASSES.update({"MultiScale": ".multiscale", "Smooth": ".smooth"})  # wrappers of a built method
__getattr__, __dir__ = lazy_exports(__name__, _CLASSES)
# name prefix → (module:Class of the wrapper, options it sets itself)
_WRAPPERS: dict[str, tuple[str, dict[str, Any]]] = {
    "multiscale": ("multiscale:MultiScale", {}),
    "smooth": ("smooth:Smooth", {"augment": "noise"}),
    "tta": ("smooth:Smooth", {"augment": "tta"}),
}


def available_methods() -> list[str]:
    """Names accepted by :func:`build_method` and ``cameras explain --method``.

    Example:
        >>> "cameras" in available_methods()
        True
    """
    return list(_REGISTRY)


def fastest_first(names: list[str]) -> list[str]:
    """``names`` ordered by the typical cost of one image (``passes``), fastest first; ties keep their order.

    Example:
        >>> fastest_first(["extremal", "cameras", "gradcam"])
        ['gradcam', 'cameras', 'extremal']
    """
    return sorted(names, key=lambda n: method_class(n).passes)


def method_class(name: str) -> type[SaliencyMethod]:
    """The class registered under ``name`` (case-insensitive, ``-``/``_`` ignored), or a clear InputError.

    Example:
        >>> method_class("Grad-CAM").__name__
        'GradCAM'
    """
    wrapped = re.fullmatch(r"\s*(multiscale|smooth|tta)[-:+_](.+)", str(name).lower())
    if wrapped:
        inner = method_class(wrapped.group(2)).name
        if inner not in _REGISTRY:
            raise InputError(f"'{name}' nests wrappers, which have no names; build it in Python, e.g. "
                             "cameras.Smooth(cameras.MultiScale(cameras.LayerCAM(model)))")
        return _wrapped_class(wrapped.group(1), inner)
    key = str(name).lower().strip().replace("-", "").replace("_", "")
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, list(_REGISTRY), n=3)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise InputError(f"unknown method '{name}'.{hint} Available: {', '.join(_REGISTRY)}")
    module, cls = _REGISTRY[key].split(":")
    return getattr(importlib.import_module(f".{module}", __name__), cls)


@functools.cache
def _wrapped_class(prefix: str, inner_name: str) -> type[SaliencyMethod]:
    """A class named ``PREFIX-INNER`` whose constructor builds the inner method and wraps it."""
    module, cls = _REGISTRY[inner_name].split(":")
    inner = getattr(importlib.import_module(f".{module}", __name__), cls)
    (wmod, wcls), fixed = _WRAPPERS[prefix][0].split(":"), _WRAPPERS[prefix][1]
    wrapper = getattr(importlib.import_module(f".{wmod}", __name__), wcls)
    if prefix == "multiscale" and not getattr(inner, "local_weights", False):
        raise InputError(f"multiscale-{inner_name} is not available: MultiScale accumulates CAMs with per-location "
                         "weights only; use multiscale-layercam or multiscale-hirescam (which is cameras)")

    def params(c, skip):
        return [p for n, p in inspect.signature(c.__init__).parameters.items() if n not in skip]

    wrap_params = [p for p in params(wrapper, ("self", "method")) if p.name not in fixed]
    wrap_names = {p.name for p in wrap_params}
    # MultiScale reads only the CAM's weights: the CAM's own speed options (its forward pass's channels-last
    # and folding, which MultiScale has for its passes) would be dummies, so they are not offered
    skip = ("self", "model", *(inner.neutral_options if prefix == "multiscale" else ()))
    # an inner option with a wrapper option's name (smooth-rise: seed, batch_size) is method_<name>
    inner_ps = params(inner, skip)
    inner_names = {("method_" + p.name if p.name in wrap_names else p.name): p.name for p in inner_ps}
    inner_params = [p.replace(name=n) for n, p in zip(inner_names, inner_ps)]
    sig = inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                             inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
                            + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in inner_params + wrap_params])

    def __init__(self, model, **options):
        inner_opts = {inner_names[k]: v for k, v in options.items() if k in inner_names}
        wrapper.__init__(self, inner(model, **inner_opts),
                         **fixed, **{k: v for k, v in options.items() if k in wrap_names})

    __init__.__signature__ = sig
    return type(f"{wrapper.__name__}_{inner.__name__}", (wrapper,),
                {"__init__": __init__, "name": f"{prefix}-{inner_name}", "__module__": wrapper.__module__,
                 "__doc__": f"{wrapper.__name__} around {inner.__name__} (``{prefix}-{inner_name}``).",
                 "passes": inner.passes * {"multiscale": 8, "smooth": 16, "tta": 6}[prefix]})


def method_names(spec: str | Iterable[str]) -> list[str]:
    """Registry names from ``"all"``, a comma list (``"cameras,gradcam"``) or a list; checked.

    Example:
        >>> method_names("cameras, Grad-CAM")
        ['cameras', 'gradcam']
    """
    if isinstance(spec, str):
        if spec.strip().lower() == "all":
            return available_methods()
        spec = spec.split(",")
    names = [method_class(m).name for m in spec if str(m).strip()]
    if not names:
        raise InputError("no method given; name one or more of: " + ", ".join(_REGISTRY))
    return list(dict.fromkeys(names))


def method_option_names(name: str) -> list[str]:
    """The options method ``name`` takes (its constructor's arguments after the model).

    Example:
        >>> method_option_names("gradient")
        []
    """
    cls = method_class(name)
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "model")]


def parse_option_strings(items: Iterable[str] | None, per_method: bool = False) -> dict[str, Any]:
    """``["n_masks=500", "p=0.2"]`` → {"n_masks": 500, "p": 0.2}; with ``per_method``,
    ``["rise.n_masks=500"]`` → {"rise": {"n_masks": 500}} (method names checked).

    Values are Python literals when they parse as one, else text; a ``layer`` that reads as a number
    stays text (the layer ``0.10`` of a Sequential is no number), while a quoted name, a list of
    names (NormGrad's) and None keep their literal meaning.

    Example:
        >>> parse_option_strings(["rise.n_masks=8", "extremal.area=0.1"], per_method=True)
        {'rise': {'n_masks': 8}, 'extremal': {'area': 0.1}}
        >>> parse_option_strings(["layer=0.10"]), parse_option_strings(["layer=['0.3', '0.5']"])
        ({'layer': '0.10'}, {'layer': ['0.3', '0.5']})
    """
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"'{item}' is not KEY=VALUE")
        key = key.strip()
        try:
            value: Any = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        if key.rpartition(".")[2] == "layer" and not (value is None or isinstance(value, (str, list, tuple))):
            value = raw.strip()
        if per_method:
            meth, dot, opt = key.partition(".")
            if not dot:
                raise InputError(f"'{item}' must be METHOD.KEY=VALUE, e.g. rise.n_masks=500")
            out.setdefault(method_class(meth).name, {})[opt] = value
        else:
            out[key] = value
    return out


def check_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` if method ``name`` takes every one of them, else InputError naming the unknown ones.

    Example:
        >>> check_options("rise", {"n_masks": 10})
        {'n_masks': 10}
    """
    allowed = method_option_names(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        cls = method_class(name)
        raise InputError(f"method {cls.name} has no option {', '.join(repr(u) for u in unknown)}; "
                         f"valid options: {', '.join(allowed) or 'none'}")
    return options


def build_method(name: str, model: Any, **options) -> SaliencyMethod:
    """Build saliency method ``name`` on a model or a :class:`~cameras.ModelBundle`.

    The only place methods are built from names: the command line, ``compare``,
    ``evaluate``, the attacks and the app all come here. With a bundle, layer methods get
    its recommended layer and CAMERAS its input size as ``base_size`` unless ``options``
    say otherwise. Unknown options raise :class:`~cameras.InputError` naming them and
    listing the valid ones; ``scales`` may be text (``"224,324"`` or ``"224:1000:100"``).

    Args:
        name: a registry name (see :func:`available_methods`), case-insensitive.
        model: an ``nn.Module`` classifier or a bundle from :func:`cameras.load_model`.
        **options: the method's constructor options.

    Example:
        >>> import torchvision
        >>> build_method("cameras", torchvision.models.resnet18(), scales="224,324").scales
        [224, 324]
    """
    from torch import nn

    cls = method_class(name)
    check_options(cls.name, options)
    opts: dict[str, Any] = {}
    if not isinstance(model, nn.Module) and hasattr(model, "model"):  # a ModelBundle
        allowed = method_option_names(cls.name)
        if "layer" in allowed and getattr(model, "layer", None) is not None:
            opts["layer"] = model.layer
        if "base_size" in allowed and getattr(model, "input_size", None):
            opts["base_size"] = int(model.input_size)
        model = model.model
    opts.update(options)
    try:
        return cls(model, **opts)
    except CamerasError:
        raise
    except (TypeError, ValueError) as e:  # a value of the wrong kind that no check named
        if not options:
            raise
        given = ", ".join(f"{k}={v!r}" for k, v in options.items())
        raise InputError(f"{cls.name} cannot take these options ({given}): {e}; give each option a value of the kind "
                         f"its default has (help(cameras.{cls.__name__}) lists them)") from None


def get_method(name: str, model: Any, **options) -> SaliencyMethod:
    """The same as :func:`build_method` (kept for code written against the first version).

    Example:
        >>> import torchvision
        >>> get_method("gradcam", torchvision.models.resnet18()).name
        'gradcam'
    """
    return build_method(name, model, **options)


__all__ = [
    "CAMERAS",
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
    "available_methods",
    "build_method",
    "check_options",
    "get_method",
    "method_class",
    "method_names",
    "method_option_names",
    "parse_option_strings",
]
