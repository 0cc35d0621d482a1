"""Regenerate BENCHMARKS.md from benchmarks/results/*.json (run by benchmarks/run.py)."""

import json
import math
from pathlib import Path

HERE = Path(__file__).parent
PAPER_TABLE1 = {  # CAMERAS supplement Table 1, seconds per image, Titan V, batch 1
    "resnet50": {"rise": 26.4, "extremal": 35.8, "normgrad": 7.0, "gradcam": 0.07, "cameras": 0.44},
    "densenet121": {"rise": 79.7, "extremal": 64.1, "normgrad": 2.5, "gradcam": 0.08, "cameras": 0.57},
    "inception_v3": {"rise": 55.9, "extremal": 60.9, "normgrad": 5.0, "gradcam": 0.08, "cameras": 0.54},
}


def ok(flag):
    return "yes" if flag else "**no**"


def table(title: str, header: list[str], lines: list[list]) -> list[str]:
    """Markdown lines of one table section: a blank line, the title, a blank line, the table."""
    return (["", f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(str(c) for c in cells) + " |" for cells in lines])


def cameras_ratio(r):
    """CAMERAS over its floor: the larger ratio when a sub-batched floor was measured too."""
    return r["cameras"] / min(r["floor"], r.get("floor_split", r["floor"]))


def per_image(by, model):
    """(CAMERAS at 1, CAMERAS at 8, floor at 1, floor at 8) in s/image, from one group when measured so."""
    r8, r1 = by[(model, 8)], by[(model, 1)]
    if "cameras_b1_same_group" in r8:
        return (r8["cameras_b1_same_group"], r8["cameras_b8_same_group"] / 8, r8["floor_b1_same_group"],
                r8["floor_b8_same_group"] / 8)
    return r1["cameras"], r8["cameras"] / 8, r1["floor"], r8["floor"] / 8


