"""What this CPU offers the fast paths: bf16 against fp32 arithmetic, and what eager batch norms cost.

Usage: python benchmarks/cpu_probe.py   (about three minutes on 2 cores; prints, writes nothing)

- bf16 and AMX flags as the kernel reports them, and oneDNN's view (`fast_bf16`);
- a 2048² matmul in fp32 and in bf16, TFLOP/s (median of 5): bf16 only pays where it is faster;
- ResNet-50 (random weights, channels-last) forward passes at CAMERAS's 8 scales, batch 1 and 8,
  with its batch norms and with them replaced by identities: the most that folding them into the
  convolutions could save (ratios of medians, round-robin in one process).
"""

import sys
import time
from pathlib import Path

import torch
import torchvision

from cameras.allocator import raise_onednn_cache, tune_cpu_allocator
from cameras.bench import interleaved_seconds
from cameras.core.memory import fast_bf16

sys.path.insert(0, str(Path(__file__).parent))
from run import SCALES, cpu_name  # noqa: E402


def matmul_tflops(dtype, n=2048, reps=5):
    a = torch.randn(n, n).to(dtype)
    a @ a
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - start)
    return 2 * n**3 / sorted(times)[reps // 2] / 1e12


def without_batch_norms(model):
    for m in model.modules():
        for name, child in m.named_children():
            if isinstance(child, torch.nn.BatchNorm2d):
                setattr(m, name, torch.nn.Identity())
    return model


def main():
    raise_onednn_cache()
    tune_cpu_allocator()
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    print(f"{cpu_name()}, {torch.get_num_threads()} threads; flags: "
          + ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in ("avx512_bf16", "amx_bf16", "amx_tile"))
          + f"; oneDNN bf16: {fast_bf16(torch.device('cpu'))}")
    print(f"2048² matmul: fp32 {matmul_tflops(torch.float32):.2f} TFLOP/s, bf16 {matmul_tflops(torch.bfloat16):.2f}")
    torch.manual_seed(0)
    cl = torch.channels_last
    with_bn = torchvision.models.resnet50().eval().to(memory_format=cl)
    no_bn = without_batch_norms(torchvision.models.resnet50().eval()).to(memory_format=cl)
    for b in (1, 8):
        xs = [torch.randn(b, 3, s, s).contiguous(memory_format=cl) for s in SCALES]

        def passes(model, xs=xs):
            with torch.no_grad():
                for x in xs:
                    model(x)

        t = interleaved_seconds({"bn": lambda: passes(with_bn), "no_bn": lambda: passes(no_bn)},
                                torch.device("cpu"), reps=3)
        print(f"ResNet-50 channels-last, batch {b}, 8 scales: {t['bn']:.2f} s with batch norms, "
              f"{t['no_bn']:.2f} s without ({t['no_bn'] / t['bn']:.2f}×)", flush=True)


if __name__ == "__main__":
    main()
