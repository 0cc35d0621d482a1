"""What the dense targets' bookkeeping costs per call: BoxTarget matching and RegionTarget resampling.

Usage: python benchmarks/targets_cost.py [--reps 200]

BoxTarget matches its box against a detector's detections in ``bind``, ``score`` and
``probability`` (each call matches again); RegionTarget resamples its mask onto the output grid
in each ``score``. This times each call on a realistic output (100 detections of 10 labels on a
480×640 image; a 512×683 mask on a 21-class 128×171 segmentation) and prints the median
microseconds, to weigh against one detector or segmenter forward pass (over 100 ms on a CPU).
"""

import argparse

import torch

from cameras.bench import median_seconds
from cameras.core.dense import BoxTarget, RegionTarget


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    xy, wh = torch.rand(100, 2) * 400, torch.rand(100, 2) * 100 + 5
    dets = [{"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.randint(1, 10, (100,)),
             "scores": torch.rand(100).sort(descending=True).values}]
    box = BoxTarget([10, 10, 200, 200], label=3).for_batch(1, cpu).placed((480, 640))
    bound = box.bind(dets)
    mask = (torch.rand(1, 512, 683) > 0.5).float()
    seg = torch.randn(1, 21, 128, 171)
    region = RegionTarget(1, mask=mask).for_batch(1, cpu).placed((512, 683)).bind(seg)
    rows = [("BoxTarget.bind", lambda: box.bind(dets)), ("BoxTarget.score", lambda: bound.score(dets)),
            ("BoxTarget.probability", lambda: bound.probability(dets)),
            ("RegionTarget.score", lambda: region.score(seg)),
            ("RegionTarget.weights", lambda: region.weights((128, 171)))]
    for name, fn in rows:
        print(f"{name:<24} {1e6 * median_seconds(fn, cpu, args.reps, warmup=10):8.0f} µs")


if __name__ == "__main__":
    main()
