"""Runners and figures for `cameras attack`, `cameras sanity` and `cameras randomize`."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from .attacks import enhanced_pgd, pgd, sanity_cleaning
from .core.errors import InputError
from .core.ops import resize_maps
from .images import load_image, resize_image
from .io import encode_json, unique_stems, write_files_atomically
from .methods import CAMERAS, get_method, method_class
from .models import ModelBundle
from .randomization import randomization_check
from .runs import model_fingerprint, placement, run_items

PAPER_REDUCTION = 56.5  # % mean L2 reduction of enhanced vs plain PGD at 99.99 % (ResNet-50, ImageNet val)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def image01(bundle: ModelBundle, path: Path, square: bool) -> torch.Tensor:
    """1×3×h×w image in [0, 1] at the model's input size (shorter side, or square)."""
    return resize_image(load_image(path), bundle.input_size, square, bundle.interpolation, bundle.device)


def _method(bundle: ModelBundle, name: str, model=None):
    cls = method_class(name)
    opts = {"layer": bundle.layer} if cls.uses_layer else {}
    return get_method(name, model if model is not None else bundle.model, **opts)


def attack_images(bundle: ModelBundle, paths: list[Path], out_dir: Path, eps: float, alpha: float, steps: int,
                  beta: float, threshold: float, square: bool, figures: bool = True, progress: bool | None = None,
                  run=None) -> dict | None:
    """Plain and saliency-enhanced PGD on each image; figures, per-image records and the mean reduction.

    Resumable and distributed (:mod:`cameras.runs`, ``run`` from
    :func:`cameras.distributed.launch`): each image's record goes to
    ``attack.records.jsonl`` and its figure ``<stem>.attack.png`` is written as soon as it is
    done; rank 0 writes ``attack.json`` and returns the summary (other ranks return None).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cam = CAMERAS(bundle.model, layer=bundle.layer)
    stems = unique_stems(paths)

    def work(i: int) -> dict:
        path = paths[i]
        x = image01(bundle, path, square)
        sal = cam(bundle.normalize(x)).maps
        kw = dict(eps=eps, alpha=alpha, steps=steps, normalize=bundle.normalize, threshold=threshold)
        van = pgd(bundle.model, x, target=None, **kw)
        enh = enhanced_pgd(bundle.model, x, sal, beta=beta, target=van.targets, **kw)
        red = 100 * (1 - float(enh.l2[0]) / max(float(van.l2[0]), 1e-12))
        rec = {"image": str(path), "target": int(van.targets[0]), "target_name": bundle.class_name(int(van.targets[0])),
               "vanilla": van.item(0), "enhanced": enh.item(0), "l2_reduction_percent": red}
        if figures:
            fig, axes = plt.subplots(2, 3, figsize=(9, 6.2))
            for row, (name, r) in zip(axes, (("PGD", van), ("enhanced PGD", enh))):
                p = r.perturbation[0].permute(1, 2, 0).cpu().numpy()
                row[0].imshow(x[0].permute(1, 2, 0).cpu().numpy())
                row[0].set_title("image", fontsize=9)
                row[1].imshow(np.clip(p / (2 * eps) + 0.5, 0, 1))
                row[1].set_title(f"{name}: perturbation (amplified)\nL2 {float(r.l2[0]):.2f}, L∞ {255 * float(r.linf[0]):.1f}/255", fontsize=8)
                row[2].imshow(r.adversarial[0].permute(1, 2, 0).cpu().numpy())
                row[2].set_title(f"{bundle.class_name(int(r.targets[0]))}: {float(r.target_prob[0]):.4f}, {int(r.steps[0])} steps", fontsize=8)
                for ax in row:
                    ax.axis("off")
            if bool(van.success[0]) and bool(enh.success[0]):
                head = f"L2 {red:.1f}% lower with enhanced PGD at {threshold:.2%} confidence (paper: {PAPER_REDUCTION}% on average)"
            else:
                head = f"not comparable: {'enhanced' if not bool(enh.success[0]) else 'plain'} PGD stayed below {threshold:.2%} within {steps} steps"
            fig.suptitle(f"{path.name}, β = {beta:g}, ε = {255 * eps:.0f}/255: {head}", fontsize=9)
            fig.tight_layout()
            write_files_atomically({out_dir / f"{stems[i]}.attack.png": _png(fig)})
        return rec

    config = {"model": bundle.name, "weights_fingerprint": model_fingerprint(bundle.model), "eps": eps, "alpha": alpha,
              "steps": steps, "beta": beta, "threshold": threshold, "square": square}
    records = run_items([str(Path(p).resolve()) for p in paths], work, out_dir, "attack", config, progress=progress, **placement(run))
    if records is None:
        return None
    records = [{k: v for k, v in r.items() if k != "key"} for r in records]
    reds = [r["l2_reduction_percent"] for r in records if r["vanilla"]["success"] and r["enhanced"]["success"]]
    summary = dict(config, images=records, mean_l2_reduction_percent=float(np.mean(reds)) if reds else None,
                   both_successful=len(reds), paper_mean_l2_reduction_percent=PAPER_REDUCTION)
    write_files_atomically({out_dir / "attack.json": encode_json(summary)})
    return summary


def sanity_images(bundle: ModelBundle, paths: list[Path], methods: list[str], out_dir: Path, fraction: float, steps: int,
                  eps: float, alpha: float, attack_steps: int, beta: float, square: bool, figures: bool = True,
                  progress: bool | None = None, run=None) -> dict | None:
    """Attack each image once (enhanced PGD with the CAMERAS map), then clean it in each method's order.

    Resumable and distributed like :func:`attack_images` (records in
    ``sanity.records.jsonl``, figures ``<stem>.sanity.png``); rank 0 writes ``sanity.json``
    with each method's mean score and returns it (other ranks return None).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not methods:
        raise InputError("sanity_images needs at least one method, e.g. ['cameras', 'gradcam']")
    cam = CAMERAS(bundle.model, layer=bundle.layer)
    built = {m: _method(bundle, m) for m in methods}
    stems = unique_stems(paths)

    def work(i: int) -> dict:
        path = paths[i]
        x = image01(bundle, path, square)
        xn = bundle.normalize(x)
        base = cam(xn)
        true = base.targets
        adv = enhanced_pgd(bundle.model, x, base.maps, beta=beta, eps=eps, alpha=alpha, steps=attack_steps,
                           normalize=bundle.normalize).adversarial
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
            write_files_atomically({out_dir / f"{stems[i]}.sanity.png": _png(fig)})
        return rec

    config = {"model": bundle.name, "weights_fingerprint": model_fingerprint(bundle.model), "methods": list(methods),
              "fraction": fraction, "steps": steps, "eps": eps, "alpha": alpha, "attack_steps": attack_steps,
              "beta": beta, "square": square}
    records = run_items([str(Path(p).resolve()) for p in paths], work, out_dir, "sanity", config, progress=progress, **placement(run))
    if records is None:
        return None
    records = [{k: v for k, v in r.items() if k != "key"} for r in records]
    summary = {"model": bundle.name, "fraction": fraction, "steps": steps, "images": records,
               "mean_score": {m: float(np.mean([r["methods"][m]["score"] for r in records])) for m in methods}}
    write_files_atomically({out_dir / "sanity.json": encode_json(summary)})
    return summary


