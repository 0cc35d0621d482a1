"""Check the CUDA path against the CPU: same maps, tensors stay on the GPU, AMP works.

Run on a machine with a GPU: python benchmarks/cuda_check.py  (prints one line per check)
"""

import torch
import torchvision
from PIL import Image
from skimage import data

import cameras


def main():
    assert torch.cuda.is_available(), "no CUDA device"
    dev = torch.device("cuda")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    bundle = cameras.load_model()
    x = cameras.preprocess(Image.fromarray(data.chelsea()), square=True)
    net = torchvision.models.resnet50(num_classes=1000).eval()
    checks = [("embedded", bundle.model, bundle.layer, x), ("resnet50", net, None, torch.randn(2, 3, 224, 288))]
    for name, model, layer, xin in checks:
        for method in cameras.available_methods():
            opts = {"n_masks": 64} if method == "rise" else {"iterations": 10} if method == "extremal" else {}
            if cameras.methods.method_class(method).uses_layer:
                opts["layer"] = layer
            cpu = cameras.get_method(method, model.cpu(), **opts)(xin, target=285)
            gpu_res = cameras.get_method(method, model.to(dev), **opts)(xin.to(dev), target=285)
            assert gpu_res.maps.device.type == "cuda" and gpu_res.targets.device.type == "cuda"
            diff = (gpu_res.maps.cpu() - cpu.maps).abs().max().item()
            print(f"{name:9s} {method:9s} max|cuda-cpu| = {diff:.2e}  "
                  f"cuda {gpu_res.seconds:.3f} s  cpu {cpu.seconds:.3f} s", flush=True)
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


if __name__ == "__main__":
    main()
