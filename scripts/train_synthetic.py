"""Train synthetic:vit and synthetic:cnn on the synthetic localisation task (cameras.data.synthetic).

Generates 8000 training images (seed 100) and 1000 held-out ones (seed 200), trains each network
with Adam on the CPU, prints held-out accuracy and writes src/cameras/weights/synthetic_<kind>.pt
(float16 state dicts, well under 5 MB). Run: .venv/bin/python scripts/train_synthetic.py [cnn] [vit]
(about 4 minutes each on 2 CPU cores; deterministic up to thread scheduling).
"""

import sys
import time

import torch
import torch.nn.functional as F

from cameras.data.synthetic import synthetic_batch
from cameras.models import SYNTHETIC_WEIGHTS, synthetic_architecture


def tensors(n, seed):
    imgs, labels, _ = synthetic_batch(n, seed)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    return (x - 0.5) / 0.25, torch.from_numpy(labels)


def main() -> None:
    xtr, ytr = tensors(8000, 100)
    xva, yva = tensors(1000, 200)
    kinds = sys.argv[1:] or ["cnn", "vit"]
    for kind, epochs, lr in (("cnn", 6, 2e-3), ("vit", 8, 1e-3)):
        if kind not in kinds:
            continue
        torch.manual_seed(0)
        model = synthetic_architecture(kind)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
        steps = epochs * (len(xtr) // 64)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
        start = time.time()
        for ep in range(epochs):
            model.train()
            perm = torch.randperm(len(xtr))
            for i in range(0, len(xtr) - 63, 64):
                idx = perm[i:i + 64]
                xb = xtr[idx]
                if torch.rand(()) < 0.5:  # flips keep every class and its box semantics
                    xb = xb.flip(3)
                loss = F.cross_entropy(model(xb), ytr[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
            model.eval()
            with torch.no_grad():
                acc = (model(xva).argmax(1) == yva).float().mean().item()
            print(f"{kind} epoch {ep + 1}: loss {loss.item():.3f}, held-out accuracy {acc:.3f}, "
                  f"{time.time() - start:.0f} s", flush=True)
        SYNTHETIC_WEIGHTS.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.half() for k, v in model.state_dict().items()}, SYNTHETIC_WEIGHTS / f"synthetic_{kind}.pt")


if __name__ == "__main__":
    main()
