"""Explain image files end to end: read, batch, explain, write overlays, maps and JSON."""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .core.base import SaliencyMethod
from .core.errors import CamerasError, ImageError, LayerError
from .core.ops import resize_maps
from .core.targets import RankTarget, Target, label_target, logits_or_none
from .images import image_size, load_image
from .io import encode_json, encode_npy, unique_stems, write_files_atomically
from .models import ModelBundle
from .viz import (
    DEFAULT_FADE,
    encode_png,
    explanation_figure,
    figure_png,
    file_label,
    outline,
    overlay,
    zero_map_note,
)


@dataclass
class ImageOutcome:
    """What happened to one input file: the files written, or the error."""

    path: Path
    files: list[Path] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    skipped: bool = False  # its files were already there, made with the same settings


def explain_images(
    paths: list[Path],
    bundle: ModelBundle,
    method: SaliencyMethod,
    out_dir: Path,
    targets: list[int | Target] | None = None,
    topk: int = 1,
    batch_size: int = 1,
    square: bool = False,
    alpha: float = 0.5,
    params: dict | None = None,
    progress: bool | None = None,
    target_kind: str = "class",
    plain: bool = False,
    cmap: str = "jet",
    fade: float = DEFAULT_FADE,
    target_for: Callable[[Image.Image, torch.Tensor], Target] | None = None,
    skip_done: bool = False,
) -> list[ImageOutcome]:
    """Explain every image file and write ``<stem>.<method>.<class>.{png,npy}`` and ``<stem>.json``.

    Images with the same model-input size are batched (up to ``batch_size``). With
    ``targets`` each listed class (or :mod:`cameras.targets` target) is explained; otherwise
    the top ``topk`` classes, the first without a target (for CAMERAS: under its ``scale_rule``,
    by default every scale kept), the others as explicit targets. Each image's files are written
    atomically after all its maps exist; a failing image gets an error and no files, and the
    others go on. ``target_kind`` (``"class"``, ``"sigmoid"`` for multi-label or binary
    models, ``"softmax"``) says how class ids are explained (see :mod:`cameras.targets`).
    ``target_for(image, x)`` (segmentation and detection) builds each image's target from
    the PIL image and its 1×3×h×w model input (e.g. a :class:`~cameras.RegionTarget` or
    :class:`~cameras.BoxTarget` in the input's pixels); the picture then outlines the region
    or box, and the JSON states the target's facts (the region's share of the image, the
    matched detection). With ``skip_done`` an image whose ``<stem>.json`` in ``out_dir`` was
    written for the same file, model, method, layer and settings (:func:`result_settings`: ``params``
    and the method's options, without those that cannot change a map; and this call's targets,
    ``topk``, ``square``, ``target_kind`` and picture options; ``target_for`` is compared only as
    ``params`` describe it), and whose maps are all there, is left as it is (``outcome.skipped``):
    a rerun after an interruption goes on where it stopped. A
    :class:`~cameras.core.errors.LayerError` (a layer with no spatial output, say) before any
    image is explained stops the run, since every image would fail alike; once one image is
    explained it fails its batch only.

    Returns:
        One :class:`ImageOutcome` per path, in order.
    """
    out_dir = Path(out_dir)
    outcomes = [ImageOutcome(Path(p)) for p in paths]
    stems = unique_stems([o.path for o in outcomes])
    # what a rerun must share to skip an image: the parameters and method options that decide the maps, and
    # this call's own choices of classes and picture
    settings = {**result_settings(params, method), "output": json.loads(encode_json({
        "targets": None if not targets else [t if isinstance(t, int) else repr(t) for t in targets],
        "topk": None if targets else topk, "square": square, "alpha": alpha, "target_kind": target_kind,
        "plain": plain, "cmap": cmap, "fade": fade}))}
    if skip_done:
        same = {"model": bundle.name, "method": method.name, "layer": getattr(method, "layer_name", None),
                "settings": settings}
        legacy = json.loads(encode_json(params or {}))  # a record from before `settings`: all parameters
        for o, stem in zip(outcomes, stems):
            done = _finished(o.path, out_dir / f"{stem}.json", same, legacy)
            if done:
                o.files, o.skipped = done, True
    disable = None if progress is None else not progress

    def failed(o: ImageOutcome, e: Exception) -> None:
        if isinstance(e, CamerasError):
            o.error = e.args[0] if str(o.path) in str(e) else f"{o.path}: {e}"
        else:  # the model or a target failed on this image: the others go on
            o.error = f"{o.path}: {type(e).__name__}: {e}"

    def load(i: int, shape: tuple) -> tuple | None:
        """Image i, its model input and its target; None (and the image's error) when it cannot be explained
        (``shape``: its input's shape from the file's header)."""
        o = outcomes[i]
        try:
            img = load_image(o.path)
            x = bundle.prepare(img, square)
            if tuple(x.shape) != shape:
                raise ImageError(f"{o.path}: the file changed while the folder was explained (its input is "
                                 f"{tuple(x.shape[-2:])}, it was {shape[-2:]}); run it again")
            # a region or box in this image's own pixels: a bad one fails this image only
            return img, x, None if target_for is None else target_for(img, x).for_batch(1, x.device)
        except (CamerasError, RuntimeError, OSError) as e:
            failed(o, e)
        return None

    # first only each image's input size, from its header (to batch equal sizes): memory holds one batch of
    # images, not the folder, and each image is decoded once, when its batch runs
    groups: dict[tuple, list[int]] = defaultdict(list)
    shapes: dict[int, tuple] = {}
    todo = [i for i, o in enumerate(outcomes) if not o.skipped]
    for i in tqdm(todo, desc="reading", unit="img", leave=False, disable=disable if len(todo) > 1 else True):
        try:
            shapes[i] = (1, 3, *bundle.input_hw(*image_size(outcomes[i].path), square))
            groups[shapes[i]].append(i)
        except CamerasError as e:
            failed(outcomes[i], e)
    batches = [idx[j : j + batch_size] for idx in groups.values() for j in range(0, len(idx), batch_size)]
    bar = tqdm(total=sum(map(len, batches)), desc=f"explain ({method.name})", unit="img", disable=disable)
    try:
        loaded: dict[int, tuple] = {}
        for planned in batches:
            loaded.clear()  # the last batch's images go before this one's are read
            shape = shapes[planned[0]]
            loaded.update((i, item) for i in planned if (item := load(i, shape)) is not None)
            batch = [i for i in planned if i in loaded]  # a file changed since it was first read: its own error
            if not batch:
                bar.update(len(planned))
                continue
            try:
                _explain_batch(batch, loaded, outcomes, stems, bundle, method, out_dir, targets, topk, alpha, params,
                               settings, target_kind, (plain, cmap, fade))
            except (CamerasError, RuntimeError, OSError) as e:  # e.g. out of memory, an unwritable file
                # a LayerError before any image is explained is the layer's (no spatial output, say): every
                # image would fail alike, so the run stops; after one worked it is this batch's own (its grid)
                if isinstance(e, LayerError) and not any(o.files for o in outcomes):  # (skipped ones: worked)
                    raise
                what = str(e) if isinstance(e, CamerasError) else f"{type(e).__name__}: {e}"
                for i in batch:
                    if outcomes[i].files or outcomes[i].error:  # written, or failed on its own, before: kept
                        continue
                    outcomes[i].error = f"{outcomes[i].path}: {what}"
            bar.update(len(planned))
    finally:
        bar.close()
    return outcomes


