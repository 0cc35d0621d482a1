"""Evaluation metrics: pointing game (and its energy form), map density, insertion/deletion, ROAD, Average
Drop/Increase, map difference."""

from .confidence import confidence_change
from .density import map_density
from .difference import map_difference
from .energy import energy_in_region
from .insdel import auc, insertion_deletion
from .pointing import is_difficult, pointing_accuracy, pointing_hit, pointing_trial, smooth_input_level
from .road import noisy_linear_impute, road

__all__ = [
    "auc",
    "confidence_change",
    "energy_in_region",
    "insertion_deletion",
    "is_difficult",
    "map_density",
    "map_difference",
    "noisy_linear_impute",
    "pointing_accuracy",
    "pointing_hit",
    "pointing_trial",
    "road",
    "smooth_input_level",
]
