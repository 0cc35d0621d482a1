"""Command line: ``cameras explain``, ``cameras models``, ``cameras methods``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .core.errors import CamerasError


def _fail(msg: str, code: int = 2) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(code)


def parse_scales(text: str | None) -> list[int] | None:
    """``"224,324,424"`` → [224, 324, 424]; ``"224:1000:100"`` → range(224, 1000, 100).

    Example:
        >>> parse_scales("224:524:100")
        [224, 324, 424]
    """
    if text is None:
        return None
    try:
        if ":" in text:
            start, stop, step = (int(v) for v in text.split(":"))
            return list(range(start, stop, step))
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise click.BadParameter(f"'{text}' is not a list like 224,324,424 or a range like 224:1000:100") from None


def parse_settings(items, per_method: bool = False) -> dict:
    """``["n_masks=500", "p=0.2"]`` → {"n_masks": 500, "p": 0.2}; with ``per_method``,
    ``["rise.n_masks=500"]`` → {"rise": {"n_masks": 500}}. Values are Python literals or text.

    Example:
        >>> parse_settings(["rise.n_masks=8", "extremal.area=0.1"], per_method=True)
        {'rise': {'n_masks': 8}, 'extremal': {'area': 0.1}}
    """
    import ast

    out: dict = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"'{item}' is not KEY=VALUE")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        key = key.strip()
        if per_method:
            meth, dot, opt = key.partition(".")
            if not dot:
                raise click.BadParameter(f"'{item}' must be METHOD.KEY=VALUE, e.g. rise.n_masks=500")
            out.setdefault(meth.lower(), {})[opt] = value
        else:
            out[key] = value
    return out


def check_options(cls, options: dict) -> dict:
    """Raise a clear error for option names that the method class does not take."""
    import inspect

    allowed = set(inspect.signature(cls.__init__).parameters) - {"self", "model"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise click.BadParameter(f"method {cls.name} has no option {', '.join(unknown)}; options: {', '.join(sorted(allowed))}")
    return options


def build_method(cls, model, options: dict):
    """Instantiate a method class after checking its option names."""
    return cls(model, **check_options(cls, options))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cameras")
def main() -> None:
    """CAMERAS: high-resolution saliency maps for PyTorch image classifiers."""


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", "model_name", default="efficientnet_lite0", show_default=True,
              help="efficientnet_lite0 (embedded), torchvision:<arch> or timm:<name>.")
@click.option("--weights", default=None, help="Local weights file for torchvision:/timm: models, or 'random'.")
@click.option("--method", default="cameras", show_default=True, help="Saliency method (see `cameras methods`).")
@click.option("--target", "targets", multiple=True,
              help="Class to explain: id, WordNet id or name (repeatable). Default: the top-k classes.")
@click.option("--topk", default=1, show_default=True, type=click.IntRange(1, 1000), help="Explain each of the top K classes.")
@click.option("--layer", default=None, help="Layer name to explain (default: found automatically).")
@click.option("--scales", default=None, help="CAMERAS sizes, e.g. 224,324,424 or 224:1000:100 (default 224..924 by 100).")
@click.option("--steps", default=None, type=click.IntRange(1, 100), help="CAMERAS: N sizes from the model's input size to --max-size.")
@click.option("--max-size", default=1000, show_default=True, type=click.IntRange(8, 8192), help="CAMERAS: largest size with --steps.")
@click.option("--resample", default="bicubic", show_default=True, type=click.Choice(["bicubic", "bilinear"]),
              help="CAMERAS: image resampling between scales.")
@click.option("--square", is_flag=True, help="Resize images to a square instead of keeping the aspect ratio.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ...")
@click.option("--batch-size", default=1, show_default=True, type=click.IntRange(1, 4096), help="Images per batch (same-size images are batched).")
@click.option("--alpha", default=0.5, show_default=True, type=click.FloatRange(0, 1), help="Overlay opacity of the map.")
@click.option("--out", "out_dir", default="cameras-out", show_default=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Method option, e.g. --set n_masks=6000 for rise or --set area=0.1 for extremal (repeatable).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def explain(images, model_name, weights, method, targets, topk, layer, scales, steps, max_size, resample, square,
            device, batch_size, alpha, out_dir, settings, quiet) -> None:
    """Explain IMAGE files (or folders of images) and write overlays, maps and JSON.

    For each image and class: OUT/<stem>.<method>.<class>.png (map over the image, same
    size as the original), OUT/<stem>.<method>.<class>.npy (float32 map at the original
    H×W), and OUT/<stem>.json (top-k predictions, targets, kept scales, timings).
    """
    import torch

    from .compare import method_options
    from .explain import explain_images
    from .images import list_images
    from .methods import method_class
    from .models import load_model

    try:
        cls = method_class(method)
        extra = parse_settings(settings)
        bundle = load_model(model_name, weights, device=torch.device(device))
        target_ids = [bundle.class_index(t) for t in targets] or None
        options = method_options(bundle, cls.name)
        if layer is not None and cls.uses_layer:
            options["layer"] = layer
        if cls.name == "cameras":
            scale_list = parse_scales(scales)
            if scale_list is not None and steps is not None:
                raise click.BadParameter("give --scales or --steps, not both")
            if steps is not None:
                options.update(steps=steps, max_size=max_size, base_size=bundle.input_size)
            else:
                options["scales"] = scale_list
            options["resample"] = resample
        options.update(extra)
        m = build_method(cls, bundle.model, options)
    except (CamerasError, RuntimeError, click.BadParameter) as e:
        _fail(str(e.message if isinstance(e, click.BadParameter) else e))
    params = {k: v for k, v in {
        "scales": getattr(m, "scales", None), "resample": getattr(m, "resample", None),
        "square": square, "batch_size": batch_size, "device": device, **extra,
    }.items() if v is not None}
    paths = list_images(images)
    if not paths:
        _fail("no image files found in the given folders")
    outcomes = explain_images(paths, bundle, m, out_dir, target_ids, topk, batch_size, square, alpha, params,
                              progress=False if quiet else None)
    failed = [o for o in outcomes if o.error]
    for o in failed:
        click.echo(f"error: {o.error}", err=True)
    done = len(outcomes) - len(failed)
    click.echo(f"explained {done} of {len(outcomes)} images into {out_dir}")
    if failed:
        sys.exit(1)


@main.command()
@click.argument("image", type=click.Path(path_type=Path))
@click.option("--methods", default="all", show_default=True, help="'all' or a comma list, e.g. cameras,gradcam,rise.")
@click.option("--model", "models", default="efficientnet_lite0", show_default=True,
              help="Comma list of models; one figure row per model.")
@click.option("--weights", default=None, help="Weights file (or 'random') for a single torchvision:/timm: model.")
@click.option("--target", default=None, help="Class id, WordNet id or name (default: the first model's top-1).")
@click.option("--set", "settings", multiple=True, metavar="METHOD.KEY=VALUE",
              help="Method option, e.g. --set rise.n_masks=6000 --set extremal.iterations=1000 (repeatable).")
@click.option("--square", is_flag=True, help="Resize to a square instead of keeping the aspect ratio.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--alpha", default=0.5, show_default=True, type=click.FloatRange(0, 1))
@click.option("--out", "out_png", required=True, type=click.Path(path_type=Path), help="Figure file (.png).")
def compare(image, methods, models, weights, target, settings, square, device, alpha, out_png) -> None:
    """Compare methods (and models) on one IMAGE: a figure like the paper's Figures 4-6.

    Writes OUT (the image, then each method's overlay titled with its seconds; one row per
    model labelled with its confidence for the class), OUT's stem + .<model>.<method>.npy
    for every map, and OUT's stem + .json.
    """
    import torch

    from .compare import compare as run_compare
    from .methods import available_methods, method_class
    from .models import load_model

    try:
        names = available_methods() if methods.strip() == "all" else [method_class(m).name for m in methods.split(",") if m.strip()]
        opts = {method_class(k).name: check_options(method_class(k), v)
                for k, v in parse_settings(settings, per_method=True).items()}
        model_names = [m.strip() for m in models.split(",") if m.strip()]
        bundles = [load_model(n, weights if len(model_names) == 1 else None, device=torch.device(device)) for n in model_names]
        tid = bundles[0].class_index(target) if target is not None else None
        if out_png.suffix.lower() != ".png":
            raise click.BadParameter(f"--out must name a .png file, got {out_png}")
        record = run_compare(image, bundles, names, out_png, tid, opts, square, alpha)
    except (CamerasError, RuntimeError, click.BadParameter) as e:
        _fail(str(e.message if isinstance(e, click.BadParameter) else e))
    for entry in record["models"]:
        times = ", ".join(f"{k} {v['seconds']:.2f} s" for k, v in entry["methods"].items())
        click.echo(f"{entry['model']}: {entry['name']} ({entry['probability']:.2f}): {times}")
    click.echo(f"wrote {out_png}")


@main.command()
@click.option("--model", "model_name", default="efficientnet_lite0", show_default=True)
@click.option("--weights", default=None, help="Weights file, or 'random' (timings do not depend on weights).")
@click.option("--batch-size", "batches", default="1", show_default=True, help="Comma list of batch sizes.")
@click.option("--size", default=None, type=int, help="Input size (default: the model's).")
@click.option("--scales", default=None, help="CAMERAS sizes (default 224..924 by 100).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--reps", default=3, show_default=True, type=click.IntRange(1, 100))
def bench(model_name, weights, batches, size, scales, device, reps) -> None:
    """Time CAMERAS against its floor (the forward passes at its scales) and Grad-CAM on your model."""
    import torch

    from .bench import bench_cameras
    from .models import load_model

    try:
        bundle = load_model(model_name, weights, device=torch.device(device))
        sizes = [int(b) for b in batches.split(",")]
    except (CamerasError, RuntimeError, ValueError) as e:
        _fail(str(e))
    n = size or bundle.input_size
    click.echo(f"{bundle.name} on {device}, input {n}×{n}, median of {reps}")
    click.echo(f"{'batch':>5} {'floor s':>9} {'CAMERAS s':>10} {'×floor':>7} {'grid-mode s':>12} {'forward s':>10} {'Grad-CAM s':>11} {'×fwd':>6}")
    for b in sizes:
        x = torch.randn(b, 3, n, n, generator=torch.Generator().manual_seed(0)).to(device)
        r = bench_cameras(bundle.model, x, 0, bundle.layer, parse_scales(scales), reps)
        click.echo(f"{b:>5} {r['floor']:>9.3f} {r['cameras']:>10.3f} {r['cameras/floor']:>7.2f} {r['cameras_grid']:>12.3f} "
                   f"{r['forward']:>10.3f} {r['gradcam']:>11.3f} {r['gradcam/forward']:>6.2f}")


@main.command("samples")
@click.option("--out", "out_dir", default="samples", show_default=True, type=click.Path(path_type=Path))
def samples(out_dir: Path) -> None:
    """Write scikit-image's sample photos (chelsea, coffee) as JPEG files to try the tool on."""
    from PIL import Image
    from skimage import data

    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("chelsea", "coffee"):
        Image.fromarray(getattr(data, name)()).save(out_dir / f"{name}.jpg", quality=95)
        click.echo(str(out_dir / f"{name}.jpg"))


@main.command("methods")
def list_methods() -> None:
    """List the saliency methods."""
    from .methods import available_methods

    for name in available_methods():
        click.echo(name)


@main.command("models")
def list_models() -> None:
    """Show how to name models."""
    click.echo("efficientnet_lite0     embedded ImageNet EfficientNet-Lite0 (default, offline)")
    click.echo("torchvision:<arch>     e.g. torchvision:resnet50 (weights: --weights FILE or torch hub cache)")
    click.echo("timm:<name>            e.g. timm:resnet18 (weights: --weights FILE or Hugging Face cache)")


if __name__ == "__main__":  # pragma: no cover
    main()
