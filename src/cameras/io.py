"""Atomic file writing: a file appears whole or not at all."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tmp_for(path: Path) -> str:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
    return tmp


def encode_npy(arr: np.ndarray) -> bytes:
    """Array → .npy bytes."""
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def encode_json(obj) -> bytes:
    """Object → pretty UTF-8 JSON bytes."""
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()


def write_files_atomically(files: dict[Path, bytes]) -> None:
    """Write every file or none: all go to temporary files first, then are renamed.

    If anything fails before the renames, the temporaries are removed and no target file
    changes; renames within one directory are atomic per file. If a rename fails (a folder
    of the file's name, no permission), the files this call created are removed again (files
    it replaced keep their new content) and the error is raised.

    Example:
        >>> write_files_atomically({Path("/tmp/_a.txt"): b"hi"}); Path("/tmp/_a.txt").read_text()
        'hi'
    """
    tmps: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = _tmp_for(path)
            tmps.append((tmp, path))
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        created: list[Path] = []
        try:
            for tmp, path in tmps:
                existed = os.path.lexists(path)
                os.replace(tmp, path)
                if not existed:
                    created.append(path)
        except OSError:
            for path in created:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            raise
        tmps = []
    finally:
        for tmp, _ in tmps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def unique_stems(paths: list[Path]) -> list[str]:
    """File stems made unique by suffixes ``_2``, ``_3``… for repeated names, one per path in the order given.

    A suffixed name never takes one that another path has as its own stem (``x_2.png`` keeps
    ``x_2``; the second ``x`` becomes ``x_3``), so no two paths share their output files.
    Suffixes go to the paths in the order of their resolved names, not the order given, so a
    rerun that lists the same files in another order gives each the stem (and finds the
    outputs) it had.

    Example:
        >>> unique_stems([Path("a/x.jpg"), Path("b/x.png"), Path("y.jpg")])
        ['x', 'x_2', 'y']
        >>> unique_stems([Path("a/x.png"), Path("b/x.png"), Path("x_2.png")])
        ['x', 'x_3', 'x_2']
        >>> unique_stems([Path("b/x.png"), Path("a/x.png")])  # a/x.png is x however the two are listed
        ['x_2', 'x']
    """
    own = {p.stem for p in paths}
    taken: set[str] = set()
    count: dict[str, int] = defaultdict(int)
    out = [""] * len(paths)
    for i in sorted(range(len(paths)), key=lambda i: (Path(paths[i]).resolve(), i)):  # as folders are listed
        p = Path(paths[i])
        stem = p.stem
        if stem in taken:
            while True:
                count[p.stem] += 1
                stem = f"{p.stem}_{count[p.stem] + 1}"
                if stem not in taken and stem not in own:
                    break
        taken.add(stem)
        out[i] = stem
    return out
