#!/usr/bin/env bash
# One GPU session, most important first, each step under its own time limit so that one slow or
# failing step loses only itself (a lent GPU gives about ten minutes):
#   1. CUDA correctness: cuda_graphs=True against eager maps, then every method CUDA against CPU;
#   2. below the eager floor on the GPU: CUDA graphs at batch 1/8/32 with the throughput row,
#      channels-last and bf16 rows (benchmarks/fast_paths.py, no torch.compile: minutes of Triton);
#   3. the GPU rows of BENCHMARKS.md (benchmarks/run.py --quick);
#   4. the CLI on --device cuda (explain, attack --data, interpolation under torchrun).
# Usage from the repository root on a machine with a GPU:
#   bash benchmarks/gpu_session.sh OUTDIR [SECONDS]
# SECONDS is the whole session's budget (540 by default). OUTDIR receives three files only:
# session.log (every step's output and its exit status), fast-cuda.json and cuda.json; the CLI's
# images go to a scratch folder. Then copy OUTDIR/cuda.json to benchmarks/results/,
# OUTDIR/fast-cuda.json to benchmarks/results/fast/cuda.json, and run python benchmarks/report.py.
# PY names the interpreter (python3 by default); src/ is put on PYTHONPATH, so no install is needed
# where torch, torchvision, timm and the other dependencies are.
set -uo pipefail
OUT=${1:-gpu-out}
BUDGET=${2:-540}
PY=${PY:-python3}
END=$(( $(date +%s) + BUDGET ))
WORK=$(mktemp -d)
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
LOG="$OUT/session.log"

step() {  # step NAME SECONDS COMMAND...: at most SECONDS, and never past the session's end
    local name=$1 limit=$2
    shift 2
    local left=$(( END - $(date +%s) ))
    (( limit > left )) && limit=$left
    if (( limit < 10 )); then echo "== $name: skipped (session budget spent)" | tee -a "$LOG"; return; fi
    local start
    start=$(date +%s)
    echo "== $name: $*" >> "$LOG"
    timeout -k 15 "$limit" "$@" >> "$LOG" 2>&1
    local rc=$?
    echo "== $name: rc $rc in $(( $(date +%s) - start )) s (limit $limit s)" | tee -a "$LOG"
}

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$LOG"
step cuda_check 180 "$PY" benchmarks/cuda_check.py
step fast_paths 210 "$PY" benchmarks/fast_paths.py --device cuda --quick --no-compile \
    --models resnet50,efficientnet_lite0 --graph-batches 1,8,32 \
    --bf16-models efficientnet_lite0,resnet50,timm:vit_small_patch16_224 --out "$OUT/fast-cuda.json"
step run 150 "$PY" benchmarks/run.py --device cuda --quick --out "$OUT/cuda.json"
step samples 20 "$PY" -m cameras samples --out "$WORK/samples"
step explain 20 "$PY" -m cameras explain "$WORK/samples/chelsea.jpg" --device cuda --topk 2 --out "$WORK/explain" --quiet
step attack 30 "$PY" -m cameras attack --data "$WORK/samples" --steps 20 --device cuda --out "$WORK/attack" --quiet
step interpolation 30 "$PY" -m torch.distributed.run --standalone --nproc-per-node 1 -m cameras experiment \
    interpolation "$WORK"/samples/*.jpg --device cuda --out "$WORK/interp" --quiet
grep "^== .*: rc\|skipped" "$LOG"
