"""Below the eager floor: channels-last, torch.compile and bf16 against the NCHW fp32 floor (part of `make bench`).

Usage: python benchmarks/fast_paths.py [--device cpu|cuda] [--quick] [--models efficientnet_lite0,resnet50]
              [--bf16-models efficientnet_lite0,...] [--compile-models ...] [--no-compile]
              [--graph-models ...] [--graph-batches 1,8,32,64] [--cam-models ...]
              [--skip exact,cams,bf16,compile,graphs,cache]
Writes benchmarks/results/fast/<device>.json (or --out FILE) and regenerates BENCHMARKS.md (benchmarks/report.py).

- Exact fp32: the floor is the eager NCHW fp32 forward passes at CAMERAS's 8 scales (what
  `benchmarks/run.py` calls the floor); CAMERAS runs on the reference path (channels_last=False,
  fold_batchnorm=False), with channels-last alone (fold_batchnorm=False) and with the defaults
  (channels-last on a CPU, batch norms folded below the layer), plus the same forward passes in
  channels-last; ratios from one round-robin group in one process, and the largest map
  difference between the default and the reference path.
- The gradient CAM family (Grad-CAM: one forward pass, a backward to the layer): the floor is one
  eager NCHW fp32 forward pass at 224 px; Grad-CAM on its NCHW reference path
  (channels_last=False), with its defaults (channels-last on a CPU) and with fold_batchnorm=True,
  at batch 1 and 8, blocks of 5 calls per timing, and the largest map difference against the
  reference path.
- torch.compile (`CAMERAS(compile=True)`: inductor compiles the layers below the explained one
  with frozen weights): the first call (compilation at every scale), the steady state against
  the floor and the eager default, the largest map difference against the NCHW path, and how
  many images of one size pay for the compilation.
- bf16 (`precision="bf16"`): time against the floor and fidelity against fp32 maps on the
  sample photos (scikit-image's chelsea, coffee, astronaut, rocket; the model's top-1):
  Pearson r, max abs difference, arg-max agreement; and bf16 compiled (`compile=True`), its time
  and its fidelity on the random input (compiling at every photo's size would take minutes).
  On a CPU without bf16 instructions (no AVX512-BF16 or AMX) bf16 is emulated, slower than
  fp32: its time is then one round. Timed with them: the whole model in bf16, forward passes
  only at the 8 scales (channels-last where CAMERAS runs so, nothing folded), the bound below
  which no bf16 design that still takes gradients runs when there is nothing to fold (a ViT).
- oneDNN's kernel cache (CPU): the floor, CAMERAS and bf16 CAMERAS on EfficientNet-Lite0 with a
  landscape and a portrait input alternating (224×298, 298×224), each path alone as a folder
  explained by one method runs it, in a child process with oneDNN's own limit of 1,024 kernels
  and in one with the limit the `cameras` command sets (`cameras.allocator.raise_onednn_cache`).
  Every other part runs with the raised limit: with 1,024 the round-robin groups evict each
  other's kernels (the NCHW floor's, the channels-last and bf16 paths'), and every path then
  measures kernel building instead of its steady state.
- CUDA graphs (`CAMERAS(cuda_graphs=True)`, GPU only) and throughput: at each batch size the
  floor, the eager CAMERAS and the graphed one, the first call (captures), the largest map
  difference, and images per second; on a CPU (only with --graph-models) the eager CAMERAS
  throughput, which the report otherwise takes from the exact rows (batch 1 and 8).
"""

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import cameras
from cameras.allocator import ONEDNN_CACHE_CAPACITY, raise_onednn_cache, tune_cpu_allocator
from cameras.bench import forward_all, interleaved_seconds, median_seconds, pearson_rows, scaled_inputs
from cameras.core.memory import channels_last, fast_bf16, prefers_channels_last

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from run import SCALES, batch_input, cpu_flags, load, result_header, script_args, write_result  # noqa: E402

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


def cl_inputs(inputs):
    return [i.contiguous(memory_format=torch.channels_last) for i in inputs]


def time_exact(name, device, batches, reps):
    bundle = load(name, device)
    return [exact_row(name, bundle.model, bundle.layer, b, device, reps) for b in batches]


