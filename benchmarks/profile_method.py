"""Profile one method call on a device: where the time beyond the forward pass goes.

Usage: python benchmarks/profile_method.py [--method gradcam] [--model efficientnet_lite0] [--device cuda] [--batch 1]
              [--set KEY=VALUE ...]
e.g. the bf16 profile the README quotes (before folding and fusion; then with them):
  python benchmarks/profile_method.py --method cameras --set precision=bf16 --set fold_batchnorm=False
  python benchmarks/profile_method.py --method cameras --set precision=bf16
Prints the median times of the forward and of the method, then torch.profiler's top operators.
"""

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

import cameras
from cameras.bench import forward_all, median_seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="gradcam")
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rows", type=int, default=25)
    ap.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                    help="a method option, e.g. precision=bf16 (repeatable)")
    a = ap.parse_args()
    dev = torch.device(a.device)
    bundle = cameras.load_model(a.model if a.model == "efficientnet_lite0" else f"torchvision:{a.model}",
                                None if a.model == "efficientnet_lite0" else "random").to(dev)
    opts = {"layer": bundle.layer} if cameras.methods.method_class(a.method).uses_layer else {}
    if a.method == "rise":
        opts.update(n_masks=64, progress=False)
    opts.update(cameras.methods.parse_option_strings(a.settings))
    m = cameras.get_method(a.method, bundle.model, **opts)
    x = torch.randn(a.batch, 3, 224, 224, device=dev)
    t = torch.zeros(a.batch, dtype=torch.long, device=dev)
    fwd = median_seconds(lambda: forward_all(bundle.model, [x]), dev, 20)
    meth = median_seconds(lambda: m(x, target=t), dev, 20)
    print(f"{a.method} on {a.model} b{a.batch} {dev}: forward {1000 * fwd:.2f} ms, "
          f"method {1000 * meth:.2f} ms, ×{meth / fwd:.2f}")
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(5):
            m(x, target=t)
        if dev.type == "cuda":
            torch.cuda.synchronize()
    key = "cuda_time_total" if dev.type == "cuda" else "cpu_time_total"
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=a.rows, max_name_column_width=50))
    if dev.type == "cuda":
        print(prof.key_averages().table(sort_by=key, row_limit=12, max_name_column_width=50))
    s = time.perf_counter()
    for _ in range(20):
        m(x, target=t)
    print(f"python-side wall per call without sync: {1000 * (time.perf_counter() - s) / 20:.2f} ms")


if __name__ == "__main__":
    main()
