"""Measure CAMERAS's scale rules (paper, top5, all) on images whose object boxes are known.

Two sets: six scikit-image photos with object boxes drawn by hand, and composites: four
objects the embedded model recognises (the cat of chelsea, the cup of coffee, the motorcycle,
the camera on its tripod) cut out and pasted, at two sizes and random places, onto eight
backgrounds (scikit-image's textures and photos), so the box is exact. A composite is
used only when the model's top-1 on it is one of the object's own classes, so the map of the
top-1 should point at the object.

For each image the model's own top-1 is explained (target=None, where the rule applies) with
every rule; per rule: how many of the 8 scales were kept, the pointing game (the map's
maximum within 15 px of the box), the share of the map's mass inside the box, and ρ⁺ (map
density). Writes docs/scale-rules/results.json, table.md, maps.png (the photos) and composites.png
(composites where the paper's rule keeps fewer than half of the scales).

Run: .venv/bin/python scripts/scale_rule_table.py  (about 15 minutes on 2 CPU cores)
"""

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import cameras
from cameras.data.photos import composites, photos
from cameras.metrics import map_density, pointing_trial
from cameras.viz import DEFAULT_FADE, figure_png, overlay, pyplot

OUT = Path(__file__).resolve().parents[1] / "docs" / "scale-rules"
PHOTOS = photos()
RULES = ("paper", "top5", "all")


def measure(bundle, name: str, rgb: np.ndarray, box, kind: str) -> tuple[list[dict], list]:
    """Explain the top-1 with every rule; one row per rule, and the maps at image size."""
    x0, y0, x1, y1 = box
    img = Image.fromarray(rgb)
    x01 = bundle.prepare(img, normalized=False)
    x = bundle.normalize(x01)
    region = torch.zeros(img.height, img.width, dtype=torch.bool)
    region[y0:y1, x0:x1] = True
    rows, cells = [], []
    for rule in RULES:
        res = cameras.build_method("cameras", bundle, scale_rule=rule)(x)
        full = cameras.resize_maps(res.maps, (img.height, img.width))[0]
        rho, _ = map_density(bundle.model, x01, res.maps, res.targets, bundle.normalize)
        rows.append({"image": name, "set": kind, "rule": rule, "class": bundle.class_name(int(res.targets[0])),
                     "kept": len(res.kept_scales[0]), "scales": len(res.extras["scales"]),
                     "pointing_hit": bool(pointing_trial(res.maps[0], region)),
                     "mass_in_box": float(full[region].sum() / full.sum().clamp_min(1e-12)),
                     "box_share": float(region.float().mean()), "rho_plus": float(rho[0])})
        cells.append((rule, full.numpy()))
    return rows, cells


def summary(rows: list[dict], title: str) -> list[str]:
    """Per rule: mean scales kept, pointing, mean mass in box, mean ρ⁺, and paired wins in mass."""
    n = len({r["image"] for r in rows})
    lines = [f"**{title}** ({n} images)", "",
             "| rule | mean scales kept | maps from < half the scales | pointing | mean mass in box | "
             "mean ρ⁺ | mass in box above `paper` (images) |", "|---|---|---|---|---|---|---|"]
    paper = {r["image"]: r for r in rows if r["rule"] == "paper"}
    for rule in RULES:
        rr = [r for r in rows if r["rule"] == rule]
        few = sum(2 * r["kept"] < r["scales"] for r in rr)
        hits = sum(r["pointing_hit"] for r in rr)
        diff = [r["mass_in_box"] - paper[r["image"]]["mass_in_box"] for r in rr]
        wins = f"{sum(d > 1e-3 for d in diff)} up, {sum(d < -1e-3 for d in diff)} down" if rule != "paper" else "–"
        lines.append(f"| {rule} | {np.mean([r['kept'] for r in rr]):.1f} | {few}/{len(rr)} | {hits}/{len(rr)} | "
                     f"{np.mean([r['mass_in_box'] for r in rr]):.3f} | {np.mean([r['rho_plus'] for r in rr]):.2f} | "
                     f"{wins} |")
    return lines + [""]


def main() -> None:
    from tqdm import tqdm

    bundle = cameras.load_model()
    rows, grid, comp_grid, skipped = [], [], [], []
    for name, (rgb, box) in tqdm(PHOTOS.items(), desc="photos"):
        r, cells = measure(bundle, name, rgb, box, "photo")
        rows += r
        grid.append((name, rgb, cells))
    for name, rgb, box, classes in tqdm(list(composites()), desc="composites"):
        top1 = bundle.top1(Image.fromarray(rgb))
        if top1 not in classes:
            skipped.append(f"{name} (top-1 {bundle.class_name(top1)})")
            continue
        r, cells = measure(bundle, name, rgb, box, "composite")
        rows += r
        if len(comp_grid) < 6 and any(2 * x["kept"] < x["scales"] for x in r):
            comp_grid.append((name, rgb, cells))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps({"rows": rows, "skipped_composites": skipped}, indent=1) + "\n")
    lines = summary(rows, "All images") + summary([r for r in rows if r["set"] == "photo"], "Photos, boxes by hand") + \
        summary([r for r in rows if r["set"] == "composite"], "Composites, exact boxes")
    lines += [f"Composites not used (the top-1 is not the pasted object): {len(skipped)}: {', '.join(skipped)}", "",
              "| image (top-1) | rule | scales kept | pointing | mass in box (box area) | ρ⁺ |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['image']} ({r['class']}) | {r['rule']} | {r['kept']}/{r['scales']} | "
                     f"{'hit' if r['pointing_hit'] else 'miss'} | {r['mass_in_box']:.2f} ({r['box_share']:.2f}) | "
                     f"{r['rho_plus']:.2f} |")
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    for fname, cells_grid in (("maps.png", grid), ("composites.png", comp_grid)):
        if not cells_grid:
            continue
        plt = pyplot()
        fig, axes = plt.subplots(len(cells_grid), len(RULES), figsize=(3.2 * len(RULES), 2.6 * len(cells_grid)),
                                 squeeze=False)
        for row, (name, rgb, cells) in zip(axes, cells_grid):
            for ax, (rule, sal) in zip(row, cells):
                ax.imshow(overlay(rgb, sal, 0.5, "jet", DEFAULT_FADE))
                r = next(r for r in rows if r["image"] == name and r["rule"] == rule)
                ax.set_title(f"{name} · {rule} · {r['kept']}/{r['scales']} scales", fontsize=7)
                ax.axis("off")
        fig.tight_layout()
        (OUT / fname).write_bytes(figure_png(fig, dpi=70))
    print("\n".join(lines[:40]))


if __name__ == "__main__":
    main()
