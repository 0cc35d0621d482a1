"""Is ρ⁺ along the CAMERAS → Grad-CAM interpolation monotone? (supplement A-3)

Three sets with known object positions:
- the embedded model on scikit-image's 6 photos (hand-drawn boxes) and the composites whose
  top-1 is the pasted object (exact boxes), the model's top-1 explained, CAMERAS with the
  paper's scale rule;
- synthetic:cnn and synthetic:vit on 100 held-out synthetic images (seed 300, true class).

For each: ρ⁺(γ) as the paper defines it (mean over items of P(K(I ⊙ Ψ_γ)) / mean(Ψ_γ)), its
numerator and denominator, the ratio of their means, and ρ⁺ of the min-max normalised blend,
so the two likely causes of a non-monotone curve are tested separately.

Writes docs/gamma/<set>/interpolation.{json,csv,png} and docs/gamma/table.md; a set whose
interpolation.json is already there is read, not recomputed (delete it to measure again).
Run: .venv/bin/python scripts/gamma_study.py  (about 10 minutes on 2 CPU cores)
"""

import json
import shutil
import tempfile
from pathlib import Path

import torch
from PIL import Image

import cameras
from cameras.data import read_dataset
from cameras.data.photos import composites, photos
from cameras.data.synthetic import write_synthetic
from cameras.experiments import interpolation, is_falling, without_zero_maps
from cameras.reproduce import photo_work as reproduce_photo_work

OUT = Path(__file__).resolve().parents[1] / "docs" / "gamma"


def photo_work(bundle, tmp: Path):
    """The photos and the composites whose top-1 is the pasted object, written to ``tmp``."""
    pairs = []
    items = [(n, rgb, box, None) for n, (rgb, box) in photos().items()] + list(composites())
    for name, rgb, box, classes in items:
        img = Image.fromarray(rgb)
        if classes is not None and bundle.top1(img) not in classes:
            continue
        img.save(tmp / f"{name}.png")
        pairs.append((tmp / f"{name}.png", box))
    return reproduce_photo_work(bundle, pairs)


def name_dir(name: str) -> str:
    return name.replace(" ", "_").replace(",", "").replace(":", "-")


def main() -> None:
    torch.set_num_threads(2)
    tmp = Path(tempfile.mkdtemp())
    rows = []
    syn = write_synthetic(tmp / "synthetic", n=100, seed=300)

    def synthetic(kind):
        b = cameras.load_model(f"synthetic:{kind}")
        items = read_dataset("imagenet", syn, wnids=b.wnids)
        return b, [(it.image, c, it) for it in items for c in it.classes()]

    sets = [("photos+composites, paper rule", lambda: (lambda b: (b, photo_work(b, tmp)))(cameras.load_model())),
            ("synthetic:cnn, 100 held-out", lambda: synthetic("cnn")),
            ("synthetic:vit, 100 held-out", lambda: synthetic("vit"))]
    for name, make in sets:
        d = tmp / name_dir(name)
        dest = OUT / d.name
        if (dest / "interpolation.json").exists():
            rows.append((name, json.loads((dest / "interpolation.json").read_text())))
            continue
        bundle, w = make()
        s = interpolation(bundle, w, d, scale_rule="paper")
        dest.mkdir(parents=True, exist_ok=True)
        for f in ("interpolation.json", "interpolation.csv", "interpolation.png", "interpolation.records.jsonl"):
            shutil.copy(d / f, dest / f)
        rows.append((name, s))
    lines = ["| set | items | ρ⁺ γ=0 → 1 | ρ⁺ monotone | where it rises | ratio of means monotone | min-max blend "
             "monotone | P(K(I⊙Ψ)) monotone | mean(Ψ) γ=0 → 1 | pointing γ=0 → 1 | all-zero Grad-CAM maps | ρ⁺ "
             "without those items: monotone |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in rows:
        recs = [json.loads(t) for t in (OUT / name_dir(name) / "interpolation.records.jsonl").read_text().splitlines()]
        zero, rho_kept = without_zero_maps(recs)  # items whose Grad-CAM (γ = 1) map is all zero
        s["zero_gradcam_items"], s["rho_plus_without_zero_maps"] = zero, rho_kept
        rho = s["rho_plus"]
        rises = [f"{s['gamma'][j]:.1f}→{s['gamma'][j + 1]:.1f} (+{rho[j + 1] - rho[j]:.3f})"
                 for j in range(len(rho) - 1) if rho[j + 1] > rho[j]]
        pg = s["pointing_game"]
        lines.append(f"| {name} | {s['items']} | {rho[0]:.3f} → {rho[-1]:.3f} | {'yes' if is_falling(rho) else 'no'} | "
                     f"{', '.join(rises) or '–'} | {'yes' if is_falling(s['rho_plus_of_means']) else 'no'} | "
                     f"{'yes' if is_falling(s['rho_plus_minmax']) else 'no'} | "
                     f"{'yes' if is_falling(s['masked_prob']) else 'no'} | "
                     f"{s['mean_psi'][0]:.3f} → {s['mean_psi'][-1]:.3f} | "
                     f"{'–' if pg[0] is None else f'{100 * pg[0]:.1f} → {100 * pg[-1]:.1f} %'} | {zero} | "
                     f"{'yes' if is_falling(rho_kept) else 'no'} ({rho_kept[0]:.3f} → {rho_kept[-1]:.3f}) |")
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    (OUT / "results.json").write_text(json.dumps({n: s for n, s in rows}, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