def randomize_image(bundle: ModelBundle, path: Path, methods: list[str], out_dir: Path, mode: str, seed: int,
                    square: bool) -> dict:
    """Model randomisation for each method: a grid of maps per step and the similarity curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .viz import overlay

    x = image01(bundle, path, square)
    xn = bundle.normalize(x)
    with torch.no_grad():
        target = int(bundle.model(xn).argmax(1)[0])
    results = {m: randomization_check(bundle.model, xn, lambda mod, m=m: _method(bundle, m, mod), mode=mode, target=target,
                                      seed=seed) for m in methods}
    steps = len(next(iter(results.values())))
    rgb = (x[0].permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
    fig, axes = plt.subplots(len(methods), steps, figsize=(1.6 * steps, 1.7 * len(methods)), squeeze=False)
    for r, m in enumerate(methods):
        for c, o in enumerate(results[m]):
            sal = resize_maps(o["map"][None], rgb.shape[:2])[0].cpu().numpy()
            axes[r][c].imshow(overlay(rgb, np.clip(sal, 0, 1)))
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
            if r == 0:
                axes[r][c].set_title("trained" if o["block"] is None else f"−{o['block']}", fontsize=7)
        axes[r][0].set_ylabel(m, fontsize=8)
    fig.suptitle(f"{mode} randomisation, logits first ({bundle.name})", fontsize=9)
    fig.tight_layout()
    fig2, axs = plt.subplots(1, 3, figsize=(11, 3.2))
    for m in methods:
        xs = range(steps)
        for ax, key in zip(axs, ("spearman_abs", "ssim", "hog")):
            ax.plot(xs, [o[key] for o in results[m]], "o-", label=m)
            ax.set_title(key.replace("_", " "), fontsize=9)
    labels = ["trained"] + [o["block"] for o in results[methods[0]][1:]]
    for ax in axs:
        ax.set_xticks(range(steps), labels, rotation=60, fontsize=7)
        ax.legend(fontsize=7)
    fig2.tight_layout()
    summary = {"model": bundle.name, "image": str(path), "mode": mode, "seed": seed, "target": target,
               "methods": {m: [{k: v for k, v in o.items() if k != "map"} for o in results[m]] for m in methods}}
    write_files_atomically({out_dir / f"{path.stem}.randomize.png": _png(fig),
                            out_dir / f"{path.stem}.similarity.png": _png(fig2),
                            out_dir / f"{path.stem}.randomize.json": encode_json(summary)})
    return summary
