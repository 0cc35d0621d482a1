"""`cameras bench`, `app`, `samples`, `methods` and `models`."""

from __future__ import annotations

from pathlib import Path

import click

from ..names import DEFAULT_MODEL
from .common import (
    check_out,
    device_option,
    fail,
    load_classifier,
    main,
    model_names,
    model_option,
    models_option,
    progress_flag,
    set_threads,
    threads_option,
    torch_device,
    user_errors,
)


def check_patch_multiple(bundle, size: int | None) -> int:
    """``--size`` (default: the model's input size), refused when a patch model cannot take it."""
    from ..core.layouts import patch_size

    n = size or bundle.input_size
    p = patch_size(bundle.model)
    if p and n % p:
        raise click.BadParameter(f"--size {n} is not a multiple of {bundle.name}'s patch size {p}; use e.g. "
                                 f"{max(p, round(n / p) * p)}")
    return n


@main.command()
@model_option
@click.option("--weights", default=None, help="Weights file, or 'random' (timings do not depend on weights).")
@click.option("--batch-size", "batches", default="1", show_default=True, help="Comma list of batch sizes.")
@click.option("--size", default=None, type=click.IntRange(8, 4096), help="Input size (default: the model's).")
@click.option("--scales", default=None, help="CAMERAS sizes (default 224..924 by 100).")
@device_option
@click.option("--reps", default=3, show_default=True, type=click.IntRange(1, 100))
@click.option("--bf16", is_flag=True, help="Also time precision=bf16 CAMERAS and give its maps' Pearson r to the "
              "exact ones (on the random input).")
@threads_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def bench(model_name, weights, batches, size, scales, device, reps, bf16, threads, quiet) -> None:
    """Time CAMERAS against its floor (the forward passes at its scales) and Grad-CAM on your model.

    A progress bar per batch size counts the timed calls (on a terminal; --quiet: none).
    """
    import torch

    from ..bench import bench_cameras
    from ..core.memory import fast_bf16
    from ..methods.cameras import check_scales

    with user_errors():
        try:
            sizes = [int(b) for b in batches.split(",")]
        except ValueError:
            raise click.BadParameter(f"--batch-size '{batches}' is not a comma list of integers") from None
        if min(sizes) < 1:
            raise click.BadParameter(f"--batch-size '{batches}': batch sizes are at least 1")
        scale_list = None if scales is None else check_scales(scales)
        set_threads(threads)
        bundle = load_classifier(model_name, weights, torch_device(device), "cameras bench")
        n = check_patch_multiple(bundle, size)
        click.echo(f"{bundle.name} on {device}, input {n}×{n}, median of {reps}")
        if bf16 and not fast_bf16(torch_device(device)):
            click.echo("bf16 is emulated on this device (no AVX512-BF16/AMX): slower than float32")
        low = f" {'bf16 s':>8} {'×floor':>7} {'bf16 r':>7}" if bf16 else ""
        click.echo(f"{'batch':>5} {'floor s':>9} {'CAMERAS s':>10} {'×floor':>7} {'grid-mode s':>12} "
                   f"{'forward s':>10} {'Grad-CAM s':>11} {'×fwd':>6}{low}")
        for b in sizes:
            x = torch.randn(b, 3, n, n, generator=torch.Generator().manual_seed(0)).to(device)
            r = bench_cameras(bundle.model, x, 0, bundle.layer, scale_list, reps, bf16=bf16,
                              progress=progress_flag(quiet))
            low = (f" {r['cameras_bf16']:>8.3f} {r['cameras_bf16/floor']:>7.2f} {r['bf16_pearson']:>7.4f}"
                   if bf16 else "")
            click.echo(f"{b:>5} {r['floor']:>9.3f} {r['cameras']:>10.3f} {r['cameras/floor']:>7.2f} "
                       f"{r['cameras_grid']:>12.3f} {r['forward']:>10.3f} {r['gradcam']:>11.3f} "
                       f"{r['gradcam/forward']:>6.2f}{low}")


@main.command("app")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; 0.0.0.0 exposes the app to the network.")
@click.option("--port", default=7860, show_default=True, type=click.IntRange(1, 65535))
@models_option([DEFAULT_MODEL], "Model(s) offered in the page, repeatable or a comma list, e.g. "
                               "--model efficientnet_lite0,timm:resnet18.")
@click.option("--weights", default=None, help="Weights file (or 'random') for the model; with exactly one --model.")
@device_option
@click.option("--max-upload-mb", default=20, show_default=True, type=click.IntRange(1, 2048))
@click.option("--max-pixels", default=40_000_000, show_default=True, type=click.IntRange(64, None))
def app_cmd(host, port, models, weights, device, max_upload_mb, max_pixels) -> None:
    """Serve a local web page to explore saliency maps (needs: pip install 'cameras[app]')."""
    import importlib.util

    if importlib.util.find_spec("gradio") is None:
        fail("cameras app needs the optional web extra: pip install 'cameras[app]' (Gradio)")
    from ..app import serve

    with user_errors():
        models = model_names(models)
        if weights is not None and len(models) != 1:
            raise click.BadParameter("--weights goes with exactly one --model (run one app per weights file)")
        chosen = {models[0]: weights} if weights is not None else {}
        for m in models:  # fail now, not in the page, for an unknown model, bad weights or a non-classifier
            load_classifier(m, chosen.get(m), torch_device(device), "the app")
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: binding to {host}: anyone who can reach this machine can use the app", err=True)
    click.echo(f"cameras app on http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}  (Ctrl+C to stop)")
    try:
        serve(list(models), host, port, device, max_upload_mb * 2**20, max_pixels, block=True, weights=chosen)
    except OSError as e:
        fail(f"cannot serve on {host}:{port} ({e}); choose another --port or --host")


