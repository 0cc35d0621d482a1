"""The CAMERAS supplement's experiments: sensitivity to the number of scales N (A-2) and the
CAMERAS → Grad-CAM interpolation (A-3)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .data.items import Item
from .images import load_image, resize_image
from .io import encode_json, write_files_atomically
from .methods import CAMERAS, GradCAM
from .metrics import map_density, map_difference, pointing_accuracy, pointing_trial
from .models import ModelBundle

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


def _inputs(bundle: ModelBundle, path: Path, square: bool):
    img = load_image(path)
    x01 = resize_image(img, bundle.input_size, square, bundle.interpolation, bundle.device)
    return img, bundle.normalize(x01), x01


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def n_sensitivity(bundle: ModelBundle, paths: list[Path], out_dir: Path, max_size: int = 1000, square: bool = False,
                  progress: bool | None = None) -> np.ndarray:
    """Mean map difference d between CAMERAS maps with N and N' scales (N = 5..10, ζ_m = max_size).

    Each image's target is its top-1 with the automatic scale rule. Writes
    ``n_sensitivity.json`` (ours, the paper's, per-image matrices), ``n_sensitivity.csv`` and
    ``n_sensitivity.png`` (our matrix beside the paper's). Returns the 6×6 mean matrix.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [CAMERAS(bundle.model, layer=bundle.layer, steps=n, max_size=max_size, base_size=bundle.input_size) for n in STEPS]
    mats = []
    for path in tqdm(paths, desc="n-sensitivity", unit="img", disable=None if progress is None else not progress):
        _, x, _ = _inputs(bundle, path, square)
        maps = torch.cat([m(x).maps for m in methods])  # 6×H×W
        d = map_difference(maps[:, None].expand(-1, len(STEPS), -1, -1).flatten(0, 1),
                           maps[None].expand(len(STEPS), -1, -1, -1).flatten(0, 1)).view(len(STEPS), len(STEPS))
        mats.append(d.cpu().numpy())
    mean = np.mean(mats, 0)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, mat, title in ((axes[0], mean, f"ours ({bundle.name}, {len(paths)} images)"), (axes[1], PAPER_N, "paper (ResNet-50, 1000 images)")):
        im = ax.imshow(mat, vmin=0, vmax=max(0.3, float(mean.max())), cmap="viridis")
        ax.set_xticks(range(6), STEPS)
        ax.set_yticks(range(6), STEPS)
        ax.set_title(title, fontsize=9)
        for i in range(6):
            for j in range(6):
                ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
    fig.colorbar(im, ax=axes, shrink=0.8)
    rows = ["N," + ",".join(map(str, STEPS))] + [f"{n}," + ",".join(f"{v:.4f}" for v in row) for n, row in zip(STEPS, mean)]
    write_files_atomically({
        out_dir / "n_sensitivity.json": encode_json({"steps": list(STEPS), "max_size": max_size, "model": bundle.name,
                                                      "images": [str(p) for p in paths], "ours": mean.round(4).tolist(),
                                                      "paper": PAPER_N.tolist(), "per_image": [m.round(4).tolist() for m in mats]}),
        out_dir / "n_sensitivity.csv": ("\n".join(rows) + "\n").encode(),
        out_dir / "n_sensitivity.png": _png(fig),
    })
    return mean


def interpolation(bundle: ModelBundle, work: list[tuple[Path, int | None, Item | None]], out_dir: Path,
                  square: bool = False, progress: bool | None = None) -> dict:
    """ρ⁺ and the pointing game of Ψ_γ = Ψ_CAMERAS + γ(Ψ_GradCAM − Ψ_CAMERAS), γ = 0, 0.1, …, 1.

    ``work`` holds (image, class or None for the top-1, dataset item or None). The pointing
    game needs dataset items (boxes or masks). Writes ``interpolation.json``,
    ``interpolation.csv`` and ``interpolation.png`` (the supplement's Figure 2 layout).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cam = CAMERAS(bundle.model, layer=bundle.layer)
    gc = GradCAM(bundle.model, layer=bundle.layer)
    rho = {g: [] for g in GAMMAS}
    hits = {g: [] for g in GAMMAS}
    for path, cls, item in tqdm(work, desc="interpolation", unit="item", disable=None if progress is None else not progress):
        _, x, x01 = _inputs(bundle, path, square)
        a = cam(x, target=cls)
        target = a.targets
        b = gc(x, target=target)
        psi = torch.stack([a.maps[0] + g * (b.maps[0] - a.maps[0]) for g in GAMMAS])  # 11×h×w
        rp, _ = map_density(bundle.model, x01.expand(len(GAMMAS), -1, -1, -1), psi, target.expand(len(GAMMAS)), bundle.normalize)
        region = torch.from_numpy(item.region(int(target))).to(x.device) if item is not None else None
        for i, g in enumerate(GAMMAS):
            rho[g].append(float(rp[i]))
            if region is not None:
                hits[g].append((int(target), pointing_trial(psi[i], region)))
    summary = {"gamma": list(GAMMAS), "rho_plus": [float(np.mean(rho[g])) for g in GAMMAS],
               "pointing_game": [pointing_accuracy(hits[g]) for g in GAMMAS], "items": len(work), "model": bundle.name}
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(GAMMAS, summary["rho_plus"], "o-", label="ρ⁺ (ours)")
    ax.set_xlabel("γ (0 = CAMERAS, 1 = Grad-CAM)")
    ax.set_ylabel("ρ⁺")
    if any(v is not None for v in summary["pointing_game"]):
        ax2 = ax.twinx()
        ax2.plot(GAMMAS, [100 * (v or 0) for v in summary["pointing_game"]], "s--", color="tab:orange", label="pointing %")
        ax2.set_ylabel("pointing game %")
    ax.set_title(f"{bundle.name}, {len(work)} items; paper: ρ⁺ falls with γ, pointing flat", fontsize=8)
    fig.tight_layout()
    csv_rows = ["gamma,rho_plus,pointing_game"] + [
        f"{g},{r:.6f},{'' if p is None else f'{p:.6f}'}" for g, r, p in zip(GAMMAS, summary["rho_plus"], summary["pointing_game"])]
    write_files_atomically({
        out_dir / "interpolation.json": encode_json(summary),
        out_dir / "interpolation.csv": ("\n".join(csv_rows) + "\n").encode(),
        out_dir / "interpolation.png": _png(fig),
    })
    return summary
