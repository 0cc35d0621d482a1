"""Check the torchrun path on a GPU machine: process group, per-rank device, barrier, merge.

Run: torchrun --standalone --nproc-per-node K benchmarks/distributed_check.py OUT_DIR [--device cuda]
(K up to the number of GPUs; one rank still joins an NCCL group). Rank 0 prints one line.
"""

import argparse

import torch
import torch.distributed as dist

import cameras
from cameras.distributed import launch
from cameras.runs import placement, run_items


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    with launch(a.device) as run:
        bundle = cameras.load_model(device=run.device)
        gc = cameras.GradCAM(bundle.model, layer=bundle.layer)
        g = torch.Generator().manual_seed(0)
        xs = [torch.randn(1, 3, 224, 224, generator=g) for _ in range(6)]

        def work(i):
            res = gc(xs[i].to(run.device), target=i)
            assert res.maps.device == run.device
            return {"sum": float(res.maps.sum()), "device": str(res.maps.device), "rank": run.rank}

        recs = run_items([str(i) for i in range(6)], work, a.out, "check", {}, progress=False, **placement(run))
        backend = dist.get_backend() if dist.is_initialized() else "none"
        if recs is not None:
            print(f"world {run.world}, backend {backend}, devices {sorted({r['device'] for r in recs})}, "
                  f"ranks {sorted({r['rank'] for r in recs})}, {len(recs)} records merged")


if __name__ == "__main__":
    main()
