"""Compare methods (and models) on one image: a figure, every map as .npy, and a JSON."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .core.errors import LayerError
from .core.ops import resize_maps
from .core.targets import Target, class_scores
from .images import load_image
from .io import encode_json, encode_npy, write_files_atomically
from .methods import build_method
from .models import ModelBundle
from .viz import comparison_figure, figure_png


def slug(text: str) -> str:
    """File-name-safe form of a model or method name.

    Example:
        >>> slug("torchvision:resnet50")
        'torchvision-resnet50'
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def _built(name: str, bundle: ModelBundle, options: dict, models: int):
    """``build_method``, a layer error naming the model when several are compared (one layer option is given to
    every model)."""
    try:
        return build_method(name, bundle, **options)
    except LayerError as e:
        if models == 1:
            raise
        raise LayerError(f"{bundle.name}: {e}; a layer option (--layer, --set {name}.layer) applies to every "
                         "compared model, so compare models that share the layer's name, or leave it out") from None


def compare(
    image_path: str | Path,
    bundles: list[ModelBundle],
    methods: list[str],
    out_png: str | Path,
    target: int | Target | None = None,
    options: dict[str, dict] | None = None,
    square: bool = False,
    alpha: float = 0.5,
    upright: bool = True,
    progress: bool | None = None,
) -> dict:
    """Explain one image with every method on every model; write the figure, maps and JSON.

    The class is ``target`` if given (a class id, or any target of :mod:`cameras.targets`),
    else the first model's top-1, so every row explains the same class. ``options`` holds
    each method's options by method name. ``upright=False`` reads the image as stored, without
    its EXIF rotation (a dataset image, whose annotations are in stored pixels). Writes
    ``out_png``, ``<stem>.<model>.<method>.npy`` beside it (float32
    maps at the image's size) and ``<stem>.json``; all files appear together or not at all.
    A progress bar counts the maps (``progress``: None on a terminal only, True always,
    False never).

    Returns:
        The JSON record (per model: class probability, per method: seconds and map file).
    """
    out_png = Path(out_png)
    img = load_image(image_path, upright)
    rgb = np.asarray(img)
    H, W = img.height, img.width
    files: dict[Path, bytes] = {}
    record: dict = {"image": str(image_path), "size": [H, W], "models": []}
    rows = []
    # build every method first, so that a bad option fails before any slow work
    built = [[_built(n, b, (options or {}).get(n, {}), len(bundles)) for n in methods] for b in bundles]
    record["warnings"] = list(dict.fromkeys(w for m in built[0] if (w := m.convergence_warning())))
    with tqdm(total=len(bundles) * len(methods), desc="compare", unit="map",
              disable=None if progress is None else not progress) as bar:  # closed also when a method raises
        for bundle, bundle_methods in zip(bundles, built):
            x = bundle.prepare(img, square)
            with torch.no_grad():
                top1 = int(class_scores(bundle.model(x)).argmax(1)[0])
            if target is None:
                target = top1
            is_id = not isinstance(target, Target)
            label = bundle.class_name(target) if is_id else target.describe()
            cells, entry = [], {"model": bundle.name, "target": target if is_id else repr(target), "name": label,
                                "methods": {}}
            for name, m in zip(methods, bundle_methods):
                # the model's own top-1 is explained as `cameras explain` does (the scale rule applies)
                res = m(x, target=None if is_id and target == top1 else target)
                sal = resize_maps(res.maps, (H, W))[0].clamp(0, 1).cpu().numpy().astype(np.float32)
                npy = out_png.with_name(f"{out_png.stem}.{slug(bundle.name)}.{name}.npy")
                files[npy] = encode_npy(sal)
                entry["probability"] = float(res.probs[0])
                entry["methods"][name] = {"seconds": res.seconds, "layer": res.layer, "npy": npy.name,
                                          **({"kept_scales": res.kept_scales[0]} if res.kept_scales else {}),
                                          "options": m.options}
                if res.kept_scales and 2 * len(res.kept_scales[0]) < len(res.extras["scales"]):
                    entry["methods"][name]["few_scales"] = True
                if bool(res.all_zero()[0]):  # with the target's facts, which may say why
                    facts = res.target_facts(0)
                    entry["methods"][name].update(all_zero=True, **({"target_facts": facts} if facts else {}))
                cells.append((f"{name}  {res.seconds:.2f} s", sal))
                bar.update(1)
            rows.append({"label": f"{bundle.name}\n{label}: {entry['probability']:.2f}", "cells": cells})
            record["models"].append(entry)
    files[out_png] = figure_png(comparison_figure(rgb, rows, alpha))
    files[out_png.with_suffix(".json")] = encode_json(record)
    write_files_atomically(files)
    return record