def _explain_batch(batch, loaded, outcomes, stems, bundle, method, out_dir, targets, topk, alpha, params, settings,
                   kind, look):
    x = torch.cat([loaded[i][1] for i in batch])
    parts = [loaded[i][2] for i in batch]
    dense = parts[0] is not None
    if dense:  # one target per image, in its own pixels, joined into the batch's
        targets = [parts[0].join(parts) if len(parts) > 1 else parts[0]]

    def as_kind(ids):  # class ids as the chosen kind of target (ints stay ints for class logits)
        return ids if kind == "class" else label_target(kind, ids)

    fixed = [t if isinstance(t, Target) else as_kind(torch.full((len(batch),), t, dtype=torch.long, device=x.device))
             for t in targets or []]
    if kind == "class":
        # every class from one call: CAMERAS shares its forward passes among them (one per scale);
        # without targets, the top-1 (the method's own rule) and the classes at ranks 1 … K-1
        k = max(1, min(topk, bundle.num_classes or topk))
        results = method.explain_targets(x, fixed or [None, *(RankTarget(r) for r in range(1, k))])
    else:
        # the first explanation's own forward pass gives the class probabilities (no extra pass)
        results = [method(x, target=fixed[0] if fixed else label_target(kind))]
    pre_seconds = 0.0
    logits = results[0].logits
    if logits is None and not dense:  # a method that does not report its logits
        start = time.perf_counter()
        with torch.no_grad():
            logits = logits_or_none(bundle.model(x))
        pre_seconds = time.perf_counter() - start
    if logits is None:  # the model's output holds no class scores: no top-k list
        if not fixed:
            raise CamerasError("the model's output holds no B×classes scores, so there is no top-1 to explain; "
                               "give the targets to explain")
        top_p = top_i = torch.zeros(len(batch), 0)
    else:
        top_p, top_i = logits.float().softmax(1).topk(max(1, min(topk, logits.shape[1])), dim=1)
    if kind != "class":
        specs = fixed[1:] if fixed else [as_kind(top_i[:, r].contiguous()) for r in range(1, top_i.shape[1])]
        results += [method(x, target=s) for s in specs]
    for b, i in enumerate(batch):
        img = loaded[i][0]
        H, W = img.height, img.width
        stem = stems[i]
        files: dict[Path, bytes] = {}
        record = {
            "image": str(outcomes[i].path),
            "image_file": str(outcomes[i].path.resolve()),  # a rerun may type the path another way
            "size": [H, W],
            "input_size": list(x.shape[-2:]),
            "model": bundle.name,
            "method": method.name,
            "layer": getattr(method, "layer_name", None),
            "parameters": params or {},
            "settings": settings,  # what a rerun must share to skip this image
            "topk": [
                {"class": int(c), "name": bundle.class_name(int(c)), "wnid": _wnid(bundle, int(c)),
                 "probability": float(p)}
                for p, c in zip(top_p[b].tolist(), top_i[b].tolist())
            ],
            "explanations": [],
            "seconds": pre_seconds / len(batch),
        }
        for j, res in enumerate(results):
            cls = int(res.targets[b])
            full = resize_maps(res.maps[b : b + 1], (H, W))[0].clamp(0, 1)
            sal = full.detach().cpu().numpy().astype(np.float32)
            name = bundle.class_name(cls) if cls >= 0 else res.target.describe()
            label = file_label(name) if cls >= 0 and name != str(cls) else ""
            base = f"{stem}.{method.name}.{cls if cls >= 0 else f'target{j}'}{'-' + label if label else ''}"
            if out_dir / f"{base}.npy" in files:  # two targets on one label (e.g. both sides of a binary model)
                base = f"{base}-{j}"
            files[out_dir / f"{base}.png"] = _picture(np.asarray(img), sal, res, b, name, cls, method.name, alpha, look,
                                                      tuple(x.shape[-2:]))
            files[out_dir / f"{base}.npy"] = encode_npy(sal)
            entry = res.item(b)
            if res.kept_scales is not None and 2 * len(res.kept_scales[b]) < len(res.extras["scales"]):
                entry["few_scales"] = True
                outcomes[i].warnings.append(
                    f"{outcomes[i].path}: {method.name} used {len(res.kept_scales[b])} of {len(res.extras['scales'])} "
                    f"scales for {name} (its prediction changes at the others), so the map is close to a "
                    "single-scale one; --scale-rule all (the default) keeps every scale")
            facts = res.target_facts(b)
            if facts:
                entry["target_facts"] = facts
            if bool(res.all_zero()[b]):  # a blank picture needs a reason
                entry["all_zero"] = True
                note = zero_map_note(method.name, name, res.layer, facts=entry.get("target_facts"))
                outcomes[i].warnings.append(f"{outcomes[i].path}: {note}")
            entry.update(name=name, wnid=_wnid(bundle, cls), png=f"{base}.png", npy=f"{base}.npy")
            record["explanations"].append(entry)
            record["seconds"] += entry["seconds"]
        files[out_dir / f"{stem}.json"] = encode_json(record)
        try:
            write_files_atomically(files)
        except OSError as e:  # this image's files cannot be written (none it created are left); the others can
            outcomes[i].error = f"{outcomes[i].path}: {type(e).__name__}: {e}"
            continue
        outcomes[i].files = list(files)


