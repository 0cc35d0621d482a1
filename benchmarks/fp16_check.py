"""fp16/bf16 CAMERAS against float32 on CUDA, and why fp16 can lose a layer: its activation size.

Run on a machine with a GPU: python benchmarks/fp16_check.py
The models are raw random-weight networks (`cameras.load_model(..., weights="random")`), without
the batch-norm recalibration benchmarks/run.py gives Inception-v3: its tiny activations are the point here
(its float32 maps are all zero, and the script says so).
fp16's smallest normal number is 6.1e-5; activations far below it keep only a few bits.
"""

import torch

import cameras

LAYERS = {"inception_v3": "Mixed_7c", "resnet50": "layer4"}


def main():
    dev = torch.device("cuda")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    for name, layer in LAYERS.items():
        net = cameras.load_model(f"torchvision:{name}", weights="random").to(dev).model
        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(dev)
        with torch.no_grad():
            t = net(x).argmax(1)
        ref = cameras.CAMERAS(net, layer=layer)(x, target=t).maps
        print(f"{name}: float32 maps all zero in {int((ref.amax((1, 2)) == 0).sum())} of {len(ref)}", flush=True)
        for amp in ("bf16", "fp16"):
            m = cameras.CAMERAS(net, layer=layer, amp=amp)(x, target=t).maps
            print(f"{name} {amp}: max abs diff {(m - ref).abs().max().item():.4f}, "
                  f"mean {(m - ref).abs().mean().item():.5f}", flush=True)
        seen = {}
        hook = dict(net.named_modules())[layer].register_forward_hook(
            lambda m, i, o, seen=seen: seen.__setitem__("a", o))
        with torch.no_grad():
            net(x)
            fp32 = seen["a"].abs().max().item()
            with torch.autocast("cuda", dtype=torch.float16):
                net(x)
            tiny = (seen["a"].abs() < 6.1e-5).float().mean().item()
        hook.remove()
        print(f"{name} {layer}: max |activation| fp32 {fp32:.3g}; share of fp16 activations below fp16's "
              f"normal range {tiny:.3f}", flush=True)


if __name__ == "__main__":
    main()
