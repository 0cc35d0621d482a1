"""Every method on two sets with known object positions: docs/methods-eval/.

- photos+composites: the embedded model on scikit-image's 6 photos (hand-drawn boxes) and the
  first 18 composites whose top-1 is the pasted object (exact boxes); the model's top-1 is explained.
  Metrics: pointing, energy in the box, ρ±, Average Drop / Increase (ROAD's imputation of
  224-px images costs seconds per item, so it runs on the synthetic set).
- synthetic:cnn on 60 held-out synthetic images (seed 300, 64 px, exact boxes, true class):
  pointing, energy, ρ±, ROAD, Average Drop / Increase.

Each set is a resumable `cameras evaluate` run (docs/methods-eval/<set>/report.md with every
table and figure); docs/methods-eval/table.md joins the two summaries.
Run: .venv/bin/python scripts/methods_eval.py  (about 50 minutes on 2 CPU cores)
"""

import csv
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import cameras
from cameras.data import read_dataset
from cameras.data.photos import composites, photos
from cameras.data.synthetic import write_synthetic
from cameras.evaluate import evaluate_items, write_report
from cameras.methods import available_methods, build_method
from cameras.reproduce import photo_work

OUT = Path(__file__).resolve().parents[1] / "docs" / "methods-eval"
METHODS = available_methods() + ["multiscale-layercam", "smooth-gradcam", "tta-gradcam"]
SKIP_ON_PHOTOS = ("rise", "extremal")  # minutes per photo on a 2-core CPU; measured on the synthetic set
PHOTO_ITEMS, SYNTHETIC_ITEMS = 24, 60  # the 6 photos and the first 18 qualifying composites; held-out images


def photo_items(bundle, tmp: Path):
    pairs = []
    for name, rgb, box, classes in [(n, rgb, box, None) for n, (rgb, box) in photos().items()] + list(composites()):
        img = Image.fromarray(rgb)
        if classes is not None and bundle.top1(img) not in classes:
            continue
        img.save(tmp / f"{name}.png")
        pairs.append((tmp / f"{name}.png", box))
    return [it for _, _, it in photo_work(bundle, pairs)][:PHOTO_ITEMS]


def run(name, bundle, items, methods, metrics):
    out = OUT / name
    out.mkdir(parents=True, exist_ok=True)
    built = {m: build_method(m, bundle, **({"progress": False} if "progress" in
                                           cameras.methods.method_option_names(m) else {})) for m in methods}
    rows = evaluate_items(items, bundle, built, set(metrics), out, progress=True, settings={"set": name})
    return write_report(out, rows, {"data": name, "format": "imagenet-style items", "model": bundle.name,
                                     "images": len(items), "metrics": sorted(metrics)})


def seconds(name):
    rows = list(csv.DictReader(open(OUT / name / "results.csv")))
    return {m: float(np.median([float(r["seconds"]) for r in rows if r["method"] == m]))
            for m in dict.fromkeys(r["method"] for r in rows)}


def main():
    torch.set_num_threads(2)
    tmp = Path(tempfile.mkdtemp())
    emb = cameras.load_model()
    sets = {}
    sets["photos+composites"] = run("photos+composites", emb, photo_items(emb, tmp),
                                    [m for m in METHODS if m not in SKIP_ON_PHOTOS],
                                    ["pointing", "energy", "rho", "avgdrop"])
    syn = write_synthetic(tmp / "synthetic", n=SYNTHETIC_ITEMS, seed=300)
    cnn = cameras.load_model("synthetic:cnn")
    sets["synthetic-cnn"] = run("synthetic-cnn", cnn, read_dataset("imagenet", syn, wnids=cnn.wnids), METHODS,
                                ["pointing", "energy", "rho", "road", "avgdrop"])

    def f(v, pct=False):
        return "–" if v is None else (f"{100 * v:.1f}" if pct else f"{v:.3f}")

    p, s = sets["photos+composites"], sets["synthetic-cnn"]
    ps, ss = seconds("photos+composites"), seconds("synthetic-cnn")
    lines = [f"Photos and composites: embedded EfficientNet-Lite0, {sum(p['items'].values()) // len(p['items'])} "
             f"items; synthetic: synthetic:cnn, {sum(s['items'].values()) // len(s['items'])} held-out images. "
             "Median seconds per item on a 2-core CPU.", "",
             "| method | photos: pointing % | energy in box ↑ | ρ⁺ ↑ | Average Drop % ↓ | Increase % ↑ | s/item "
             "| synthetic: energy in box ↑ | ρ⁺ ↑ | ROAD combined ↑ | Average Drop % ↓ | Increase % ↑ | s/item |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in METHODS:
        a = [f(p["pointing_game"].get(m), True), f(p["energy"].get(m)), f(p["rho_plus"].get(m)),
             f(p["average_drop"].get(m) and p["average_drop"][m] / 100, True),
             f(p["increase_in_confidence"].get(m) and p["increase_in_confidence"][m] / 100, True),
             f"{ps[m]:.2f}" if m in ps else "–"] if m in p["items"] else ["not run"] + ["–"] * 5
        b = [f(s["energy"].get(m)), f(s["rho_plus"].get(m)), f(s["road_combined"].get(m)),
             f(s["average_drop"].get(m) and s["average_drop"][m] / 100, True),
             f(s["increase_in_confidence"].get(m) and s["increase_in_confidence"][m] / 100, True), f"{ss[m]:.3f}"]
        lines.append(f"| {m} | " + " | ".join(a + b) + " |")
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    (OUT / "summary.json").write_text(json.dumps(sets, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
