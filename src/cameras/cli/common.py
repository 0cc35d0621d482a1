"""The `cameras` command group and what its subcommands share: error handling and common options."""

from __future__ import annotations

import contextlib
import math
import sys
from pathlib import Path

import click

from ..core.errors import CamerasError
from ..names import DEFAULT_MODEL


def fail(msg: str, code: int = 2) -> None:
    """Print ``error: msg`` on stderr and exit with ``code``."""
    click.echo(f"error: {msg}", err=True)
    sys.exit(code)


@contextlib.contextmanager
def user_errors():
    """Turn bad input (our errors, bad options, runtime errors from torch, unreadable or unwritable files) into one
    line and exit 2."""
    try:
        yield
    except click.BadParameter as e:
        fail(e.message)
    except (CamerasError, RuntimeError) as e:
        fail(str(e))
    except OSError as e:  # e.g. a folder where the output file should go, no permission, a full disk
        fail(f"{type(e).__name__}: {e}")


def torch_device(text: str):
    """``"cuda:1"`` → torch.device, with a clear error for a bad name or a missing GPU.

    Example:
        >>> torch_device("cpu").type
        'cpu'
        >>> torch_device("gpu")
        Traceback (most recent call last):
        ...
        click.exceptions.BadParameter: unknown device 'gpu'; did you mean cuda? Use cpu, cuda or cuda:N
        >>> torch_device("meta")
        Traceback (most recent call last):
        ...
        click.exceptions.BadParameter: --device meta: a meta device cannot run the model here; use cpu, cuda or cuda:N
    """
    import torch

    try:
        dev = torch.device(text)
    except RuntimeError:
        hint = " did you mean cuda?" if text.strip().lower() in ("gpu", "nvidia", "cuda0") else ""
        raise click.BadParameter(f"unknown device '{text}';{hint} Use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda", "mps", "xpu"):
        raise click.BadParameter(f"--device {text}: a {dev.type} device cannot run the model here; use cpu, cuda or "
                                 "cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise click.BadParameter(f"--device {text}: no CUDA GPU is available to PyTorch on this machine; "
                                     "use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise click.BadParameter(f"--device {text}: this machine has {torch.cuda.device_count()} GPU(s), "
                                     f"cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return dev


def check_out(path, kind: str = "folder") -> None:
    """Check an output path before any work: a ``folder`` must not be a file, a ``file``'s folder
    must not be one, and the nearest existing folder must be writable.

    Example:
        >>> check_out("/")  # an existing, writable folder
    """
    import os
    from pathlib import Path

    p = Path(path)
    if kind == "folder" and p.exists() and not p.is_dir():
        raise click.BadParameter(f"--out {p} is a file, not a folder; give a folder (it is created if missing)")
    if kind == "file" and p.is_dir():
        raise click.BadParameter(f"--out {p} is a folder; give a file name")
    probe = p if kind == "folder" else p.parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise click.BadParameter(f"--out {p}: {probe} is a file, so the output cannot be created under it")
    if not os.access(probe, os.W_OK):
        raise click.BadParameter(f"--out {p}: {probe} is not writable")


def set_threads(threads: int | None) -> None:
    """``--threads N``: PyTorch's CPU threads for this command (None: PyTorch's default, every core).

    The previous setting comes back when the command ends, so a command run in-process
    (e.g. through click's test runner) leaves the caller's setting alone.
    """
    if threads is not None:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        ctx = click.get_current_context(silent=True)
        if ctx is not None:
            ctx.call_on_close(lambda: torch.set_num_threads(before))


def parse_eps(text: str) -> float:
    """``"12/255"`` or ``"0.05"`` → a finite float.

    Example:
        >>> round(parse_eps("12/255"), 4)
        0.0471
        >>> parse_eps("nan")
        Traceback (most recent call last):
        ...
        click.exceptions.BadParameter: 'nan' is not a finite number like 12/255 or 0.05
    """
    try:
        if "/" in text:
            a, b = text.split("/")
            value = float(a) / float(b)
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError):
        value = math.nan
    if not math.isfinite(value):
        raise click.BadParameter(f"'{text}' is not a finite number like 12/255 or 0.05")
    return value


