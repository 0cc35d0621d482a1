"""Exceptions raised by cameras. Every message names the problem and the fix."""

from __future__ import annotations


class CamerasError(Exception):
    """Base class of every error this library raises on bad input."""


class InputError(CamerasError, ValueError):
    """A tensor, target or option has the wrong shape, type or range."""


class LayerError(CamerasError, ValueError):
    """The target layer is unknown, ambiguous or unusable."""


class ModelError(CamerasError, ValueError):
    """A model name is unknown or its weights cannot be found."""


class ImageError(CamerasError, ValueError):
    """An image file is missing, unreadable, truncated or too small."""


class Cancelled(CamerasError):
    """A running explanation was stopped through its method's ``stop`` event."""