def section(res):
    dev = f"{res['device']} ({res['device_name']}, {res['threads']} threads, torch {res['torch']})"
    rows = [r for r in res["rows"] if "kind" not in r]
    mem = [r for r in res["rows"] if r.get("kind") == "memory"]
    base = [r for r in res["rows"] if r.get("kind") == "baselines"]
    out = [f"## {dev}", "", f"Scales {res['scales'][0]}…{res['scales'][-1]} ({len(res['scales'])}), input 224×224, "
           f"random inputs, explicit target (every scale kept). Seconds per batch, medians."
           + (" CPU allocator tuned as by the `cameras` command (`cameras.allocator`"
              + ("; the last table shows why)." if any(r.get("kind") == "allocator" for r in res["rows"]) else ").")
              if res.get("allocator") == "tuned" and res["device"] == "cpu" else "")
           + cache_note(res, " (raised as by the `cameras` command).")
           + (" Rounds (each times every compared function once, one after another; the median of each is "
              f"reported): CAMERAS and floors {res['rounds']['cameras']} ({res['rounds']['batch8']} at batch 8, "
              f"{res['rounds']['batch8_vs_1']} for batch 8 against batch 1), Grad-CAM and one forward "
              f"{res['rounds']['gradcam']} (blocks of 10 calls), RISE and Extremal {res['rounds']['rise_extremal']}."
              if "rounds" in res else "")]
    if res.get("note"):
        out += ["", res["note"]]
    lines = []
    for r in rows:
        ratio = r["cameras"] / r["floor"]
        split = ([f"{r['floor_split']:.3f}", f"{r['cameras'] / r['floor_split']:.2f}"]
                 if "floor_split" in r else ["–"] * 2)
        naive = ([f"{r['naive']:.2f}", f"{r['naive'] / r['floor']:.2f}", f"{r['naive_max_abs_diff']:.1e}"]
                 if "naive" in r else ["–"] * 3)
        lines.append([r["model"], r["batch"], f"{r['floor']:.3f}", f"{r['cameras']:.3f}", f"{ratio:.2f}", *split,
                      ok(cameras_ratio(r) <= 1.3), f"{r['cameras'] / r['batch']:.3f}", *naive])
    out += table("CAMERAS against its floor (target ≤ 1.3×, against the larger of the two ratios)",
                 ["model", "batch", "floor s", "CAMERAS s", "×floor", "floor, CAMERAS's sub-batches s", "×", "≤1.3×",
                  "s/image", "straightforward s", "×floor", "max abs diff"], lines)
    if any("floor_split" in r for r in rows):
        out += ["", "The second floor runs the same forward passes as CAMERAS, whose `batch_pixels` splits a "
                "large batch per scale on a CPU; a whole-batch floor can be slower than that, so both are shown."]
    by = {(r["model"], r["batch"]): r for r in rows}
    lines = []
    for m, b in by:
        if b == 8 and (m, 1) in by:
            one, eight, f1, f8 = per_image(by, m)
            lines.append([m, f"{one:.3f}", f"{eight:.3f}", ok(eight <= one * 1.02), f"{f1:.3f}", f"{f8:.3f}"])
    same = any("cameras_b1_same_group" in r for r in rows)
    out += [] if not lines else table("Per-image time, batch 8 against batch 1 (target: not higher"
                 + ("; timed in one round-robin group)" if same else ")"),
                 ["model", "CAMERAS s/image at 1", "at 8", "met", "floor s/image at 1", "at 8"], lines)
    top = [r for r in rows if "cameras_top5" in r]
    if top:
        out += table("Top-5 classes of one image against its top-1 (one forward pass per scale, a backward per "
                     "class; target ≤ 1.5×)", ["model", "batch", "top-1 s", "top-5 s", "×", "met"],
                     [[r["model"], r["batch"], f"{r['cameras_top1']:.3f}", f"{r['cameras_top5']:.3f}",
                       f"{r['cameras_top5'] / r['cameras_top1']:.2f}",
                       ok(r["cameras_top5"] <= 1.5 * r["cameras_top1"])] for r in top])
    out += table("Grad-CAM against one forward pass (target ≤ 1.2×)",
                 ["model", "batch", "forward s", "Grad-CAM s", "×", "met"],
                 [[r["model"], r["batch"], f"{r['forward']:.4f}", f"{r['gradcam']:.4f}",
                   f"{r['gradcam'] / r['forward']:.2f}", ok(r["gradcam"] / r["forward"] <= 1.2)] for r in rows])
    out += table("Approximate fast mode `fusion=\"grid\"` (opt-in)",
                 ["model", "batch", "exact s", "grid s", "mean abs diff", "max abs diff"],
                 [[r["model"], r["batch"], f"{r['cameras']:.3f}", f"{r['cameras_grid']:.3f}",
                   f"{r['grid_mean_abs_diff']:.3f}", f"{r['grid_max_abs_diff']:.3f}"] for r in rows])
    if any("cameras_bf16" in r for r in rows):
        out += table("Mixed precision (autocast, channels_last, fusion in float32)",
                     ["model", "batch", "fp32 s", "bf16 s", "max abs diff", "fp16 s", "max abs diff"],
                     [[r["model"], r["batch"], f"{r['cameras']:.4f}", f"{r['cameras_bf16']:.4f}",
                       f"{r['bf16_max_abs_diff']:.3f}", f"{r['cameras_fp16']:.4f}", f"{r['fp16_max_abs_diff']:.3f}"]
                      for r in rows])
    if any("mem_cameras_MB" in r for r in rows):
        out += table("Peak memory (CUDA max allocated above the model; target ≤ 1.5×)",
                     ["model", "batch", "largest forward MB", "CAMERAS MB", "×", "met"],
                     [[r["model"], r["batch"], f"{r['mem_forward_max_MB']:.0f}", f"{r['mem_cameras_MB']:.0f}",
                       f"{r['mem_cameras_MB'] / r['mem_forward_max_MB']:.2f}",
                       ok(r["mem_cameras_MB"] / r["mem_forward_max_MB"] <= 1.5)] for r in rows])
    if mem:
        lines = []
        for r in mem:
            q = r["rss_cameras_MB"] / r["rss_forward_max_MB"]
            qa = (r["rss_cameras_MB"] - r["rss_base_MB"]) / max(1e-9, r["rss_forward_max_MB"] - r["rss_base_MB"])
            lines.append([r["model"], r["batch"], f"{r['rss_base_MB']:.0f}", f"{r['rss_forward_max_MB']:.0f}",
                          f"{r['rss_cameras_MB']:.0f}", f"{q:.2f}", f"{qa:.2f}", ok(q <= 1.5)])
        out += table("Peak memory (process RSS high-water mark during one call, one child process each, glibc's "
                     "default allocator; target ≤ 1.5×)",
                     ["model", "batch", "RSS before the call MB", "peak, largest forward MB", "peak, CAMERAS MB",
                      "× (RSS)", "× (above the RSS before)", "met"], lines)
    if base:
        out += table("RISE against its masked forward passes (target ≤ 1.1×)",
                     ["model", "RISE s", "its masked forwards s", "×", "met"],
                     [[f"{r['model']} ({r['rise_masks']} masks)", f"{r['rise']:.3f}", f"{r['rise_floor']:.3f}",
                       f"{r['rise'] / r['rise_floor']:.2f}", ok(r["rise"] / r["rise_floor"] <= 1.1)] for r in base])
        lines = []
        for r in base:
            if "fwd_bwd_weights" in r:
                q = r["extremal_per_iter"] / r["fwd_bwd"]
                own = r.get("extremal_own_per_iter")
                lines.append([r["model"], f"{r['extremal_per_iter']:.4f}", f"{r['fwd_bwd']:.4f}", f"{q:.2f}",
                              ok(q <= 1.2), f"{r['fwd_bwd_weights']:.4f}",
                              f"{r['extremal_per_iter'] / r['fwd_bwd_weights']:.2f}",
                              f"{own:.4f}" if own else "–",
                              f"{r['extremal_per_iter'] / (r['fwd_bwd'] + own):.2f}" if own else "–"])
            else:  # an older run: per iteration including the set-up, floor with weight gradients
                lines.append([r["model"], f"{r['extremal_per_iter']:.4f}", "–", "–", "not measured",
                              f"{r['fwd_bwd']:.4f}", f"{r['extremal_per_iter'] / r['fwd_bwd']:.2f}", "–", "–"])
        out += table("Extremal Perturbation: one iteration against one forward and backward "
                     "(target ≈ 1, read as ≤ 1.2×)",
                     ["model", "s/iteration", "forward+backward to the input s", "×", "met",
                      "forward+backward with weight gradients s", "×", "own work (no network) s",
                      "× (forward+backward + own work)"], lines)
        out += ["", ("An iteration is a 50-iteration call over 50, its set-up (first forward, blur pyramid) included; "
                     "the floors are 50 calls over 50. The own work is the same call on a model that only averages "
                     "the image into logits (no network), its set-up included; forward+backward plus own work is "
                     "what an iteration would cost if nothing overlapped (on a noisy machine the last ratio scatters "
                     "around 1)."
                     if any("fwd_bwd_weights" in r for r in base) else
                     "From an older run: an iteration was a 5-iteration call over 5, set-up included, and the floor "
                     "computed weight gradients too; the input-only floor was not measured.")]
    alloc = next((r for r in res["rows"] if r.get("kind") == "allocator"), None)
    if alloc:
        out += table("Forward passes with glibc's default allocator and with the tuned one (seconds per image)",
                     ["model", "size", "batch", "default", "tuned", "default / tuned"],
                     [[r["model"], r["size"], r["batch"], f"{r['s_per_image']:.3f}", f"{r['s_per_image_tuned']:.3f}",
                       f"{r['s_per_image'] / r['s_per_image_tuned']:.2f}"] for r in alloc["rows"]])
    if res["device"] == "cuda":
        lines = []
        for r in rows:
            if r["batch"] != 1 or r["model"] not in PAPER_TABLE1:
                continue
            p = PAPER_TABLE1[r["model"]]
            b = next((x for x in base if x["model"] == r["model"]), None)
            rise = f"{b['rise'] / b['rise_masks'] * 6000:.1f}" if b else "–"
            ext = f"{b['extremal_per_iter'] * 1000:.1f}" if b else "–"
            lines.append([r["model"], f"{r['gradcam']:.4f}", p["gradcam"], f"{r['cameras']:.3f}", p["cameras"], rise,
                          p["rise"], ext, p["extremal"]])
        out += table("Beside the paper's Table 1 (seconds per image, batch 1; paper: Titan V)",
                     ["model", "Grad-CAM ours", "Grad-CAM paper", "CAMERAS ours", "CAMERAS paper",
                      "RISE (64 masks) ours, scaled to 6000", "RISE paper", "Extremal ours per 1000 it.",
                      "Extremal paper"], lines)
    out += ["", "### Reading these tables", ""]
    fails = [r for r in rows if cameras_ratio(r) > 1.3]
    if fails:
        out.append("- CAMERAS above 1.3× its floor: " + ", ".join(f"{r['model']} at batch {r['batch']} "
                   f"({cameras_ratio(r):.2f}×)" for r in fails) + ". " + (
                   "On the GPU at batch 1 the floor is a few milliseconds of kernel launches per scale, and "
                   "CAMERAS adds its own small kernels (resizing, backward to the layer, fusion) at the same "
                   "launch cost; DenseNet's layer is followed by a ReLU, so its gradients are not constant over "
                   "space and the general fusion runs." if res["device"] == "cuda" else
                   "The general fusion resizes every channel, which costs most when the network is light."))
    else:
        out.append("- CAMERAS stays within 1.3× of its floor everywhere measured here.")
    pairs = {m: per_image(by, m) for (m, b) in by if b == 8 and (m, 1) in by}
    slow8 = [m for m, (c1, c8, _, _) in pairs.items() if c8 > c1 * 1.02]
    floor_slower = [m for m, (_, _, f1, f8) in pairs.items() if f8 > f1]
    if slow8:
        too = [m for m in slow8 if m in floor_slower]
        out.append(f"- Per-image time at batch 8 is higher than at batch 1 for {', '.join(slow8)}"
                   + (f"; so is the floor's ({', '.join(too)})." if too else "."))
    elif res["device"] == "cpu" and floor_slower:
        out.append(f"- On this CPU one forward pass over eight large images is slower per image than a pass over one "
                   f"({', '.join(floor_slower)}), so CAMERAS splits each scale's batch into passes of at most 2×324² "
                   "pixels (`batch_pixels`), which keeps its per-image time at batch 8 at or below that at batch 1; "
                   "this is also why CAMERAS at batch 8 can come in under its floor.")
    gc_fail = [r for r in rows if r["gradcam"] / r["forward"] > 1.2]
    if gc_fail:
        out.append("- Grad-CAM above 1.2× one forward: " + ", ".join(f"{r['model']}@{r['batch']} "
                   f"({r['gradcam'] / r['forward']:.2f}×, {1000 * (r['gradcam'] - r['forward']):.1f} ms more)"
                   for r in gc_fail)
                   + ": the backward from the logit to the layer and the upsampling are a few fixed kernels, visible "
                   "when one forward takes milliseconds.")
    if res["device"] == "cuda":
        out.append("- Why the GPU rows miss their targets: at these sizes the forward pass is bound by the CPU "
                   "issuing kernels, not by the GPU. `benchmarks/profile_method.py` on the H100 (EfficientNet-Lite0, "
                   "batch 1, Grad-CAM) found 0.5 ms of GPU kernel time against about 7 ms of CPU-side dispatch per "
                   "call, about 70 µs per convolution. So the floor is launch overhead, and every operation a method "
                   "adds (the backward through the head, resizing, normalising, RISE's masks, Extremal's mask "
                   "generator) costs its launch time in full, however little arithmetic it does. "
                   "`CAMERAS(cuda_graphs=True)` replays the layers below the explained one from CUDA graphs to "
                   "remove most of it; its rows are in the \"Below the eager floor\" section of a GPU run "
                   "(`benchmarks/gpu_session.sh`)" + graphs_summary() + ".")
    for r in base:
        if r["rise"] / r["rise_floor"] > 1.1:
            out.append(f"- RISE on {r['model']}: {r['rise'] / r['rise_floor']:.2f}× its masked forward passes "
                       "(making, upsampling and cropping masks and the weighted sum cost extra kernels per batch).")
        if "fwd_bwd_weights" in r and r["extremal_per_iter"] / r["fwd_bwd"] > 1.2:
            q = r["extremal_per_iter"] / r["fwd_bwd"]
            more = 1000 * (r["extremal_per_iter"] - r["fwd_bwd"])
            line = (f"- Extremal Perturbation on {r['model']}: an iteration costs {q:.2f}× a forward and a backward to "
                    f"the input ({more:.0f} ms more; "
                    f"{r['extremal_per_iter'] / r['fwd_bwd_weights']:.2f}× one that also "
                    "computes weight gradients).")
            if "extremal_own_per_iter" in r:
                own = 1000 * r["extremal_own_per_iter"]
                line += (f" The method's own work, measured as the same call on a model that only averages the image, "
                         f"is {own:.0f} ms per iteration; the forward and backward plus that is "
                         f"{(r['fwd_bwd'] + r['extremal_own_per_iter']) / r['fwd_bwd']:.2f}× the forward and backward, "
                         "which is what the method itself costs on this model.")
            line += (" Most of it is the smooth mask: each pixel's softmax over its 81 grid neighbours (step 7 px, "
                     "σ = 21), 4 million exponentials for a 224² image, computed as one tensor of that size and "
                     "batched matrix products per cell, forward and backward; the rest is the area constraint's "
                     "selection and the blur-pyramid blend. It is fixed by the mask's parametrisation, not by the "
                     "model, so it weighs most on a light network.")
            out.append(line)
    out.append("")
    return out


