"""Top-5 classes of one image against its top-1 with CAMERAS, shared passes and separate calls.

Run: .venv/bin/python benchmarks/topk_check.py   (the embedded model, the two sample photos,
medians of 3 rounds timed round-robin in one process). Writes benchmarks/results/topk/<device>.json,
which benchmarks/report.py adds to BENCHMARKS.md. `make bench` times the shared case too.
"""

import json
import platform
from pathlib import Path

import torch
from PIL import Image
from skimage import data

import cameras
from cameras.bench import interleaved_seconds


def main() -> None:
    bundle = cameras.load_model()
    rows = []
    for name in ("chelsea", "coffee"):
        x = bundle.prepare(Image.fromarray(getattr(data, name)()))
        cam = cameras.build_method("cameras", bundle)
        ranks = [None, *(cameras.RankTarget(i) for i in range(1, 5))]
        t = interleaved_seconds({
            "top1": lambda x=x, cam=cam: cam.explain_targets(x, [None]),
            "top5_shared": lambda x=x, cam=cam, ranks=ranks: cam.explain_targets(x, ranks),
            "top5_separate": lambda x=x, cam=cam, ranks=ranks: [cam(x, target=r) for r in ranks],
        }, torch.device("cpu"), 3)
        print(f"{name}: top-1 {t['top1']:.2f} s, top-5 shared {t['top5_shared']:.2f} s "
              f"({t['top5_shared'] / t['top1']:.2f}×), separate {t['top5_separate']:.2f} s "
              f"({t['top5_separate'] / t['top1']:.2f}×)")
        rows.append({"photo": name, "size": list(x.shape[2:]), **t})
    out = Path(__file__).parent / "results" / "topk" / "cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": "cpu", "machine": platform.machine(), "threads": torch.get_num_threads(),
                               "torch": torch.__version__, "scales": list(cameras.CAMERAS(bundle.model).scales),
                               "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
