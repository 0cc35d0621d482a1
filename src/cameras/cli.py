"""Command line: ``cameras explain``, ``cameras models``, ``cameras methods``."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from .core.errors import CamerasError


def _fail(msg: str, code: int = 2) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(code)


@contextlib.contextmanager
def user_errors():
    """Turn bad input (our errors, bad options, runtime errors from torch) into one line and exit 2."""
    try:
        yield
    except click.BadParameter as e:
        _fail(e.message)
    except (CamerasError, RuntimeError) as e:
        _fail(str(e))


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
@click.pass_context
def main(ctx: click.Context) -> None:
    """CAMERAS: high-resolution saliency maps for PyTorch image classifiers.

    On Linux every command but `app` tunes the CPU allocator to reuse large blocks (large
    forward passes ran up to 3× faster per image in BENCHMARKS.md); CAMERAS_CPU_ALLOCATOR=default leaves it
    alone.
    """
    from .allocator import tune_cpu_allocator

    if ctx.invoked_subcommand != "app":
        tune_cpu_allocator()


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

    with user_errors():
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

    with user_errors():
        names = available_methods() if methods.strip() == "all" else [method_class(m).name for m in methods.split(",") if m.strip()]
        opts = {method_class(k).name: check_options(method_class(k), v)
                for k, v in parse_settings(settings, per_method=True).items()}
        model_names = [m.strip() for m in models.split(",") if m.strip()]
        bundles = [load_model(n, weights if len(model_names) == 1 else None, device=torch.device(device)) for n in model_names]
        tid = bundles[0].class_index(target) if target is not None else None
        if out_png.suffix.lower() != ".png":
            raise click.BadParameter(f"--out must name a .png file, got {out_png}")
        record = run_compare(image, bundles, names, out_png, tid, opts, square, alpha)
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


@main.command()
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path), help="Dataset folder.")
@click.option("--format", "fmt", required=True, type=click.Choice(["imagenet", "voc", "coco"]))
@click.option("--model", "model_name", default="efficientnet_lite0", show_default=True)
@click.option("--weights", default=None)
@click.option("--methods", default="cameras,gradcam", show_default=True, help="'all' or a comma list.")
@click.option("--metrics", default="pointing,rho", show_default=True, help="Comma list of pointing, rho, insdel.")
@click.option("--mapping", default=None, type=click.Path(path_type=Path),
              help="JSON {dataset class: model class id} (VOC and COCO with an ImageNet model).")
@click.option("--limit", default=None, type=click.IntRange(1, None), help="First N images only.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, 4096),
              help="Forward passes per batch in insertion/deletion.")
@click.option("--insdel-step", default=224, show_default=True, type=click.IntRange(1, None), help="Pixels per insertion/deletion step.")
@click.option("--set", "settings", multiple=True, metavar="METHOD.KEY=VALUE", help="Method option (repeatable).")
@click.option("--square", is_flag=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def evaluate(data_dir, fmt, model_name, weights, methods, metrics, mapping, limit, batch_size, insdel_step, settings,
             square, device, out_dir, quiet) -> None:
    """Evaluate methods on a dataset: results.csv, summary.json, report.md (resumable).

    Every (image, ground-truth class, method) item gets one row in OUT/results.csv; a rerun
    with the same OUT skips finished items. OUT/summary.json and OUT/report.md (with the
    paper's numbers beside ours, metrics.png and curves.png) are rewritten at the end.
    Under torchrun (`torchrun --nproc-per-node K -m cameras evaluate ...`) the items are
    split across ranks, each writes its own shard, and rank 0 merges them.
    """
    from .distributed import launch

    with user_errors(), launch(device) as run:
        _evaluate(data_dir, fmt, model_name, weights, methods, metrics, mapping, limit, batch_size, insdel_step, settings,
                  square, run, out_dir, quiet)


def _evaluate(data_dir, fmt, model_name, weights, methods, metrics, mapping, limit, batch_size, insdel_step, settings,
              square, run, out_dir, quiet) -> None:
    from .data import load_mapping, read_dataset
    from .data.readers import VOC_CLASSES
    from .evaluate import METRICS, evaluate_items, write_report
    from .runs import placement
    from .methods import available_methods, method_class
    from .models import load_model

    with user_errors():
        names = available_methods() if methods.strip() == "all" else [method_class(m).name for m in methods.split(",") if m.strip()]
        wanted = {m.strip() for m in metrics.split(",") if m.strip()}
        bad = sorted(wanted - set(METRICS))
        if bad:
            raise click.BadParameter(f"unknown metric {', '.join(bad)}; choose from {', '.join(METRICS)}")
        opts = {method_class(k).name: check_options(method_class(k), v) for k, v in parse_settings(settings, per_method=True).items()}
        bundle = load_model(model_name, weights, device=run.device)
        cmap = load_mapping(mapping, VOC_CLASSES if fmt == "voc" else None)
        items = read_dataset(fmt, data_dir, wnids=bundle.wnids, mapping=cmap)
        if limit:
            items = items[:limit]
        if not items:
            raise click.BadParameter(f"no annotated images found in {data_dir}")
        built = {n: get_method_checked(n, bundle, opts.get(n)) for n in names}
    try:
        rows = evaluate_items(items, bundle, built, wanted, out_dir, square, insdel_step, batch_size,
                              progress=False if quiet else None, **placement(run))
    except CamerasError as e:
        _fail(str(e), 1)
    if run.rank != 0:
        return
    summary = write_report(out_dir, rows, {"data": str(data_dir), "format": fmt, "model": bundle.name,
                                           "images": len(items), "metrics": sorted(wanted), "processes": run.world})
    for m, n in summary["items"].items():
        pg = summary["pointing_game"][m]
        rp = summary["rho_plus"][m]
        click.echo(f"{m}: {n} items, pointing {'–' if pg is None else f'{100 * pg:.1f}%'}, "
                   f"rho+ {'–' if rp is None else f'{rp:.3f}'}")
    click.echo(f"wrote {out_dir}/results.csv, summary.json, report.md")


def get_method_checked(name: str, bundle, options: dict | None):
    """Build method ``name`` for ``bundle`` with its recommended layer and checked options."""
    from .compare import method_options
    from .methods import method_class

    cls = method_class(name)
    return build_method(cls, bundle.model, method_options(bundle, name, check_options(cls, options or {})))


@main.group()
def experiment() -> None:
    """The CAMERAS supplement's experiments (A-2 n-sensitivity, A-3 interpolation)."""


def _experiment_inputs(images, data_dir, fmt, mapping, limit, bundle):
    from .data import load_mapping, read_dataset
    from .data.readers import VOC_CLASSES
    from .images import list_images

    if bool(images) == bool(data_dir):
        raise click.BadParameter("give IMAGE files or --data DIR (with --format), not both or neither")
    if data_dir:
        if fmt is None:
            raise click.BadParameter("--data needs --format imagenet|voc|coco")
        items = read_dataset(fmt, data_dir, wnids=bundle.wnids, mapping=load_mapping(mapping, VOC_CLASSES if fmt == "voc" else None))
        items = items[:limit] if limit else items
        work = [(it.image, cls, it) for it in items for cls in it.classes() if not it.all_difficult(cls)]
        if not work:
            raise click.BadParameter(f"no annotated images with usable classes found in {data_dir}")
        return work
    paths = list_images(images)
    paths = paths[:limit] if limit else paths
    if not paths:
        raise click.BadParameter("no image files found")
    return [(p, None, None) for p in paths]


def _experiment_options(f):
    for opt in reversed([
        click.argument("images", nargs=-1, type=click.Path(path_type=Path)),
        click.option("--data", "data_dir", default=None, type=click.Path(path_type=Path)),
        click.option("--format", "fmt", default=None, type=click.Choice(["imagenet", "voc", "coco"])),
        click.option("--mapping", default=None, type=click.Path(path_type=Path)),
        click.option("--limit", default=None, type=click.IntRange(1, None)),
        click.option("--model", "model_name", default="efficientnet_lite0", show_default=True),
        click.option("--weights", default=None),
        click.option("--device", default="cpu", show_default=True),
        click.option("--square", is_flag=True),
        click.option("--out", "out_dir", default="cameras-experiment", show_default=True, type=click.Path(path_type=Path)),
        click.option("--quiet", is_flag=True),
    ]):
        f = opt(f)
    return f


@experiment.command("n-sensitivity")
@_experiment_options
@click.option("--max-size", default=1000, show_default=True, type=click.IntRange(8, 8192))
def n_sensitivity_cmd(images, data_dir, fmt, mapping, limit, model_name, weights, device, square, out_dir, quiet, max_size):
    """Map difference between N = 5..10 scales (ζ_m = --max-size), beside the paper's matrix.

    Resumable (a rerun into the same --out skips finished images) and distributed under
    torchrun (`torchrun --nproc-per-node K -m cameras experiment n-sensitivity --data ...`).
    """
    from .distributed import launch
    from .experiments import PAPER_N, STEPS, n_sensitivity
    from .images import load_image
    from .models import load_model

    with user_errors(), launch(device) as run:
        bundle = load_model(model_name, weights, device=run.device)
        work = _experiment_inputs(images, data_dir, fmt, mapping, limit, bundle)
        paths = list(dict.fromkeys(p for p, _, _ in work))
        for p in paths:
            load_image(p)
        mean = n_sensitivity(bundle, paths, out_dir, max_size, square, progress=False if quiet else None, run=run)
    if mean is None:
        return
    click.echo("N    " + " ".join(f"{n:>11}" for n in STEPS))
    for n, ours, paper in zip(STEPS, mean, PAPER_N):
        click.echo(f"{n:<4} " + " ".join(f"{o:.3f} ({p:.2f})" for o, p in zip(ours, paper)))
    click.echo(f"ours (paper's Table 2 in brackets); wrote {out_dir}/n_sensitivity.json, .csv, .png")


@experiment.command("interpolation")
@_experiment_options
def interpolation_cmd(images, data_dir, fmt, mapping, limit, model_name, weights, device, square, out_dir, quiet):
    """ρ⁺ and pointing game of CAMERAS blended into Grad-CAM, γ = 0, 0.1, ..., 1.

    Resumable and distributed under torchrun, like n-sensitivity.
    """
    from .distributed import launch
    from .experiments import interpolation
    from .images import load_image
    from .models import load_model

    with user_errors(), launch(device) as run:
        bundle = load_model(model_name, weights, device=run.device)
        work = _experiment_inputs(images, data_dir, fmt, mapping, limit, bundle)
        for p in dict.fromkeys(p for p, _, _ in work):
            load_image(p)
        s = interpolation(bundle, work, out_dir, square, progress=False if quiet else None, run=run)
    if s is None:
        return
    for g, r, p in zip(s["gamma"], s["rho_plus"], s["pointing_game"]):
        click.echo(f"gamma {g:.1f}: rho+ {r:.4f}" + ("" if p is None else f", pointing {100 * p:.1f}%"))
    click.echo(f"wrote {out_dir}/interpolation.json, .csv, .png")


def parse_eps(text: str) -> float:
    """``"12/255"`` or ``"0.05"`` → float.

    Example:
        >>> round(parse_eps("12/255"), 4)
        0.0471
    """
    try:
        if "/" in text:
            a, b = text.split("/")
            return float(a) / float(b)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise click.BadParameter(f"'{text}' is not a number like 12/255 or 0.05") from None


def _adv_paths(images, data_dir):
    from .images import list_images

    if bool(images) == bool(data_dir):
        raise click.BadParameter("give IMAGE files or --data DIR, not both or neither")
    paths = list_images([data_dir] if data_dir else images)
    if not paths:
        raise click.BadParameter("no image files found")
    from .images import load_image

    for p in paths:
        load_image(p)
    return paths


@main.command()
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--data", "data_dir", default=None, type=click.Path(path_type=Path), help="Folder of images: mean reduction only.")
@click.option("--model", "model_name", default="efficientnet_lite0", show_default=True)
@click.option("--weights", default=None)
@click.option("--eps", default="12/255", show_default=True, help="L∞ budget in [0, 1] pixel units.")
@click.option("--alpha", default="1/255", show_default=True, help="Step size.")
@click.option("--steps", default=300, show_default=True, type=click.IntRange(1, 100000), help="Step cap.")
@click.option("--beta", default=50.0, show_default=True, type=click.FloatRange(0, None))
@click.option("--threshold", default=0.9999, show_default=True, type=click.FloatRange(0, 1, min_open=True))
@click.option("--square", is_flag=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", "out_dir", default="cameras-attack", show_default=True, type=click.Path(path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def attack(images, data_dir, model_name, weights, eps, alpha, steps, beta, threshold, square, device, out_dir, quiet):
    """Plain vs saliency-enhanced PGD to the least-likely class (paper §6): figures and JSON.

    Resumable (a rerun into the same --out skips finished images) and distributed under
    torchrun (`torchrun --nproc-per-node K -m cameras attack --data DIR ...`).
    """
    from .adversarial import PAPER_REDUCTION, attack_images
    from .distributed import launch
    from .models import load_model

    with user_errors(), launch(device) as run:
        e, a = parse_eps(eps), parse_eps(alpha)
        if e < 0:
            raise click.BadParameter(f"--eps must be ≥ 0, got {eps}")
        if a <= 0:
            raise click.BadParameter(f"--alpha must be > 0, got {alpha}")
        paths = _adv_paths(images, data_dir)
        bundle = load_model(model_name, weights, device=run.device)
        s = attack_images(bundle, paths, out_dir, e, a, steps, beta, threshold, square, figures=data_dir is None,
                          progress=False if quiet else None, run=run)
    if s is None:
        return
    for r in s["images"]:
        click.echo(f"{r['image']}: PGD L2 {r['vanilla']['l2']:.3f} ({r['vanilla']['target_prob']:.4f}), "
                   f"enhanced L2 {r['enhanced']['l2']:.3f} ({r['enhanced']['target_prob']:.4f}): "
                   f"{r['l2_reduction_percent']:.1f}% lower")
    m = s["mean_l2_reduction_percent"]
    click.echo(f"mean L2 reduction {'–' if m is None else f'{m:.1f}%'} over {s['both_successful']} images "
               f"(paper: {PAPER_REDUCTION}%); wrote {out_dir}/attack.json")


@main.command()
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--data", "data_dir", default=None, type=click.Path(path_type=Path), help="Folder of images: mean scores only.")
@click.option("--methods", default="cameras,gradcam", show_default=True)
@click.option("--model", "model_name", default="efficientnet_lite0", show_default=True)
@click.option("--weights", default=None)
@click.option("--fraction", default=0.1, show_default=True, type=click.FloatRange(0, 1, min_open=True))
@click.option("--steps", default=20, show_default=True, type=click.IntRange(1, 10000))
@click.option("--eps", default="12/255", show_default=True)
@click.option("--attack-steps", default=300, show_default=True, type=click.IntRange(1, 100000))
@click.option("--square", is_flag=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", "out_dir", default="cameras-sanity", show_default=True, type=click.Path(path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sanity(images, data_dir, methods, model_name, weights, fraction, steps, eps, attack_steps, square, device, out_dir, quiet):
    """Adversarial-cleaning sanity check (supplement A-4): curves and scores per method.

    Resumable and distributed under torchrun, like `cameras attack`.
    """
    from .adversarial import sanity_images
    from .distributed import launch
    from .methods import method_class
    from .models import load_model

    with user_errors(), launch(device) as run:
        names = [method_class(m).name for m in methods.split(",") if m.strip()]
        if not names:
            raise click.BadParameter("--methods is empty; give e.g. cameras,gradcam")
        e = parse_eps(eps)
        if e < 0:
            raise click.BadParameter(f"--eps must be ≥ 0, got {eps}")
        paths = _adv_paths(images, data_dir)
        bundle = load_model(model_name, weights, device=run.device)
        s = sanity_images(bundle, paths, names, out_dir, fraction, steps, e, 1 / 255, attack_steps, 50.0,
                          square, figures=data_dir is None, progress=False if quiet else None, run=run)
    if s is None:
        return
    for m, v in s["mean_score"].items():
        click.echo(f"{m}: sanity {v:.4f} (smaller is saner)")
    click.echo(f"wrote {out_dir}/sanity.json")


@main.command()
@click.argument("image", type=click.Path(path_type=Path))
@click.option("--methods", default="cameras,gradcam", show_default=True)
@click.option("--mode", default="cascading", show_default=True, type=click.Choice(["cascading", "independent"]))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--model", "model_name", default="efficientnet_lite0", show_default=True)
@click.option("--weights", default=None)
@click.option("--square", is_flag=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", "out_dir", default="cameras-randomize", show_default=True, type=click.Path(path_type=Path))
def randomize(image, methods, mode, seed, model_name, weights, square, device, out_dir):
    """Model-randomisation sanity check: grid of maps per re-initialised block and similarity curves."""
    import torch

    from .adversarial import randomize_image
    from .methods import method_class
    from .models import load_model

    with user_errors():
        names = [method_class(m).name for m in methods.split(",") if m.strip()]
        paths = _adv_paths([image], None)
        bundle = load_model(model_name, weights, device=torch.device(device))
        s = randomize_image(bundle, paths[0], names, out_dir, mode, seed, square)
    for m, steps in s["methods"].items():
        click.echo(f"{m}: spearman |·| " + " ".join(f"{o['spearman_abs']:.2f}" for o in steps))
    click.echo(f"wrote {out_dir}/{paths[0].stem}.randomize.png, .similarity.png, .randomize.json")


@main.command("app")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; 0.0.0.0 exposes the app to the network.")
@click.option("--port", default=7860, show_default=True, type=click.IntRange(1, 65535))
@click.option("--model", "models", multiple=True, default=["efficientnet_lite0"], show_default=True,
              help="Model(s) offered in the page (repeatable), e.g. --model efficientnet_lite0 --model timm:resnet18.")
@click.option("--weights", default=None, help="Weights file (or 'random') for the model; with exactly one --model.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--max-upload-mb", default=20, show_default=True, type=click.IntRange(1, 2048))
@click.option("--max-pixels", default=40_000_000, show_default=True, type=click.IntRange(64, None))
def app_cmd(host, port, models, weights, device, max_upload_mb, max_pixels) -> None:
    """Serve a local web page to explore saliency maps (needs: pip install 'cameras[app]')."""
    import importlib.util

    if importlib.util.find_spec("gradio") is None:
        _fail("cameras app needs the optional web extra: pip install 'cameras[app]' (Gradio)")
    from .app import serve
    from .models import load_model

    with user_errors():
        if weights is not None and len(models) != 1:
            raise click.BadParameter("--weights goes with exactly one --model (run one app per weights file)")
        chosen = {models[0]: weights} if weights is not None else {}
        for m in models:  # fail now, not in the page, for an unknown model or bad weights
            load_model(m, chosen.get(m), device=torch_device(device))
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: binding to {host}: anyone who can reach this machine can use the app", err=True)
    click.echo(f"cameras app on http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}  (Ctrl+C to stop)")
    try:
        serve(list(models), host, port, device, max_upload_mb * 2**20, max_pixels, block=True, weights=chosen)
    except OSError as e:
        _fail(f"cannot serve on {host}:{port} ({e}); choose another --port or --host")


def torch_device(text: str):
    """``"cuda:1"`` → torch.device, with a clear error for a bad name."""
    import torch

    try:
        return torch.device(text)
    except RuntimeError:
        raise click.BadParameter(f"unknown device '{text}'; use cpu, cuda or cuda:N") from None


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