def topk_section(res):
    """Top-5 of one image against its top-1 (benchmarks/topk_check.py: real photos, every scale)."""
    return table(f"{res['device']} ({res['machine']}, {res['threads']} threads, torch {res['torch']}): the top-5 "
                 f"classes of one photo against its top-1, CAMERAS at {len(res['scales'])} scales "
                 "(`benchmarks/topk_check.py`; target ≤ 1.5×)",
                 ["photo", "input", "top-1 s", "top-5, shared passes s", "×", "met", "top-5, five calls s", "×"],
                 [[r["photo"], "×".join(map(str, r["size"])), f"{r['top1']:.2f}", f"{r['top5_shared']:.2f}",
                   f"{r['top5_shared'] / r['top1']:.2f}", ok(r["top5_shared"] <= 1.5 * r["top1"]),
                   f"{r['top5_separate']:.2f}", f"{r['top5_separate'] / r['top1']:.2f}"] for r in res["rows"]]) + [""]


def methods_section(res):
    """The CAM family, MultiScale, Smooth, Score-CAM and ROAD against their floors (benchmarks/methods.py)."""
    dev = f"{res['device']} ({res['device_name']}, {res['threads']} threads, torch {res['torch']})"
    rows = res["rows"]
    out = ["", f"## Methods added with the CAM family: {dev}", "",
           f"Batch 1, input 224×224, random input, explicit target; medians of {res['rounds']} rounds "
           f"({3 * res['rounds']} for the CAMs, timed in blocks of 10 calls), every group round-robin in one "
           "process (`benchmarks/methods.py`). Every floor is eager NCHW fp32 forward passes; the methods run "
           "at their defaults (on a CPU the CAMs' passes and Score-CAM's masked passes channels-last)."]
    if res.get("note"):
        out += ["", res["note"]]
    out += table("Gradient CAMs against one forward pass (target ≤ 1.2×, as Grad-CAM)",
                 ["model", "layer", "forward s"] + [f"{m} ×" for m in CAMS] + ["met"],
                 [[r["model"], r["layer"], f"{r['forward']:.4f}"] + [f"{r[m] / r['forward']:.2f}" for m in CAMS]
                  + [ok(all(r[m] <= 1.2 * r["forward"] for m in CAMS))] for r in rows])
    out += table("MultiScale against CAMERAS's floor (the forward passes at 8 scales; target ≤ 1.3×, as CAMERAS)",
                 ["model", "floor s", "cameras s", "×", "multiscale-layercam s", "×", "met"],
                 [[r["model"], f"{r['ms_floor']:.2f}", f"{r['ms_cameras']:.2f}",
                   f"{r['ms_cameras'] / r['ms_floor']:.2f}",
                   f"{r['ms_layercam']:.2f}", f"{r['ms_layercam'] / r['ms_floor']:.2f}",
                   ok(r["ms_layercam"] <= 1.3 * r["ms_floor"])] for r in rows])
    out += table("Smooth against the forward passes of its copies or views (target ≤ 1.2×)",
                 ["model", "smooth-gradcam (16 copies) s", "one forward of 16 copies s", "×", "tta-gradcam (6 views) s",
                  "forwards of the 6 views s", "×", "met"],
                 [[r["model"], f"{r['smooth_noise']:.3f}", f"{r['smooth_noise_floor']:.3f}",
                   f"{r['smooth_noise'] / r['smooth_noise_floor']:.2f}", f"{r['smooth_tta']:.3f}",
                   f"{r['smooth_tta_floor']:.3f}", f"{r['smooth_tta'] / r['smooth_tta_floor']:.2f}",
                   ok(r["smooth_noise"] <= 1.2 * r["smooth_noise_floor"]
                      and r["smooth_tta"] <= 1.2 * r["smooth_tta_floor"])]
                  for r in rows])
    out += table("Score-CAM against the masked forward passes it runs (target ≤ 1.1×)",
                 ["model", "channels", "masked forwards (constant channels share one)", "scorecam s", "floor s", "×",
                  "met"],
                 [[r["model"], r["scorecam_channels"], r["scorecam_forwards"], f"{r['scorecam_call']:.2f}",
                   f"{r['scorecam_floor']:.2f}", f"{r['scorecam_call'] / r['scorecam_floor']:.2f}",
                   ok(r["scorecam_call"] <= 1.1 * r["scorecam_floor"])] for r in rows])
    out += table("ROAD (9 percentiles × MoRF and LeRF) against its 18 forward passes (the rest is the imputation)",
                 ["model", "road s", "18 forwards s", "×"],
                 [[r["model"], f"{r['road_call']:.2f}", f"{r['road_floor']:.2f}",
                   f"{r['road_call'] / r['road_floor']:.1f}"]
                  for r in rows])
    return out + [""]


