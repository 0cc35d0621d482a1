"""Every map the library makes stays what it was: every method (and wrapper) on the sample photos.

``tests/fixtures/regression_maps.npz`` holds the maps of a known-good version (see
``tests/fixtures/make_regression.py``); refactors must reproduce them to 1e-6.
"""

import numpy as np
import pytest

from tests.fixtures.make_regression import CASES, PHOTOS, compute

FIXTURE = np.load(__import__("pathlib").Path(__file__).parent / "fixtures" / "regression_maps.npz")


@pytest.fixture(scope="module")
def current():
    import cameras

    return compute(cameras.build_method)


@pytest.mark.parametrize("photo", PHOTOS)
@pytest.mark.parametrize("key", [c[0] for c in CASES])
def test_map_unchanged(current, photo, key):
    ref, now = FIXTURE[f"{photo}.{key}"], current[f"{photo}.{key}"]
    assert now.shape == ref.shape
    assert int(current[f"{photo}.{key}.target"]) == int(FIXTURE[f"{photo}.{key}.target"])
    assert float(np.abs(now - ref).max()) <= 1e-6
    assert float(ref.max()) > 0  # a real map, not an empty one
