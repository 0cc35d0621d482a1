"""The numbers behind the README's "Random weights can collapse" and the fast paths' rounding on larger models.

Run: .venv/bin/python scripts/random_collapse.py   (CPU, about two minutes)

1. Random-weight torchvision models as `cameras.load_model(..., weights="random")` and the tests build them:
   the largest |activation| at the explained layer on a random image, and how far the output moves between two
   random images, before and after `cameras.recalibrate_batch_norms` (Inception-v3 also: all-zero Grad-CAM maps
   of 4 random 224-px images, before and after).
2. On the recalibrated FCN-ResNet50 (a region target) and RetinaNet (a box target) of tests/test_dense.py: the
   largest map difference between the default path (channels-last, folded norms) and the reference path
   (channels_last=False, fold_batchnorm=False), and FCN's float32 paths against a float64 computation.
"""

import warnings

import torch
from torchvision.models import get_model

import cameras
from cameras import CAMERAS, BoxTarget, RegionTarget
from cameras.core.layers import known_layer
from cameras.core.layouts import any_input_size

warnings.filterwarnings("ignore", category=UserWarning)
REFERENCE = {"channels_last": False, "fold_batchnorm": False}


def batches(size, n=3, b=4):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(b, 3, *size, generator=g) for _ in range(n)]


def probe(net, layer, size, out_of):
    """(largest |activation| at layer, largest output change between two random images)."""
    seen = []
    h = layer.register_forward_hook(lambda m, i, o: seen.append(float(o.abs().max())))
    with torch.no_grad(), any_input_size(net):
        a, b = (out_of(net(torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(s)))) for s in (11, 12))
    h.remove()
    return max(seen), float((a - b).abs().max())


def main():
    torch.manual_seed(0)
    inc = cameras.load_model("torchvision:inception_v3", weights="random").model
    x = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    for when in ("raw", "recalibrated"):
        if when == "recalibrated":
            cameras.recalibrate_batch_norms(inc, batches((224, 224), 4, 8))
        act, spread = probe(inc, inc.Mixed_7c, (224, 224), lambda o: o)
        zero = int((cameras.GradCAM(inc, layer="Mixed_7c")(x).maps.amax((1, 2)) == 0).sum())
        print(f"inception_v3 {when}: Mixed_7c max |activation| {act:.2g}, output moves {spread:.2g}, "
              f"all-zero Grad-CAM maps {zero} of 4", flush=True)
    dense = [("lraspp_mobilenet_v3_large", (64, 64), lambda o: o["out"]),
             ("deeplabv3_mobilenet_v3_large", (64, 64), lambda o: o["out"]),
             ("fasterrcnn_mobilenet_v3_large_fpn", (96, 128), lambda o: o[0]["scores"][:1]),
             ("ssdlite320_mobilenet_v3_large", (96, 128), lambda o: o[0]["scores"][:1])]
    for name, size, out_of in dense:
        torch.manual_seed(0)
        kw = {} if "lraspp" in name or "deeplab" in name else (
            {"box_score_thresh": 0.0} if "rcnn" in name else {"score_thresh": 0.0})
        net = get_model(name, weights=None, weights_backbone=None, num_classes=4 if not kw else 5, **kw).eval()
        layer = dict(net.named_modules())[known_layer(net)]
        raw = probe(net, layer, size, out_of)
        cameras.recalibrate_batch_norms(net if not kw else net.backbone, batches(size))
        print(f"{name}: max |activation| {raw[0]:.2g} → {probe(net, layer, size, out_of)[0]:.2g}, output moves "
              f"{raw[1]:.2g} → {probe(net, layer, size, out_of)[1]:.2g}", flush=True)
    torch.manual_seed(0)
    fcn = cameras.recalibrate_batch_norms(get_model("fcn_resnet50", weights=None, weights_backbone=None,
                                                    num_classes=4).eval(), batches((64, 64)))
    x = torch.randn(1, 3, 48, 56, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(48, 56)
    mask[10:40, 20:50] = 1
    ref, fast = (CAMERAS(fcn, scales=[48], **kw)(x, RegionTarget(2, mask)).maps for kw in (REFERENCE, {}))
    exact = CAMERAS(fcn.double(), scales=[48])(x.double(), RegionTarget(2, mask)).maps  # no fast path in float64
    print(f"fcn_resnet50 region: default vs reference {float((fast - ref).abs().max()):.2g}; against float64: "
          f"reference {float((ref - exact).abs().max()):.2g}, default {float((fast - exact).abs().max()):.2g}")
    torch.manual_seed(0)
    ret = get_model("retinanet_resnet50_fpn", weights=None, weights_backbone=None, num_classes=5,
                    score_thresh=0.0).eval()
    cameras.recalibrate_batch_norms(ret.backbone, batches((96, 128)))
    x = torch.rand(1, 3, 96, 112, generator=torch.Generator().manual_seed(6))
    with torch.no_grad(), any_input_size(ret):
        d = ret(x)[0]
    t = BoxTarget(d["boxes"][0].tolist(), int(d["labels"][0]))
    ref, fast = (CAMERAS(ret, scales=[96], **kw)(x, t).maps for kw in (REFERENCE, {}))
    print(f"retinanet_resnet50_fpn box: default vs reference {float((fast - ref).abs().max()):.2g}")


if __name__ == "__main__":
    main()