NEUTRAL_PARAMS = ("batch_size", "device", "method_options")  # speed, memory and where it ran: the same maps


def result_settings(params: dict | None, method) -> dict:
    """The parameters that decide an explanation's maps and pictures, JSON-ready: ``params`` without
    :data:`NEUTRAL_PARAMS` and without copies of the method's options, and the method's options without
    those that cannot change a map (its ``result_options()``), so a rerun with another batch size,
    device or progress bar goes on.

    Example:
        >>> import torchvision
        >>> from cameras.methods import GradCAM
        >>> cam = GradCAM(torchvision.models.resnet18(), fold_batchnorm=True)
        >>> result_settings({"batch_size": 8, "alpha": 0.5, "fold_batchnorm": True}, cam)
        {'alpha': 0.5, 'method_options': {'layer': None, 'to_spatial': None}}
    """
    kept = {k: v for k, v in (params or {}).items() if k not in NEUTRAL_PARAMS and k not in method.options}
    return json.loads(encode_json({**kept, "method_options": method.result_options()}))


def _finished(path: Path, record_file: Path, same: dict, legacy: dict | None = None) -> list[Path] | None:
    """The files of ``path``'s finished explanation in ``record_file``'s folder, when its record matches ``same``
    (model, method, layer, settings) and every map it lists exists; else None. A record written before records
    kept ``settings`` matches when its ``parameters`` equal ``legacy`` (the parameters given), as then."""
    record = _read_record(record_file)
    if record is None:
        return None
    if "settings" not in record and legacy is not None:
        same = {**{k: v for k, v in same.items() if k != "settings"}, "parameters": legacy}
    if any(record.get(k) != v for k, v in same.items()):
        return None
    # the same file however the path is typed (records written before `image_file` compare the typed path)
    key, want = ("image_file", str(path.resolve())) if "image_file" in record else ("image", str(path))
    if record.get(key) != want:
        return None
    files = _record_files(record, record_file.parent)
    if not files or not all(f.is_file() for f in files):
        return None
    return [*files, record_file]