def exact_row(name, model, layer, b, device, reps):
    x = batch_input(b, 224, device)
    with torch.no_grad():
        t = model(x).argmax(1)
    # the reference path (NCHW, batch norms as they are), channels-last alone, and the default (also folded)
    nchw = cameras.CAMERAS(model, layer=layer, scales=SCALES, channels_last=False, fold_batchnorm=False)
    unfolded = cameras.CAMERAS(model, layer=layer, scales=SCALES, fold_batchnorm=False)
    auto = cameras.CAMERAS(model, layer=layer, scales=SCALES)
    inputs = scaled_inputs(x, nchw)
    inputs_cl = cl_inputs(inputs)

    def floor_cl():
        with channels_last(model):
            forward_all(model, inputs_cl)

    r = {"model": name, "batch": b, "input": 224}
    r.update(interleaved_seconds({"floor": lambda: forward_all(model, inputs), "floor_cl": floor_cl,
                                  "cameras_nchw": lambda: nchw(x, target=t),
                                  "cameras_unfolded": lambda: unfolded(x, target=t),
                                  "cameras_auto": lambda: auto(x, target=t)}, device, reps))
    r["layer"] = nchw.layer_name
    r["folded_pairs"] = len(auto.folded.pairs) if auto.folded is not None else 0
    r["max_abs_diff"] = float((auto(x, target=t).maps - nchw(x, target=t).maps).abs().max())
    print(json.dumps(r), flush=True)
    return r


def time_cams(name, device, batches, reps):
    bundle = load(name, device)
    return [cam_row(name, bundle.model, bundle.layer, b, device, reps) for b in batches]


def cam_row(name, model, layer, b, device, reps, block=5):
    """Grad-CAM's paths against one NCHW forward pass, each timing a block of ``block`` calls."""
    x = batch_input(b, 224, device)
    with torch.no_grad():
        t = model(x).argmax(1)
    paths = {"gradcam_nchw": cameras.GradCAM(model, layer=layer, channels_last=False),
             "gradcam_auto": cameras.GradCAM(model, layer=layer),
             "gradcam_folded": cameras.GradCAM(model, layer=layer, fold_batchnorm=True)}
    groups = {"forward": lambda: forward_all(model, [x])}
    groups.update({k: (lambda m=m: m(x, target=t)) for k, m in paths.items()})
    r = {"model": name, "batch": b, "input": 224, "method": "gradcam"}
    r.update(interleaved_seconds(groups, device, reps, block=block))
    ref = paths["gradcam_nchw"](x, target=t).maps
    r["channels_last"] = paths["gradcam_auto"].channels_last_now
    r["folded_pairs"] = len(paths["gradcam_folded"].folded.pairs) if paths["gradcam_folded"].folded else 0
    r["max_abs_diff"] = max(float((paths[k](x, target=t).maps - ref).abs().max())
                            for k in ("gradcam_auto", "gradcam_folded"))
    r["layer"] = paths["gradcam_nchw"].layer_name
    print(json.dumps(r), flush=True)
    return r


def time_compile(name, device, reps):
    """CAMERAS(compile=True) at batch 1: the first call (compiles the lower layers at every scale)
    and the steady state against the NCHW floor and the eager default; the images a folder needs
    before compiling has paid for itself."""
    bundle = load(name, device)
    model, layer = bundle.model, bundle.layer
    x = batch_input(1, 224, device)
    with torch.no_grad():
        t = model(x).argmax(1)
    nchw = cameras.CAMERAS(model, layer=layer, scales=SCALES, channels_last=False, fold_batchnorm=False)
    auto = cameras.CAMERAS(model, layer=layer, scales=SCALES)
    comp = cameras.CAMERAS(model, layer=layer, scales=SCALES, compile=True)
    inputs = scaled_inputs(x, nchw)
    torch._dynamo.reset()
    start = time.perf_counter()
    comp(x, target=t)
    first = time.perf_counter() - start
    r = {"model": name, "batch": 1, "layer": nchw.layer_name, "first_call_seconds": first}
    r.update(interleaved_seconds({"floor": lambda: forward_all(model, inputs),
                                  "cameras_auto": lambda: auto(x, target=t),
                                  "cameras_compiled": lambda: comp(x, target=t)}, device, reps))
    r["max_abs_diff"] = float((comp(x, target=t).maps - nchw(x, target=t).maps).abs().max())
    saved = r["cameras_auto"] - r["cameras_compiled"]
    r["break_even_images"] = (first - r["cameras_compiled"]) / saved if saved > 0 else None
    torch._dynamo.reset()
    print(json.dumps(r), flush=True)
    return r