CAMS = ["gradcam", "gradcampp", "xgradcam", "layercam", "hirescam"]


def rate(v: float) -> str:
    """Images per second: one decimal, two below 1 (a transformer's 0.15 and 0.14 are not both 0.1)."""
    return f"{v:.2f}" if v < 1 else f"{v:.1f}"


TARGETED = {"efficientnet_lite0", "resnet50"}  # the models the exact fp32 target (≤ 0.9× the floor) is set for


def cache_note(res, raised: str) -> str:
    """What a CPU run's oneDNN kernel cache was (runs before it was recorded kept oneDNN's own 1,024)."""
    if res["device"] != "cpu":
        return ""
    limit = res.get("onednn_cache", "1024")
    if limit == "1024":
        return (" oneDNN kept its own limit of 1,024 compiled kernels, which a round-robin of paths can overflow "
                "(each group then rebuilds its kernels, the NCHW floor most: ratios against it are flattered).")
    return f" oneDNN kept up to {limit} compiled kernels{raised}"


def fast_section(res):
    """Channels-last, torch.compile and bf16 against the eager NCHW fp32 floor (benchmarks/fast_paths.py)."""
    dev = f"{res['device']} ({res['device_name']}, {res['threads']} threads, torch {res['torch']})"
    out = ["", f"## Below the eager floor: {dev}", "",
           f"Input 224×224 (CAMERAS at its 8 scales, 224…924), random input, explicit target; medians of "
           f"{res['rounds']} rounds, each group round-robin in one process (`benchmarks/fast_paths.py`). The floor is "
           "the eager NCHW fp32 forward passes at the 8 scales."
           + cache_note(res, " (raised as by the `cameras` command; see the last table).")
           + (f" Made by `{res['command']}`." if res.get("command") else "")]
    if res.get("note"):
        out += ["", res["note"]]
    if res.get("exact"):
        # a run from before batch-norm folding has no unfolded channels-last path: its default was channels-last alone
        folded = all("folded_pairs" in r for r in res["exact"])
        title = ("Exact fp32: CAMERAS with its defaults (channels-last on a CPU, batch norms folded below the layer) "
                 "against the NCHW floor (target ≤ 0.9×, maps equal to the reference path's to 1e-5)" if folded else
                 "Exact fp32: CAMERAS with channels-last (the default then; before batch-norm folding) against the "
                 "NCHW floor (target ≤ 0.9×, maps equal to 1e-5)")
        head = ["model", "batch", "floor s", "channels-last forwards ×",
                "CAMERAS reference (NCHW, unfolded) ×" if folded else "CAMERAS NCHW ×"]
        head += ["CAMERAS channels-last, unfolded ×", "CAMERAS default ×", "folded pairs"] if folded else \
            ["CAMERAS default ×"]
        rows = []
        for r in res["exact"]:
            row = [r["model"], r["batch"], f"{r['floor']:.2f}", f"{r['floor_cl'] / r['floor']:.2f}",
                   f"{r['cameras_nchw'] / r['floor']:.2f}"]
            row += [f"{r['cameras_unfolded'] / r['floor']:.2f}", f"{r['cameras_auto'] / r['floor']:.2f}",
                    r["folded_pairs"]] if folded else [f"{r['cameras_auto'] / r['floor']:.2f}"]
            met = ok(r["cameras_auto"] <= 0.9 * r["floor"] and r["max_abs_diff"] <= 1e-5) \
                if r["model"] in TARGETED else "– (no target)"
            rows.append(row + [f"{r['max_abs_diff']:.1e}", met])
        out += table(title, head + ["max \\|Δmap\\|", "met"], rows)
    if res.get("cams"):
        out += table("The gradient CAM family: Grad-CAM against one eager NCHW fp32 forward pass at 224 px "
                     "(channels-last by default on a CPU, batch-norm folding on request; maps equal to the "
                     f"reference path's to 1e-5; blocks of 5 calls, medians of {2 * res['rounds'] + 1} rounds)",
                     ["model", "batch", "forward s", "Grad-CAM reference (NCHW) ×", "Grad-CAM default ×",
                      "Grad-CAM fold_batchnorm=True ×", "folded pairs", "max \\|Δmap\\|"],
                     [[r["model"], r["batch"], f"{r['forward']:.3f}", f"{r['gradcam_nchw'] / r['forward']:.2f}",
                       f"{r['gradcam_auto'] / r['forward']:.2f}", f"{r['gradcam_folded'] / r['forward']:.2f}",
                       r["folded_pairs"], f"{r['max_abs_diff']:.1e}"] for r in res["cams"]])
    if res.get("compile"):
        out += table("CAMERAS(compile=True): inductor compiles the layers below the explained one (frozen weights), "
                     "batch 1 (target ≤ 0.9× the floor, maps equal to 1e-5)",
                     ["model", "first call s (compiles 8 scales)", "floor s", "CAMERAS default ×",
                      "CAMERAS compiled ×", "max \\|Δmap\\|", "images of one size to pay off", "met"],
                     [[r["model"], f"{r['first_call_seconds']:.0f}", f"{r['floor']:.2f}",
                       f"{r['cameras_auto'] / r['floor']:.2f}", f"{r['cameras_compiled'] / r['floor']:.2f}",
                       f"{r['max_abs_diff']:.1e}",
                       "never" if r["break_even_images"] is None else f"{r['break_even_images']:.0f}",
                       ok(r["cameras_compiled"] <= 0.9 * r["floor"] and r["max_abs_diff"] <= 1e-5)
                       if r["model"] in TARGETED else "– (no target)"]
                      for r in res["compile"]])
    graphed = [r for r in res.get("graphs", []) if "cameras_graphs" in r]
    if graphed:
        unfolded = all("cameras_unfolded" in r for r in graphed)  # rows from before the column have none
        out += table("CAMERAS(cuda_graphs=True): the layers below the explained one replayed from CUDA graphs "
                     "(target at batch 1: ≤ 1.1× the floor; maps equal)" + (
                         "; graphs fold no batch norms, so they replay the unfolded eager path (fold_batchnorm="
                         "False) and equal its maps exactly, the default's (folded) to float rounding" if unfolded
                         else ""),
                     ["model", "batch", "floor s", "CAMERAS eager ×"] + (["eager unfolded ×"] if unfolded else [])
                     + ["CAMERAS graphs ×", "max \\|Δmap\\| to default"] + (["to unfolded"] if unfolded else [])
                     + ["first call s (captures)", "graphs", "met"],
                     [[r["model"], r["batch"], f"{r['floor']:.4f}", f"{r['cameras'] / r['floor']:.2f}"]
                      + ([f"{r['cameras_unfolded'] / r['floor']:.2f}"] if unfolded else [])
                      + [f"{r['cameras_graphs'] / r['floor']:.2f}", f"{r['max_abs_diff']:.1e}"]
                      + ([f"{r['max_abs_diff_unfolded']:.1e}"] if unfolded else [])
                      + [f"{r['first_call_seconds']:.1f}", r["graphs_captured"],
                         ok(r["cameras_graphs"] <= 1.1 * r["floor"]
                            and r.get("max_abs_diff_unfolded", r["max_abs_diff"]) <= 1e-5)
                         if r["batch"] == 1 else "–"]
                      for r in graphed])
    # throughput: the graph rows' batch sweep, or else the exact rows (CAMERAS default at batch 1 and 8)
    sweep = res.get("graphs") or [{"model": r["model"], "batch": r["batch"],
                                   "cameras_images_per_second": r["batch"] / r["cameras_auto"]}
                                  for r in res.get("exact", [])]
    if sweep:
        models = list(dict.fromkeys(r["model"] for r in sweep))
        paths = [("cameras", "CAMERAS")] + ([("cameras_graphs", "CAMERAS cuda_graphs")] if graphed else [])
        lines = []
        for m in models:
            rows = [r for r in sweep if r["model"] == m]
            for key, label in paths:
                per = {r["batch"]: r[f"{key}_images_per_second"] for r in rows}
                top = max(per, key=per.get)
                lines.append([m, label, ", ".join(f"{b}: {rate(v)}" for b, v in per.items()), top, rate(per[top])])
        out += table("Throughput: images per second (224×224, CAMERAS's 8 scales, explicit target) by batch size",
                     ["model", "path", "images/s by batch", "best batch", "best images/s"], lines)
    if res.get("bf16"):
        out += bf16_tables(res)
    c = res.get("cache")
    if c:
        paths = [k for k in ("floor", "cameras", "cameras_bf16") if k in c["default"]]
        names = {"floor": "floor (NCHW forward passes)", "cameras": "CAMERAS (default, exact)",
                 "cameras_bf16": "CAMERAS precision=\"bf16\""}
        out += table(f"oneDNN's kernel cache: {c['model']}, a landscape and a portrait input alternating "
                     f"({', '.join('×'.join(map(str, s)) for s in c['inputs'])}), each path alone, seconds per image; "
                     f"one process per limit", ["path", f"limit {c['default']['capacity']} s",
                                                f"limit {c['raised']['capacity']} s", "raised / default"],
                     [[names[k], f"{c['default'][k]:.3f}", f"{c['raised'][k]:.3f}",
                       f"{c['raised'][k] / c['default'][k]:.2f}"] for k in paths])
    return out + [""]