_OUTPUT_NAME = re.compile(r"\.(?P<method>[a-z0-9-]+)\.(?:\d+|target\d+)(?:-[a-z0-9_]+)?(?:-\d+)?\.png$")


RECORD_MAX_BYTES = 4 << 20  # an explain record is kilobytes; a larger JSON beside the images is something else


def written_outputs(out_dir: Path, by_name: bool = True) -> set[Path]:
    """The pictures and maps in ``out_dir`` that explain made (resolved paths): those its ``<stem>.json``
    records list, and (``by_name``) pictures named ``<stem>.<method>.<class>[-<name>].png`` after a
    registered method (an earlier method's, whose record a later one replaced), so that a folder
    explained into itself does not explain its own outputs next time. JSON files over 4 MB are not read.

    Example:
        >>> written_outputs(Path("no-such-folder"))
        set()
    """
    from .methods import method_class

    found: set[Path] = set()
    if not Path(out_dir).is_dir():
        return found
    for f in Path(out_dir).glob("*.png") if by_name else ():
        m = _OUTPUT_NAME.search(f.name)
        if m:
            try:
                method_class(m["method"])
            except CamerasError:
                continue
            found.add(f.resolve())
    for record_file in Path(out_dir).glob("*.json"):
        record = _read_record(record_file)
        if record is not None:
            found.update(f.resolve() for f in _record_files(record, Path(out_dir)))
    return found


