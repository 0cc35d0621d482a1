#!/usr/bin/env bash
# One GPU session, most important first, each step under its own time limit so that one slow or
# failing step loses only itself (a lent GPU gives about fifteen minutes in all, so a session may take
# two runs: every results file is written as it goes, and a second run adds to the first's):
#   cuda_graphs   CUDA graphs (cuda_graphs=True) against the eager maps (benchmarks/cuda_check.py);
#   graph_rows    the CUDA graphs and throughput rows at batch 1/8/32 (benchmarks/fast_paths.py);
#   run           the GPU rows of BENCHMARKS.md at batch 1 and 8 (benchmarks/run.py), model by model;
#   fast_rows     the channels-last, gradient CAM and bf16 rows (fast_paths.py; the graph rows stay);
#   cuda_methods  every method CUDA against CPU;
#   cli           the CLI on --device cuda (samples, explain, attack --data, interpolation under torchrun);
#   cuda_compile  CUDA graphs over compile=True (minutes of Triton).
# Usage from the repository root on a machine with a GPU:
#   bash benchmarks/gpu_session.sh OUTDIR [SECONDS] [STEP,STEP,...]
# SECONDS is this run's budget (540 by default); every step runs by default, in the order above.
# RUN_MODELS (a comma list) limits the run step to these models. OUTDIR receives session.log (every
# step's output and its exit status), fast-cuda.json and cuda.json. UPDATE=1 makes a second run add to
# the first: copy the first run's fast-cuda.json and cuda.json into OUTDIR, and the rows of the steps and
# models not run again are kept (without it a run starts its files afresh).
# The CLI's images go to a scratch folder. Afterwards copy OUTDIR/cuda.json to benchmarks/results/ and
# OUTDIR/fast-cuda.json to benchmarks/results/fast/cuda.json, then run python benchmarks/report.py.
# PY names the interpreter (python3 by default); src/ is put on PYTHONPATH, so no install is needed
# where torch, torchvision, timm and the other dependencies are.
set -uo pipefail
OUT=${1:-gpu-out}
BUDGET=${2:-540}
STEPS=${3:-cuda_graphs,graph_rows,run,fast_rows,cuda_methods,cli,cuda_compile}
PY=${PY:-python3}
END=$(( $(date +%s) + BUDGET ))
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
LOG="$OUT/session.log"
IFS=, read -ra STEP_LIST <<< "$STEPS"
for s in "${STEP_LIST[@]}"; do
    case $s in cuda_graphs|graph_rows|run|fast_rows|cuda_methods|cli|cuda_compile) ;;
        *) echo "unknown step $s: the steps are cuda_graphs, graph_rows, run, fast_rows, cuda_methods, cli," \
                "cuda_compile" >&2; exit 2 ;;
    esac
done
wanted() { [[ ,$STEPS, == *,"$1",* ]]; }
mkdir -p "$OUT"

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

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$LOG"
"$PY" -c "import torch, torchvision, timm; print('torch', torch.__version__, 'torchvision', torchvision.__version__, \
'timm', timm.__version__)" 2>&1 | tee -a "$LOG"
FAST=(benchmarks/fast_paths.py --device cuda --quick --no-compile --models resnet50,efficientnet_lite0
      --graph-batches 1,8,32 --out "$OUT/fast-cuda.json")
RUN=(benchmarks/run.py --device cuda --batches 1,8 --out "$OUT/cuda.json")
if [[ ${UPDATE:-} == 1 ]]; then
    RUN+=(--update)
    FAST+=(--update)
else  # a fresh session: nothing left from an earlier one in OUTDIR is merged into its rows
    rm -f "$OUT/fast-cuda.json" "$OUT/cuda.json"
fi
[[ -n ${RUN_MODELS:-} ]] && RUN+=(--models "$RUN_MODELS")
wanted cuda_graphs && step cuda_graphs 60 "$PY" benchmarks/cuda_check.py --parts graphs
wanted graph_rows && step graph_rows 100 "$PY" "${FAST[@]}" --skip exact,cams,bf16
wanted run && step run 220 "$PY" "${RUN[@]}"
# the rows of the graph_rows step, when it ran, stay in the file this step writes
[[ ${UPDATE:-} == 1 ]] || FAST+=(--update)
wanted fast_rows && step fast_rows 130 "$PY" "${FAST[@]}" --skip graphs \
    --bf16-models efficientnet_lite0,resnet50,timm:vit_small_patch16_224
wanted cuda_methods && step cuda_methods 150 "$PY" benchmarks/cuda_check.py --parts methods
if wanted cli; then
    step samples 20 "$PY" -m cameras samples --out "$WORK/samples"
    step explain 20 "$PY" -m cameras explain "$WORK/samples/chelsea.jpg" --device cuda --topk 2 --out "$WORK/explain" \
        --quiet
    step attack 30 "$PY" -m cameras attack --data "$WORK/samples" --steps 20 --device cuda --out "$WORK/attack" --quiet
    step interpolation 30 "$PY" -m torch.distributed.run --standalone --nproc-per-node 1 -m cameras experiment \
        interpolation "$WORK"/samples/*.jpg --device cuda --out "$WORK/interp" --quiet
fi
wanted cuda_compile && step cuda_compile 120 "$PY" benchmarks/cuda_check.py --parts compile
grep "^== .*: rc\|skipped" "$LOG"