def time_graphs(name, device, reps, batches):
    """CUDA graphs (`CAMERAS(cuda_graphs=True)`) against the eager floor and the eager CAMERAS at each
    batch size: the first call (captures every scale), the steady state, the largest map difference
    (exact: the same kernels run), and images per second of both CAMERAS paths (the throughput row
    takes the best batch). On a CPU (no graphs) only the eager CAMERAS throughput is measured."""
    bundle = load(name, device)
    rows = []
    for b in batches:
        rows.append(graphs_row(name, bundle.model, bundle.layer, b, device, reps))
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def graphs_row(name, model, layer, b, device, reps):
    """One batch size: the floor, the eager default (batch norms folded below the layer), the eager path
    without folding (what the graphs replay: they fold nothing) and, on a GPU, the graphed one."""
    x = batch_input(b, 224, device)
    with torch.no_grad():
        t = model(x).argmax(1)
    eager = cameras.CAMERAS(model, layer=layer, scales=SCALES)
    inputs = scaled_inputs(x, eager)
    groups = {"floor": lambda: forward_all(model, inputs), "cameras": lambda: eager(x, target=t)}
    r = {"model": name, "batch": b}
    if device.type == "cuda":
        graphed = cameras.CAMERAS(model, layer=layer, scales=SCALES, cuda_graphs=True)
        unfolded = cameras.CAMERAS(model, layer=layer, scales=SCALES, fold_batchnorm=False)
        start = time.perf_counter()
        got = graphed(x, target=t).maps
        torch.cuda.synchronize(device)
        r["first_call_seconds"] = time.perf_counter() - start
        r["max_abs_diff"] = float((got - eager(x, target=t).maps).abs().max())
        r["max_abs_diff_unfolded"] = float((got - unfolded(x, target=t).maps).abs().max())
        r["graphs_captured"] = graphed._graphed.captures
        groups["cameras_unfolded"] = lambda: unfolded(x, target=t)
        groups["cameras_graphs"] = lambda: graphed(x, target=t)
    r.update(interleaved_seconds(groups, device, reps))
    r["layer"] = eager.layer_name  # resolved by the first call
    r.update({f"{k}_images_per_second": b / r[k] for k in groups if k != "floor"})
    print(json.dumps(r), flush=True)
    return r


def photo_inputs(bundle):
    from skimage import data

    return {p: bundle.prepare(Image.fromarray(getattr(data, p)())) for p in PHOTOS}


def closeness(a, b):
    """Pearson r and the largest absolute difference of two maps (H×W tensors); r is 1 for two equal maps (also
    two constant ones, such as the all-zero map of a class the model finds no evidence for) and NaN for a
    constant map against a varying one."""
    return {"pearson": pearson_rows(a.flatten()[None], b.flatten()[None])[0],
            "max_abs_diff": float((a - b).abs().max())}


def bf16_kernels(device) -> str:
    """Which bf16 kernels the device runs: "GPU", "AMX", "AVX512-BF16" or "emulated"."""
    if device.type == "cuda":
        return "GPU"
    if not fast_bf16(device):
        return "emulated"
    return "AMX" if "amx_bf16" in cpu_flags() else "AVX512-BF16"