FORMATS = click.Choice(["imagenet", "voc", "coco"])  # the dataset formats of --format


def model_option(f):
    """``--model`` with the default model, shared by every subcommand that loads one."""
    return click.option("--model", "model_name", default=DEFAULT_MODEL, show_default=True,
                        help=f"{DEFAULT_MODEL} (embedded; also efficientnet_lite1/2), torchvision:<arch>, "
                             "timm:<name>, hf:<folder> or synthetic:<name> (see `cameras models`).")(f)


def models_option(default, text: str):
    """``--model`` for commands that take several models: repeatable, each value a name or a comma list
    (read with :func:`model_names`), so ``--model a,b`` and ``--model a --model b`` are the same."""
    return click.option("--model", "models", multiple=True, default=default, show_default=True, help=text)


def model_names(values) -> list[str]:
    """The model names of a repeatable ``--model`` option (a tuple of values, each a name or a comma list), in
    order, empty pieces dropped; BadParameter when none is left.

    Example:
        >>> model_names(("efficientnet_lite0,timm:resnet18", "synthetic:cnn"))
        ['efficientnet_lite0', 'timm:resnet18', 'synthetic:cnn']
    """
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    if not names:
        raise click.BadParameter(f"--model {','.join(values)!r} names no model; give names like "
                                 "efficientnet_lite0,timm:resnet18")
    return names


def weights_option(f):
    """``--weights``: a local weights file for the ``--model``, or ``random``."""
    return click.option("--weights", default=None,
                        help="Local weights file for torchvision:/timm: models, or 'random'.")(f)


def square_option(f):
    """``--square``: resize images to a square (the model's size) instead of keeping their aspect ratio."""
    return click.option("--square", is_flag=True,
                        help="Resize images to a square instead of keeping the aspect ratio.")(f)


def quiet_option(f):
    """``--quiet``: no progress bar (see :func:`progress_flag`)."""
    return click.option("--quiet", is_flag=True, help="No progress bar.")(f)


def out_dir_option(default: str | None = None):
    """``--out`` as an output folder: ``default`` when given, else required."""
    return click.option("--out", "out_dir", default=default, required=default is None, show_default=default is not None,
                        type=click.Path(path_type=Path), help="Output folder.")


def device_option(f):
    """``--device``, shared by every subcommand that runs a model (see :func:`torch_device`)."""
    return click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ...")(f)


def method_settings(settings, names: list[str]) -> dict[str, dict]:
    """``--set METHOD.KEY=VALUE`` options by method, each checked against its method, and refused for a method
    ``names`` (the methods a command runs) leaves out.

    Example:
        >>> method_settings(["gradcam.layer=features"], ["gradcam"])
        {'gradcam': {'layer': 'features'}}
        >>> method_settings(["rise.n_masks=5"], ["cameras"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        click.exceptions.BadParameter: --set rise.… sets a method that --methods does not run (cameras); ...
    """
    from ..methods import check_options, parse_option_strings

    opts = {k: check_options(k, v) for k, v in parse_option_strings(settings, per_method=True).items()}
    stray = [k for k in opts if k not in names]  # it would be ignored
    if stray:
        raise click.BadParameter(f"--set {stray[0]}.… sets a method that --methods does not run ({', '.join(names)}); "
                                 "add it to --methods or drop the option")
    return opts


def layer_scales_options(f):
    """``--layer`` and ``--scales`` for the commands that run several methods: shorthands for ``--set
    METHOD.layer=…`` / ``--set METHOD.scales=…`` on every method that takes them (:func:`with_shorthands`)."""
    f = click.option("--scales", default=None,
                     help="Sizes for every method that takes them (cameras, multiscale-*, and their smooth-/tta- "
                          "forms), e.g. 224,324,424 or 224:1000:100: --set METHOD.scales=… for each.")(f)
    return click.option("--layer", default=None,
                        help="Layer for every method that takes one (the CAMs, CAMERAS, NormGrad): --set "
                             "METHOD.layer=… for each.")(f)


