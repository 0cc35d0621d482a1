"""Measure CAMERAS's scale rules (paper, top5, all) on photos with hand-drawn object boxes.

For each photo the model's own top-1 is explained (target=None, where the rule applies) with
every rule; per rule: how many of the 8 scales were kept, the pointing game (the map's
maximum within 15 px of the box), the share of the map's mass inside the box, and ρ⁺ (map
density). Writes docs/scale-rules/results.json, table.md and maps.png.

Run: .venv/bin/python scripts/scale_rule_table.py
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data

import cameras
from cameras.metrics import map_density, pointing_trial
from cameras.viz import DEFAULT_FADE, figure_png, overlay, pyplot

OUT = Path(__file__).resolve().parents[1] / "docs" / "scale-rules"
# photo → (RGB array, box x0, y0, x1, y1 in its pixels around the object the top-1 names), drawn by hand
PHOTOS = {
    "chelsea": (data.chelsea(), (60, 1, 400, 300)),  # Egyptian cat: the cat's head
    "coffee": (data.coffee(), (150, 30, 470, 240)),  # espresso: the cup
    "rocket": (data.rocket(), (300, 125, 352, 415)),  # projectile: the rocket
    "camera": (np.stack([data.camera()] * 3, -1), (215, 90, 400, 512)),  # tripod: camera and tripod
    "motorcycle": (data.stereo_motorcycle()[0], (70, 160, 620, 470)),  # moped: the motorcycle
    "astronaut": (data.astronaut(), (0, 240, 450, 512)),  # jersey: the orange suit
}
RULES = ("paper", "top5", "all")


def main() -> None:
    bundle = cameras.load_model()
    rows, grid = [], []
    for name, (rgb, (x0, y0, x1, y1)) in PHOTOS.items():
        img = Image.fromarray(rgb)
        x01 = bundle.prepare(img, normalized=False)
        x = bundle.normalize(x01)
        region = torch.zeros(img.height, img.width, dtype=torch.bool)
        region[y0:y1, x0:x1] = True
        cells = []
        for rule in RULES:
            res = cameras.build_method("cameras", bundle, scale_rule=rule)(x)
            full = cameras.resize_maps(res.maps, (img.height, img.width))[0]
            rho, _ = map_density(bundle.model, x01, res.maps, res.targets, bundle.normalize)
            rows.append({"photo": name, "rule": rule, "class": bundle.class_name(int(res.targets[0])),
                         "kept": len(res.kept_scales[0]), "scales": len(res.extras["scales"]),
                         "pointing_hit": bool(pointing_trial(res.maps[0], region)),
                         "mass_in_box": float(full[region].sum() / full.sum().clamp_min(1e-12)),
                         "box_share": float(region.float().mean()), "rho_plus": float(rho[0])})
            cells.append((rule, full.numpy()))
        grid.append((name, rgb, cells))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(__import__("json").dumps(rows, indent=1) + "\n")
    lines = ["| photo (top-1) | rule | scales kept | pointing | mass in box (box area) | ρ⁺ |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['photo']} ({r['class']}) | {r['rule']} | {r['kept']}/{r['scales']} | "
                     f"{'hit' if r['pointing_hit'] else 'miss'} | {r['mass_in_box']:.2f} ({r['box_share']:.2f}) | "
                     f"{r['rho_plus']:.2f} |")
    lines += ["", "| rule | mean scales kept | pointing | mean mass in box | mean ρ⁺ |", "|---|---|---|---|---|"]
    for rule in RULES:
        rr = [r for r in rows if r["rule"] == rule]
        hits = sum(r["pointing_hit"] for r in rr)
        lines.append(f"| {rule} | {np.mean([r['kept'] for r in rr]):.1f} | {hits}/{len(rr)} | "
                     f"{np.mean([r['mass_in_box'] for r in rr]):.2f} | {np.mean([r['rho_plus'] for r in rr]):.2f} |")
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    plt = pyplot()
    fig, axes = plt.subplots(len(grid), len(RULES), figsize=(3.2 * len(RULES), 2.4 * len(grid)))
    for row, (name, rgb, cells) in zip(axes, grid):
        for ax, (rule, sal) in zip(row, cells):
            ax.imshow(overlay(rgb, sal, 0.5, "jet", DEFAULT_FADE))
            r = next(r for r in rows if r["photo"] == name and r["rule"] == rule)
            ax.set_title(f"{name} · {rule} · {r['kept']}/{r['scales']} scales", fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    (OUT / "maps.png").write_bytes(figure_png(fig, dpi=70))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
