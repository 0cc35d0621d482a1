"""bf16 CAMERAS against fp32 on the synthetic set (part of the bf16 fidelity evidence; not timed).

The 300 held-out synthetic images (seed 300, as `scripts/synthetic_quality.py`), each explained
for its ground-truth class by `synthetic:cnn` (conv, batch norm, ReLU ×4: every pair folded and
its ReLU fused with `precision="bf16"` on a CPU) at the scales 64…192, in fp32 and in bf16.
Per image: the Pearson r of the two maps, their largest absolute difference, whether the
arg-max moved; per precision: the pointing game and the energy inside the object's box.
Writes benchmarks/results/bf16/synthetic.json, prints a summary and regenerates BENCHMARKS.md.
Run: .venv/bin/python benchmarks/bf16_synthetic.py
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

import cameras
from cameras.bench import pearson_rows
from cameras.data.synthetic import synthetic_batch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from fast_paths import bf16_kernels  # noqa: E402
from run import cpu_name  # noqa: E402
from synthetic_quality import SCALES, score  # noqa: E402


def main() -> None:
    imgs, labels, boxes = synthetic_batch(300, seed=300)
    b = cameras.load_model("synthetic:cnn")
    x = b.normalize(torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255)
    target = torch.from_numpy(labels)
    fp32 = cameras.CAMERAS(b.model, layer=b.layer, scales=SCALES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # emulated bf16 on CPUs without bf16 instructions
        low = cameras.CAMERAS(b.model, layer=b.layer, scales=SCALES, precision="bf16")
        maps = {name: torch.cat([m(x[i:i + 50], target=target[i:i + 50]).maps for i in range(0, 300, 50)])
                for name, m in (("fp32", fp32), ("bf16", low))}
    a, c = maps["fp32"].flatten(1).double(), maps["bf16"].flatten(1).double()
    r = pearson_rows(a, c)
    if any(v != v for v in r):  # a constant map against one that is not: r undefined, reported, never hidden
        raise SystemExit(f"{sum(v != v for v in r)} maps have no Pearson r (one of the two is constant)")
    moved = (a.argmax(1) != c.argmax(1)).float().mean().item()
    result = {"images": 300, "device": cpu_name(), "bf16_kernels": bf16_kernels(torch.device("cpu")),
              "model": "synthetic:cnn", "layer": fp32.layer_name, "scales": SCALES,
              "folded_pairs": len(low.folded.pairs) if low.folded else 0,
              "fused_activations": sum(v is not None for v in low.folded.activations) if low.folded else 0,
              "pearson_min": min(r), "pearson_median": float(np.median(r)),
              "pearson_below_0.99": int(sum(v < 0.99 for v in r)),
              "max_abs_diff": float((a - c).abs().max()), "argmax_moved_share": moved}
    for name, m in maps.items():
        hit, energy = score(m, boxes)
        result[f"{name}_pointing"], result[f"{name}_energy_in_box"] = hit, energy
    out = ROOT / "benchmarks" / "results" / "bf16" / "synthetic.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    print(f"wrote {out}")
    import report

    report.main()


if __name__ == "__main__":
    main()
