"""An independent, straightforward CAMERAS (resize every scale, stack every channel) used only by the tests.

It loops over images and scales, resizes every channel to full resolution with
F.interpolate, keeps full stacks, and needs the model split by hand into features / head.
"""

import torch
import torch.nn.functional as F


def reference_cameras(features, head, x, scales, target=None, resample="bicubic", weights=None):
    """CAMERAS by its definition; ``weights(g)`` replaces each scale's gradient (MultiScale of a CAM)."""
    maps, kept_all, targets = [], [], []
    for b in range(x.shape[0]):
        xb = x[b : b + 1]
        H, W = xb.shape[-2:]
        acts, grads, kept = [], [], []
        tgt = None if target is None else int(target[b])
        for t, z in enumerate(scales):
            if t == 0:
                xt = xb
            else:
                size = (round(H * z / scales[0]), round(W * z / scales[0]))
                xt = F.interpolate(xb, size=size, mode=resample, align_corners=False)
            with torch.no_grad():
                a = features(xt)
            a = a.detach().requires_grad_(True)
            logits = head(a)
            if t == 0 and tgt is None:
                tgt = int(logits.argmax(1))
                auto = True
            elif t == 0:
                auto = False
            if auto and int(logits.argmax(1)) != tgt:
                continue
            g, = torch.autograd.grad(logits[0, tgt], a)
            acts.append(F.interpolate(a.detach(), size=(H, W), mode="bilinear", align_corners=False))
            g = g if weights is None else weights(g)
            grads.append(F.interpolate(g, size=(H, W), mode="bilinear", align_corners=False))
            kept.append(z)
        abar = torch.stack(acts).mean(0)
        gbar = torch.stack(grads).mean(0)
        s = torch.relu((abar * gbar).sum(1))[0]
        rng = s.max() - s.min()
        maps.append((s - s.min()) / rng if rng > 0 else torch.zeros_like(s))
        kept_all.append(kept)
        targets.append(tgt)
    return torch.stack(maps), kept_all, targets
