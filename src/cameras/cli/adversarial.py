"""`cameras attack`, `cameras sanity` and `cameras randomize`: the paper's adversarial part and sanity checks."""

from __future__ import annotations

from pathlib import Path

import click

from .common import (
    check_out,
    device_option,
    load_classifier,
    main,
    model_option,
    out_dir_option,
    parse_eps,
    progress_flag,
    progress_for,
    quiet_option,
    set_threads,
    square_option,
    threads_option,
    torch_device,
    user_errors,
    weights_option,
)


def reading_options(preset: str):
    """The options that choose a reading of Eq. 4 (preset, ``preset`` by default, and overrides)."""
    return lambda f: _reading_options(f, preset)


def _reading_options(f, preset: str):
    for opt in reversed([
        click.option("--preset", default=preset, show_default=True, type=click.Choice(["paper", "literal"]),
                     help="Reading of Eq. 4: 'paper' (sign steps in ε = 12/255, the norm taken per pixel, β = 5; "
                          "reaches 99.99 %) or 'literal' (the norm summed over pixels, β = 50; stalls). The options "
                          "below and --beta override it."),
        click.option("--eps", default=None, help="ℓ∞ budget in [0, 1] pixel units, e.g. 12/255, or 'none' "
                                                 "for unbounded [default: the preset's]."),
        click.option("--step", "step_rule", default=None, type=click.Choice(["sign", "l2"]),
                     help="Step rule [default: the preset's]."),
        click.option("--pixel-scale", default=None, type=click.Choice(["1", "255"]),
                     help="Pixel scale of the penalty [default: the preset's, 1]."),
        click.option("--squared/--no-squared", " /--not-squared", default=None,
                     help="β‖·‖² instead of β‖·‖ [default: the preset's]."),
        click.option("--per-pixel/--no-per-pixel", " /--not-per-pixel", default=None,
                     help="Mean instead of sum of squares inside the norm [default: the preset's]."),
    ]):
        f = opt(f)
    return f


def reading_from(preset, eps, step_rule, pixel_scale, squared, per_pixel) -> dict:
    """The reading dict of the command-line options (:func:`cameras.attacks.reading`)."""
    from ..attacks import reading

    over = {}
    if eps is not None:
        if eps.strip().lower() in ("none", "inf", "unbounded"):
            over["eps"] = None
        else:
            e = parse_eps(eps)
            if e < 0:
                raise click.BadParameter(f"--eps must be ≥ 0 or 'none', got {eps}")
            if e > 1:
                raise click.BadParameter(f"--eps is a distance in the [0, 1] pixel range, got {eps}; for no bound "
                                         "give 'none'")
            over["eps"] = e
    for k, v in (("step", step_rule), ("pixel_scale", None if pixel_scale is None else float(pixel_scale)),
                 ("squared", squared), ("per_pixel", per_pixel)):
        if v is not None:
            over[k] = v
    return reading(preset, **over)


def limit_option(f):
    """``--limit N``: the first N images only."""
    return click.option("--limit", default=None, type=click.IntRange(1, None),
                        help="First N images only (a folder's files in sorted order).")(f)


def step_size_option(f):
    """``--step-size`` (older name ``--alpha``): the attack's step in [0, 1] pixel units, as text like 1/255."""
    return click.option("--step-size", "--alpha", "alpha", default="1/255", show_default=True,
                        help="Attack step in [0, 1] pixel units, e.g. 1/255 (ℓ2 steps: the ℓ2 length of a sign step of "
                             "this size); --alpha is its older name.")(f)


def step_size_from(text: str, opts: dict, warn: bool = True) -> float:
    """The value of ``--step-size`` (> 0); with ``warn``, a warning when it exceeds the reading's budget ε, since
    steps then land on the budget's edge (and ``--alpha`` on `explain` and `compare` is an overlay opacity, not
    this).

    Example:
        >>> round(step_size_from("2/255", {"eps": 12 / 255}) * 255, 6)
        2.0
    """
    a = parse_eps(text)
    if a <= 0:
        raise click.BadParameter(f"--step-size (--alpha) must be > 0, got {text}")
    if warn and opts.get("eps") is not None and a > opts["eps"]:
        edge = "every step lands" if opts.get("step") == "sign" else "steps land mostly"
        click.echo(f"warning: --step-size {text} is larger than the budget --eps {opts['eps']:.4g}, so {edge} on "
                   "the budget's edge; steps are usually a fraction of it (1/255 by default)", err=True)
    return a


@main.command()
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--data", "data_dir", default=None, type=click.Path(path_type=Path),
              help="Folder of images: mean reduction only.")
@limit_option
@model_option
@weights_option
@reading_options("paper")
@step_size_option
@click.option("--attack-steps", "--steps", "steps", default=300, show_default=True, type=click.IntRange(1, 100000),
              help="Step cap of each attack (as sanity's --attack-steps).")
@click.option("--beta", default=None, type=click.FloatRange(0, None), help="β of Eq. 4 [default: the preset's, "
              "5 for paper (per pixel), 50 for literal].")
@click.option("--threshold", default=0.9999, show_default=True, type=click.FloatRange(0, 1, min_open=True),
              help="An attack succeeds when the target class's probability reaches this.")