def least_r(r) -> float:
    """The smallest Pearson r over a bf16 row's photos; NaN if any is NaN (a constant map against a varying one),
    which no comparison then passes."""
    rs = [f["pearson"] for f in r["fidelity"]]
    return math.nan if any(math.isnan(v) for v in rs) else min(rs)


def bf16_tables(res):
    """The bf16 rows of a fast-paths run: time and fidelity against fp32, then fidelity per photo."""
    def best(r):  # the faster bf16 path and its smallest Pearson r
        low = [(r["cameras_bf16"], least_r(r))]
        if "cameras_bf16_compiled" in r:
            low.append((r["cameras_bf16_compiled"], r["compiled_pearson"]))
        return min(low)

    def kernels(r):
        if r.get("bf16_emulated"):
            return "emulated (no AVX512-BF16/AMX)"
        return r.get("bf16_kernels", "native")

    def fused(r):  # runs from before folding and fusion in bf16 have no counts
        return f"{r['bf16_folded_pairs']} / {r['bf16_fused_activations']}" if "bf16_folded_pairs" in r else "– (none)"

    out = table("precision=\"bf16\" (below the layer in bf16; head and fusion fp32), batch 1 "
                 "(target ≤ 0.4× the floor with r ≥ 0.99)",
                 ["model", "bf16 kernels", "folded pairs / fused activations", "floor s", "CAMERAS fp32 ×",
                  "CAMERAS bf16 ×", "Pearson r (min over photos)",
                  "max \\|Δmap\\|", "arg-max same", "bf16 compiled ×", "its r (random input)",
                  "compile first call s", "whole model bf16 forward ×", "met"],
                 [[r["model"], kernels(r), fused(r), f"{r['floor']:.2f}", f"{r['cameras_fp32'] / r['floor']:.2f}",
                   f"{r['cameras_bf16'] / r['floor']:.2f}", f"{least_r(r):.4f}",
                   f"{max(f['max_abs_diff'] for f in r['fidelity']):.3f}",
                   f"{sum(f['argmax_same'] for f in r['fidelity'])}/{len(r['fidelity'])}",
                   *([f"{r['cameras_bf16_compiled'] / r['floor']:.2f}", f"{r['compiled_pearson']:.5f}",
                      f"{r['compiled_first_call_seconds']:.0f}"] if "cameras_bf16_compiled" in r else ["–"] * 3),
                   f"{r['forward_bf16'] / r['floor']:.2f}" if "forward_bf16" in r else "–",
                   ok(best(r)[0] <= 0.4 * r["floor"] and best(r)[1] >= 0.99)]
                  for r in res["bf16"]])
    out += table("bf16 fidelity per photo (the model's top-1; maps against fp32)",
                 ["model", "photo", "input", "Pearson r", "max \\|Δmap\\|", "arg-max moved (px)"],
                 [[r["model"], f["photo"], "×".join(map(str, f["size"])),
                   f"{f['pearson']:.4f}" + (" (fp32 map constant)" if f.get("fp32_map_constant") else ""),
                   f"{f['max_abs_diff']:.3f}", f"{f['argmax_distance_px']:.0f}"]
                  for r in res["bf16"] for f in r["fidelity"]])
    return out


