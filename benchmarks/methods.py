"""The CAM family, the wrappers and ROAD against their floors (part of `make bench`).

Usage: python benchmarks/methods.py [--device cpu|cuda] [--quick] [--models efficientnet_lite0,resnet50]
Writes benchmarks/results/methods/<device>.json and regenerates BENCHMARKS.md (benchmarks/report.py).
Floors: the gradient CAMs against one forward pass; MultiScale against CAMERAS's floor (the
forward passes at its scales) and CAMERAS itself; Smooth against one forward of its copies or
views; Score-CAM against the masked forward passes it runs; ROAD against its 18 forwards.
"""

import json
import sys
import time
from pathlib import Path

import torch

import cameras
from cameras.allocator import raise_onednn_cache, tune_cpu_allocator
from cameras.bench import forward_all, interleaved_seconds, scaled_inputs
from cameras.metrics import road

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from run import SCALES, batch_input, load, result_header, script_args, write_result  # noqa: E402

CAMS = ["gradcam", "gradcampp", "xgradcam", "layercam", "hirescam"]


def time_methods(name, device, reps):
    bundle = load(name, device)
    model, layer = bundle.model, bundle.layer
    x = batch_input(1, 224, device)
    with torch.no_grad():
        t = model(x).argmax(1)
    r = {"model": name, "batch": 1, "input": 224}
    cams = {n: cameras.build_method(n, model, layer=layer) for n in CAMS}
    fns = {"forward": lambda: forward_all(model, [x])}
    fns.update({n: (lambda m=m: m(x, target=t)) for n, m in cams.items()})
    r.update(interleaved_seconds(fns, device, 3 * reps, block=10))  # milliseconds each: blocks of 10 calls
    r["layer"] = cams["gradcam"].layer_name

    cam = cameras.CAMERAS(model, layer=layer, scales=SCALES)
    ms = cameras.MultiScale(cameras.LayerCAM(model, layer=layer), scales=SCALES)
    inputs = scaled_inputs(x, cam)
    r.update({f"ms_{n}": v for n, v in interleaved_seconds({
        "floor": lambda: forward_all(model, inputs), "cameras": lambda: cam(x, target=t),
        "layercam": lambda: ms(x, target=t)}, device, reps).items()})

    gc = cams["gradcam"]
    smooth = cameras.Smooth(gc, n=16, batch_size=16)
    tta = cameras.Smooth(gc, augment="tta")
    copies = x.expand(16, -1, -1, -1).contiguous()
    views = [torch.nn.functional.interpolate(x, size=(round(224 * s),) * 2, mode="bilinear") for s in tta.tta_scales]
    r.update({f"smooth_{n}": v for n, v in interleaved_seconds({
        "noise": lambda: smooth(x, target=t), "noise_floor": lambda: forward_all(model, [copies]),
        "tta": lambda: tta(x, target=t), "tta_floor": lambda: forward_all(model, views + views)},
        device, reps).items()})

    sc = cameras.ScoreCAM(model, layer=layer, batch_size=32, progress=False)
    res = sc(x, target=t)
    n_fwd = res.extras["masked_forwards"]
    masked = [x.expand(min(32, n_fwd - s), -1, -1, -1) * torch.rand(min(32, n_fwd - s), 1, 224, 224, device=device)
              for s in range(0, n_fwd, 32)]
    r["scorecam_forwards"], r["scorecam_channels"] = n_fwd, int(res.extras["channel_weights"].shape[1])
    # one round without warm-up on a CPU (the first call above warmed up): a call is minutes on ResNet-50
    r.update({f"scorecam_{n}": v for n, v in interleaved_seconds({
        "call": lambda: sc(x, target=t), "floor": lambda: forward_all(model, masked)},
        device, 1 if device.type == "cpu" else reps, warmup=0).items()})

    maps = cam(x, target=t).maps
    road_inputs = [x.expand(18, -1, -1, -1).contiguous()]
    r.update({f"road_{n}": v for n, v in interleaved_seconds({
        "call": lambda: road(model, x, maps, target=t), "floor": lambda: forward_all(model, road_inputs)},
        device, reps).items()})
    print(json.dumps(r), flush=True)
    return r


def main(argv=None):
    a = script_args().parse_args(argv)
    raise_onednn_cache()
    tuned = tune_cpu_allocator()
    device = torch.device(a.device)
    reps = 2 if a.quick else 3
    t0 = time.time()
    rows = [time_methods(n, device, reps) for n in a.models.split(",")]
    result = {**result_header(device, tuned, reps, t0), "rows": rows}
    write_result(result, HERE / "results" / "methods" / f"{device.type}.json")


if __name__ == "__main__":
    main()
