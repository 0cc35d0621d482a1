"""Train synthetic:vit, synthetic:cnn and synthetic:seg on the synthetic localisation task (cameras.data.synthetic).

synthetic:seg (a TinySegNet) learns per-pixel labels (background + 4 classes) on 6000 two-object
scenes (synthetic_scene, seed 300; held out: 500, seed 400) and prints held-out pixel accuracy
and the mean IoU over the object classes.

Generates 8000 training images (seed 100) and 1000 held-out ones (seed 200), trains each network
with Adam on the CPU, prints held-out accuracy and writes src/cameras/weights/synthetic_<kind>.pt
(float16 state dicts, well under 5 MB). Run: .venv/bin/python scripts/train_synthetic.py [cnn] [vit] [seg]
(about 4 minutes each on 2 CPU cores; deterministic up to thread scheduling).
"""

import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from cameras.data.synthetic import synthetic_batch, synthetic_scene
from cameras.models import SYNTHETIC_WEIGHTS, synthetic_architecture


def tensors(n, seed):
    imgs, labels, _ = synthetic_batch(n, seed)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    return (x - 0.5) / 0.25, torch.from_numpy(labels)


def train_epoch(model, opt, sched, x, y, batch, loss_fn):
    """One epoch of shuffled batches, each mirrored with probability 1/2 (labels per pixel mirrored too:
    flips keep every class and its box semantics); returns the last batch's loss, the model in eval mode."""
    model.train()
    perm = torch.randperm(len(x))
    for i in range(0, len(x) - batch + 1, batch):
        idx = perm[i:i + batch]
        xb, yb = x[idx], y[idx]
        if torch.rand(()) < 0.5:
            xb, yb = xb.flip(3), (yb.flip(-1) if yb.dim() > 1 else yb)
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    return loss


def scenes(n, seed):
    rng = np.random.default_rng(seed)
    out = [synthetic_scene(rng, 64) for _ in range(n)]
    x = torch.from_numpy(np.stack([o[0] for o in out])).permute(0, 3, 1, 2).float() / 255
    return (x - 0.5) / 0.25, torch.from_numpy(np.stack([o[1] for o in out])).long()


def train_seg() -> None:
    xtr, ytr = scenes(6000, 300)
    xva, yva = scenes(500, 400)
    torch.manual_seed(0)
    model = synthetic_architecture("seg")
    epochs = 8
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=epochs * (len(xtr) // 32))
    start = time.time()

    def pixel_loss(out, yb):
        return F.cross_entropy(F.interpolate(out, size=yb.shape[-2:], mode="bilinear", align_corners=False), yb)

    for ep in range(epochs):
        loss = train_epoch(model, opt, sched, xtr, ytr, 32, pixel_loss)
        with torch.no_grad():
            pred = F.interpolate(model(xva), size=yva.shape[-2:], mode="bilinear", align_corners=False).argmax(1)
        acc = (pred == yva).float().mean().item()
        ious = [((pred == c) & (yva == c)).sum().item() / max(1, ((pred == c) | (yva == c)).sum().item())
                for c in range(1, 5)]
        print(f"seg epoch {ep + 1}: loss {loss.item():.3f}, held-out pixel accuracy {acc:.3f}, "
              f"object mIoU {np.mean(ious):.3f}, {time.time() - start:.0f} s", flush=True)
    SYNTHETIC_WEIGHTS.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.half() for k, v in model.state_dict().items()}, SYNTHETIC_WEIGHTS / "synthetic_seg.pt")


def main() -> None:
    kinds = sys.argv[1:] or ["cnn", "vit", "seg"]
    if "seg" in kinds:
        train_seg()
    if not {"cnn", "vit"} & set(kinds):
        return
    xtr, ytr = tensors(8000, 100)
    xva, yva = tensors(1000, 200)
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
            loss = train_epoch(model, opt, sched, xtr, ytr, 64, F.cross_entropy)
            with torch.no_grad():
                acc = (model(xva).argmax(1) == yva).float().mean().item()
            print(f"{kind} epoch {ep + 1}: loss {loss.item():.3f}, held-out accuracy {acc:.3f}, "
                  f"{time.time() - start:.0f} s", flush=True)
        SYNTHETIC_WEIGHTS.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.half() for k, v in model.state_dict().items()}, SYNTHETIC_WEIGHTS / f"synthetic_{kind}.pt")


if __name__ == "__main__":
    main()
