"""Localisation quality on the synthetic task: CAMERAS against Grad-CAM on synthetic:vit and synthetic:cnn.

300 held-out synthetic images (seed 300, never seen in training); each is explained for its
ground-truth class. Per model, method and layer: the pointing game without tolerance (the map's
maximum inside the object's box), the share of the map's energy (sum) inside the box, and chance
(the boxes' mean share of the image). CAMERAS uses the scales 64, 96, 128, 160, 192 (the models
take 64-px inputs). Writes docs/synthetic/results.json, table.md and docs/images/synthetic_vit.png
(images, Grad-CAM, CAMERAS on the tiny ViT). Run: .venv/bin/python scripts/synthetic_quality.py
"""

import json
from pathlib import Path

import numpy as np
import torch

import cameras
from cameras.data.synthetic import CLASSES, synthetic_batch
from cameras.viz import DEFAULT_FADE, figure_png, overlay, pyplot

ROOT = Path(__file__).resolve().parents[1]
SCALES = [64, 96, 128, 160, 192]
LAYERS = {"vit": [None, "blocks.2.norm1", "blocks.1.norm1"], "cnn": [None]}


def score(maps: torch.Tensor, boxes: np.ndarray) -> tuple[float, float]:
    """(pointing hit rate, mean energy share in the box) of B×H×W maps."""
    hits, energy = [], []
    for m, (x0, y0, x1, y1) in zip(maps, boxes):
        inside = torch.zeros_like(m, dtype=torch.bool)
        inside[y0:y1, x0:x1] = True
        hits.append(bool(inside.flatten()[m.flatten().argmax()]))
        energy.append(float(m[inside].sum() / m.sum().clamp_min(1e-12)))
    return float(np.mean(hits)), float(np.mean(energy))


def main() -> None:
    imgs, labels, boxes = synthetic_batch(300, seed=300)
    x01 = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    chance = float(np.mean([(b[2] - b[0]) * (b[3] - b[1]) / 64 ** 2 for b in boxes]))
    rows, shown = [], {}
    for kind, layers in LAYERS.items():
        b = cameras.load_model(f"synthetic:{kind}")
        x = b.normalize(x01)
        with torch.no_grad():
            acc = float((b.model(x).argmax(1) == torch.from_numpy(labels)).float().mean())
        target = torch.from_numpy(labels)
        for layer in layers:
            opts = {"layer": layer or b.layer}
            cam = cameras.CAMERAS(b.model, scales=SCALES, **opts)
            gc = cameras.GradCAM(b.model, **opts)
            maps = {"cameras": torch.cat([cam(x[i:i + 50], target=target[i:i + 50]).maps for i in range(0, 300, 50)]),
                    "gradcam": gc(x, target=target).maps}
            for method, m in maps.items():
                hit, energy = score(m, boxes)
                rows.append({"model": f"synthetic:{kind}", "accuracy": acc, "layer": cam.layer_name,
                             "automatic_layer": layer is None, "method": method, "pointing": hit,
                             "energy_in_box": energy, "chance": chance})
                print(rows[-1], flush=True)
            if kind == "vit" and layer is None:
                shown = {k: v[:6].numpy() for k, v in maps.items()}
    out = ROOT / "docs" / "synthetic"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = [f"300 held-out images; chance (the boxes' mean share of the image): {chance:.3f}", "",
             "| model (held-out accuracy) | layer | method | pointing | energy in box |", "|---|---|---|---|---|"]
    for r in rows:
        auto = " (automatic)" if r["automatic_layer"] else ""
        lines.append(f"| {r['model']} ({r['accuracy']:.3f}) | `{r['layer']}`{auto} | {r['method']} | "
                     f"{r['pointing']:.3f} | {r['energy_in_box']:.3f} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    plt = pyplot()
    fig, axes = plt.subplots(3, 6, figsize=(12, 6.4))
    for j in range(6):
        x0, y0, x1, y1 = boxes[j]
        for i, (title, sal) in enumerate((("image", None), ("Grad-CAM", shown["gradcam"][j]),
                                          ("CAMERAS", shown["cameras"][j]))):
            ax = axes[i, j]
            ax.imshow(imgs[j] if sal is None else overlay(imgs[j], sal, 0.5, "jet", DEFAULT_FADE))
            ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="w", lw=1, ls="--"))
            ax.set_title(f"{title}" + (f": {CLASSES[labels[j]]}" if sal is None else ""), fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    (ROOT / "docs" / "images" / "synthetic_vit.png").write_bytes(figure_png(fig, dpi=80))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