@square_option
@device_option
@out_dir_option("cameras-attack")
@quiet_option
@threads_option
def attack(images, data_dir, limit, model_name, weights, preset, eps, step_rule, pixel_scale, squared, per_pixel, alpha,
           steps, beta, threshold, square, device, out_dir, quiet, threads):
    """Plain vs saliency-enhanced PGD to the least-likely class (paper §6): figures and JSON.

    Resumable (a rerun into the same --out skips finished images) and distributed under
    torchrun (`torchrun --nproc-per-node K -m cameras attack --data DIR ...`).
    """
    from ..commands.attack import PAPER_REDUCTION, attack_images, image_paths
    from ..distributed import launch

    with user_errors():
        check_out(out_dir)
    with user_errors(), launch(str(torch_device(device))) as run:
        set_threads(threads)
        opts = reading_from(preset, eps, step_rule, pixel_scale, squared, per_pixel)
        a = step_size_from(alpha, opts, warn=run.rank == 0)
        paths = image_paths(images, data_dir, progress_for(run, quiet), square, limit)
        bundle = load_classifier(model_name, weights, run.device, "cameras attack")
        s = attack_images(bundle, paths, out_dir, opts, a, steps, beta, threshold, square, figures=data_dir is None,
                          progress=progress_flag(quiet), run=run)
    if s is None:
        return
    for r in s["images"]:
        # an image where either attack stayed below the threshold is left out of the mean: say so on its line
        short = [name for k, name in (("vanilla", "PGD"), ("enhanced", "enhanced PGD")) if not r[k]["success"]]
        note = f" (not in the mean: {' and '.join(short)} stayed below {s['threshold']:.2%})" if short else ""
        click.echo(f"{r['image']}: PGD L2 {r['vanilla']['l2']:.3f} ({r['vanilla']['target_prob']:.4f}), "
                   f"enhanced L2 {r['enhanced']['l2']:.3f} ({r['enhanced']['target_prob']:.4f}): "
                   f"{r['l2_reduction_percent']:.1f}% lower{note}")
    m = s["mean_l2_reduction_percent"]
    click.echo(f"mean L2 reduction {'–' if m is None else f'{m:.1f}%'} over {s['both_successful']} images "
               f"(paper: {PAPER_REDUCTION}%); wrote {out_dir}/attack.json")


@main.command()
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--data", "data_dir", default=None, type=click.Path(path_type=Path),
              help="Folder of images: mean scores only.")
@limit_option
@click.option("--methods", default="cameras,gradcam", show_default=True)
@model_option
@weights_option
@click.option("--fraction", default=0.1, show_default=True, type=click.FloatRange(0, 1, min_open=True))
@click.option("--clean-steps", "--steps", "steps", default=20, show_default=True, type=click.IntRange(1, 10000),
              help="Cleaning steps: the curve restores --fraction of the pixels in this many equal steps.")
@reading_options("literal")
@click.option("--beta", default=None, type=click.FloatRange(0, None), help="β of Eq. 4 [default: the preset's].")
@step_size_option
@click.option("--attack-steps", default=300, show_default=True, type=click.IntRange(1, 100000),
              help="Step cap of the attack.")
@square_option
@device_option
@out_dir_option("cameras-sanity")
@quiet_option
@threads_option
def sanity(images, data_dir, limit, methods, model_name, weights, fraction, steps, preset, eps, step_rule, pixel_scale,
           squared, per_pixel, beta, alpha, attack_steps, square, device, out_dir, quiet, threads):
    """Adversarial-cleaning sanity check (supplement A-4): curves and scores per method.

    The reading defaults to 'literal' (attack's to 'paper'): its attack stalls below 99.99 % but puts the
    perturbation where the map is high, which the check needs; after a 'paper' attack, restoring 10 % of the
    pixels never brings the class back and every method scores 1. Resumable and distributed under torchrun,
    like `cameras attack`.
    """
    from ..commands.attack import image_paths, sanity_images
    from ..distributed import launch
    from ..methods import method_names

    with user_errors():
        check_out(out_dir)
    with user_errors(), launch(str(torch_device(device))) as run:
        set_threads(threads)
        names = method_names(methods)
        opts = reading_from(preset, eps, step_rule, pixel_scale, squared, per_pixel)
        a = step_size_from(alpha, opts, warn=run.rank == 0)
        paths = image_paths(images, data_dir, progress_for(run, quiet), square, limit)
        bundle = load_classifier(model_name, weights, run.device, "cameras sanity")
        s = sanity_images(bundle, paths, names, out_dir, fraction, steps, opts, a, attack_steps, beta,
                          square, figures=data_dir is None, progress=progress_flag(quiet), run=run)
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
@click.option("--blocks", default=None, help="modules to re-initialise, top first, comma-separated (dotted names of "
              "submodules allowed, e.g. blocks.6,blocks.5); default: the top-level blocks with parameters")
@model_option
@weights_option
@square_option
@device_option
@out_dir_option("cameras-randomize")
@quiet_option
@threads_option
def randomize(image, methods, mode, seed, blocks, model_name, weights, square, device, out_dir, quiet, threads):
    """Model-randomisation sanity check: grid of maps per re-initialised block and similarity curves."""
    from ..commands.attack import image_paths
    from ..methods import method_names
    from ..randomization import randomize_image

    with user_errors():
        check_out(out_dir)
        set_threads(threads)
        names = method_names(methods)
        paths = image_paths([image], None, square=square)
        if len(paths) != 1:
            raise click.BadParameter(f"randomize explains one image; {image} holds {len(paths)}: give one file")
        bundle = load_classifier(model_name, weights, torch_device(device), "cameras randomize")
        chosen = None if blocks is None else [b.strip() for b in blocks.split(",") if b.strip()]
        s = randomize_image(bundle, paths[0], names, out_dir, mode, seed, square, chosen, progress_flag(quiet))
    for m, steps in s["methods"].items():
        click.echo(f"{m}: spearman |·| " + " ".join(f"{o['spearman_abs']:.2f}" for o in steps))
    click.echo(f"wrote {out_dir}/{paths[0].stem}.randomize.png, .similarity.png, .randomize.json")
