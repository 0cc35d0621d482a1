"""`cameras evaluate`: every (image, ground-truth class, method) item, resumable, with a report.

Items run through the resumable engine of :mod:`cameras.runs`: each finished item is one
fsynced line of ``evaluate.records.jsonl``, so a run killed at any moment loses at most the
image in flight, and a rerun with the same folder and settings skips the finished items,
so a finished rerun equals an uninterrupted run. At the end ``results.csv`` (one row per
item), ``curves.jsonl``, ``summary.json`` and ``report.md`` are written atomically.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import torch

from .core.base import SaliencyMethod
from .core.errors import ImageError, InputError
from .core.guard import frozen_eval
from .core.targets import label_target
from .data.items import Item
from .images import load_image
from .io import encode_json, write_files_atomically
from .metrics import (
    confidence_change,
    energy_in_region,
    insertion_deletion,
    is_difficult,
    map_density,
    pointing_accuracy,
    pointing_trial,
    road,
)
from .models import ModelBundle
from .runs import model_fingerprint, run_items
from .viz import figure_png, pyplot

COLUMNS = ["image", "class", "method", "pointing_hit", "difficult", "energy", "rho_plus", "rho_minus",
           "insertion_auc", "deletion_auc", "road_morf", "road_lerf", "road_combined", "average_drop",
           "increase", "seconds", "kept_scales", "all_zero"]
METRICS = ("pointing", "energy", "rho", "insdel", "road", "avgdrop")
# summary keys of the mean columns, and which direction is better
MEANS = {"energy": "higher", "rho_plus": "higher", "rho_minus": "lower", "insertion_auc": "higher",
         "deletion_auc": "lower", "road_morf": "lower", "road_lerf": "higher", "road_combined": "higher",
         "average_drop": "lower", "increase_in_confidence": "higher"}
CURVE_POINTS = 101
PAPER = {
    "pointing_game": "CAMERAS paper Table 1 (mean per-class accuracy %, all / difficult; TorchRay's VOC/COCO models)",
    "pointing_rows": {
        "gradient": "VOC07 VGG16 76.3 / 56.9, ResNet-50 72.3 / 56.8; COCO14 VGG16 37.7 / 31.4, ResNet-50 35.0 / 29.4",
        "rise": "VOC07 VGG16 86.9 / 75.1, ResNet-50 86.4 / 78.8; COCO14 VGG16 50.8 / 45.3, ResNet-50 54.7 / 50.0",
        "gradcam": "VOC07 VGG16 86.6 / 74.0, ResNet-50 90.4 / 82.3; COCO14 VGG16 54.2 / 49.0, ResNet-50 57.3 / 52.3",
        "extremal": "VOC07 VGG16 88.0 / 76.1, ResNet-50 88.9 / 78.7; COCO14 VGG16 51.5 / 45.9, ResNet-50 56.5 / 51.5",
        "normgrad": "VOC07 VGG16 81.9 / 64.8, ResNet-50 84.6 / 72.2",
        "cameras": "VOC07 VGG16 86.2 / 76.2, ResNet-50 94.2 / 88.8; COCO14 VGG16 55.4 / 50.7, ResNet-50 69.9 / 66.4",
    },
    "rho": {  # paper Table 2, ImageNet val: ρ⁺ / ρ⁻ per model
        "normgrad": "ResNet-50 1.67 / 0.96, DenseNet-121 1.76 / 1.02, Inception-V3 2.19 / 0.95",
        "gradcam": "ResNet-50 2.33 / 0.86, DenseNet-121 2.35 / 0.94, Inception-V3 2.18 / 1.04",
        "cameras": "ResNet-50 3.20 / 0.81, DenseNet-121 3.23 / 0.83, Inception-V3 3.15 / 0.93",
    },
    "insdel": "RISE paper (ResNet-50, 10,000 ImageNet val images): RISE deletion AUC 0.1048, insertion AUC 0.7719",
}


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def work_list(items: list[Item], methods: list[str]) -> list[tuple[Item, int, str]]:
    """Deterministic (item, class, method) work, ordered image → method → class; VOC classes
    whose boxes are all difficult are skipped."""
    out = []
    for it in items:
        classes = [c for c in it.classes() if not it.all_difficult(c)]
        for m in methods:  # image, then method, then class: the order items are processed in
            for cls in classes:
                out.append((it, cls, m))
    return out


def _resample(curve: np.ndarray) -> list[float]:
    xs = np.linspace(0, 1, len(curve))
    return np.interp(np.linspace(0, 1, CURVE_POINTS), xs, curve).round(6).tolist()


def evaluate_items(
    items: list[Item],
    bundle: ModelBundle,
    methods: dict[str, SaliencyMethod],
    metrics: set[str],
    out_dir: Path,
    square: bool = False,
    insdel_step: int = 224,
    batch_size: int = 32,
    progress: bool | None = None,
    rank: int = 0,
    world: int = 1,
    barrier=None,
    run_id: str = "run",
    settings: dict | None = None,
    target_kind: str = "class",
) -> list[dict]:
    """Run every unfinished (image, class, method) item; write results.csv and curves.jsonl; return all rows.

    Resumable and distributed through :func:`cameras.runs.run_items` (records in
    ``evaluate.records.jsonl``, shards under torchrun): a rerun into the same folder skips
    finished items, and one with other settings (model, weights, method options, metrics,
    ``insdel_step``, ``square``, ``target_kind``, and ``settings`` such as the dataset) is
    refused before anything is written; a rerun may add methods. The classes of one image
    are explained in one batch per method. Rank 0 writes ``results.csv`` (one row per item,
    canonical order) and ``curves.jsonl`` and returns the rows as read from the CSV
    (strings); other ranks return [].
    ``target_kind`` says how each ground-truth class is explained and scored: ``"class"``
    (its logit, softmax probabilities), ``"sigmoid"`` (multi-label models) or ``"softmax"``.
    """
    label_target(target_kind)  # a bad kind fails before any work
    full = work_list(items, list(methods))
    keys = [f"{it.name}\t{cls}\t{m}" for it, cls, m in full]
    config = {"model": bundle.name, "weights_fingerprint": model_fingerprint(bundle.model),
              "methods": {n: m.result_options() for n, m in methods.items()},
              "metrics": sorted(metrics), "insdel_step": insdel_step, "square": square, "target_kind": target_kind,
              **(settings or {})}

    def work(indices: list[int]):
        item, _, m_name = full[indices[0]]
        cls_list = [full[i][1] for i in indices]
        try:
            x01 = bundle.prepare(load_image(item.image, upright=False), square, normalized=False)  # as annotated
        except ImageError as e:  # e.g. a strip: named by its file
            raise ImageError(e.args[0] if str(item.image) in str(e) else f"{item.image}: {e}") from None
        x = bundle.normalize(x01)
        xb = x.expand(len(cls_list), -1, -1, -1)
        ids = torch.tensor(cls_list, device=x.device)
        target = ids if target_kind == "class" else label_target(target_kind, ids)
        res = methods[m_name](xb, target=target)
        zero = res.all_zero().tolist()
        rows = [dict(image=item.name, **{"class": c}, method=m_name, seconds=res.seconds / len(cls_list),
                     kept_scales=" ".join(map(str, res.kept_scales[i])) if res.kept_scales else "",
                     all_zero=zero[i])
                for i, c in enumerate(cls_list)]
        with frozen_eval(bundle.model):  # metrics see the model in eval mode, restored after
            # insertion/deletion score the clean top-1 for class logits (the RISE protocol), else the target
            curves = _score(rows, item, res.maps, m_name, target, None if target_kind == "class" else target,
                            x01, xb, bundle, metrics, insdel_step, batch_size, methods[m_name].input_gradient)
        for i, row, cur in zip(indices, rows, curves):
            yield i, {"row": {c: _fmt(row.get(c)) for c in COLUMNS}, "curves": cur}

    def every_method(merged: dict) -> list[str]:
        # a rerun may name only a new method: the folder's results cover the methods of every run, for this
        # run's images, ordered as one run of all of them would be (image, method in the order first run, class)
        return [f"{it.name}\t{cls}\t{m}" for it, cls, m in work_list(items, list(merged["methods"]))]

    records = run_items(keys, work, out_dir, "evaluate", config, rank, world, barrier, run_id, progress,
                        group=lambda i: (full[i][0].name, full[i][2]), extendable=("methods",),
                        result_keys=every_method)
    if records is None:
        return []
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in records:
        w.writerow([r["row"].get(c, "") for c in COLUMNS])  # records of older versions lack new columns
    files = {Path(out_dir) / "results.csv": buf.getvalue().encode()}
    curves = [json.dumps(r["curves"]) for r in records if r.get("curves")]
    if curves:
        files[Path(out_dir) / "curves.jsonl"] = ("\n".join(curves) + "\n").encode()
    write_files_atomically(files)
    return list(csv.DictReader(io.StringIO(buf.getvalue())))


def evaluate_dataset(
    data_dir: Path,
    fmt: str,
    bundle: ModelBundle,
    methods: list[str],
    options: dict[str, dict],
    metrics: set[str],
    out_dir: Path,
    mapping: Path | None = None,
    limit: int | None = None,
    batch_size: int = 32,
    insdel_step: int = 224,
    square: bool = False,
    progress: bool | None = None,
    run=None,
    target_kind: str = "class",
) -> dict | None:
    """`cameras evaluate`: read the dataset, build the methods, run :func:`evaluate_items`, write the report.

    ``options`` holds each method's options by name; ``run`` is the torchrun placement from
    :func:`cameras.distributed.launch` (None: one process). Returns the summary on rank 0,
    None on other ranks. Bad input (unknown metric, method or option, an empty dataset)
    raises before any work.
    """
    from .data import load_mapping, read_dataset
    from .data.readers import VOC_CLASSES, check_files, dataset_identity
    from .methods import build_method
    from .runs import placement

    bad = sorted(set(metrics) - set(METRICS))
    if bad:
        raise InputError(f"unknown metric {', '.join(bad)}; choose from {', '.join(METRICS)}")
    built = {n: build_method(n, bundle, **options.get(n, {})) for n in methods}
    cmap = load_mapping(mapping, VOC_CLASSES if fmt == "voc" else None)
    items = read_dataset(fmt, data_dir, wnids=bundle.wnids, mapping=cmap, num_classes=bundle.num_classes or None)
    items = items[:limit] if limit else items
    if not items:
        raise InputError(f"no annotated images found in {data_dir}")
    check_files(items, data_dir)  # after --limit: a partial download of the first N images is enough for --limit N
    settings = dataset_identity(data_dir, fmt, mapping)
    rows = evaluate_items(items, bundle, built, set(metrics), out_dir, square, insdel_step, batch_size, progress,
                          settings=settings, target_kind=target_kind, **placement(run))
    if run is not None and run.rank != 0:
        return None
    return write_report(out_dir, rows, {"data": str(data_dir), "format": fmt, "model": bundle.name,
                                        "images": len(items), "metrics": sorted(metrics),
                                        "processes": 1 if run is None else run.world})


def _score(rows, item, maps, m_name, target, insdel_target, x01, xb, bundle, metrics, insdel_step,
           batch_size, input_gradient=False) -> list[dict | None]:
    """Fill each row's metrics in place; return the per-row insertion/deletion curves (or None)."""
    cls_list = [int(r["class"]) for r in rows]
    curves: list[dict | None] = [None] * len(cls_list)
    if "pointing" in metrics:
        n_classes = item.class_count()  # classes the mapping leaves out are still "another class"
        for i, c in enumerate(cls_list):
            region = torch.from_numpy(item.region(c)).to(maps.device)
            rows[i]["pointing_hit"] = pointing_trial(maps[i], region, input_level=input_gradient)
            rows[i]["difficult"] = is_difficult(float(region.sum()), region.numel(), n_classes > 1)
    if "energy" in metrics:  # the share of the map on the class's region, at the image's size
        for i, c in enumerate(cls_list):
            region = torch.from_numpy(item.region(c)).to(maps.device)
            e = float(energy_in_region(maps[i:i + 1], region[None])[0])
            rows[i]["energy"] = None if e != e else e
    if "rho" in metrics:
        rp, rm = map_density(bundle.model, x01.expand(len(cls_list), -1, -1, -1), maps, target, bundle.normalize)
        for i in range(len(cls_list)):
            rows[i]["rho_plus"], rows[i]["rho_minus"] = float(rp[i]), float(rm[i])
    if "insdel" in metrics:
        r = insertion_deletion(bundle.model, xb, maps, step=insdel_step, batch_size=batch_size, target=insdel_target)
        for i, c in enumerate(cls_list):
            rows[i]["insertion_auc"] = float(r["insertion_auc"][i])
            rows[i]["deletion_auc"] = float(r["deletion_auc"][i])
            curves[i] = {"image": item.name, "class": c, "method": m_name,
                         "insertion": _resample(r["insertion"][i].cpu().numpy()),
                         "deletion": _resample(r["deletion"][i].cpu().numpy())}
    if "road" in metrics:  # the explained class's probability, MoRF and LeRF at 10 … 90 % removed
        r = road(bundle.model, xb, maps, target=target, batch_size=batch_size)
        for i in range(len(cls_list)):
            rows[i]["road_morf"] = float(r["morf_mean"][i])
            rows[i]["road_lerf"] = float(r["lerf_mean"][i])
            rows[i]["road_combined"] = float(r["combined"][i])
    if "avgdrop" in metrics:
        r = confidence_change(bundle.model, xb, maps.clamp(0, 1), target=target, batch_size=batch_size)
        for i in range(len(cls_list)):
            rows[i]["average_drop"] = 100 * float(r["drop"][i])
            rows[i]["increase"] = bool(r["increase"][i])
    return curves


