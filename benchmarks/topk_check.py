"""Top-5 classes of one image against its top-1 with CAMERAS, shared passes and separate calls.

Run: .venv/bin/python benchmarks/topk_check.py   (the embedded model, the two sample photos,
medians of 3 rounds timed round-robin in one process). `make bench` times the shared case too.
"""

import torch
from PIL import Image
from skimage import data

import cameras
from cameras.bench import interleaved_seconds


def main() -> None:
    bundle = cameras.load_model()
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


if __name__ == "__main__":
    main()
