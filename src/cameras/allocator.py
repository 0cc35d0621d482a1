"""CPU allocator tuning: keep freed large blocks in the process instead of giving them back.

glibc's ``malloc`` serves large blocks (from 128 KiB, adapting up to 32 MiB) by ``mmap`` and
unmaps them on ``free``. The activations of a forward pass at 424 px and above are larger
than that, so every pass maps its memory anew and page-faults it in: on the benchmark's
2-core CPU an EfficientNet-Lite0 forward pass at 424 px ran 1.5× slower at batch 1 and
2.7× slower per image at batch 8 than with the blocks kept (``benchmarks/run.py`` measures
it). :func:`tune_cpu_allocator` raises the mmap and trim thresholds so freed blocks are
reused. The price: the process keeps its peak heap until it exits, which a one-shot
command does anyway. The ``cameras`` command calls it at start-up (set
``CAMERAS_CPU_ALLOCATOR=default`` to leave glibc alone); from Python it is an opt-in.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
_state = {"tuned": False}


def tune_cpu_allocator() -> bool:
    """Make glibc keep freed large blocks for reuse; True when applied (or already applied).

    Returns False, changing nothing, where the C library is not glibc (macOS, Windows,
    musl) or when the environment variable ``CAMERAS_CPU_ALLOCATOR`` is ``default``.
    Process-wide and not undone: call it once at the start of a script.

    Example:
        >>> import platform
        >>> tune_cpu_allocator() == (platform.libc_ver()[0] == "glibc" and os.environ.get("CAMERAS_CPU_ALLOCATOR") != "default")
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
    # never return the top of the heap to the OS, and serve large blocks from the heap; if
    # this glibc caps the mmap threshold, switch mmap off for malloc altogether
    ok = mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    ok = (mallopt(_M_MMAP_THRESHOLD, 2**30) == 1 or mallopt(_M_MMAP_MAX, 0) == 1) and ok
    _state["tuned"] = ok
    return ok
