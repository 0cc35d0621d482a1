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


def reference_cameras_dense(model, layer, x, scales, score, resample="bicubic", to_map=None, border_pad=0,
                            canvas=None):
    """CAMERAS by its definition for any score of the output: one image and one scale at a time.

    ``score(output, b, (h, w))`` is image b's scalar score on an output of an input resized to
    (h, w) (the region or box scaled by hand). The layer's output is replaced by a leaf through a
    plain forward hook and the whole forward runs with gradients on. ``to_map(t, (h, w))`` turns the
    layer's output (tokens) at an input of (h, w) into B×K×h'×w'. ``border_pad`` pixels of mirrored border are added
    first and cropped from the map (the score then sees the padded size). ``canvas((h, w))``: the
    padded size a detector's layers see for an (h, w) input; the layer's grid then covers that
    canvas, and it is sampled (``grid_sample``) at the H×W output pixels' centres on the image's part.
    """
    to_map = to_map or (lambda t, size: t)
    maps = []
    for b in range(x.shape[0]):
        xb = x[b : b + 1]
        p = border_pad
        if p:
            xb = F.pad(xb, (p, p, p, p), mode="reflect")
        H, W = xb.shape[-2:]
        acts, grads = [], []
        for t, z in enumerate(scales):
            size = (H, W) if t == 0 else (round(H * z / scales[0]), round(W * z / scales[0]))
            xt = xb if t == 0 else F.interpolate(xb, size=size, mode=resample, align_corners=False)
            box = {}

            def hook(_m, _i, out, box=box):
                box["a"] = out.detach().requires_grad_(True)
                return box["a"]

            h = layer.register_forward_hook(hook)
            try:
                with torch.enable_grad():
                    out = model(xt)
                    s = score(out, b, size)
                    g, = torch.autograd.grad(s, box["a"])
            finally:
                h.remove()
            a = to_map(box["a"].detach(), size)
            g = to_map(g, size)
            if canvas is None:
                acts.append(F.interpolate(a, size=(H, W), mode="bilinear", align_corners=False))
                grads.append(F.interpolate(g, size=(H, W), mode="bilinear", align_corners=False))
            else:
                hc, wc = canvas(size)
                gy = 2 * (torch.arange(H) + 0.5) * (size[0] / H) / hc - 1  # output centres, on the canvas
                gx = 2 * (torch.arange(W) + 0.5) * (size[1] / W) / wc - 1
                grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1)[None].to(a.dtype)  # 1×H×W×2
                for stack, v in ((acts, a), (grads, g)):
                    stack.append(F.grid_sample(v, grid, mode="bilinear", padding_mode="border", align_corners=False))
        s = torch.relu((torch.stack(acts).mean(0) * torch.stack(grads).mean(0)).sum(1))[0]
        if p:
            s = s[p:H - p, p:W - p]
        rng = s.max() - s.min()
        maps.append((s - s.min()) / rng if rng > 0 else torch.zeros_like(s))
    return torch.stack(maps)
