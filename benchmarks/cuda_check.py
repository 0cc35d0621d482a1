"""Check the CUDA path against the CPU: same maps, tensors stay on the GPU, AMP works, CUDA graphs
(`cuda_graphs=True`) give the eager maps and follow weight edits.

Run on a machine with a GPU: python benchmarks/cuda_check.py [--parts graphs,methods,compile]
(prints one line per check; every part by default, in that order).
"""

import argparse
import traceback

import torch
import torchvision
from PIL import Image
from skimage import data

import cameras


def verdict(diff, tol=1e-5):
    return f"{diff:.1e} {'OK' if diff <= tol else 'FAIL'}"


def check_graphs(dev):
    """cuda_graphs=True against eager CAMERAS on the GPU: ResNet-50 and the embedded model, batch 1 and 3,
    a given and the top-1 target, after an in-place weight edit and after weights moved; with bf16.

    Graphs fold no batch norms: their maps must equal the unfolded eager path's (fold_batchnorm=False)
    exactly, and the default (folded) path's up to the folding's own rounding, which is printed beside."""
    bundle = cameras.load_model()
    net = torchvision.models.resnet50(num_classes=1000).eval()

    def diff(a, b):
        return (a.maps - b.maps).abs().max().item()

    for name, model, layer in (("resnet50", net, None), ("embedded", bundle.model, bundle.layer)):
        model.to(dev)
        graphed = cameras.CAMERAS(model, layer=layer, cuda_graphs=True)
        unfolded = cameras.CAMERAS(model, layer=layer, fold_batchnorm=False)
        for b in (1, 3):
            x = torch.randn(b, 3, 224, 288, device=dev)
            for target in (285, None):
                ref = unfolded(x, target=target)
                folded = cameras.CAMERAS(model, layer=layer)(x, target=target)
                got = graphed(x, target=target)
                same = torch.equal(got.targets, ref.targets)
                print(f"{name:9s} graphs b{b} target {target}: max|graphs-unfolded eager| {verdict(diff(got, ref), 0)}"
                      f", max|graphs-default eager| {diff(got, folded):.1e} (folding alone, no verdict: "
                      f"{diff(folded, ref):.1e}), same targets {same}, captured {graphed._graphed.captures}, "
                      f"replays {graphed._graphed.replays}, disabled {graphed._graphed.disabled}", flush=True)
        x = torch.randn(1, 3, 224, 224, device=dev)
        p = next(model.parameters())
        with torch.no_grad():
            p.mul_(1.5)  # in place: the graphs read it
        d1 = diff(graphed(x, target=1), unfolded(x, target=1))
        p.data = p.data * 1.0  # moved: captured again
        before = graphed._graphed.captures
        d2 = diff(graphed(x, target=1), unfolded(x, target=1))
        print(f"{name:9s} graphs after in-place edit {verdict(d1, 0)}, after a move {verdict(d2, 0)} "
              f"(recaptured {graphed._graphed.captures - before})", flush=True)
        fp32 = unfolded(x, target=1)
        ref = cameras.CAMERAS(model, layer=layer, precision="bf16", fold_batchnorm=False)(x, target=1)
        folded = cameras.CAMERAS(model, layer=layer, precision="bf16")(x, target=1)
        got = cameras.CAMERAS(model, layer=layer, cuda_graphs=True, precision="bf16")(x, target=1)
        r = [float(torch.corrcoef(torch.stack([m.maps.flatten(), fp32.maps.flatten()]))[0, 1]) for m in (got, folded)]
        print(f"{name:9s} graphs with bf16: max|graphs-unfolded eager| {verdict(diff(got, ref), 0)}, "
              f"max|graphs-default eager| {diff(got, folded):.1e}; Pearson r to fp32: graphs {r[0]:.4f}, "
              f"default {r[1]:.4f}", flush=True)
        model.cpu()


