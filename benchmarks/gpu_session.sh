#!/usr/bin/env bash
# One GPU session: the CUDA correctness checks, the CUDA benchmark table, and the CLI commands
# on --device cuda (explain, attack --data, interpolation under torchrun).
# Usage on a machine with a GPU and cameras importable: bash benchmarks/gpu_session.sh OUTDIR
# Then copy OUTDIR/cuda.json to benchmarks/results/, OUTDIR/fast-cuda.json to
# benchmarks/results/fast/cuda.json, and run python benchmarks/report.py.
set -euo pipefail
OUT=${1:-gpu-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python benchmarks/cuda_check.py 2>&1 | tee "$OUT/cuda_check.txt"
python -m cameras samples --out "$OUT/samples" > /dev/null
python -m cameras explain "$OUT/samples/chelsea.jpg" --device cuda --topk 2 --out "$OUT/explain" --quiet
python -m cameras attack --data "$OUT/samples" --steps 20 --device cuda --out "$OUT/attack" --quiet
torchrun --standalone --nproc-per-node 1 -m cameras experiment interpolation "$OUT"/samples/*.jpg \
    --device cuda --out "$OUT/interp" --quiet
python benchmarks/run.py --device cuda --out "$OUT/cuda.json" 2>&1 | tail -3
# below the eager floor on the GPU: channels-last, CAMERAS(compile=True) and bf16 against the floor
python benchmarks/fast_paths.py --device cuda --models efficientnet_lite0,resnet50 \
    --bf16-models efficientnet_lite0,efficientnet_lite1,efficientnet_lite2,resnet50,timm:vit_small_patch16_224 \
    --out "$OUT/fast-cuda.json" 2>&1 | tail -3