def bf16_set_section(r):
    """bf16 CAMERAS against fp32 on the held-out synthetic set (benchmarks/bf16_synthetic.py)."""
    kernels = r.get("bf16_kernels", "not recorded")
    return ["", f"## bf16 fidelity on a set: {r['images']} held-out synthetic images ({r['model']}, "
            f"{r.get('device', 'cpu')}, bf16 kernels: {kernels})", "",
            f"`python benchmarks/bf16_synthetic.py`: each image explained for its class in fp32 and with "
            f"`precision=\"bf16\"` ({r['folded_pairs']} pairs folded, {r['fused_activations']} activations fused), "
            f"scales {', '.join(map(str, r['scales']))}.", "",
            "| Pearson r min | median | maps with r < 0.99 | max \\|Δmap\\| | arg-max moved | pointing fp32 → bf16 "
            "| energy in box fp32 → bf16 |", "|---|---|---|---|---|---|---|",
            f"| {r['pearson_min']:.5f} | {r['pearson_median']:.6f} | {r['pearson_below_0.99']} | "
            f"{r['max_abs_diff']:.4f} | {r['argmax_moved_share']:.1%} | {r['fp32_pointing']:.3f} → "
            f"{r['bf16_pointing']:.3f} | {r['fp32_energy_in_box']:.3f} → {r['bf16_energy_in_box']:.3f} |", ""]


