"""The CAMERAS supplement's experiments: sensitivity to the number of scales N (A-2) and the
CAMERAS → Grad-CAM interpolation (A-3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .core.errors import InputError
from .core.targets import as_target, bind_target
from .data.items import Item
from .images import check_images, load_image
from .io import encode_json, write_files_atomically
from .methods import build_method
from .metrics import map_density, map_difference, pointing_accuracy, pointing_trial
from .models import ModelBundle
from .runs import model_fingerprint, placement, run_items
from .viz import figure_png, pyplot

STEPS = (5, 6, 7, 8, 9, 10)
GAMMAS = tuple(round(0.1 * i, 1) for i in range(11))
PAPER_N = np.array([  # CAMERAS supplement Table 2 (ResNet-50, ζ_m = 1000, 1000 ImageNet val images)
    [0.00, 0.11, 0.09, 0.11, 0.10, 0.11],
    [0.11, 0.00, 0.13, 0.08, 0.15, 0.10],
    [0.09, 0.13, 0.00, 0.11, 0.07, 0.09],
    [0.11, 0.08, 0.11, 0.00, 0.12, 0.07],
    [0.10, 0.15, 0.07, 0.12, 0.00, 0.10],
    [0.11, 0.10, 0.09, 0.07, 0.10, 0.00],
])


def experiment_inputs(images, data_dir, fmt: str | None, mapping, limit: int | None, bundle: ModelBundle,
                      progress: bool | None = None, square: bool = False) -> list[tuple[Path, int | None, Item | None]]:
    """The (image, class or None for the top-1, dataset item or None) work of an experiment.

    Either image files/folders (``images``) or an annotated dataset (``data_dir`` with
    ``fmt``; every class of every image, difficult-only VOC classes skipped); the first
    ``limit`` images. Every image is opened once here, so a bad file fails before any work
    (with a progress bar: ``progress`` None on a terminal only, False never).
    """
    from .data import load_mapping, read_dataset
    from .data.readers import VOC_CLASSES
    from .images import list_images

    if bool(images) == bool(data_dir):
        raise InputError("give IMAGE files or --data DIR (with --format), not both or neither")
    if images and (fmt is not None or mapping is not None):
        raise InputError("--format and --mapping describe a --data dataset; with IMAGE files leave them out")
    if data_dir:
        if fmt is None:
            raise InputError("--data needs --format imagenet|voc|coco")
        cmap = load_mapping(mapping, VOC_CLASSES if fmt == "voc" else None)
        items = read_dataset(fmt, data_dir, wnids=bundle.wnids, mapping=cmap, num_classes=bundle.num_classes or None)
        items = items[:limit] if limit else items
        work = [(it.image, cls, it) for it in items for cls in it.classes() if not it.all_difficult(cls)]
        if not work:
            raise InputError(f"no annotated images with usable classes found in {data_dir}")
    else:
        paths = list_images(images)
        paths = paths[:limit] if limit else paths
        if not paths:
            raise InputError("no image files found")
        work = [(p, None, None) for p in paths]
    check_images(list(dict.fromkeys(p for p, _, _ in work)), progress, square)
    return work


def _inputs(bundle: ModelBundle, path: Path, square: bool, upright: bool = True):
    """The normalised model input and the same pixels in [0, 1] (``upright=False``: a dataset image, as annotated)."""
    x01 = bundle.prepare(load_image(path, upright), square, normalized=False)
    return bundle.normalize(x01), x01


def n_sensitivity(bundle: ModelBundle, paths: list[Path], out_dir: Path, max_size: int = 1000, square: bool = False,
                  progress: bool | None = None, run=None) -> np.ndarray | None:
    """Mean map difference d between CAMERAS maps with N and N' scales (N = 5..10, ζ_m = max_size).

    Each image's target is its top-1 with the automatic scale rule. Resumable and
    distributed (see :mod:`cameras.runs`; ``run`` is the torchrun placement from
    :func:`cameras.distributed.launch`): per-image matrices go to
    ``n_sensitivity.records.jsonl``; rank 0 then writes ``n_sensitivity.json`` (ours, the
    paper's, per-image matrices), ``n_sensitivity.csv`` and ``n_sensitivity.png`` (our matrix
    beside the paper's) and returns the 6×6 mean matrix (other ranks return None).

    Example:
        >>> import tempfile, cameras
        >>> from skimage import data
        >>> from PIL import Image
        >>> d = Path(tempfile.mkdtemp())
        >>> Image.fromarray(data.chelsea()).save(d / "cat.png")
        >>> m = n_sensitivity(cameras.load_model(), [d / "cat.png"], d, max_size=300, progress=False)
        >>> m.shape, float(m[0, 0])
        ((6, 6), 0.0)
    """
    # the paper's figure: the paper's scale rule
    methods = [build_method("cameras", bundle, steps=n, max_size=max_size, scale_rule="paper") for n in STEPS]

    def work(i: int) -> dict:
        x, _ = _inputs(bundle, paths[i], square)
        maps = torch.cat([m(x).maps for m in methods])  # 6×H×W
        d = map_difference(maps[:, None].expand(-1, len(STEPS), -1, -1).flatten(0, 1),
                           maps[None].expand(len(STEPS), -1, -1, -1).flatten(0, 1)).view(len(STEPS), len(STEPS))
        return {"image": str(paths[i]), "matrix": d.cpu().tolist()}

    config = {"experiment": "n-sensitivity", "model": bundle.name,
              "weights_fingerprint": model_fingerprint(bundle.model),
              "max_size": max_size, "square": square, "steps": list(STEPS)}
    recs = run_items([str(Path(p).resolve()) for p in paths], work, out_dir, "n_sensitivity", config,
                     progress=progress, **placement(run))
    if recs is None:
        return None
    mats = [np.array(r["matrix"]) for r in recs]
    mean = np.mean(mats, 0)
    _n_sensitivity_files(bundle, recs, mats, mean, max_size, out_dir)
    return mean


def _n_sensitivity_files(bundle, recs, mats, mean, max_size, out_dir) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, mat, title in ((axes[0], mean, f"ours ({bundle.name}, {len(recs)} images)"),
                           (axes[1], PAPER_N, "paper (ResNet-50, 1000 images)")):
        im = ax.imshow(mat, vmin=0, vmax=max(0.3, float(mean.max())), cmap="viridis")
        ax.set_xticks(range(6), STEPS)
        ax.set_yticks(range(6), STEPS)
        ax.set_title(title, fontsize=9)
        for i in range(6):
            for j in range(6):
                ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
    fig.colorbar(im, ax=axes, shrink=0.8)
    rows = ["N," + ",".join(map(str, STEPS))] + [f"{n}," + ",".join(f"{v:.4f}" for v in row)
                                                 for n, row in zip(STEPS, mean)]
    write_files_atomically({
        out_dir / "n_sensitivity.json": encode_json({"steps": list(STEPS), "max_size": max_size, "model": bundle.name,
                                                      "images": [r["image"] for r in recs],
                                                      "ours": mean.round(4).tolist(),
                                                      "paper": PAPER_N.tolist(),
                                                      "per_image": [m.round(4).tolist() for m in mats]}),
        out_dir / "n_sensitivity.csv": ("\n".join(rows) + "\n").encode(),
        out_dir / "n_sensitivity.png": figure_png(fig),
    })


def interpolation(bundle: ModelBundle, work: list[tuple[Path, int | None, Item | None]], out_dir: Path,
                  square: bool = False, progress: bool | None = None, run=None,
                  scale_rule: str = "paper", dataset: dict | None = None) -> dict | None:
    """ρ⁺ and the pointing game of Ψ_γ = Ψ_CAMERAS + γ(Ψ_GradCAM − Ψ_CAMERAS), γ = 0, 0.1, …, 1.

    ``work`` holds (image, class or None for the top-1, dataset item or None). The pointing
    game needs dataset items (boxes or masks); ``dataset`` is what the run records of their
    dataset (:func:`cameras.data.readers.dataset_identity`), so that a rerun on other data or
    another mapping is refused. CAMERAS uses ``scale_rule`` (the paper's by default) for a
    top-1. Besides ρ⁺ (the mean over items of each item's ratio), the summary
    holds what separates the ratio's two parts and the blend's scaling, per γ:
    ``masked_prob`` (mean P(K(I ⊙ Ψ_γ)), ρ⁺'s numerator), ``mean_psi`` (mean of mean(Ψ_γ), its
    denominator), ``rho_plus_of_means`` (the ratio of those two means) and
    ``rho_plus_minmax`` (ρ⁺ of the blend min-max normalised to [0, 1]). Resumable and distributed like
    :func:`n_sensitivity` (records in ``interpolation.records.jsonl``); rank 0 writes
    ``interpolation.json``, ``interpolation.csv`` and ``interpolation.png`` (the
    supplement's Figure 2 layout) and returns the summary (other ranks return None).

    Example:
        >>> import tempfile, cameras
        >>> from skimage import data
        >>> from PIL import Image
        >>> d = Path(tempfile.mkdtemp())
        >>> Image.fromarray(data.chelsea()).save(d / "cat.png")
        >>> s = interpolation(cameras.load_model(), [(d / "cat.png", 285, None)], d, progress=False)
        >>> len(s["rho_plus"]), s["pointing_game"][0]
        (11, None)
    """
    cam = build_method("cameras", bundle, scale_rule=scale_rule)
    gc = build_method("gradcam", bundle)

    def one(i: int) -> dict:
        path, cls, item = work[i]
        x, x01 = _inputs(bundle, path, square, upright=item is None)
        a = cam(x, target=cls)
        target = a.targets
        b = gc(x, target=target)
        psi = torch.stack([a.maps[0] + g * (b.maps[0] - a.maps[0]) for g in GAMMAS])  # 11×h×w
        xs, ts = x01.expand(len(GAMMAS), -1, -1, -1), target.expand(len(GAMMAS))
        rp, _ = map_density(bundle.model, xs, psi, ts, bundle.normalize, minus=False)
        lo, hi = psi.amin((1, 2), keepdim=True), psi.amax((1, 2), keepdim=True)
        rp_mm, _ = map_density(bundle.model, xs, (psi - lo) / (hi - lo).clamp_min(1e-12), ts, bundle.normalize,
                               minus=False)
        mean_psi = psi.clamp(0, 1).flatten(1).mean(1)
        masked = rp * mean_psi
        empty = mean_psi <= 0  # ρ⁺ is 0 there by its guard; P(K(I ⊙ Ψ)) is read directly
        if bool(empty.any()):
            with torch.no_grad():
                out = bundle.model(bundle.normalize(xs[empty] * psi[empty].unsqueeze(1)))
            n = int(empty.sum())
            masked[empty] = bind_target(as_target(target.expand(n), n, x.device), out).probability(out)
        rec = {"image": str(path), "class": int(target), "rho_plus": [float(v) for v in rp],
               "mean_psi": [float(v) for v in mean_psi], "masked_prob": [float(v) for v in masked],
               "rho_plus_minmax": [float(v) for v in rp_mm], "hits": None}
        if item is not None:
            region = torch.from_numpy(item.region(int(target))).to(x.device)
            rec["hits"] = [pointing_trial(psi[j], region) for j in range(len(GAMMAS))]
        return rec

    keys = [f"{Path(p).resolve()}#{'top1' if c is None else c}" for p, c, _ in work]
    config = {"experiment": "interpolation", "model": bundle.name,
              "weights_fingerprint": model_fingerprint(bundle.model),
              "square": square, "gamma": list(GAMMAS), "scale_rule": scale_rule, **(dataset or {})}
    recs = run_items(keys, one, out_dir, "interpolation", config, progress=progress, **placement(run))
    if recs is None:
        return None
    rho = {g: [r["rho_plus"][j] for r in recs] for j, g in enumerate(GAMMAS)}
    hits = {g: [(r["class"], r["hits"][j]) for r in recs if r["hits"] is not None] for j, g in enumerate(GAMMAS)}
    def mean(key: str) -> list[float]:
        return [float(np.mean([r[key][j] for r in recs])) for j in range(len(GAMMAS))]

    summary = {"gamma": list(GAMMAS), "rho_plus": [float(np.mean(rho[g])) for g in GAMMAS],
               "pointing_game": [pointing_accuracy(hits[g]) for g in GAMMAS], "items": len(recs), "model": bundle.name,
               "scale_rule": scale_rule, "masked_prob": mean("masked_prob"), "mean_psi": mean("mean_psi"),
               "rho_plus_minmax": mean("rho_plus_minmax")}
    summary["rho_plus_of_means"] = [p / max(m, 1e-12) for p, m in zip(summary["masked_prob"], summary["mean_psi"])]
    summary["zero_gradcam_items"], summary["rho_plus_without_zero_maps"] = without_zero_maps(recs)
    summary["monotone"] = {k: is_falling(summary[k]) for k in
                           ("rho_plus", "rho_plus_of_means", "rho_plus_minmax", "masked_prob",
                            "rho_plus_without_zero_maps")}
    _interpolation_files(bundle, summary, out_dir)
    return summary


def without_zero_maps(recs: list[dict]) -> tuple[int, list[float]]:
    """(how many interpolation records have an all-zero Grad-CAM map, mean ρ⁺(γ) of the others).

    Blending towards an all-zero map drives mean(Ψ_γ) to 0 while P(K(I ⊙ Ψ_γ)) can stay
    high, so such items blow ρ⁺ up near γ = 1 (and get ρ⁺ = 0 at γ = 1 itself).

    Example:
        >>> without_zero_maps([{"mean_psi": [0.2, 0.0], "rho_plus": [1.0, 0.0]},
        ...                    {"mean_psi": [0.2, 0.1], "rho_plus": [2.0, 1.0]}])
        (1, [2.0, 1.0])
    """
    kept = [r for r in recs if r["mean_psi"][-1] >= 1e-6]
    n = len(recs[0]["rho_plus"]) if recs else 0
    return len(recs) - len(kept), [float(np.mean([r["rho_plus"][j] for r in kept])) if kept else 0.0
                                   for j in range(n)]


def is_falling(values, tol: float = 0.01) -> bool:
    """True when ``values`` never rise from one step to the next by more than ``tol`` (relative,
    1 % by default): the paper's "falls monotonically" with room for measurement noise.

    Example:
        >>> is_falling([3, 2, 2.01, 1]), is_falling([3, 2, 2.5]), is_falling([1, 1.005], tol=0)
        (True, False, False)
    """
    return all(b <= a + tol * abs(a) for a, b in zip(values, values[1:]))


def _interpolation_files(bundle, summary, out_dir) -> None:
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.4))
    ax.plot(GAMMAS, summary["rho_plus"], "o-", label="ρ⁺ (ours)")
    ax.set_xlabel("γ (0 = CAMERAS, 1 = Grad-CAM)")
    ax.set_ylabel("ρ⁺")
    if any(v is not None for v in summary["pointing_game"]):
        ax2 = ax.twinx()
        ax2.plot(GAMMAS, [100 * (v or 0) for v in summary["pointing_game"]], "s--", color="tab:orange",
                 label="pointing %")
        ax2.set_ylabel("pointing game %")
    ax.set_title(f"{bundle.name}, {summary['items']} items; paper: ρ⁺ falls with γ, pointing flat", fontsize=8)
    for key, style, label in (("rho_plus", "o-", "ρ⁺ = mean of P/mean(Ψ)"),
                              ("rho_plus_of_means", "^-", "mean P / mean of mean(Ψ)"),
                              ("rho_plus_minmax", "s-", "ρ⁺ of the min-max normalised blend")):
        bx.plot(GAMMAS, summary[key], style, label=label)
    bx.set_xlabel("γ")
    bx.set_title("what moves ρ⁺", fontsize=8)
    bx.legend(fontsize=7)
    fig.tight_layout()
    csv_rows = ["gamma,rho_plus,pointing_game,masked_prob,mean_psi,rho_plus_of_means,rho_plus_minmax"] + [
        f"{g},{r:.6f},{'' if p is None else f'{p:.6f}'},{a:.6f},{b:.6f},{c:.6f},{d:.6f}"
        for g, r, p, a, b, c, d in zip(GAMMAS, summary["rho_plus"], summary["pointing_game"], summary["masked_prob"],
                                       summary["mean_psi"], summary["rho_plus_of_means"],
                                       summary["rho_plus_minmax"])]
    write_files_atomically({
        out_dir / "interpolation.json": encode_json(summary),
        out_dir / "interpolation.csv": ("\n".join(csv_rows) + "\n").encode(),
        out_dir / "interpolation.png": figure_png(fig),
    })
