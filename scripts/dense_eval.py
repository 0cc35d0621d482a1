"""Segmentation regions on the synthetic task: docs/dense-eval/ and docs/images/segmentation.png.

synthetic:seg (scripts/train_synthetic.py seg) on 40 two-object scenes (synthetic_scene, seed 500,
never seen in training): both objects have the same class, one in each half of the image. Each
scene's map explains the class over the half holding one object (RegionTarget.from_box, the
left object on even scenes, the right one on odd), so a map that follows the region lights that
object and not its twin.

Per method (every registered method, at its defaults (RISE with 2000 masks); CAMERAS
with scales 64, 96, 128, 160 for these 64-px scenes): the mean map inside the explained
object over the image's mean (ratio), the same for the twin object, the share of the map's
sum on the explained object, pointing (the map's maximum on the explained object), and
seconds per scene. Writes docs/dense-eval/scenes.csv (one row per scene and method),
summary.json, table.md, and docs/images/segmentation.png (three scenes: the region, CAMERAS,
Grad-CAM, HiResCAM). Run: .venv/bin/python scripts/dense_eval.py  (about 10 minutes on 2 cores)
"""

import csv
import json
import time
from pathlib import Path

import numpy as np
import torch

from cameras import RegionTarget
from cameras.data.synthetic import CLASSES, synthetic_scene
from cameras.methods import available_methods, build_method
from cameras.models import load_model
from cameras.viz import outline, overlay, pyplot

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "dense-eval"
SCENES, SEED = 40, 500
SCALES = [64, 96, 128, 160]
FIGURE_METHODS = ("cameras", "gradcam", "hirescam")


def scenes():
    rng = np.random.default_rng(SEED)
    for i in range(SCENES):
        label = i % len(CLASSES)
        img, seg, _, boxes = synthetic_scene(rng, 64, labels=(label, label))
        side = i % 2
        masks = []
        for x0, y0, x1, y1 in (boxes[side], boxes[1 - side]):
            m = np.zeros((64, 64), bool)
            m[y0:y1, x0:x1] = seg[y0:y1, x0:x1] > 0
            masks.append(m)
        region = [0, 0, 32, 64] if side == 0 else [32, 0, 64, 64]
        yield i, img, label, region, masks[0], masks[1]


def main() -> None:
    bundle = load_model("synthetic:seg")
    names = available_methods() + ["multiscale-layercam"]
    methods = {}
    for n in names:
        opts = {"scales": SCALES} if n in ("cameras", "multiscale-layercam") else {}
        if n == "rise":
            opts["n_masks"] = 2000
        methods[n] = build_method(n, bundle, **opts)
    rows, shown = [], {}
    for i, img, label, region, obj, twin in scenes():
        x = bundle.normalize(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255)
        target = RegionTarget.from_box(1 + label, region, (64, 64))
        for n, m in methods.items():
            start = time.perf_counter()
            sal = m(x, target).maps[0].numpy()
            sec = time.perf_counter() - start
            mean = max(float(sal.mean()), 1e-12)
            peak = np.unravel_index(np.argmax(sal), sal.shape)
            rows.append({"scene": i, "method": n, "class": CLASSES[label], "side": "left" if i % 2 == 0 else "right",
                         "ratio": float(sal[obj].mean()) / mean, "twin_ratio": float(sal[twin].mean()) / mean,
                         "share": float(sal[obj].sum() / max(sal.sum(), 1e-12)), "pointing": bool(obj[peak]),
                         "seconds": sec})
            if i < 3:
                shown[(i, n)] = sal
        if i < 3:
            shown[(i, "image")] = (img, region)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "scenes.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    summary = {}
    for n in methods:
        r = [row for row in rows if row["method"] == n]
        summary[n] = {"ratio_median": float(np.median([v["ratio"] for v in r])),
                      "ratio_min": float(np.min([v["ratio"] for v in r])),
                      "twin_ratio_median": float(np.median([v["twin_ratio"] for v in r])),
                      "ratio_at_least_2": sum(v["ratio"] >= 2 for v in r),
                      "more_than_twice_the_twin": sum(v["ratio"] > 2 * v["twin_ratio"] for v in r),
                      "share_mean": float(np.mean([v["share"] for v in r])),
                      "pointing": float(np.mean([v["pointing"] for v in r])),
                      "seconds_median": float(np.median([v["seconds"] for v in r])), "scenes": len(r)}
    (OUT / "summary.json").write_text(json.dumps({"model": "synthetic:seg", "scenes": SCENES, "seed": SEED,
                                                  "cameras_scales": SCALES, "methods": summary}, indent=1))
    lines = ["| method | object / image mean (median, min) | twin / image mean (median) | object ≥ 2× mean | "
             "object > 2× twin | share on object | pointing | s / scene |", "|---|---|---|---|---|---|---|---|"]
    for n, s in sorted(summary.items(), key=lambda kv: -kv[1]["share_mean"]):
        lines.append(f"| {n} | {s['ratio_median']:.1f}, {s['ratio_min']:.1f} | {s['twin_ratio_median']:.2f} | "
                     f"{s['ratio_at_least_2']}/{s['scenes']} | {s['more_than_twice_the_twin']}/{s['scenes']} | "
                     f"{s['share_mean']:.2f} | {s['pointing']:.0%} | {s['seconds_median']:.3f} |")
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    plt = pyplot()
    fig, axes = plt.subplots(3, 1 + len(FIGURE_METHODS), figsize=(2.2 * (1 + len(FIGURE_METHODS)), 6.8), dpi=100)
    for i in range(3):
        img, region = shown[(i, "image")]
        big = np.kron(img, np.ones((4, 4, 1), np.uint8))  # 256 px, nearest, for a readable figure
        box = [4 * v for v in region]
        axes[i, 0].imshow(outline(big, boxes=[box], colours=[(255, 220, 0)], width=3))
        for j, n in enumerate(FIGURE_METHODS, 1):
            sal = np.kron(shown[(i, n)], np.ones((4, 4)))
            axes[i, j].imshow(outline(overlay(big, sal, 0.5), boxes=[box], colours=[(255, 220, 0)], width=3))
            if i == 0:
                axes[i, j].set_title(n, fontsize=10)
        if i == 0:
            axes[i, 0].set_title("region (yellow frame)", fontsize=10)
        for ax in axes[i]:
            ax.set_axis_off()
    fig.suptitle("synthetic:seg, two objects of one class: the class's logits over one half", fontsize=10)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "images" / "segmentation.png")
    print("wrote", OUT, "and docs/images/segmentation.png")


if __name__ == "__main__":
    main()