@main.command("samples")
@click.option("--out", "out_dir", default="samples", show_default=True, type=click.Path(path_type=Path))
def samples(out_dir: Path) -> None:
    """Write scikit-image's sample photos (chelsea, coffee) as JPEG files to try the tool on."""
    from PIL import Image
    from skimage import data

    with user_errors():
        check_out(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in ("chelsea", "coffee"):
            Image.fromarray(getattr(data, name)()).save(out_dir / f"{name}.jpg", quality=95)
            click.echo(str(out_dir / f"{name}.jpg"))


@main.command("synthetic")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Folder to write.")
@click.option("-n", "--count", default=200, show_default=True, type=click.IntRange(1, 1_000_000),
              help="Images to write.")
@click.option("--seed", default=1, show_default=True, type=int, help="Random seed (the models were trained on "
              "seeds 100 and 200; 300 is the README's held-out set).")
def synthetic(out_dir: Path, count: int, seed: int) -> None:
    """Write a synthetic localisation set: one coloured shape per image, its box exact.

    An ImageNet-style folder (PNG images, LOC_val_solution.csv, classes.txt) that
    `cameras evaluate --format imagenet --model synthetic:vit` (or synthetic:cnn, or your own
    model with those class names) scores with the pointing game and the other metrics.
    """
    from ..data.synthetic import write_synthetic

    with user_errors():
        check_out(out_dir)
        write_synthetic(out_dir, count, seed)
    click.echo(f"wrote {count} images to {out_dir}")


@main.command("methods")
def list_methods() -> None:
    """List the saliency methods, then the wrapped forms (multiscale-, smooth-, tta-)."""
    from ..methods import available_methods

    for name in available_methods():
        click.echo(name)
    click.echo("wrapped: multiscale-layercam, multiscale-hirescam (CAMERAS's multi-scale accumulation), "
               "smooth-<method> (noise averaging), tta-<method> (flip and rescale averaging)")


@main.command("models")
def list_models() -> None:
    """Show how to name models."""
    click.echo(f"{DEFAULT_MODEL:<22} embedded ImageNet EfficientNet-Lite0 (default, offline)")
    click.echo("efficientnet_lite1      ImageNet EfficientNet-Lite1, 240 px (offline)")
    click.echo("efficientnet_lite2      ImageNet EfficientNet-Lite2, 260 px (offline)")
    click.echo("torchvision:<arch>     e.g. torchvision:resnet50 (weights: --weights FILE or torch hub cache)")
    click.echo("timm:<name>            e.g. timm:resnet18, timm:vit_base_patch16_224 (weights: --weights FILE or "
               "Hugging Face cache)")
    click.echo("hf:<folder>            a Hugging Face transformers image classifier saved with save_pretrained "
               "(offline; pip install 'cameras[hf]')")
    click.echo("synthetic:cnn|vit|seg  a small CNN, ViT or segmentation net trained on the synthetic shapes, 64 px "
               "(offline; `cameras synthetic` writes such images)")


@main.command("layers")
@click.argument("model_name", metavar="MODEL", default=DEFAULT_MODEL)
@click.option("--weights", default=None, help="Weights file (or 'random') for torchvision:/timm: models.")
@click.option("--size", default=None, type=click.IntRange(8, 4096),
              help="Input size of the dummy pass (default: the model's).")
@click.option("--all", "show_all", is_flag=True,
              help="Every module, not only those with a spatial output (a map, channels-last map or tokens).")
def list_layers(model_name, weights, size, show_all) -> None:
    """List MODEL's layers with their output shapes (one dummy forward pass), for --layer.

    Layers whose output is a spatial map (B×K×h×w, channels-last B×h×w×C, or tokens B×N×C
    with the patch grid) can be explained; the output column names the layout after the shape
    ("channels last", "tokens"; a plain map has none). The one used when
    no --layer is given is marked with *; for transformers, modules inside attention are never
    chosen.
    """
    from ..core.layers import inside_attention, resolve_layer, trace_layers
    from ..models import load_model

    with user_errors():
        bundle = load_model(model_name, weights)
        n = check_patch_multiple(bundle, size)
        rows = trace_layers(bundle.model, (3, n, n))
        default = bundle.layer or resolve_layer(bundle.model, None, (3, n, n))[0]
    shown = [r for r in rows if show_all or (r["spatial"] and r["calls"] == 1)]
    width = max([len(r["name"]) for r in shown] + [5])
    click.echo(f"  {'layer':<{width}}  {'type':<24} output for a 1×3×{n}×{n} input")
    for r in shown:
        shape = "×".join(map(str, r["shape"])) if r["shape"] is not None else "(not a tensor)"
        if r["spatial"] and r.get("layout") in ("nhwc", "tokens"):
            shape += " (channels last)" if r["layout"] == "nhwc" else " (tokens)"
        runs = "" if r["calls"] == 1 else f"  (runs {r['calls']}× per pass: not explainable)"
        if r["spatial"] and inside_attention(bundle.model, r["name"]):
            runs += "  (inside attention)"
        mark = "*" if r["name"] == default else " "
        click.echo(f"{mark} {r['name']:<{width}}  {r['type']:<24} {shape}{runs}")
    click.echo(f"* the layer used without --layer: {default}")