def check_compile(dev):
    """cuda_graphs=True over compile=True against compile=True alone (Triton compiles for minutes at 8 scales: 2)."""
    net = torchvision.models.resnet50(num_classes=1000).eval().to(dev)
    x = torch.randn(1, 3, 224, 224, device=dev)
    ref = cameras.CAMERAS(net, scales=[224, 324], compile=True)(x, target=1)
    both = cameras.CAMERAS(net, scales=[224, 324], compile=True, cuda_graphs=True)
    got = both(x, target=1)
    print(f"resnet50  graphs with compile: max|graphs-compiled| {verdict((got.maps - ref.maps).abs().max().item())}"
          f", captured {both._graphed.captures}, disabled {both._graphed.disabled}", flush=True)
    net.cpu()


def check_methods(dev):
    """Every method on the GPU against the CPU (same maps, tensors stay on the GPU); CAMERAS's top-1 and AMP."""
    bundle = cameras.load_model()
    x = cameras.preprocess(Image.fromarray(data.chelsea()), square=True)
    net = torchvision.models.resnet50(num_classes=1000).eval()
    checks = [("embedded", bundle.model, bundle.layer, x), ("resnet50", net, None, torch.randn(2, 3, 224, 288))]
    for name, model, layer, xin in checks:
        for method in cameras.available_methods():
            opts = {"n_masks": 64} if method == "rise" else {"iterations": 10} if method == "extremal" else {}
            if cameras.methods.method_class(method).uses_layer:
                opts["layer"] = layer
            # Score-CAM runs a masked pass per channel (2048 on ResNet-50): on the CPU side one image of the two
            xm = xin[:1] if method == "scorecam" else xin
            try:
                cpu = cameras.get_method(method, model.cpu(), **opts)(xm, target=285)
                gpu_res = cameras.get_method(method, model.to(dev), **opts)(xm.to(dev), target=285)
                on_gpu = gpu_res.maps.device.type == "cuda" and gpu_res.targets.device.type == "cuda"
                diff = (gpu_res.maps.cpu() - cpu.maps).abs().max().item()
                print(f"{name:9s} {method:9s} max|cuda-cpu| = {diff:.2e}  on the GPU {on_gpu}  "
                      f"cuda {gpu_res.seconds:.3f} s  cpu {cpu.seconds:.3f} s", flush=True)
            except Exception:  # noqa: BLE001 - one method failing leaves the others to check
                print(f"{name:9s} {method:9s} FAILED\n{traceback.format_exc()}", flush=True)
            model.cpu()
        model.to(dev)
        auto = cameras.CAMERAS(model, layer=layer)(xin.to(dev))
        print(f"{name:9s} cameras auto target {auto.targets.tolist()} kept {auto.kept_scales}")
        for amp in ("bf16", "fp16"):
            r = cameras.CAMERAS(model, layer=layer, amp=amp, channels_last=True)(xin.to(dev), target=285)
            ref = cameras.CAMERAS(model, layer=layer)(xin.to(dev), target=285)
            print(f"{name:9s} amp {amp}: max diff {(r.maps - ref.maps).abs().max().item():.3f}, "
                  f"finite {bool(torch.isfinite(r.maps).all())}")
        model.cpu()


PARTS = {"graphs": check_graphs, "methods": check_methods, "compile": check_compile}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="graphs,methods,compile", help=f"comma list of {', '.join(PARTS)}")
    names = ap.parse_args(argv).parts.split(",")
    if set(names) - set(PARTS):
        ap.error(f"--parts takes {', '.join(PARTS)}; got {','.join(names)}")
    assert torch.cuda.is_available(), "no CUDA device"
    dev = torch.device("cuda")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    for name in names:  # one part failing leaves the others to run: one GPU session must check everything
        try:
            PARTS[name](dev)
        except Exception:  # noqa: BLE001
            print(f"{name}: FAILED\n{traceback.format_exc()}", flush=True)


if __name__ == "__main__":
    main()
