"""Metrics on synthetic maps and tiny models whose answers are known."""

import math

import pytest
import torch
from torch import nn

from cameras.metrics import (
    auc,
    insertion_deletion,
    is_difficult,
    map_density,
    map_difference,
    pointing_accuracy,
    pointing_hit,
    pointing_trial,
)


def region_at(H, W, ys, xs):
    r = torch.zeros(H, W, dtype=torch.bool)
    r[ys, xs] = True
    return r


def test_pointing_tolerance_edge():
    m = torch.zeros(60, 60)
    m[30, 10] = 1.0
    # distance exactly 15 along a row is a miss (< 15 required); 14 is a hit
    assert pointing_hit(m, region_at(60, 60, 30, 25)) is False
    assert pointing_hit(m, region_at(60, 60, 30, 24)) is True
    # diagonal: (10, 10) has distance 14.14 → hit; (11, 11) 15.56 → miss
    assert pointing_hit(m, region_at(60, 60, 40, 20)) is True
    assert pointing_hit(m, region_at(60, 60, 41, 21)) is False
    assert pointing_hit(m, region_at(60, 60, 30, 10)) is True


def test_pointing_ties_take_first_in_row_major_order():
    m = torch.zeros(50, 50)
    m[40, 2] = 1.0
    m[5, 45] = 1.0  # same value, earlier in row-major order: this one is the maximum
    assert pointing_hit(m, region_at(50, 50, 5, 45)) is True
    assert pointing_hit(m, region_at(50, 50, 40, 2)) is False


def test_constant_map_points_at_first_pixel_only():
    m = torch.full((50, 50), 0.7)
    assert pointing_hit(m, region_at(50, 50, 30, 30)) is False  # never "all pixels hit"
    assert pointing_hit(m, region_at(50, 50, 5, 5)) is True
    assert pointing_hit(torch.zeros(50, 50), region_at(50, 50, 49, 49)) is False


def test_empty_region_is_not_scored():
    assert pointing_hit(torch.rand(20, 20), torch.zeros(20, 20, dtype=torch.bool)) is None
    assert pointing_accuracy([(0, None), (0, True), (1, None)]) == 1.0


def test_per_class_mean_and_difficult():
    trials = [(0, True)] * 9 + [(0, False)] + [(1, False), (1, True)]
    assert pointing_accuracy(trials) == pytest.approx((0.9 + 0.5) / 2)
    assert is_difficult(24, 100, True) and not is_difficult(25, 100, True) and not is_difficult(10, 100, False)


def test_pointing_trial_resizes_and_smooths():
    low = torch.zeros(4, 4)
    low[1, 3] = 1.0
    region = torch.zeros(80, 80, dtype=torch.bool)
    region[20:40, 60:80] = True
    assert pointing_trial(low, region) is True
    noisy = torch.zeros(80, 80)
    noisy[70, 5] = 1.0  # one hot pixel far away...
    noisy[25:35, 62:78] = 0.9  # ...and a strong blob on the object
    assert pointing_trial(noisy, region, input_level=False) is False
    assert pointing_trial(noisy, region, input_level=True) is True  # σ = 0.02·80 smoothing


class Brightness(nn.Module):
    """Class 0 logit = 4·mean(x); class 1 logit = 0."""

    def __init__(self):
        super().__init__()
        self.s = nn.Parameter(torch.tensor(4.0))

    def forward(self, x):
        z = x.mean((1, 2, 3)) * self.s
        return torch.stack([z, torch.zeros_like(z)], 1)


def test_map_density_by_hand():
    net = Brightness()
    img = torch.ones(1, 3, 8, 8)
    psi = torch.zeros(1, 8, 8)
    psi[:, :4] = 1.0  # half the image kept
    rp, rm = map_density(net, img, psi, torch.tensor([0]), lambda t: t)
    p_half = torch.sigmoid(torch.tensor(4 * 0.5))
    assert float(rp[0]) == pytest.approx(float(p_half) / 0.5, rel=1e-5)
    assert float(rm[0]) == pytest.approx(float(p_half) / 0.5, rel=1e-5)
    rp0, rm0 = map_density(net, img, torch.zeros(1, 8, 8), torch.tensor([0]), lambda t: t)
    assert float(rp0[0]) == 0.0 and math.isfinite(float(rm0[0]))


def test_insertion_deletion_by_hand():
    net = Brightness()
    x = torch.ones(1, 3, 4, 4)
    sal = torch.arange(16.0).view(1, 4, 4)
    r = insertion_deletion(net, x, sal, step=4, target=torch.tensor([0]))
    # deletion zeroes 4 of 16 pixels per step: mean goes 1, .75, .5, .25, 0
    want = torch.sigmoid(4 * torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    assert torch.allclose(r["deletion"][0], want, atol=1e-6)
    assert float(r["deletion_auc"][0]) == pytest.approx(float(auc(want)), rel=1e-6)
    # insertion starts from the blur of a constant image (constant) and ends at the image
    assert torch.allclose(r["insertion"][0], torch.full((5,), float(torch.sigmoid(torch.tensor(4.0)))), atol=1e-5)
    assert r["target"].tolist() == [0]


def test_auc_trapezoid_and_map_difference():
    assert float(auc(torch.tensor([1.0, 0.0, 0.0]))) == pytest.approx(0.25)
    a = torch.rand(2, 5, 5)
    assert torch.allclose(map_difference(a, a), torch.zeros(2))
    assert float(map_difference(torch.zeros(1, 3, 3), torch.zeros(1, 3, 3))[0]) == 0.0
    b = a * 2
    assert torch.allclose(map_difference(a, b), torch.full((2,), 1 / 1.5))


def test_energy_in_region_by_hand():
    from cameras.metrics import energy_in_region

    s = torch.zeros(2, 4, 4)
    s[0, 0, 0], s[0, 3, 3] = 3.0, 1.0
    r = torch.zeros(2, 4, 4, dtype=torch.bool)
    r[0, :2, :2] = True
    out = energy_in_region(s, r)
    assert out[0].item() == 0.75 and out[1].isnan()  # image 1: empty region, not scored
    # an all-zero map scores 0; a map at another size is resized bilinearly to the region first
    r[1, 0] = True
    assert energy_in_region(torch.zeros(1, 4, 4), r[1:]).item() == 0.0
    small = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    big = torch.nn.functional.interpolate(small[None], size=(4, 4), mode="bilinear", align_corners=False)[0]
    assert torch.allclose(energy_in_region(small, r[:1]), energy_in_region(big, r[:1]))
