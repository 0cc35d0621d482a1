"""`cameras reproduce`: the paper's supplement in one command, with a verdict per claim."""

from __future__ import annotations

from pathlib import Path

import click

from .common import (
    FORMATS,
    check_out,
    device_option,
    load_classifier,
    main,
    model_names,
    models_option,
    out_dir_option,
    progress_flag,
    set_threads,
    threads_option,
    torch_device,
    user_errors,
)

DEFAULT_MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


@main.command()
@models_option(DEFAULT_MODELS,
               "Model, repeatable or a comma list. The first is used for A-2/3/4/6 and the tables; A-1 and A-5 "
               "compare all. E.g. --model torchvision:resnet50 --weights resnet50.pth for the paper's own.")
@click.option("--weights", multiple=True, help="Weights file, once per model in the same order ('none': the "
                                               "model's default weights).")
@click.option("--data", "data_dir", default=None, type=click.Path(path_type=Path),
              help="Annotated dataset: its images for every section, and the paper's Tables 1 and 2.")
@click.option("--format", "fmt", default=None, type=FORMATS)
@click.option("--mapping", default=None, type=click.Path(path_type=Path))
@click.option("--limit", default=None, type=click.IntRange(1, None), help="First N dataset images only.")
@click.option("--quick", is_flag=True, help="Minutes on a CPU: fewer images, masks and iterations (stated in the "
                                            "report).")
@click.option("--only", default=None, help="Comma list of sections to run, e.g. A-3,A-6 (default: all; Tables "
                                          "with --data).")
@device_option
@out_dir_option()
@click.option("--quiet", is_flag=True, help="No progress bars.")
@threads_option
def reproduce(models, weights, data_dir, fmt, mapping, limit, quick, only, device, out_dir, quiet, threads):
    """Run the CAMERAS supplement (A-1 timing … A-6 attack; Tables 1–2 with --data) and write
    DIR/report.md and report.json: our numbers beside the paper's and a verdict per claim.

    Resumable: a rerun into the same --out keeps every finished section and image.
    """
    from ..reproduce import check_request
    from ..reproduce import reproduce as run

    with user_errors():
        check_out(out_dir)
        sections = None if only is None else [t.strip() for t in only.split(",") if t.strip()]
        check_request(data_dir, fmt, sections, limit, mapping)
        models = model_names(models)
        if weights and len(weights) != len(models):
            raise click.BadParameter(f"give --weights once per --model ({len(models)}), or not at all; "
                                     f"got {len(weights)} (--weights is repeated, not a comma list)")
        set_threads(threads)
        dev = torch_device(device)
        ws = [None if w.lower() == "none" else w for w in weights] or [None] * len(models)
        bundles = [load_classifier(m, w, dev, "cameras reproduce") for m, w in zip(models, ws)]
        r = run(bundles, out_dir, data_dir, fmt, mapping, limit, quick, progress=progress_flag(quiet), only=sections)
    for name, sec in r["sections"].items():
        for v in [sec["verdict"]] if "verdict" in sec else sec.get("verdicts", []):
            click.echo(f"{v.get('section', name)}: {v['verdict']}: {v['evidence']}")
    click.echo(f"wrote {out_dir}/report.md and report.json")