def vit_parts_section(res):
    """Where a ViT's bf16 CAMERAS time goes (benchmarks/vit_bf16_parts.py)."""
    r = res["parts"]
    f = r["floor"]
    below, top32, top16 = r["below_bf16"] / f, r["top_fp32"] / f, r["top_bf16_autocast"] / f
    return ["", f"## Where a ViT's bf16 time goes: {r['model']}, {res['device']} ({res['device_name']}, "
            f"{res['threads']} threads)", "",
            f"CAMERAS explains `{r['layer']}`; its 8 scales give {min(r['tokens'])}…{max(r['tokens'])} tokens. "
            f"Times over the fp32 floor ({f:.2f} s), one round-robin group, medians of {res['rounds']} rounds. "
            f"Made by `{res['command']}`.", "",
            "| part | × the floor |", "|---|---|",
            f"| the whole model in bf16, forward only | {r['forward_bf16'] / f:.2f} |",
            f"| the blocks below the layer in bf16, forward only | {below:.2f} |",
            f"| the last block and head, forward and backward, float32 (as `precision=\"bf16\"` runs it) | "
            f"{top32:.2f} |",
            f"| the same under bf16 autocast | {top16:.2f} |",
            f"| CAMERAS `precision=\"bf16\"` | {r['cameras_bf16'] / f:.2f} |",
            f"| least for a design with the last block in bf16 (below + autocast top) | {below + top16:.2f} |", ""]


