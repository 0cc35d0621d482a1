"""The dark band (and the "frame" line inside it) along the border of CAMERAS maps at large scales.

At large scales the explained layer's grid is fine enough that the zero padding of the
network's convolutions shows: the map falls towards zero in a band along the image border,
and the band's inner edge reads as a thin frame. This script measures it per photo for
three settings of the embedded model (every scale kept, ``scale_rule="all"``):

- one scale (224): the coarse map, for reference;
- eight scales (224 … 924) as the library computes them by default;
- eight scales with ``border_pad=0.1`` (mirrored border, cropped back).

Per photo and setting: the mean map value at each distance 0 … 31 px from the nearest
border (the profile), and the *border ratio*: mean over the outer band (0–3 px) divided by
the mean over the band 16–31 px in; a ratio well below 1 is a dark border band. Writes
docs/border/profiles.json, table.md and border.png (the maps side by side).

Run: .venv/bin/python scripts/border_profile.py  (about 2 minutes on 2 CPU cores)
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

import cameras
from cameras.viz import figure_png, pyplot

OUT = Path(__file__).resolve().parents[1] / "docs" / "border"
PHOTOS = ("chelsea", "coffee", "rocket", "astronaut", "motorcycle", "camera")
SETTINGS = {"224 only": {"scales": [224]}, "8 scales": {}, "8 scales, border_pad=0.1": {"border_pad": 0.1}}


def photo(name: str) -> np.ndarray:
    if name == "motorcycle":
        return data.stereo_motorcycle()[0]
    a = getattr(data, name)()
    return np.stack([a] * 3, -1) if a.ndim == 2 else a


def profile(m: np.ndarray, depth: int = 32) -> list[float]:
    """Mean of ``m`` over the pixels at each distance 0 … depth-1 from the nearest border."""
    h, w = m.shape
    yy, xx = np.mgrid[:h, :w]
    d = np.minimum(np.minimum(yy, h - 1 - yy), np.minimum(xx, w - 1 - xx))
    return [float(m[d == k].mean()) for k in range(depth)]


def border_ratio(p: list[float]) -> float:
    """Mean of the profile over 0–3 px divided by its mean over 16–31 px."""
    return float(np.mean(p[:4]) / max(np.mean(p[16:32]), 1e-12))


def main() -> None:
    bundle = cameras.load_model()
    rows, maps = [], {}
    for name in PHOTOS:
        x = bundle.prepare(Image.fromarray(photo(name)))
        for label, opts in SETTINGS.items():
            m = cameras.build_method("cameras", bundle, scale_rule="all", **opts)(x).maps[0].numpy()
            p = profile(m)
            rows.append({"photo": name, "setting": label, "profile": p, "border_ratio": border_ratio(p)})
            maps[name, label] = m
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "profiles.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["| photo | " + " | ".join(SETTINGS) + " |", "|---" * (len(SETTINGS) + 1) + "|"]
    for name in PHOTOS:
        lines.append(f"| {name} | " + " | ".join(f"{r['border_ratio']:.2f}" for r in rows if r["photo"] == name) + " |")
    lines.append("| **median** | " + " | ".join(
        f"**{np.median([r['border_ratio'] for r in rows if r['setting'] == s]):.2f}**" for s in SETTINGS) + " |")
    (OUT / "table.md").write_text("Border ratio (mean map value 0–3 px from the border / 16–31 px in; "
                                  "below 1: a dark band):\n\n" + "\n".join(lines) + "\n")
    plt = pyplot()
    fig, axes = plt.subplots(len(PHOTOS), len(SETTINGS), figsize=(3.4 * len(SETTINGS), 2.5 * len(PHOTOS)))
    for row, name in zip(axes, PHOTOS):
        for ax, label in zip(row, SETTINGS):
            ax.imshow(maps[name, label], cmap="gray", vmin=0, vmax=1)
            r = next(r for r in rows if r["photo"] == name and r["setting"] == label)
            ax.set_title(f"{name} · {label} · ratio {r['border_ratio']:.2f}", fontsize=7)
            ax.axis("off")
    fig.tight_layout()
    (OUT / "border.png").write_bytes(figure_png(fig, dpi=70))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
