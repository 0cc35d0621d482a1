"""Runners and figures of `cameras attack` and `cameras sanity` (the algorithms are in :mod:`cameras.attacks`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..attacks import enhanced_pgd, reading, sanity_cleaning, vanilla_for
from ..core.errors import InputError
from ..images import check_images, load_image
from ..io import encode_json, unique_stems, write_files_atomically
from ..methods import build_method
from ..models import ModelBundle
from ..runs import model_fingerprint, placement, run_items
from ..viz import figure_png, pyplot

PAPER_REDUCTION = 56.5  # % mean L2 reduction of enhanced vs plain PGD at 99.99 % (ResNet-50, ImageNet val)


def image_paths(images, data_dir, progress: bool | None = None, square: bool = False,
                limit: int | None = None) -> list[Path]:
    """The image files of `cameras attack`/`sanity`: IMAGE arguments or a --data folder (not both), the first
    ``limit`` of them when given (in the order listed: a folder's files sorted), each opened once so that a bad
    file fails before any work (a progress bar: ``progress`` None on a terminal only)."""
    from ..images import list_images

    if bool(images) == bool(data_dir):
        raise InputError("give IMAGE files or --data DIR, not both or neither")
    paths = list_images([data_dir] if data_dir else images)
    if not paths:
        raise InputError("no image files found")
    if limit is not None:
        paths = paths[:limit]
    check_images(paths, progress, square)
    return paths


def image01(bundle: ModelBundle, path: Path, square: bool) -> torch.Tensor:
    """1×3×h×w image in [0, 1] at the model's input size (shorter side, or square)."""
    return bundle.prepare(load_image(path), square, normalized=False)


def eps_text(eps: float | None) -> str:
    """``12/255``-style text of an ℓ∞ radius (None: unbounded)."""
    return "unbounded" if eps is None else f"{255 * eps:.3g}/255"


def attack_images(bundle: ModelBundle, paths: list[Path], out_dir: Path, opts: dict | None, alpha: float,
                  steps: int, beta: float | None, threshold: float, square: bool, figures: bool = True,
                  progress: bool | None = None, run=None) -> dict | None:
    """Plain and saliency-enhanced PGD on each image; figures, per-image records and the mean reduction.

    ``opts`` is the reading of Eq. 4 (:func:`cameras.attacks.reading`; None: the ``"paper"``
    preset); ``beta`` overrides its β unless None. Plain PGD uses the same step rule and ℓ∞
    bound, so the two are compared at equal confidence under equal rules.

    Resumable and distributed (:mod:`cameras.runs`, ``run`` from
    :func:`cameras.distributed.launch`): each image's record goes to
    ``attack.records.jsonl`` and its figure ``<stem>.attack.png`` is written as soon as it is
    done; rank 0 writes ``attack.json`` and returns the summary (other ranks return None).
    """
    plt = pyplot()
    cam = build_method("cameras", bundle, scale_rule="paper")  # the paper's attack: the paper's scale rule
    stems = unique_stems(paths)
    opts = dict(opts or reading("paper"))
    if beta is not None:
        opts["beta"] = beta
    beta = opts["beta"]
    eps = opts["eps"]

    def work(i: int) -> dict:
        path = paths[i]
        x = image01(bundle, path, square)
        sal = cam(bundle.normalize(x)).maps
        kw = dict(alpha=alpha, steps=steps, normalize=bundle.normalize, threshold=threshold)
        van = vanilla_for(bundle.model, x, target=None, eps=eps, step=opts["step"], **kw)
        enh = enhanced_pgd(bundle.model, x, sal, target=van.targets, **opts, **kw)
        red = 100 * (1 - float(enh.l2[0]) / max(float(van.l2[0]), 1e-12))
        rec = {"image": str(path), "target": int(van.targets[0]), "target_name": bundle.class_name(int(van.targets[0])),
               "vanilla": van.item(0), "enhanced": enh.item(0), "l2_reduction_percent": red}
        if figures:
            fig, axes = plt.subplots(2, 3, figsize=(9, 6.2))
            for row, (name, r) in zip(axes, (("PGD", van), ("enhanced PGD", enh))):
                p = r.perturbation[0].permute(1, 2, 0).cpu().numpy()
                row[0].imshow(x[0].permute(1, 2, 0).cpu().numpy())
                row[0].set_title("image", fontsize=9)
                row[1].imshow(np.clip(p / (2 * (eps or max(float(np.abs(p).max()), 1e-6))) + 0.5, 0, 1))
                row[1].set_title(f"{name}: perturbation (amplified)\n"
                                 f"L2 {float(r.l2[0]):.2f}, L∞ {255 * float(r.linf[0]):.1f}/255", fontsize=8)
                row[2].imshow(r.adversarial[0].permute(1, 2, 0).cpu().numpy())
                row[2].set_title(f"{bundle.class_name(int(r.targets[0]))}: {float(r.target_prob[0]):.4f}, "
                                 f"{int(r.steps[0])} steps", fontsize=8)
                for ax in row:
                    ax.axis("off")
            if bool(van.success[0]) and bool(enh.success[0]):
                head = (f"L2 {red:.1f}% lower with enhanced PGD at {threshold:.2%} confidence "
                        f"(paper: {PAPER_REDUCTION}% on average)")
            else:
                head = (f"not comparable: {'enhanced' if not bool(enh.success[0]) else 'plain'} PGD stayed below "
                        f"{threshold:.2%} within {steps} steps")
            fig.suptitle(f"{path.name}, β = {beta:g}, ε {eps_text(eps)}, {opts['step']} steps: {head}", fontsize=9)
            fig.tight_layout()
            write_files_atomically({out_dir / f"{stems[i]}.attack.png": figure_png(fig)})
        return rec

    config = {"model": bundle.name, "weights_fingerprint": model_fingerprint(bundle.model), "eps": eps, "alpha": alpha,
              "steps": steps, "beta": beta, "threshold": threshold, "square": square, "reading": opts}
    records = run_items([str(Path(p).resolve()) for p in paths], work, out_dir, "attack", config, progress=progress,
                        **placement(run))
    if records is None:
        return None
    records = [{k: v for k, v in r.items() if k != "key"} for r in records]
    reds = [r["l2_reduction_percent"] for r in records if r["vanilla"]["success"] and r["enhanced"]["success"]]
    summary = dict(config, images=records, mean_l2_reduction_percent=float(np.mean(reds)) if reds else None,
                   both_successful=len(reds), paper_mean_l2_reduction_percent=PAPER_REDUCTION,
                   enhanced_successful=sum(r["enhanced"]["success"] for r in records),
                   vanilla_successful=sum(r["vanilla"]["success"] for r in records))
    write_files_atomically({out_dir / "attack.json": encode_json(summary)})
    return summary


def sanity_images(bundle: ModelBundle, paths: list[Path], methods: list[str], out_dir: Path, fraction: float,
                  steps: int, opts: dict | None, alpha: float, attack_steps: int, beta: float | None, square: bool,
                  figures: bool = True, progress: bool | None = None, run=None) -> dict | None:
    """Attack each image once (enhanced PGD with the CAMERAS map), then clean it in each method's order.

    ``opts`` is the attack's reading of Eq. 4 (:func:`cameras.attacks.reading`; None:
    ``"literal"``); ``beta`` overrides its β unless None. The literal formula is the default
    here: its attack stalls below 99.99 % but concentrates the perturbation where Ψ is high,
    which is what the check needs; after an attack that reaches 99.99 % (``"paper"``),
    restoring 10 % of the pixels never brings the true class back and every method scores 1.
    The "true" class is the model's top-1 on the clean image (image files carry no label;
    it differs from the dataset's label only on misclassified images).

    Resumable and distributed like :func:`attack_images` (records in
    ``sanity.records.jsonl``, figures ``<stem>.sanity.png``); rank 0 writes ``sanity.json``
    with the run's settings (model, weights fingerprint, methods, cleaning and attack
    settings, the reading) and each method's mean score, and returns it (other ranks return
    None).
    """
    plt = pyplot()
    if not methods:
        raise InputError("sanity_images needs at least one method, e.g. ['cameras', 'gradcam']")
    cam = build_method("cameras", bundle, scale_rule="paper")  # the paper's experiment: the paper's scale rule
    built = {m: build_method(m, bundle) for m in methods}
    stems = unique_stems(paths)
    opts = dict(opts or reading("literal"))
    if beta is not None:
        opts["beta"] = beta
    beta = opts["beta"]

    def work(i: int) -> dict:
        path = paths[i]
        x = image01(bundle, path, square)
        xn = bundle.normalize(x)
        base = cam(xn)
        true = base.targets
        adv = enhanced_pgd(bundle.model, x, base.maps, alpha=alpha, steps=attack_steps,
                           normalize=bundle.normalize, **opts).adversarial
        rec = {"image": str(path), "class": int(true[0]), "methods": {}}
        if figures:
            fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for m in methods:
            sal = built[m](xn, target=true).maps
            r = sanity_cleaning(bundle.model, x, sal, adv, true, fraction, steps, bundle.normalize)
            s = float(r["score"][0])
            rec["methods"][m] = {"score": s, "curve": r["curve"][0].tolist(), "pixels": r["pixels"].tolist()}
            if figures:
                ax.plot(r["pixels"].cpu().numpy(), r["curve"][0].cpu().numpy(), label=f"{m} (sanity {s:.3f})")
        if figures:
            ax.axhline(float(r["clean_prob"][0]), color="k", ls=":", label="ideal (clean probability)")
            ax.set_xlabel("pixels restored (in saliency order)")
            ax.set_ylabel(f"P({bundle.class_name(int(true[0]))})")
            ax.set_title(f"{path.name}: smaller sanity score is saner", fontsize=9)
            ax.legend(fontsize=7)
            fig.tight_layout()
            write_files_atomically({out_dir / f"{stems[i]}.sanity.png": figure_png(fig)})
        return rec

    config = {"model": bundle.name, "weights_fingerprint": model_fingerprint(bundle.model), "methods": list(methods),
              "fraction": fraction, "steps": steps, "alpha": alpha, "attack_steps": attack_steps,
              "beta": beta, "square": square, "reading": opts}
    records = run_items([str(Path(p).resolve()) for p in paths], work, out_dir, "sanity", config, progress=progress,
                        **placement(run))
    if records is None:
        return None
    records = [{k: v for k, v in r.items() if k != "key"} for r in records]
    # the settings the scores depend on (the attack's reading above all) go with them
    summary = {**config, "images": records,
               "mean_score": {m: float(np.mean([r["methods"][m]["score"] for r in records])) for m in methods}}
    write_files_atomically({out_dir / "sanity.json": encode_json(summary)})
    return summary
