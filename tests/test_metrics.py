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


def bn_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def test_model_metrics_run_in_eval_mode_and_restore_the_model():
    """A model left in train mode is scored as in eval mode (no batch statistics, no dropout); its mode, norm
    statistics and parameters' requires_grad are as before."""
    from cameras.metrics import confidence_change, road

    x01 = torch.rand(2, 3, 8, 8)
    maps = torch.rand(2, 8, 8)
    calls = {
        "insdel": lambda m: insertion_deletion(m, x01, maps, step=16),
        "density": lambda m: map_density(m, x01, maps, torch.tensor([0, 1]), lambda t: t - 0.5),
        "confidence": lambda m: confidence_change(m, x01, maps, torch.tensor([0, 1])),
        "road": lambda m: road(m, x01, maps, percentiles=(50,)),
    }
    for name, call in calls.items():
        ref = call(bn_net().eval())
        net = bn_net().train()
        stats = net[1].running_mean.clone()
        got = call(net)
        assert net.training and all(mod.training for mod in net.modules()), name
        assert torch.equal(net[1].running_mean, stats), name
        assert all(p.requires_grad for p in net.parameters()), name
        pairs = zip(ref, got) if isinstance(ref, tuple) else ((ref[k], got[k]) for k in ref)
        for a, b in pairs:
            assert torch.allclose(a.float(), b.float(), atol=1e-6), name


def test_metrics_refuse_bad_maps_and_counts():
    from cameras import InputError

    net = bn_net().eval()
    x = torch.rand(1, 3, 4, 8)
    with pytest.raises(InputError, match=r"maps must be B×H×W on x's grid, expected \(1, 4, 8\), got \(1, 8, 4\)"):
        insertion_deletion(net, x, torch.rand(1, 8, 4), step=4)  # transposed: as many pixels, wrong grid
    nan = torch.rand(1, 4, 8)
    nan[0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN or infinite"):
        insertion_deletion(net, x, nan, step=4)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InputError, match="step must be a positive int"):
            insertion_deletion(net, x, torch.rand(1, 4, 8), step=bad)
    with pytest.raises(InputError, match="batch_size must be a positive int"):
        insertion_deletion(net, x, torch.rand(1, 4, 8), batch_size=0)
    # map density: raw maps and normalised images are refused, not clamped or normalised twice
    with pytest.raises(InputError, match=r"maps must lie in \[0, 1\]"):
        map_density(net, x, 5 * torch.rand(1, 4, 8), None, lambda t: t)
    with pytest.raises(InputError, match=r"image01 must lie in \[0, 1\].*pass the unnormalised image"):
        map_density(net, (x - 0.45) / 0.22, torch.rand(1, 4, 8), None, lambda t: t)
    with pytest.raises(InputError, match="maps must be B×H×W"):
        map_density(net, x, torch.rand(1, 1, 4, 8), None, lambda t: t)
    # within 0.25 of [0, 1] (a bicubic resize overshoots) maps and images are clamped, as the clean ones score
    over_x, over_m = x * 1.2 - 0.1, torch.rand(1, 4, 8) * 1.4 - 0.2
    got = map_density(net, over_x, over_m, torch.tensor([0]), lambda t: t)
    want = map_density(net, over_x.clamp(0, 1), over_m.clamp(0, 1), torch.tensor([0]), lambda t: t)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    # insertion/deletion takes B×1×H×W maps too, as it always did
    m = torch.rand(1, 4, 8)
    a, b = insertion_deletion(net, x, m, step=4), insertion_deletion(net, x, m[:, None], step=4)
    assert torch.equal(a["deletion"], b["deletion"])
    # map difference: two batches of one shape
    with pytest.raises(InputError, match=r"one shape, got \(3, 3, 3\) and \(3, 3\)"):
        map_difference(torch.rand(3, 3, 3), torch.rand(3, 3))
    # pointing: a NaN would be the arg-max
    m = torch.zeros(7, 7)
    m[3, 3], m[0, 6] = 1.0, float("nan")
    with pytest.raises(InputError, match="NaN or infinite"):
        pointing_hit(m, region_at(7, 7, 3, 3))


def test_map_density_in_bfloat16():
    """A bf16 model and image: the masks take the image's dtype (they were float32, which the model refused)."""
    net = bn_net().eval().to(torch.bfloat16)
    x = torch.rand(1, 3, 8, 8).to(torch.bfloat16)
    maps = torch.rand(1, 8, 8)
    plus, minus = map_density(net, x, maps, torch.tensor([0]), lambda t: t)
    ref = map_density(bn_net().eval(), x.float(), maps.to(torch.bfloat16).float(), torch.tensor([0]), lambda t: t)
    assert torch.allclose(plus.float(), ref[0], rtol=0.05) and torch.allclose(minus.float(), ref[1], rtol=0.05)
