"""Batch-norm folding alone: CAMERAS's default (channels-last, folded) against channels-last unfolded.

Usage: python benchmarks/fold_check.py [--model efficientnet_lite0] [--batch 1] [--reps 5] [--groups 3]

Times the two paths round-robin in one process (`--groups` groups of `--reps` rounds each, after a
warm-up) at CAMERAS's 8 scales on a random 224×224 input with an explicit target, and prints the
median seconds of each group and their ratio. It is the focused check behind the README's note on
the EfficientNet-Lite0 batch-1 row, where two rounds of `fast_paths.py` cannot resolve a 15% step.
"""

import argparse
import sys
from pathlib import Path

import torch

import cameras
from cameras.allocator import raise_onednn_cache, tune_cpu_allocator
from cameras.bench import interleaved_seconds

sys.path.insert(0, str(Path(__file__).parent))
from run import SCALES, batch_input, load  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--groups", type=int, default=3)
    a = ap.parse_args(argv)
    raise_onednn_cache()
    tune_cpu_allocator()
    device = torch.device("cpu")
    bundle = load(a.model, device)
    x = batch_input(a.batch, 224, device)
    with torch.no_grad():
        t = bundle.model(x).argmax(1)
    unfolded = cameras.CAMERAS(bundle.model, layer=bundle.layer, scales=SCALES, fold_batchnorm=False)
    folded = cameras.CAMERAS(bundle.model, layer=bundle.layer, scales=SCALES)
    for _ in range(a.groups):
        s = interleaved_seconds({"unfolded": lambda: unfolded(x, target=t), "folded": lambda: folded(x, target=t)},
                                device, a.reps)
        print(f"{a.model} batch {a.batch}: unfolded {s['unfolded']:.3f} s, folded {s['folded']:.3f} s, "
              f"folded/unfolded {s['folded'] / s['unfolded']:.2f}", flush=True)


if __name__ == "__main__":
    main()
