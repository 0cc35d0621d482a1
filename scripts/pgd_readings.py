"""Which reading of the paper's Eq. 4 reaches 99.99 % confidence? (enhanced PGD, embedded model)

Eq. 4 gives the loss CE(K(I+p), ℓ_ll) + β‖p ⊙ (1 − Ψ)‖₂ but not the step rule, the pixel
scale of the penalty, its power or normalisation, or the bound. Each reading below is run
on the 6 sample photos and the first 14 usable composites (20 images, 224×224, the least-
likely class as target, stop at 99.99 % or 300 steps), against plain PGD with the same step
rule and bound (a reading that stalls below 50 % on chelsea is measured only there, one that
misses 99.99 % on one of the first 3 photos only on those; see main()). Per reading: success
rate, mean steps, and over images where both reached 99.99 %: mean L2 of plain and enhanced
PGD and the mean reduction (the paper: 56.5 %).

Writes docs/pgd-readings/records.jsonl (resumable: finished pairs are skipped), results.json
and table.md. The committed records come from runs interrupted and resumed while this
selection rule was refined, so a few readings have an image more or less than the rule gives
(the table counts what was measured).  Run: .venv/bin/python scripts/pgd_readings.py  (about an hour on 2 CPU cores)
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import cameras
from cameras.attacks import enhanced_pgd, pgd
from cameras.data.photos import composites, photos

OUT = Path(__file__).resolve().parents[1] / "docs" / "pgd-readings"
EPS = 12 / 255
ALPHA = 1 / 255
STEPS = 300
# name → (step, eps, pixel_scale, squared, per_pixel, beta)
READINGS = {
    "literal (sign, ε=12/255, ‖·‖, [0,1], β=50)": ("sign", EPS, 1, False, False, 50),
    "literal, β=5": ("sign", EPS, 1, False, False, 5),
    "ℓ2 steps, ε=12/255": ("l2", EPS, 1, False, False, 50),
    "sign, unbounded": ("sign", None, 1, False, False, 50),
    "ℓ2 steps, unbounded": ("l2", None, 1, False, False, 50),
    "ℓ2 steps, unbounded, β=5": ("l2", None, 1, False, False, 5),
    "[0,255] pixels": ("sign", EPS, 255, False, False, 50),
    "squared": ("sign", EPS, 1, True, False, 50),
    "per pixel (RMS)": ("sign", EPS, 1, False, True, 50),
    "per pixel (RMS), β=5": ("sign", EPS, 1, False, True, 5),
    "per pixel (RMS), ℓ2 steps": ("l2", EPS, 1, False, True, 50),
    "per pixel (RMS), unbounded": ("sign", None, 1, False, True, 50),
    "squared, per pixel (MSE)": ("sign", EPS, 1, True, True, 50),
    "[0,255], squared, per pixel (MSE)": ("sign", EPS, 255, True, True, 50),
    "[0,255], per pixel (RMS)": ("sign", EPS, 255, False, True, 50),
    "[0,255], squared, per pixel (MSE), ℓ2 steps, unbounded": ("l2", None, 255, True, True, 50),
}


def images(bundle, n_composites=14):
    for name, (rgb, _) in photos().items():
        yield name, rgb
    k = 0
    for name, rgb, _, classes in composites():
        if k >= n_composites:
            break
        if bundle.top1(Image.fromarray(rgb)) not in classes:
            continue
        k += 1
        yield name, rgb


def main() -> None:
    from tqdm import tqdm

    torch.set_num_threads(2)
    only = sys.argv[1:]  # optional subset of image names
    OUT.mkdir(parents=True, exist_ok=True)
    rec_path = OUT / "records.jsonl"
    done = {}
    if rec_path.exists():
        for line in rec_path.read_text().splitlines():
            r = json.loads(line)
            done[(r["image"], r["reading"])] = r
    bundle = cameras.load_model()
    cam = cameras.build_method("cameras", bundle, scale_rule="paper")
    todo = [(n, rgb) for n, rgb in images(bundle) if not only or n in only]
    photo_names = set(list(photos())[:3])
    first = list(photos())[0]
    # phase 1: every reading on chelsea, and those that passed 50 % there on coffee and rocket;
    # phase 2: the other 3 photos and the composites, for the literal reading and every reading that
    # reached 99.99 % on all three photos of phase 1 (a stalled attack costs the full 300 steps)
    for phase in (1, 2):
        if phase == 2:
            keep = {rd for rd in READINGS
                    if all(done.get((img, rd), {}).get("enhanced", {}).get("success") for img in photo_names)}
            keep.add(next(iter(READINGS)))
        for name, rgb in tqdm([t for t in todo if (t[0] in photo_names) == (phase == 1)], desc=f"phase {phase}"):
            if phase == 1:  # chelsea: every reading; coffee and rocket: those above 50 % on chelsea
                keep = None if name == first else {rd for rd in READINGS if (first, rd) in done
                                                   and done[(first, rd)]["enhanced"]["target_prob"] > 0.5}
            attack_one(bundle, cam, name, rgb, done, rec_path, keep)
    summarize(done)


def attack_one(bundle, cam, name, rgb, done, rec_path, keep) -> None:
    x = bundle.prepare(Image.fromarray(rgb), square=True, normalized=False)
    sal = None
    vanilla = {}
    for reading, (step, eps, scale, sq, pp, beta) in READINGS.items():
        if (name, reading) in done or (keep is not None and reading not in keep):
            continue
        if sal is None:
            sal = cam(bundle.normalize(x)).maps
        n = x[0].numel()
        a = ALPHA * n**0.5 if step == "l2" else ALPHA
        if (step, eps) not in vanilla:
            vanilla[(step, eps)] = pgd(bundle.model, x, None, eps=eps, alpha=a, steps=STEPS, step=step,
                                       normalize=bundle.normalize)
        van = vanilla[(step, eps)]
        enh = enhanced_pgd(bundle.model, x, sal, beta=beta, target=van.targets, eps=eps, steps=STEPS,
                           normalize=bundle.normalize, step=step, pixel_scale=scale, squared=sq, per_pixel=pp)
        rec = {"image": name, "reading": reading, "vanilla": van.item(0), "enhanced": enh.item(0)}
        with open(rec_path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        done[(name, reading)] = rec


def summarize(done) -> None:
    rows, lines = [], ["| reading | step | ε | pixels | power | normalised | β | reached 99.99 % | mean steps "
                       "(plain / enhanced) | mean L2 plain | mean L2 enhanced | reduction | mean final confidence "
                       "of the misses |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for reading, (step, eps, scale, sq, pp, beta) in READINGS.items():
        recs = [r for (_, rd), r in done.items() if rd == reading]
        if not recs:
            continue
        ok = [r for r in recs if r["enhanced"]["success"] and r["vanilla"]["success"]]
        miss = [r["enhanced"]["target_prob"] for r in recs if not r["enhanced"]["success"]]
        row = {"reading": reading, "step": step, "eps": eps, "pixel_scale": scale, "squared": sq, "per_pixel": pp,
               "beta": beta, "images": len(recs), "enhanced_success": sum(r["enhanced"]["success"] for r in recs),
               "vanilla_success": sum(r["vanilla"]["success"] for r in recs),
               "steps_vanilla": float(np.mean([r["vanilla"]["steps"] for r in recs])),
               "steps_enhanced": float(np.mean([r["enhanced"]["steps"] for r in recs])),
               "both": len(ok),
               "l2_vanilla": float(np.mean([r["vanilla"]["l2"] for r in ok])) if ok else None,
               "l2_enhanced": float(np.mean([r["enhanced"]["l2"] for r in ok])) if ok else None,
               "reduction_percent": float(np.mean([100 * (1 - r["enhanced"]["l2"] / r["vanilla"]["l2"])
                                                   for r in ok])) if ok else None,
               "miss_confidence": float(np.mean(miss)) if miss else None}
        rows.append(row)

        def f(v, fmt="{:.2f}"):
            return "–" if v is None else fmt.format(v)
        lines.append(f"| {reading} | {step} | {'12/255' if eps else 'none'} | {'[0,255]' if scale == 255 else '[0,1]'}"
                     f" | {'‖·‖²' if sq else '‖·‖'} | {'mean' if pp else 'sum'} | {beta} | "
                     f"{row['enhanced_success']}/{len(recs)} | {row['steps_vanilla']:.0f} / {row['steps_enhanced']:.0f}"
                     f" | {f(row['l2_vanilla'])} | {f(row['l2_enhanced'])} | {f(row['reduction_percent'], '{:.1f} %')}"
                     f" | {f(row['miss_confidence'], '{:.4f}')} |")
    (OUT / "results.json").write_text(json.dumps({"alpha": ALPHA, "steps": STEPS, "rows": rows}, indent=1) + "\n")
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