def _read_record(record_file: Path) -> dict | None:
    """An image's JSON record, or None for a file that is not one (unreadable, not a JSON object, over 4 MB)."""
    try:
        if record_file.stat().st_size > RECORD_MAX_BYTES:
            return None
        record = json.loads(record_file.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def not_outputs(paths: list[Path], out_dir: str | Path, named: Collection[Path] = (),
                seen: dict[Path, set[Path]] | None = None) -> list[Path]:
    """``paths`` without the pictures and maps explain wrote: into ``out_dir`` (:func:`written_outputs`), or,
    as a record there lists them, into any folder among the paths (an earlier run's ``--out`` inside a
    folder explained recursively). Files in ``named`` (given by name) are always kept. ``seen`` caches
    each folder's outputs between calls.

    Example:
        >>> not_outputs([Path("a.png")], "no-such-folder")
        [PosixPath('a.png')]
    """
    seen = {} if seen is None else seen
    out = Path(out_dir).resolve()
    made: set[Path] = set()
    for folder in {out, *(Path(p).parent.resolve() for p in paths)}:
        if folder not in seen:  # in --out also pictures named as explain names them; elsewhere only recorded ones
            seen[folder] = written_outputs(folder, by_name=folder == out)
        made |= seen[folder]
    made -= {Path(p).resolve() for p in named}
    return [p for p in paths if Path(p).resolve() not in made]


def _record_files(record: dict, folder: Path) -> list[Path]:
    """The pictures and maps an image's JSON record lists, in ``folder``."""
    entries = record.get("explanations")
    if not isinstance(entries, list):  # another tool's JSON that happens to be an object
        return []
    names = [e[k] for e in entries for k in ("png", "npy") if isinstance(e, dict) and isinstance(e.get(k), str)]
    # explain writes bare names beside the record
    return [folder / n for n in names if n not in ("", ".", "..") and Path(n).name == n]


def _shapes(target, b: int, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> dict | None:
    """What to outline on image b's picture: a detection box (and the matched detection) or a region,
    from the input's pixels to the image's."""
    from .core.dense import BoxTarget, RegionTarget

    sy, sx = out_hw[0] / in_hw[0], out_hw[1] / in_hw[1]

    def scaled(box):
        x0, y0, x1, y1 = (float(v) for v in box)
        return (x0 * sx, y0 * sy, x1 * sx, y1 * sy)

    if isinstance(target, BoxTarget):
        boxes = [scaled(target.boxes[b])]
        matched = (target.match or {}).get("matched_box")
        if matched and matched[b] is not None:
            boxes.append(scaled(matched[b]))
        return {"boxes": boxes}
    if isinstance(target, RegionTarget):
        if target.box is not None:
            return {"boxes": [scaled(target.box[b])]}
        if isinstance(target.mask, torch.Tensor):
            m = torch.nn.functional.interpolate(target.mask[b:b + 1, None].float(), size=out_hw, mode="nearest")
            return {"mask": (m[0, 0] >= 0.5).cpu().numpy()}
    return None


def _picture(rgb, sal, res, b, name, cls, method, alpha, look, in_hw=None) -> bytes:
    """The PNG of one map: the bare overlay, or with a title and a colour bar (and the region or box outlined)."""
    plain, cmap, fade = look
    shapes = _shapes(res.target, b, in_hw, rgb.shape[:2]) if in_hw is not None else None
    if plain:
        shown = overlay(rgb, sal, alpha, cmap, fade)
        if shapes:
            shown = outline(shown, shapes.get("boxes"), shapes.get("mask"))
        return encode_png(shown)
    what = f"{name} ({cls})" if cls >= 0 else name
    title = f"{what} · p = {float(res.probs[b]):.2f} · {method}"
    if res.kept_scales is not None:
        total = len(res.extras.get("scales", res.kept_scales[b]))
        title += f" · {len(res.kept_scales[b])} of {total} scales"
    return figure_png(explanation_figure(rgb, sal, title, alpha, cmap, fade, shapes=shapes))


def _wnid(bundle: ModelBundle, idx: int) -> str | None:
    return bundle.wnids[idx] if 0 <= idx < len(bundle.wnids) else None