def time_bf16(name, device, reps, compiled=True):
    bundle = load(name, device)
    model, layer = bundle.model, bundle.layer
    fp32 = cameras.CAMERAS(model, layer=layer, scales=SCALES)
    low = cameras.CAMERAS(model, layer=layer, scales=SCALES, precision="bf16")
    fid = []
    for p, x in photo_inputs(bundle).items():
        with torch.no_grad():
            t = model(x).argmax(1)
        a, b = fp32(x, target=t).maps[0], low(x, target=t).maps[0]
        fid.append({"photo": p, "size": list(x.shape[-2:]), **closeness(a, b),
                    "fp32_map_constant": bool(a.min() == a.max()),
                    "argmax_same": bool(int(a.argmax()) == int(b.argmax())),
                    "argmax_distance_px": float(np.hypot(*np.subtract(np.unravel_index(int(a.argmax()), a.shape),
                                                                      np.unravel_index(int(b.argmax()), b.shape))))})
    x = batch_input(1, 224, device)
    with torch.no_grad():
        t = model(x).argmax(1)
    inputs = scaled_inputs(x, fp32)
    emulated = not fast_bf16(device)
    r = {"model": name, "batch": 1, "fidelity": fid, "bf16_emulated": emulated, "bf16_kernels": bf16_kernels(device),
         # the eager bf16 path: pairs folded below the layer, and the activations fused into them (CPU)
         "bf16_folded_pairs": len(low.folded.pairs) if low.folded else 0,
         "bf16_fused_activations": sum(a is not None for a in low.folded.activations) if low.folded else 0}
    # the whole model in bf16, forward only (channels-last where CAMERAS runs so, nothing folded): no bf16
    # design that still takes a gradient through the head runs faster than this when it has nothing to fold
    whole = copy.deepcopy(model).to(torch.bfloat16)
    cl = prefers_channels_last(model, device)
    if cl:
        whole = whole.to(memory_format=torch.channels_last)
    inputs16 = [i.to(torch.bfloat16) for i in (cl_inputs(inputs) if cl else inputs)]
    groups = {"floor": lambda: forward_all(model, inputs), "cameras_fp32": lambda: fp32(x, target=t),
              "cameras_bf16": lambda: low(x, target=t), "forward_bf16": lambda: forward_all(whole, inputs16)}
    if compiled and not emulated:  # bf16 and compile=True: compiled at the 8 scales of this input once
        comp = cameras.CAMERAS(model, layer=layer, scales=SCALES, precision="bf16", compile=True)
        start = time.perf_counter()
        got = comp(x, target=t).maps[0]
        r["compiled_first_call_seconds"] = time.perf_counter() - start
        r.update({f"compiled_{k}": v for k, v in closeness(fp32(x, target=t).maps[0], got).items()})
        groups["cameras_bf16_compiled"] = lambda: comp(x, target=t)
    r.update(interleaved_seconds(groups, device, 1 if emulated else reps, warmup=0 if emulated else 1))
    r["layer"] = fp32.layer_name
    print(json.dumps(r), flush=True)
    return r


CACHE_INPUTS = ((224, 298), (298, 224))  # a landscape and a portrait photo at EfficientNet-Lite0's size


def cache_probe(reps):
    """Child process: seconds per image of each path on the alternating inputs, each path timed alone."""
    tune_cpu_allocator()
    device = torch.device("cpu")
    bundle = load("efficientnet_lite0", device)
    model, layer = bundle.model, bundle.layer
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(1, 3, h, w, generator=g) for h, w in CACHE_INPUTS]
    exact = cameras.CAMERAS(model, layer=layer, scales=SCALES)
    inputs = [i for x in xs for i in scaled_inputs(x, exact)]
    t = torch.zeros(1, dtype=torch.long)
    paths = {"floor": lambda: forward_all(model, inputs), "cameras": lambda: [exact(x, target=t) for x in xs]}
    if fast_bf16(device):
        low = cameras.CAMERAS(model, layer=layer, scales=SCALES, precision="bf16")
        paths["cameras_bf16"] = lambda: [low(x, target=t) for x in xs]
    out = {k: median_seconds(fn, device, reps) / len(xs) for k, fn in paths.items()}
    print(json.dumps({"capacity": os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "1024"), **out}))


def time_cache(reps):
    """The cache probe with oneDNN's own limit and with the raised one, each in a fresh process."""
    row = {"model": "efficientnet_lite0", "inputs": [list(s) for s in CACHE_INPUTS]}
    for mode in ("default", "raised"):
        env = {k: v for k, v in os.environ.items() if "PRIMITIVE_CACHE_CAPACITY" not in k}
        if mode == "raised":
            env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = str(ONEDNN_CACHE_CAPACITY)
        res = subprocess.run([sys.executable, __file__, "--cache-probe", str(reps)], capture_output=True, text=True,
                             check=True, env=env)
        row[mode] = json.loads(res.stdout.strip().splitlines()[-1])
    print(json.dumps(row), flush=True)
    return row


