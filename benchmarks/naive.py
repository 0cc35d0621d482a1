"""The straightforward CAMERAS algorithm, as a research script would write it, for timing.

Full backward (into every layer and parameter), every channel of every scale resized to the
input size with F.interpolate and summed. Same maps as cameras.CAMERAS (checked by run.py).
"""

import torch
import torch.nn.functional as F


def naive_cameras(model, layer, x, scales, target):
    model.eval()
    B, _, H, W = x.shape
    store = {}

    def hook(_m, _i, out):
        store["a"] = out
        out.register_hook(lambda g: store.__setitem__("g", g))
        return out.clone()

    handle = layer.register_forward_hook(hook)
    try:
        sum_a = sum_g = None
        for t, z in enumerate(scales):
            size = (round(H * z / scales[0]), round(W * z / scales[0]))
            xt = x if t == 0 else F.interpolate(x, size=size, mode="bicubic", align_corners=False)
            logits = model(xt)
            model.zero_grad()
            logits.gather(1, target[:, None]).sum().backward()
            a = F.interpolate(store["a"].detach(), size=(H, W), mode="bilinear", align_corners=False)
            g = F.interpolate(store["g"], size=(H, W), mode="bilinear", align_corners=False)
            sum_a = a if sum_a is None else sum_a + a
            sum_g = g if sum_g is None else sum_g + g
        s = torch.relu((sum_a / len(scales) * sum_g / len(scales)).sum(1))
        lo = s.flatten(1).min(1).values.view(-1, 1, 1)
        hi = s.flatten(1).max(1).values.view(-1, 1, 1)
        return (s - lo) / (hi - lo).clamp_min(1e-12)
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
