"""Public names imported on first use, so that ``import cameras`` (and ``cameras --help``) does not load torch."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(package: str, table: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` whose names in ``table`` live in submodules.

    ``table`` maps a public name to the module (relative to ``package``) that defines it;
    the first access imports that module and caches the value on the package. Other names
    are tried as submodules (``cameras.metrics``).

    Example:
        >>> getattr_, dir_ = lazy_exports("cameras", {"InputError": ".core.errors"})
        >>> getattr_("InputError").__name__, "InputError" in dir_()
        ('InputError', True)
    """

    def __getattr__(name: str) -> object:
        where = table.get(name)
        if where is None:
            try:
                return importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as e:
                if e.name != f"{package}.{name}":
                    raise
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(where, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
