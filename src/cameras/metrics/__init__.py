"""Evaluation metrics: pointing game, map density, insertion/deletion, map difference."""

from .density import map_density
from .difference import map_difference
from .insdel import auc, insertion_deletion
from .pointing import is_difficult, pointing_accuracy, pointing_hit, pointing_trial, smooth_input_level

__all__ = [
    "auc",
    "insertion_deletion",
    "is_difficult",
    "map_density",
    "map_difference",
    "pointing_accuracy",
    "pointing_hit",
    "pointing_trial",
    "smooth_input_level",
]