def main(argv=None):
    ap = script_args()
    ap.add_argument("--bf16-models", default=None, help="models of the bf16 rows (default: --models)")
    ap.add_argument("--compile-models", default=None, help="models of the torch.compile rows (default: --models)")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (minutes of compilation)")
    ap.add_argument("--graph-models", default=None, help="models of the CUDA graphs and throughput rows "
                    "(default: --models on cuda, none on cpu)")
    ap.add_argument("--graph-batches", default=None,
                    help="batch sizes of the CUDA graphs and throughput rows (default: 1,8,32,64 on cuda, 1,8 on cpu)")
    ap.add_argument("--cam-models", default=None, help="models of the gradient CAM rows (default: --models)")
    ap.add_argument("--exact-batches", default="1,8", help="batch sizes of the exact and gradient CAM rows")
    ap.add_argument("--note", default=None, help="a sentence the report prints under the section's title")
    ap.add_argument("--skip", default="",
                    help="comma-separated parts to skip: exact,cams,bf16,compile,graphs,cache")
    ap.add_argument("--out", default=None, help="results file (default: benchmarks/results/fast/<device>.json)")
    ap.add_argument("--update", action="store_true",
                    help="keep the parts this run skips from the existing --out file (one GPU session in two runs)")
    ap.add_argument("--cache-probe", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.cache_probe is not None:
        cache_probe(a.cache_probe)
        return
    raise_onednn_cache()  # before any kernel is built (see the cache part)
    tuned = tune_cpu_allocator()
    device = torch.device(a.device)
    reps = 2 if a.quick else 3
    t0 = time.time()
    names = a.models.split(",")
    skip = set(filter(None, a.skip.split(",")))
    if skip - {"exact", "cams", "bf16", "compile", "graphs", "cache"}:
        ap.error(f"--skip takes exact, cams, bf16, compile, graphs, cache; got {a.skip}")
    batches = [int(b) for b in (a.graph_batches or ("1,8,32,64" if device.type == "cuda" else "1,8")).split(",")]
    given = list(sys.argv[1:] if argv is None else argv)
    if "--note" in given[:-1]:  # the note is printed under the title: the command names it only
        given[given.index("--note") + 1] = "TEXT"
    if "--out" in given[:-1]:  # where this machine put the file says nothing about the rows
        del given[given.index("--out"):given.index("--out") + 2]
    command = " ".join(["python benchmarks/fast_paths.py", *given])
    out = Path(a.out) if a.out else HERE / "results" / "fast" / f"{device.type}.json"
    parts = {"exact": [], "cams": [], "bf16": [], "compile": [], "graphs": [], "cache": None}
    note = a.note
    if a.update and out.exists():  # the parts measured by an earlier run stay, and its command is named too
        earlier = json.loads(out.read_text())
        parts.update({k: earlier[k] for k in parts if k in earlier})
        command = " && ".join(filter(None, [earlier.get("command"), command]))
        note = note or earlier.get("note")

    def result():
        return {**result_header(device, tuned, reps, t0), "command": command, "note": note, **parts}

    def measured(part, rows):
        """Keep a part's rows; on a GPU also write what is measured so far (a lent GPU's session may end early)."""
        parts[part] = rows
        if device.type == "cuda":
            write_result({**result(), "partial": True}, out, report=False)

    # the GPU goals first: a session on a lent GPU may end before the rest
    # on a CPU the exact rows' batch 1 and 8 already give the eager throughput: graph rows only when asked
    graph_models = a.graph_models or (a.models if device.type == "cuda" else "")
    for n in [] if "graphs" in skip else filter(None, graph_models.split(",")):  # model by model, replacing its rows
        new = time_graphs(n, device, reps, batches)
        measured("graphs", [r for r in parts["graphs"] if r["model"] != n] + new)
    exact_batches = [int(b) for b in a.exact_batches.split(",")]
    if "exact" not in skip:
        measured("exact", [r for n in names for r in time_exact(n, device, exact_batches, reps)])
    if "cams" not in skip:
        measured("cams", [r for n in (a.cam_models or a.models).split(",")
                          for r in time_cams(n, device, exact_batches, 2 * reps + 1)])
    if "bf16" not in skip:
        measured("bf16", [time_bf16(n, device, reps, not a.no_compile) for n in (a.bf16_models or a.models).split(",")])
    compile_names = [] if a.no_compile or "compile" in skip else (a.compile_models or a.models).split(",")
    if compile_names:
        measured("compile", [time_compile(n, device, reps) for n in compile_names])
    if device.type == "cpu" and "cache" not in skip:
        parts["cache"] = time_cache(reps)
    write_result(result(), out)


if __name__ == "__main__":
    main()