def with_shorthands(opts: dict[str, dict], names: list[str], layer: str | None, scales: str | None) -> dict:
    """``opts`` (options by method, from :func:`method_settings`) with ``--layer`` and ``--scales`` given to every
    method of ``names`` that takes them; BadParameter when none does, or when ``--set`` gives one of them too.

    Example:
        >>> with_shorthands({}, ["cameras", "gradcam", "rise"], "layer4", None)
        {'cameras': {'layer': 'layer4'}, 'gradcam': {'layer': 'layer4'}}
    """
    from ..methods import method_option_names

    out = {k: dict(v) for k, v in opts.items()}
    for flag, key, value in (("--layer", "layer", layer), ("--scales", "scales", scales)):
        if value is None:
            continue
        takers = [n for n in names if key in method_option_names(n)]
        if not takers:
            raise click.BadParameter(f"{flag} applies to none of the methods run ({', '.join(names)}); leave it out "
                                     "or add a method that takes it")
        for n in takers:
            if key in out.get(n, {}):
                raise click.BadParameter(f"{flag} and --set {n}.{key} both give {n}'s {key}; give one of them")
            out.setdefault(n, {})[key] = value
    return out


def own_settings(settings, name: str) -> list[str]:
    """``--set`` items of a command that runs one method (``name``), each ``KEY=VALUE`` or, as for the commands
    that run several, ``METHOD.KEY=VALUE`` with that method: the prefix is dropped, and a prefix naming another
    method is refused (its option would be ignored).

    Example:
        >>> own_settings(["cameras.scales=[224, 324]", "max_size=900"], "cameras")
        ['scales=[224, 324]', 'max_size=900']
    """
    from ..methods import method_class, method_option_names

    out = []
    for item in settings:
        key, sep, value = item.partition("=")
        meth, dot, opt = key.partition(".")
        if sep and dot:
            try:
                other = method_class(meth.strip()).name
            except CamerasError as e:
                raise click.BadParameter(f"--set {item}: {e}") from None
            if other != name:
                own = (f"--set {opt.strip()}={value} for {name}'s own option, or "
                       if opt.strip() in method_option_names(name) else "")
                raise click.BadParameter(f"--set {item} sets {other} but --method is {name}; give {own}"
                                         f"--method {other}")
            item = f"{opt}={value}"
        out.append(item)
    return out


def threads_option(f):
    """``--threads N``, shared by every subcommand that runs a model (see :func:`set_threads`)."""
    return click.option("--threads", default=None, type=click.IntRange(1, 1024),
                        help="CPU threads for PyTorch (default: all cores; on a shared machine, fewer).")(f)


def progress_flag(quiet: bool) -> bool | None:
    """tqdm's setting for ``--quiet``: False, else None (a bar on a terminal only)."""
    return False if quiet else None


def progress_for(run, quiet: bool) -> bool | None:
    """:func:`progress_flag` on torchrun's rank 0 (``run``: a :class:`cameras.distributed.Launch`), False elsewhere."""
    return False if run.rank != 0 else progress_flag(quiet)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cameras")
@click.pass_context
def main(ctx: click.Context) -> None:
    """CAMERAS: high-resolution saliency maps for PyTorch image classifiers.

    On Linux every command but `app` tunes the CPU allocator to reuse large blocks (large
    forward passes ran up to 3× faster per image in BENCHMARKS.md); CAMERAS_CPU_ALLOCATOR=default leaves it
    alone. Every command lets oneDNN keep 8,192 compiled CPU kernels instead of 1,024 (plain forward
    passes over photos of two sizes ran about 2× faster); a value set in ONEDNN_PRIMITIVE_CACHE_CAPACITY is kept.
    """
    from ..allocator import raise_onednn_cache, tune_cpu_allocator

    raise_onednn_cache()
    if ctx.invoked_subcommand != "app":
        tune_cpu_allocator()


def load_classifier(name, weights, device, what: str):
    """:func:`cameras.load_model`, refused with how to explain it instead when the model is not a classifier
    (``what`` names the command in the message)."""
    from ..models import load_model

    return load_model(name, weights, device=device).require_classifier(what)
