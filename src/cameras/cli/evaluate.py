"""`cameras evaluate` and `cameras experiment n-sensitivity|interpolation`."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from .common import (
    FORMATS,
    check_out,
    device_option,
    layer_scales_options,
    load_classifier,
    main,
    method_settings,
    model_option,
    out_dir_option,
    progress_flag,
    progress_for,
    quiet_option,
    set_threads,
    square_option,
    threads_option,
    torch_device,
    user_errors,
    weights_option,
    with_shorthands,
)

# the summary's means the console prints (key, label, shown as a percentage)
CONSOLE_METRICS = (("pointing_game", "pointing", True), ("energy", "energy", False), ("rho_plus", "rho+", False),
                   ("rho_minus", "rho-", False), ("insertion_auc", "insertion AUC", False),
                   ("deletion_auc", "deletion AUC", False), ("road_combined", "ROAD combined", False),
                   ("average_drop", "Average Drop %", False), ("increase_in_confidence", "Increase in Confidence %",
                                                               False))


@main.command()
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path), help="Dataset folder.")
@click.option("--format", "fmt", required=True, type=FORMATS, help="The --data folder's layout.")
@model_option
@weights_option
@click.option("--methods", default="cameras,gradcam", show_default=True, help="'all' or a comma list.")
@click.option("--metrics", default="pointing,rho", show_default=True,
              help="Comma list of pointing, energy, rho, insdel, road, avgdrop.")
@click.option("--mapping", default=None, type=click.Path(path_type=Path),
              help="JSON {dataset class: model class id} (VOC and COCO with an ImageNet model).")
@click.option("--target-kind", default="class", show_default=True, type=click.Choice(["class", "sigmoid", "softmax"]),
              help="How classes are explained and scored: class logit, sigmoid logit (multi-label models), softmax.")
@click.option("--limit", default=None, type=click.IntRange(1, None), help="First N images only.")
@click.option("--insdel-batch-size", "--batch-size", "batch_size", default=32, show_default=True,
              type=click.IntRange(1, 4096), help="Forward passes per batch in insertion/deletion (not images per "
                                                 "batch, as explain's --batch-size).")
@click.option("--insdel-step", default=224, show_default=True, type=click.IntRange(1, None),
              help="Pixels per insertion/deletion step.")
@click.option("--set", "settings", multiple=True, metavar="METHOD.KEY=VALUE", help="Method option (repeatable).")
@layer_scales_options
@square_option
@device_option
@out_dir_option()
@quiet_option
@threads_option
def evaluate(data_dir, fmt, model_name, weights, methods, metrics, mapping, target_kind, limit, batch_size, insdel_step,
             settings, layer, scales, square, device, out_dir, quiet, threads) -> None:
    """Evaluate methods on a dataset: results.csv, summary.json, report.md (resumable).

    Every (image, ground-truth class, method) item gets one row in OUT/results.csv; a rerun
    with the same OUT and settings skips finished items, and one with other settings (model,
    weights, method options, metrics, data, --insdel-step, --square) is refused. OUT/summary.json
    and OUT/report.md (with the paper's numbers beside ours, metrics.png and curves.png) are
    written at the end. Under torchrun (`torchrun --nproc-per-node K -m cameras evaluate ...`)
    the items are split across ranks, each writes its own shard, and rank 0 merges them.
    """
    from ..distributed import launch
    from ..evaluate import evaluate_dataset
    from ..methods import method_names

    with user_errors():
        check_out(out_dir)
    with user_errors(), launch(str(torch_device(device))) as run:
        set_threads(threads)
        names = method_names(methods)
        wanted = {m.strip() for m in metrics.split(",") if m.strip()}
        if not wanted:
            raise click.BadParameter("--metrics names no metric; give a comma list, e.g. pointing,rho")
        opts = with_shorthands(method_settings(settings, names), names, layer, scales)
        bundle = load_classifier(model_name, weights, run.device, "cameras evaluate")
        summary = evaluate_dataset(data_dir, fmt, bundle, names, opts, wanted, out_dir, mapping, limit, batch_size,
                                   insdel_step, square, progress_flag(quiet), run, target_kind)
    if summary is None:
        return
    for m, n in summary["items"].items():  # the metrics asked for that have a value (report.md has them all)
        scores = [f"{label} {100 * v:.1f}%" if pct else f"{label} {v:.3f}"
                  for k, label, pct in CONSOLE_METRICS if (v := summary[k][m]) is not None]
        click.echo(f"{m}: {n} items, " + (", ".join(scores) or "no scores (see report.md)"))
    from ..evaluate import ZERO_MAPS, uneven_items, zero_map_counts

    if uneven_items(summary):
        click.echo("note: the methods were scored on different numbers of items (a method joined from an earlier "
                   "run): their means are not over the same images", err=True)
    zero = zero_map_counts(summary)
    if zero:
        click.echo(f"note: all-zero maps: {zero}. {ZERO_MAPS}", err=True)
    click.echo(f"wrote {out_dir}/results.csv, summary.json, report.md")


@main.group()
def experiment() -> None:
    """The CAMERAS supplement's experiments (A-2 n-sensitivity, A-3 interpolation)."""


def experiment_options(f):
    """The options every experiment takes: images or a dataset, the model, and the output folder."""
    for opt in reversed([
        click.argument("images", nargs=-1, type=click.Path(path_type=Path)),
        click.option("--data", "data_dir", default=None, type=click.Path(path_type=Path),
                     help="Dataset folder (with --format) instead of IMAGES."),
        click.option("--format", "fmt", default=None, type=FORMATS, help="The --data folder's layout."),
        click.option("--mapping", default=None, type=click.Path(path_type=Path),
                     help="JSON {dataset class: model class id} (VOC and COCO with an ImageNet model)."),
        click.option("--limit", default=None, type=click.IntRange(1, None), help="First N images only."),
        model_option,
        weights_option,
        device_option,
        square_option,
        out_dir_option("cameras-experiment"),
        quiet_option,
        threads_option,
    ]):
        f = opt(f)
    return f


@contextlib.contextmanager
def experiment_run(images, data_dir, fmt, mapping, limit, model_name, weights, device, out_dir, threads,
                   quiet=False, square=False):
    """What every experiment does first: check --out, join torchrun, load the model, list the work.

    Yields (the torchrun placement, the model bundle, the experiment's work items); bad input
    inside the block becomes one error line.
    """
    from ..distributed import launch
    from ..experiments import experiment_inputs

    with user_errors():
        check_out(out_dir)
    with user_errors(), launch(str(torch_device(device))) as run:
        set_threads(threads)
        bundle = load_classifier(model_name, weights, run.device, "cameras experiment")
        yield run, bundle, experiment_inputs(images, data_dir, fmt, mapping, limit, bundle,
                                             progress=progress_for(run, quiet), square=square)


@experiment.command("n-sensitivity")
@experiment_options
@click.option("--max-size", default=1000, show_default=True, type=click.IntRange(8, 8192),
              help="The largest scale ζ_m of every N.")
def n_sensitivity_cmd(images, data_dir, fmt, mapping, limit, model_name, weights, device, square, out_dir, quiet,
                      threads, max_size):
    """Map difference between N = 5..10 scales (ζ_m = --max-size), beside the paper's matrix.

    Resumable (a rerun into the same --out skips finished images) and distributed under
    torchrun (`torchrun --nproc-per-node K -m cameras experiment n-sensitivity --data ...`).
    """
    from ..experiments import PAPER_N, STEPS, n_sensitivity

    with experiment_run(images, data_dir, fmt, mapping, limit, model_name, weights, device, out_dir,
                        threads, quiet, square) as (run, bundle, work):
        paths = list(dict.fromkeys(p for p, _, _ in work))
        mean = n_sensitivity(bundle, paths, out_dir, max_size, square, progress=progress_flag(quiet), run=run)
    if mean is None:
        return
    click.echo("N    " + " ".join(f"{n:>11}" for n in STEPS))
    for n, ours, paper in zip(STEPS, mean, PAPER_N):
        click.echo(f"{n:<4} " + " ".join(f"{o:.3f} ({p:.2f})" for o, p in zip(ours, paper)))
    click.echo(f"ours (paper's Table 2 in brackets); wrote {out_dir}/n_sensitivity.json, .csv, .png")


@experiment.command("interpolation")
@experiment_options
def interpolation_cmd(images, data_dir, fmt, mapping, limit, model_name, weights, device, square, out_dir, quiet,
                      threads):
    """ρ⁺ and pointing game of CAMERAS blended into Grad-CAM, γ = 0, 0.1, ..., 1.

    Resumable and distributed under torchrun, like n-sensitivity.
    """
    from ..experiments import interpolation

    with experiment_run(images, data_dir, fmt, mapping, limit, model_name, weights, device, out_dir,
                        threads, quiet, square) as (run, bundle, work):
        from ..data.readers import dataset_identity

        dataset = None if data_dir is None else dataset_identity(data_dir, fmt, mapping)
        s = interpolation(bundle, work, out_dir, square, progress=progress_flag(quiet), run=run, dataset=dataset)
    if s is None:
        return
    for g, r, p in zip(s["gamma"], s["rho_plus"], s["pointing_game"]):
        click.echo(f"gamma {g:.1f}: rho+ {r:.4f}" + ("" if p is None else f", pointing {100 * p:.1f}%"))
    click.echo(f"wrote {out_dir}/interpolation.json, .csv, .png")
