#!/usr/bin/env bash
# One GPU session, most important first, each step under its own time limit so that one slow or
# failing step loses only itself (a lent GPU gives about ten minutes):
#   1. CUDA correctness: cuda_graphs=True against eager maps, then every method CUDA against CPU;
#   2. below the eager floor on the GPU: CUDA graphs at batch 1/8/32 with the throughput row,
#      channels-last and bf16 rows (benchmarks/fast_paths.py, no torch.compile: minutes of Triton);
#   3. the GPU rows of BENCHMARKS.md (benchmarks/run.py --quick);
#   4. the CLI on --device cuda (explain, attack --data, interpolation under torchrun).
# Usage on a machine with a GPU and cameras importable: bash benchmarks/gpu_session.sh OUTDIR [SECONDS]
# (SECONDS: the whole session's budget, 540 by default). Then copy OUTDIR/cuda.json to
# benchmarks/results/, OUTDIR/fast-cuda.json to benchmarks/results/fast/cuda.json, and run
# python benchmarks/report.py.
set -uo pipefail
OUT=${1:-gpu-out}
BUDGET=${2:-540}
END=$(( $(date +%s) + BUDGET ))
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"

step() {  # step NAME SECONDS COMMAND...: at most SECONDS, and never past the session's end
    local name=$1 limit=$2
    shift 2
    local left=$(( END - $(date +%s) ))
    (( limit > left )) && limit=$left
    if (( limit < 10 )); then echo "== $name: skipped (session budget spent)" | tee -a "$OUT/steps.txt"; return; fi
    local start=$(date +%s)
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "== $name: rc $rc in $(( $(date +%s) - start )) s (limit $limit s)" | tee -a "$OUT/steps.txt"
    tail -n 25 "$OUT/$name.log"
}

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
step cuda_check 150 python benchmarks/cuda_check.py
step fast_paths 210 python benchmarks/fast_paths.py --device cuda --quick --no-compile \
    --models resnet50,efficientnet_lite0 --graph-batches 1,8,32 \
    --bf16-models efficientnet_lite0,resnet50,timm:vit_small_patch16_224 --out "$OUT/fast-cuda.json"
step run 150 python benchmarks/run.py --device cuda --quick --out "$OUT/cuda.json"
python -m cameras samples --out "$OUT/samples" > /dev/null
step explain 20 python -m cameras explain "$OUT/samples/chelsea.jpg" --device cuda --topk 2 --out "$OUT/explain" --quiet
step attack 30 python -m cameras attack --data "$OUT/samples" --steps 20 --device cuda --out "$OUT/attack" --quiet
step interpolation 30 torchrun --standalone --nproc-per-node 1 -m cameras experiment interpolation \
    "$OUT"/samples/*.jpg --device cuda --out "$OUT/interp" --quiet
cat "$OUT/steps.txt"
