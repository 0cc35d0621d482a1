"""`cameras explain` and `cameras compare`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..core.errors import CamerasError, LayerError
from ..names import DEFAULT_SCALE_RULE
from .common import (
    check_out,
    device_option,
    fail,
    layer_scales_options,
    load_classifier,
    main,
    method_settings,
    model_names,
    model_option,
    models_option,
    own_settings,
    progress_flag,
    quiet_option,
    set_threads,
    square_option,
    threads_option,
    torch_device,
    user_errors,
    with_shorthands,
)


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@model_option
@click.option("--weights", default=None, help="Local weights file for torchvision:/timm: models, or 'random'.")
@click.option("--method", default="cameras", show_default=True, help="Saliency method (see `cameras methods`).")
@click.option("--target", "targets", multiple=True,
              help="Class to explain: id, WordNet id or name (repeatable). Default: the top-k classes.")
@click.option("--target-kind", default="class", show_default=True, type=click.Choice(["class", "sigmoid", "softmax"]),
              help="How classes are explained: class logit, sigmoid logit (multi-label or binary models), "
                   "softmax probability.")
@click.option("--topk", default=1, show_default=True, type=click.IntRange(1, 1000),
              help="Explain each of the top K classes.")
@click.option("--layer", default=None, help="Layer name to explain (default: found automatically).")
@click.option("--scales", default=None,
              help="CAMERAS sizes, e.g. 224,324,424 or 224:1000:100 (default 224..924 by 100).")
@click.option("--steps", default=None, type=click.IntRange(1, 100),
              help="CAMERAS: N sizes from the model's input size to --max-size.")
@click.option("--max-size", default=1000, show_default=True, type=click.IntRange(8, 8192),
              help="CAMERAS: largest size with --steps.")
@click.option("--scale-rule", default=DEFAULT_SCALE_RULE, show_default=True,
              type=click.Choice(["all", "paper", "top5"]),
              help="CAMERAS: which scales a map of the top-1 uses: all, where the top-1 agrees (the paper's rule), "
                   "where the class stays in the top 5.")
@click.option("--border-pad", default=0.0, show_default=True, type=click.FloatRange(0, 0.5),
              help="CAMERAS: mirror this fraction of the shorter side around the image and crop the map back "
                   "(removes the dark band along the border at large scales; costs more pixels).")
@click.option("--resample", default="bicubic", show_default=True, type=click.Choice(["bicubic", "bilinear"]),
              help="CAMERAS: image resampling between scales.")
@square_option
@device_option
@click.option("--batch-size", default=1, show_default=True, type=click.IntRange(1, 4096),
              help="Images per batch (same-size images are batched).")
@click.option("--alpha", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Overlay opacity of the map.")
@click.option("--cmap", default="jet", show_default=True, help="Matplotlib colour map of the overlay.")
@click.option("--fade", default=0.15, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="Saliency below this fades into the photo (0: the same opacity everywhere).")
@click.option("--plain", is_flag=True, help="Bare overlay at the image's size, without title and colour bar.")
@click.option("--out", "out_dir", default="cameras-out", show_default=True, type=click.Path(path_type=Path),
              help="Output folder.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Method option, e.g. --set n_masks=6000 for rise or --set area=0.1 for extremal (repeatable); "
                   "METHOD.KEY=VALUE as in compare and evaluate works too.")
@click.option("--recursive", is_flag=True, help="Include images in subfolders of the given folders.")
@click.option("--overwrite", is_flag=True,
              help="Explain images again whose files OUT already holds with the same settings (default: skip them).")
@click.option("--task", default="auto", show_default=True,
              type=click.Choice(["auto", "classification", "segmentation", "detection"]),
              help="What the model does (auto: as the model says). segmentation: explain --target's logits over "
                   "--region or --mask (default: the pixels the model gives that class); detection: the detection "
                   "of --target best matching --box (default: the top-scoring detection).")
@click.option("--region", default=None, metavar="X0,Y0,X1,Y1",
              help="Segmentation: the region to explain, a box in the image's pixels.")
@click.option("--mask", "mask_file", default=None, type=click.Path(path_type=Path),
              help="Segmentation: the region to explain, an image file of the photo's size (non-zero pixels).")
@click.option("--box", default=None, metavar="X0,Y0,X1,Y1",
              help="Detection: the box to explain, in the image's pixels.")
@click.option("--iou", default=0.5, show_default=True, type=click.FloatRange(0, 1, min_open=True),
              help="Detection: the least IoU with --box for a detection to match.")
@threads_option
@quiet_option
def explain(images, model_name, weights, method, targets, target_kind, topk, layer, scales, steps, max_size, scale_rule,
            border_pad, resample, square, device, batch_size, alpha, cmap, fade, plain, out_dir, settings, recursive,
            overwrite, task, region, mask_file, box, iou, threads, quiet) -> None:
    """Explain IMAGE files (or folders of images) and write overlays, maps and JSON.

    For each image and class: OUT/<stem>.<method>.<id>-<name>.png (the map over the image,
    titled with class, probability, method and scales kept, with a colour bar; --plain: the
    bare overlay at the original size), OUT/<stem>.<method>.<id>-<name>.npy (float32 map at
    the original H×W), and OUT/<stem>.json (top-k predictions, targets, kept scales,
    timings, every option). A rerun skips images OUT already holds with the same settings
    (--overwrite explains them again), so an interrupted folder goes on where it stopped.

    Segmentation and detection models (--task, or the model's own task):
    `cameras explain IMG --model torchvision:fcn_resnet50 --weights FILE --target cat
    [--region x0,y0,x1,y1 | --mask FILE]` and `cameras explain IMG --model
    torchvision:fasterrcnn_resnet50_fpn --weights FILE --box x0,y0,x1,y1 --target dog`; the
    picture outlines the region or box (and the matched detection).
    """
    from ..explain import explain_images, not_outputs
    from ..images import list_images, skipped_subfolders
    from ..methods import build_method, method_class, method_option_names, parse_option_strings
    from ..models import load_model
    from ..viz import check_cmap

    with user_errors():
        check_out(out_dir)
        set_threads(threads)
        try:
            check_cmap(cmap)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None
        name = method_class(method).name
        extra = parse_option_strings(own_settings(settings, name))
        takes = method_option_names(name)
        options = {}
        ctx = click.get_current_context()
        given = [p for p in ("layer", "scales", "steps", "max_size", "scale_rule", "border_pad", "resample")
                 if ctx.get_parameter_source(p) is not click.core.ParameterSource.DEFAULT]
        ignored = [p for p in given if ("layer" if p == "layer" else "scales") not in takes]
        if ignored:  # a method that would not use them: say so rather than silently drop them
            flags = ", ".join("--" + p.replace("_", "-") for p in ignored)
            raise click.BadParameter(f"{flags} do not apply to {name} (the layer options go with layer methods, the "
                                     "scale options with cameras and multiscale-*); leave them out or choose such a "
                                     "method")
        if layer is not None:  # a method without a layer was refused above
            options["layer"] = layer
        if "scales" in takes:  # cameras and multiscale-*
            if scales is not None and steps is not None:
                raise click.BadParameter("give --scales or --steps, not both")
            if steps is None and "max_size" in given:
                raise click.BadParameter("--max-size goes with --steps (N sizes up to it); for other sizes give "
                                         "--scales")
            options.update(dict(steps=steps, max_size=max_size) if steps is not None else dict(scales=scales))
            options["resample"] = resample
            options["scale_rule"] = scale_rule
            options["border_pad"] = border_pad
        twice = sorted(set(given) & set(extra))
        if twice:  # e.g. --scales and --set scales=…: say so rather than let one silently win
            raise click.BadParameter("; ".join(f"--set {k}=… repeats --{k.replace('_', '-')}" for k in twice)
                                     + ": give each option once")
        options.update(extra)
        check_task_options(task, targets, region, mask_file, box, target_kind)  # before a model loads for minutes
        bundle = load_model(model_name, weights, device=torch_device(device))
        task = bundle.task if task == "auto" else task
        target_for = dense_targets(bundle, task, targets, region, mask_file, box, iou, target_kind)
        target_ids = None if target_for is not None else [bundle.class_index(t) for t in targets] or None
        if target_ids and len(set(target_ids)) < len(target_ids):  # e.g. --target cup --target 968
            twice = sorted({bundle.class_name(c) for c in target_ids if target_ids.count(c) > 1})
            click.echo(f"note: --target names {', '.join(twice)} more than once; each class is explained once",
                       err=True)
            first: dict[int, str] = {}  # each class as first named, recorded so: a rerun naming each once skips
            for t, c in zip(targets, target_ids):
                first.setdefault(c, t)
            target_ids, targets = list(first), list(first.values())
        m = build_method(name, bundle, **options)
    if m.convergence_warning():
        click.echo(f"warning: {m.convergence_warning()}", err=True)
    sizes, base = getattr(m, "scales", None) or [], bundle.input_size
    # scale 0 is the model input as prepared and the others are relative to it (the default list, 224…924,
    # runs so on every model): a note only for sizes the user gave
    if sizes and sizes[0] != base and ("scales" in given or "scales" in extra):
        click.echo(f"note: the scales start at {sizes[0]} but the model's input is {base} px (shorter side): the "
                   f"first scale is that input and the others resize it by scale/{sizes[0]}"
                   + (f" ({sizes[1]} runs {round(base * sizes[1] / sizes[0])} px)" if len(sizes) > 1 else "")
                   + f"; start them at {base} to run the sizes given", err=True)
    params = {k: v for k, v in {
        "scales": getattr(m, "scales", None), "resample": getattr(m, "resample", None),
        "square": square, "batch_size": batch_size, "device": device, "target_kind": target_kind,
        "alpha": alpha, "cmap": cmap, "fade": fade, "plain": plain, **extra,
        "weights": None if weights is None else str(weights), "topk": None if targets else topk,
        "targets": list(targets) or None,
    }.items() if v is not None}
    params["method_options"] = m.options
    if task != "classification":
        params.update(task=task, **{k: v for k, v in {"region": region, "mask": None if mask_file is None else
                                                       str(mask_file), "box": box}.items() if v is not None})
        if task == "detection":
            params["iou"] = iou
    # a folder explained into itself, or holding an earlier run's --out: those pictures are not inputs
    named = [Path(p) for p in images if Path(p).is_file()]  # a file given by name is always an input
    seen: dict = {}
    paths = not_outputs(list_images(images, recursive), out_dir, named, seen)
    skipped = [] if recursive else skipped_subfolders(images, lambda found: not_outputs(found, out_dir, (), seen))
    if skipped:
        click.echo(f"note: skipped {len(skipped)} subfolder(s) with images ({', '.join(map(str, skipped[:3]))}"
                   f"{', …' if len(skipped) > 3 else ''}); add --recursive to include them", err=True)
    if not paths:
        fail("no image files found in the given folders" + ("" if recursive else " (subfolders need --recursive)"))
    if targets and topk > 1 and target_for is None:
        click.echo(f"note: --topk {topk} is ignored with --target: the {len(target_ids)} given class(es) are "
                   "explained",
                   err=True)
    try:
        outcomes = explain_images(paths, bundle, m, out_dir, target_ids, topk, batch_size, square, alpha, params,
                                  progress=progress_flag(quiet), target_kind=target_kind, plain=plain, cmap=cmap,
                                  fade=fade, target_for=target_for, skip_done=not overwrite)
    except LayerError as e:  # the layer fails every image alike: one message, not one per image
        listing = f"cameras layers {bundle.name}" + ("" if weights is None else f" --weights {weights}")
        fail(f"{e} (`{listing}` lists the layers and their outputs)")
    for o in outcomes:
        for w in o.warnings:
            click.echo(f"warning: {w}", err=True)
    failed = [o for o in outcomes if o.error]
    for o in failed:
        memory = any(w in o.error for w in ("out of memory", "can't allocate memory", "not enough memory"))
        shrink = "smaller --scales (or --steps with a smaller --max-size), or a smaller --batch-size" \
            if "scales" in takes else "a smaller --batch-size, or a smaller image"
        click.echo(f"error: {o.error}" + (f" (out of memory: give {shrink})" if memory else ""), err=True)
    done = sum(o.skipped for o in outcomes)
    made = len(outcomes) - len(failed) - done
    click.echo(f"explained {made} of {len(outcomes)} images "
               + (f"into {out_dir}" if made or done else "(nothing written)")
               + (f"; {done} already there with these settings, skipped (--overwrite explains them again)"
                  if done else ""))
    if failed:
        sys.exit(1)


def _box_text(text: str, option: str) -> tuple[float, float, float, float]:
    try:
        vals = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        vals = ()
    if len(vals) != 4 or not (vals[0] < vals[2] and vals[1] < vals[3]):
        raise click.BadParameter(f"{option} must be x0,y0,x1,y1 in the image's pixels with x0 < x1 and y0 < y1, "
                                 f"got {text!r}")
    return vals


def _scaled_box(box, image_wh, input_wh) -> list[float]:
    """A box x0,y0,x1,y1 in an image's pixels (W×H) in the model input's pixels (w×h)."""
    (W, H), (w, h) = image_wh, input_wh
    x0, y0, x1, y1 = box
    return [x0 * w / W, y0 * h / H, x1 * w / W, y1 * h / H]


def check_task_options(task, targets, region, mask_file, box, target_kind, model_name=None) -> None:
    """Refuse the target options the task cannot take, before any model is loaded when ``task`` is given
    (``"auto"``: only the combinations no task takes; the model's own task is checked once it is loaded)."""
    if region is not None and mask_file is not None:
        raise click.BadParameter("give --region or --mask, not both")
    if task == "auto":
        return
    if task == "classification":
        for opt, v in (("--region", region), ("--mask", mask_file), ("--box", box)):
            if v is not None:
                what = f"the model {model_name} is a classifier" if model_name else "--task classification"
                raise click.BadParameter(f"{opt} needs --task segmentation or detection ({what})")
        return
    if target_kind != "class":
        raise click.BadParameter(f"--target-kind {target_kind} is for classifiers; drop it with --task {task}")
    if len(targets) > 1:
        raise click.BadParameter(f"--task {task} explains one --target at a time, got {len(targets)}")
    if task == "segmentation" and box is not None:
        raise click.BadParameter("--box is for detection; a segmentation region is --region x0,y0,x1,y1")
    if task == "detection" and (region is not None or mask_file is not None):
        raise click.BadParameter("--region and --mask are for segmentation; a detection is chosen with --box")
    if task == "detection" and box is not None and not targets:
        raise click.BadParameter("--box needs --target LABEL (the detection's label, e.g. a COCO name)")


def dense_targets(bundle, task, targets, region, mask_file, box, iou, target_kind):
    """For segmentation and detection: a function building each image's target from the image and its input.

    Regions, masks and boxes are given in the image file's pixels and scaled to the model's input.
    Returns None for classification (after refusing the options that need another task).
    """
    import torch
    import torch.nn.functional as F

    from ..core.dense import BoxTarget, RegionTarget, detections

    check_task_options(task, targets, region, mask_file, box, target_kind, bundle.name)
    if task == "classification":
        return None
    label = bundle.class_index(targets[0]) if targets else None
    if task == "segmentation":
        if label is None:
            raise click.BadParameter("--task segmentation needs --target CLASS (a class id or name, e.g. "
                                     f"{bundle.class_name(1 if bundle.num_classes > 1 else 0)!r})")
        region_box = None if region is None else _box_text(region, "--region")
        mask01 = None
        if mask_file is not None:
            import numpy as np

            from ..images import load_image

            mask01 = torch.from_numpy(np.asarray(load_image(mask_file).convert("L")) > 0).float()
            if not bool(mask01.any()):
                raise click.BadParameter(f"--mask {mask_file} has no non-zero pixel: the region is empty")

        def region_target(img, x):
            H, W = img.height, img.width
            h, w = x.shape[-2:]
            if region_box is not None:
                x0, y0, x1, y1 = region_box
                if x0 >= W or y0 >= H or x1 <= 0 or y1 <= 0:
                    raise CamerasError(f"--region {','.join(f'{v:g}' for v in region_box)} lies outside the {W}×{H} "
                                       "image; give x0,y0,x1,y1 in the image's own pixels")
                return RegionTarget.from_box(label, _scaled_box(region_box, (W, H), (w, h)), (h, w))
            if mask01 is not None:
                if tuple(mask01.shape) != (H, W):
                    raise CamerasError(f"--mask is {mask01.shape[1]}×{mask01.shape[0]} pixels but the image is "
                                       f"{W}×{H}; give a mask of the image's size")
                return RegionTarget(label, F.interpolate(mask01[None, None], size=(h, w), mode="area")[0, 0])
            return RegionTarget(label)

        return region_target
    given = None if box is None else _box_text(box, "--box")

    def box_target(img, x):
        if given is not None:
            return BoxTarget(_scaled_box(given, (img.width, img.height), (x.shape[-1], x.shape[-2])), label, iou)
        from ..core.layouts import any_input_size

        with torch.no_grad(), any_input_size(bundle.model):  # the top-scoring detection (of --target)
            d = detections(bundle.model(x))[0]
        keep = torch.ones_like(d["scores"], dtype=torch.bool) if label is None else d["labels"] == label
        if not bool(keep.any()):
            what = "nothing" if label is None else f"no {bundle.class_name(label)}"
            raise CamerasError(f"the detector found {what} in this image; give --box and --target")
        i = int(torch.nonzero(keep)[0])
        return BoxTarget(d["boxes"][i].detach(), int(d["labels"][i]), iou)

    return box_target


@main.command()
@click.argument("image", type=click.Path(path_type=Path))
@click.option("--methods", default="all", show_default=True, help="'all' or a comma list, e.g. cameras,gradcam,rise.")
@models_option(None, "Model, repeatable or a comma list; one figure row per model (default: the embedded one).")
@click.option("--weights", default=None, help="Weights file (or 'random') for a single torchvision:/timm: model.")
@click.option("--target", "targets", multiple=True,
              help="Class id, WordNet id or name (default: the first model's top-1); one class per figure.")
@click.option("--target-kind", default="class", show_default=True, type=click.Choice(["class", "sigmoid", "softmax"]),
              help="How the class is explained: class logit, sigmoid logit (multi-label models), softmax probability.")
@click.option("--set", "settings", multiple=True, metavar="METHOD.KEY=VALUE",
              help="Method option, e.g. --set rise.n_masks=6000 --set extremal.iterations=1000 (repeatable).")
@layer_scales_options
@square_option
@device_option
@click.option("--alpha", default=0.5, show_default=True, type=click.FloatRange(0, 1), help="Overlay opacity.")
@click.option("--out", "out_png", required=True, type=click.Path(path_type=Path), help="Figure file (.png).")
@quiet_option
@threads_option
def compare(image, methods, models, weights, targets, target_kind, settings, layer, scales, square, device, alpha,
            out_png, quiet, threads) -> None:
    """Compare methods (and models) on one IMAGE: a figure like the paper's Figures 4-6.

    Writes OUT (the image, then each method's overlay titled with its seconds; one row per
    model labelled with its confidence for the class), OUT's stem + .<model>.<method>.npy
    for every map, and OUT's stem + .json.
    """
    from ..compare import compare as run_compare
    from ..core.targets import label_target
    from ..methods import method_names
    from ..models import DEFAULT_MODEL
    from ..viz import zero_map_note

    with user_errors():
        names = method_names(methods)
        opts = with_shorthands(method_settings(settings, names), names, layer, scales)
        if out_png.suffix.lower() != ".png":
            raise click.BadParameter(f"--out must name a .png file, got {out_png}")
        check_out(out_png, "file")
        set_threads(threads)
        wanted = model_names(models) if models else [DEFAULT_MODEL]
        given = ",".join(wanted)
        if len(set(wanted)) < len(wanted):
            raise click.BadParameter(f"--model {given} names a model twice (its maps would share files)")
        if len(targets) > 1:  # a second --target would silently win
            raise click.BadParameter(f"--target is given {len(targets)} times ({', '.join(targets)}): a comparison "
                                     "explains one class; run compare once per class, or explain --target A "
                                     "--target B for several classes of one method")
        target = targets[0] if targets else None
        if weights is not None and len(wanted) > 1:
            raise click.BadParameter(f"--weights {weights} names one model's weights but --model gives "
                                     f"{len(wanted)} models; compare one model with --weights, or several without")
        bundles = [load_classifier(n, weights if len(wanted) == 1 else None, torch_device(device),
                                   "cameras compare") for n in wanted]
        loaded = [b.name for b in bundles]
        if len(set(loaded)) < len(loaded):  # e.g. efficientnet_lite0 and its alias default
            raise click.BadParameter(f"--model {given} loads {', '.join(loaded)}: a model twice (its maps would "
                                     "share files)")
        tid = bundles[0].class_index(target) if target is not None else None
        if target_kind != "class":  # the class as a target of that kind (default: the top-1 of that kind)
            tid = label_target(target_kind, tid)
        record = run_compare(image, bundles, names, out_png, tid, opts, square, alpha, progress=progress_flag(quiet))
    for w in record["warnings"]:
        click.echo(f"warning: {w}", err=True)
    for entry in record["models"]:
        for k, v in entry["methods"].items():
            if v.get("few_scales"):
                click.echo(f"warning: {entry['model']}: {k} used {len(v['kept_scales'])} scales of "
                           f"{len(v['options']['scales'])} for {entry['name']} (its prediction changes at the others); "
                           "--set cameras.scale_rule=all (the default) keeps every scale", err=True)
            if v.get("all_zero"):
                note = zero_map_note(k, entry["name"], v["layer"], facts=v.get("target_facts"))
                click.echo(f"warning: {entry['model']}: {note}", err=True)
        times = ", ".join(f"{k} {v['seconds']:.2f} s" for k, v in entry["methods"].items())
        click.echo(f"{entry['model']}: {entry['name']} ({entry['probability']:.2f}): {times}")
    click.echo(f"wrote {out_png}")