def _num(v: str) -> float | None:
    return None if v in ("", None) else float(v)


def summarize(rows: list[dict]) -> dict:
    """The summary.json dictionary from result rows (strings as read from the CSV)."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    out: dict = {k: {} for k in ("pointing_game", "pointing_game_difficult", *MEANS, "items", "all_zero")}
    for m in methods:
        mr = [r for r in rows if r["method"] == m]
        out["items"][m] = len(mr)
        # None when rows of an older version (no such column) are among them: unknown, not "no zero maps"
        out["all_zero"][m] = None if any(r.get("all_zero", "") == "" for r in mr) else \
            sum(r["all_zero"] == "1" for r in mr)
        trials = [(int(r["class"]), None if r["pointing_hit"] == "" else r["pointing_hit"] == "1") for r in mr]
        out["pointing_game"][m] = pointing_accuracy(trials)
        out["pointing_game_difficult"][m] = pointing_accuracy(
            [t for t, r in zip(trials, mr) if r["difficult"] == "1"])
        for col in MEANS:
            src = "increase" if col == "increase_in_confidence" else col
            vals = [_num(r.get(src, "")) for r in mr if r.get(src, "") != ""]
            scale = 100.0 if col == "increase_in_confidence" else 1.0  # the % of items whose confidence rose
            out[col][m] = scale * float(np.mean(vals)) if vals else None
    return out


def write_report(out_dir: Path, rows: list[dict], meta: dict) -> dict:
    """Write summary.json, report.md, metrics.png (bars) and curves.png (mean ins/del curves)."""
    plt = pyplot()
    out_dir = Path(out_dir)
    summary = summarize(rows)
    methods = list(summary["items"])
    files: dict[Path, bytes] = {out_dir / "summary.json": encode_json(summary)}
    metric_keys = [k for k in ("pointing_game", "pointing_game_difficult", *MEANS)
                   if any(v is not None for v in summary[k].values())]
    if metric_keys and methods:
        fig, axes = plt.subplots(1, len(metric_keys), figsize=(3.2 * len(metric_keys), 3), squeeze=False)
        for ax, k in zip(axes[0], metric_keys):
            vals = [summary[k][m] or 0.0 for m in methods]
            ax.bar(methods, vals, color="tab:blue")
            ax.set_title(k, fontsize=9)
            ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        fig.tight_layout()
        files[out_dir / "metrics.png"] = figure_png(fig, dpi=90)
    finished = {(r["image"], str(r["class"]), r["method"]) for r in rows}
    curves = {}
    if (out_dir / "curves.jsonl").exists():
        for line in (out_dir / "curves.jsonl").read_text().splitlines():
            c = json.loads(line)
            curves[(c["image"], str(c["class"]), c["method"])] = c
    curves = {k: v for k, v in curves.items() if k in finished}
    if curves:
        fig, axes = plt.subplots(1, 2, figsize=(8, 3))
        xs = np.linspace(0, 1, CURVE_POINTS)
        for m in methods:
            cs = [v for k, v in curves.items() if k[2] == m]
            if cs:
                axes[0].plot(xs, np.mean([c["insertion"] for c in cs], 0), label=m)
                axes[1].plot(xs, np.mean([c["deletion"] for c in cs], 0), label=m)
        for ax, t in zip(axes, ("insertion (higher is better)", "deletion (lower is better)")):
            ax.set_title(t, fontsize=9)
            ax.set_xlabel("fraction of pixels")
            ax.legend(fontsize=7)
        fig.tight_layout()
        files[out_dir / "curves.png"] = figure_png(fig, dpi=90)
    files[out_dir / "report.md"] = _report_md(summary, meta, "metrics.png" in {p.name for p in files},
                                              "curves.png" in {p.name for p in files}).encode()
    write_files_atomically(files)
    return summary


def uneven_items(summary: dict) -> bool:
    """Whether the methods of a summary were scored on different numbers of items (their means then differ in images).

    Example:
        >>> uneven_items({"items": {"gradcam": 2, "gradient": 3}}), uneven_items({"items": {"gradcam": 2}})
        (True, False)
    """
    return len(set(summary["items"].values())) > 1


ZERO_MAPS = ("An all-zero map finds no positive evidence for the class anywhere (common with untrained weights; a "
             "raw map that overflowed to NaN or inf is shown as zero too): the pointing game counts it as pointing "
             "at its first pixel, its energy in the region and its ρ⁺ are 0 and its ρ⁻ is the whole image's, "
             "insertion/deletion and ROAD take its pixels in raster order, and Average Drop scores a blanked image. "
             "Extremal's masks are not normalised, so its maps are rarely all zero.")


def zero_map_counts(summary: dict) -> str:
    """'N of M items (method), ...' for the methods with all-zero maps, '' when none has any.

    Example:
        >>> zero_map_counts({"items": {"gradcam": 4, "cameras": 4}, "all_zero": {"gradcam": 1, "cameras": 0}})
        '1 of 4 items (gradcam)'
    """
    counts = summary.get("all_zero", {})
    return ", ".join(f"{counts[m]} of {n} items ({m})" for m, n in summary["items"].items() if counts.get(m))


def _report_md(summary: dict, meta: dict, bars: bool, curves: bool) -> str:
    def f(v, pct=False):
        return "–" if v is None else (f"{100 * v:.1f}" if pct else f"{v:.4f}")

    lines = ["# Evaluation report", "",
             f"Data: `{meta.get('data')}` ({meta.get('format')}), model `{meta.get('model')}`, "
             f"{meta.get('images')} images, metrics {', '.join(meta.get('metrics', []))}.", "",
             "| method | items | pointing % (all / difficult) | energy in region | ρ⁺ | ρ⁻ | insertion AUC "
             "| deletion AUC |",
             "|---|---|---|---|---|---|---|---|"]
    for m, n in summary["items"].items():
        lines.append(f"| {m} | {n} | {f(summary['pointing_game'][m], True)} / "
                     f"{f(summary['pointing_game_difficult'][m], True)} | {f(summary['energy'][m])} | "
                     f"{f(summary['rho_plus'][m])} | {f(summary['rho_minus'][m])} | {f(summary['insertion_auc'][m])} | "
                     f"{f(summary['deletion_auc'][m])} |")
    if uneven_items(summary):  # e.g. a method added by a rerun over other images
        lines += ["", "**Note:** the methods were scored on different numbers of items (see `items`): "
                  "their means are not over the same images. Rerun with every method to compare them."]
    zero = zero_map_counts(summary)
    if zero:
        lines += ["", f"**Note:** all-zero maps: {zero}. {ZERO_MAPS}"]
    faith = ("road_morf", "road_lerf", "road_combined", "average_drop", "increase_in_confidence")
    if any(v is not None for k in faith for v in summary[k].values()):
        lines += ["", "Faithfulness: ROAD (Rong et al. 2022; probability of the explained class after removing the",
                  "10 … 90 % most (MoRF) or least (LeRF) relevant pixels with noisy linear imputation, averaged;",
                  "combined = (LeRF − MoRF) / 2) and Average Drop / Increase in Confidence (Chattopadhyay et al.",
                  "2018; the image multiplied by its map).", "",
                  "| method | ROAD MoRF ↓ | ROAD LeRF ↑ | ROAD combined ↑ | Average Drop % ↓ "
                  "| Increase in Confidence % ↑ |",
                  "|---|---|---|---|---|---|"]
        for m in summary["items"]:
            v = [summary[k][m] for k in faith]
            lines.append(f"| {m} | {f(v[0])} | {f(v[1])} | {f(v[2])} | "
                         + " | ".join("–" if x is None else f"{x:.1f}" for x in v[3:]) + " |")
    lines += ["", "## Published numbers beside ours", "", f"Pointing game: {PAPER['pointing_game']}.", "",
              "| method | ours (all / difficult) | paper |", "|---|---|---|"]
    for m in summary["items"]:
        lines.append(f"| {m} | {f(summary['pointing_game'][m], True)} / "
                     f"{f(summary['pointing_game_difficult'][m], True)} | "
                     f"{PAPER['pointing_rows'].get(m, '–')} |")
    lines += ["", "Map density, CAMERAS paper Table 2 (ImageNet val, ρ⁺ / ρ⁻):", "",
              "| method | ours ρ⁺ / ρ⁻ | paper |", "|---|---|---|"]
    for m in summary["items"]:
        lines.append(f"| {m} | {f(summary['rho_plus'][m])} / {f(summary['rho_minus'][m])} | "
                     f"{PAPER['rho'].get(m, '–')} |")
    lines += ["", f"Insertion/deletion: {PAPER['insdel']}.", "",
              "Differences from the paper come from the model (weights, architecture), the data and",
              "its size, and the device.", ""]
    if bars:
        lines += ["![metrics](metrics.png)", ""]
    if curves:
        lines += ["![mean insertion and deletion curves](curves.png)", ""]
    return "\n".join(lines)
