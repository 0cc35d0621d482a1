"""CPU tuning for the process: keep freed large blocks, and keep more of oneDNN's compiled kernels.

glibc's ``malloc`` serves large blocks (from 128 KiB, adapting up to 32 MiB) by ``mmap`` and
unmaps them on ``free``. The activations of a forward pass at 424 px and above are larger
than that, so every pass maps its memory anew and page-faults it in: on the benchmark's
2-core CPU an EfficientNet-Lite0 forward pass at 924 px ran 1.6× slower at batch 1 and
3.0× slower per image at batch 8 than with the blocks kept (``make bench``, the allocator
table of BENCHMARKS.md). :func:`tune_cpu_allocator` raises glibc's mmap threshold to 1 GiB (32 MiB, the old
cap, where an older glibc refuses more) and its trim threshold to the maximum, so freed
blocks stay in the heap and are reused. The price: the process keeps its peak heap until it
exits, which a one-shot command does anyway; blocks above the threshold, and those of
threads other than the main one beyond their arena's 64 MiB heaps, are still mapped per
use. The ``cameras`` command calls it at start-up, except ``cameras app``, a long-running
server (set ``CAMERAS_CPU_ALLOCATOR=default`` to leave glibc alone); from Python it is an
opt-in.

oneDNN, which runs PyTorch's CPU convolutions, compiles a kernel ("primitive") per operation,
shape, layout and dtype and keeps the last 1,024 it used. CAMERAS runs each convolution at
8 scales; a folder whose photos come in two sizes (landscape and portrait), or a benchmark
that alternates the NCHW floor with channels-last and bf16 paths, needs more than that, and
then every pass compiles its kernels afresh: on the benchmark's 2-core CPU, with
EfficientNet-Lite0 and a landscape and a portrait input alternating, the NCHW forward passes
at the 8 scales took twice as long (1.57 s against 0.80 s per image), and bf16 CAMERAS in a
round-robin with them twice as long (channels-last CAMERAS alone fits either way).
:func:`raise_onednn_cache` raises the limit to 8,192 (peak memory was no higher); the
``cameras`` command calls it at start-up, every subcommand.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_state = {"tuned": False}


def tune_cpu_allocator() -> bool:
    """Make glibc keep freed large blocks for reuse; True when applied (or already applied).

    Returns False, changing nothing, where the C library is not glibc (macOS, Windows,
    musl) or when the environment variable ``CAMERAS_CPU_ALLOCATOR`` is ``default``.
    Process-wide and not undone: call it once at the start of a script.

    Example:
        >>> import platform
        >>> opted_out = os.environ.get("CAMERAS_CPU_ALLOCATOR", "").lower() == "default"
        >>> tune_cpu_allocator() == (platform.libc_ver()[0] == "glibc" and not opted_out)
        True
    """
    if _state["tuned"]:
        return True
    if os.environ.get("CAMERAS_CPU_ALLOCATOR", "").lower() == "default":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    path = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(path)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # serve blocks up to 1 GiB from the heap (glibc before 2.35 caps the threshold at 32 MiB
    # on 64-bit systems), then never return the top of the heap to the OS
    if mallopt(_M_MMAP_THRESHOLD, 2**30) != 1 and mallopt(_M_MMAP_THRESHOLD, 32 * 2**20) != 1:
        return False
    mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    _state["tuned"] = True
    return True


#: kernels oneDNN keeps with :func:`raise_onednn_cache` (its own default is 1,024)
ONEDNN_CACHE_CAPACITY = 8192
_ONEDNN_CACHE_VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"


def raise_onednn_cache(capacity: int = ONEDNN_CACHE_CAPACITY) -> bool:
    """Let oneDNN keep ``capacity`` compiled CPU kernels instead of 1,024; True when this call's value is set.

    oneDNN reads the limit from the environment variable ``ONEDNN_PRIMITIVE_CACHE_CAPACITY``
    once, when it builds its first kernel: call this at the top of a script, before any model
    runs on the CPU; later it changes nothing. A value the user already set (also the older
    ``DNNL_PRIMITIVE_CACHE_CAPACITY``) is kept, and the call returns False.

    Example:
        >>> was = os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY")
        >>> raise_onednn_cache() == (was is None and "DNNL_PRIMITIVE_CACHE_CAPACITY" not in os.environ)
        True
        >>> os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8192") == (was or "8192")
        True
    """
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise ValueError(f"capacity must be a positive number of kernels, got {capacity!r}")
    if _ONEDNN_CACHE_VARIABLE in os.environ or "DNNL_PRIMITIVE_CACHE_CAPACITY" in os.environ:
        return False
    os.environ[_ONEDNN_CACHE_VARIABLE] = str(capacity)
    return True
