"""Where a ViT's bf16 CAMERAS time goes, part by part, against the fp32 floor (part of `make bench`).

Usage: python benchmarks/vit_bf16_parts.py [--models timm:vit_small_patch16_224] [--quick] [--reps 3]
Writes benchmarks/results/vit_parts/<device>.json and regenerates BENCHMARKS.md.

CAMERAS on a ViT explains the last block's first norm (`blocks.11.norm1`), so the whole last
block (attention and MLP) and the head lie above the layer: at every scale they run forward
and backward. With `precision="bf16"` the blocks below run in bf16 and the last block stays
float32. Timed here at CAMERAS's 8 scales (224…924 px, rounded to the 16-px patches), in one
round-robin group: the fp32 floor (the eager fp32 forward passes), the whole model's bf16
forward passes, the blocks below the layer in bf16 (forward only), and the last block with
the head forward and backward from the layer's output, in float32 (what `precision="bf16"`
runs) and under bf16 autocast (a design that would put the last block in bf16 too). The sum of
the bf16 blocks below and the cheaper top is the least time any design of that kind can take
on this CPU, before the resizing and the fusion.
"""

import copy
import json
import sys
import time
from pathlib import Path

import torch

import cameras
from cameras.allocator import raise_onednn_cache, tune_cpu_allocator
from cameras.bench import forward_all, interleaved_seconds, scaled_inputs

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from run import SCALES, batch_input, load, result_header, script_args, write_result  # noqa: E402


def main(argv=None):
    ap = script_args("timm:vit_small_patch16_224")  # one timm ViT (blocks, patch_embed, forward_head)
    ap.add_argument("--reps", type=int, default=None, help="rounds (default 2 with --quick, else 3)")
    a = ap.parse_args(argv)
    raise_onednn_cache()
    tuned = tune_cpu_allocator()
    device = torch.device(a.device)
    reps = a.reps or (2 if a.quick else 3)
    t0 = time.time()
    bundle = load(a.models, device)
    model = bundle.model
    explainer = cameras.CAMERAS(model, layer=bundle.layer, scales=SCALES)
    x = batch_input(1, 224, device)
    target = torch.zeros(1, dtype=torch.long, device=device)
    explainer(x, target=target)  # finds the layer
    if explainer.layer_name != f"blocks.{len(model.blocks) - 1}.norm1":
        raise SystemExit(f"{a.models}: CAMERAS explains {explainer.layer_name}, not the last block's norm1; this "
                         "script times a timm ViT whose last block lies above the layer")
    inputs = scaled_inputs(x, explainer)
    low = copy.deepcopy(model).to(torch.bfloat16)
    inputs16 = [i.to(torch.bfloat16) for i in inputs]
    top_block = model.blocks[-1]

    def below(m, xi):  # the tokens entering the last block
        t = m._pos_embed(m.patch_embed(xi))
        return m.blocks[:-1](m.norm_pre(m.patch_drop(t)))

    with torch.no_grad():
        tokens = [below(low, xi).float() for xi in inputs16]

    def lower_bf16():
        with torch.inference_mode():
            for xi in inputs16:
                below(low, xi)

    def top(autocast):
        def run():
            for t in tokens:
                a_ = top_block.norm1(t).detach().requires_grad_(True)
                with torch.autocast(device.type, torch.bfloat16, enabled=autocast):
                    h = t + top_block.ls1(top_block.attn(a_))
                    h = h + top_block.ls2(top_block.mlp(top_block.norm2(h)))
                    out = model.forward_head(model.norm(h))
                torch.autograd.grad(out[0].max(), a_)
        return run

    fast = cameras.CAMERAS(model, layer=explainer.layer_name, scales=SCALES, precision="bf16")
    groups = {"floor": lambda: forward_all(model, inputs), "forward_bf16": lambda: forward_all(low, inputs16),
              "below_bf16": lower_bf16, "top_fp32": top(False), "top_bf16_autocast": top(True),
              "cameras_bf16": lambda: fast(x, target=target)}
    times = interleaved_seconds(groups, device, reps, warmup=1)
    row = {"model": a.models, "layer": explainer.layer_name, "tokens": [i.shape[-2] * i.shape[-1] // 256 + 1
                                                                       for i in inputs], **times}
    print(json.dumps(row), flush=True)
    write_result({**result_header(device, tuned, reps, t0), "command": " ".join(
        ["python benchmarks/vit_bf16_parts.py", *(sys.argv[1:] if argv is None else argv)]), "parts": row},
        HERE / "results" / "vit_parts" / f"{device.type}.json")


if __name__ == "__main__":
    main()