def graphs_summary() -> str:
    """The batch-1 CUDA graphs rows of the GPU's "Below the eager floor" run, as a clause ("" without one)."""
    f = HERE / "results" / "fast" / "cuda.json"
    rows = [r for r in json.loads(f.read_text()).get("graphs", []) if r["batch"] == 1 and "cameras_graphs" in r] \
        if f.exists() else []
    if not rows:
        return ", when one has been made"
    return ": at batch 1 " + ", ".join(f"{r['model']} {r['cameras_graphs'] / r['floor']:.2f}× the floor with graphs "
                                       f"({r['cameras'] / r['floor']:.2f}× eager)" for r in rows)


def render() -> str:
    """BENCHMARKS.md's text, rendered from every results file under benchmarks/results."""
    lines = ["# Benchmarks", "",
             "Regenerate with `make bench` (this device) — it runs `benchmarks/run.py`, writes",
             "`benchmarks/results/<device>.json` and rebuilds this file from every results file.",
             "The floor is the eager fp32 inference-mode forward passes at CAMERAS's scales and batch;",
             "\"straightforward\" is `benchmarks/naive.py` (full backward, every channel resized at every",
             "scale), whose maps are compared with the library's (max abs diff).", ""]
    for f in sorted((HERE / "results").glob("*.json")):
        lines += section(json.loads(f.read_text()))
    for f in sorted((HERE / "results" / "topk").glob("*.json")):
        lines += topk_section(json.loads(f.read_text()))
    for f in sorted((HERE / "results" / "methods").glob("*.json")):
        lines += methods_section(json.loads(f.read_text()))
    for f in sorted((HERE / "results" / "fast").glob("*.json")):
        lines += fast_section(json.loads(f.read_text()))
    for f in sorted((HERE / "results" / "bf16").glob("*.json")):
        lines += bf16_set_section(json.loads(f.read_text()))
    for f in sorted((HERE / "results" / "vit_parts").glob("*.json")):
        lines += vit_parts_section(json.loads(f.read_text()))
    return "\n".join(lines)


def main():
    (HERE.parent / "BENCHMARKS.md").write_text(render())
    print("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
