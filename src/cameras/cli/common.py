"""The `cameras` command group and what its subcommands share: error handling and common options."""

from __future__ import annotations

import contextlib
import sys

import click

from ..core.errors import CamerasError
from ..models import DEFAULT_MODEL


def fail(msg: str, code: int = 2) -> None:
    """Print ``error: msg`` on stderr and exit with ``code``."""
    click.echo(f"error: {msg}", err=True)
    sys.exit(code)


@contextlib.contextmanager
def user_errors():
    """Turn bad input (our errors, bad options, runtime errors from torch) into one line and exit 2."""
    try:
        yield
    except click.BadParameter as e:
        fail(e.message)
    except (CamerasError, RuntimeError) as e:
        fail(str(e))


def torch_device(text: str):
    """``"cuda:1"`` → torch.device, with a clear error for a bad name.

    Example:
        >>> torch_device("cpu").type
        'cpu'
    """
    import torch

    try:
        return torch.device(text)
    except RuntimeError:
        raise click.BadParameter(f"unknown device '{text}'; use cpu, cuda or cuda:N") from None


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


def model_option(f):
    """``--model`` with the default model, shared by every subcommand that loads one."""
    return click.option("--model", "model_name", default=DEFAULT_MODEL, show_default=True,
                        help=f"{DEFAULT_MODEL} (embedded), torchvision:<arch> or timm:<name>.")(f)


def progress_flag(quiet: bool) -> bool | None:
    """tqdm's setting for ``--quiet``: False, else None (a bar on a terminal only)."""
    return False if quiet else None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cameras")
@click.pass_context
def main(ctx: click.Context) -> None:
    """CAMERAS: high-resolution saliency maps for PyTorch image classifiers.

    On Linux every command but `app` tunes the CPU allocator to reuse large blocks (large
    forward passes ran up to 3× faster per image in BENCHMARKS.md); CAMERAS_CPU_ALLOCATOR=default leaves it
    alone.
    """
    from ..allocator import tune_cpu_allocator

    if ctx.invoked_subcommand != "app":
        tune_cpu_allocator()
