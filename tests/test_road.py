"""ROAD (RemOve And Debias): the imputation by hand, its invariants, and agreement with pytorch-grad-cam."""

import numpy as np
import pytest
import torch
from torch import nn

from cameras.core.errors import InputError
from cameras.core.targets import SoftmaxTarget
from cameras.metrics.road import noisy_linear_impute, removed_count, road

E, D = 1 / 6, 1 / 12  # edge and corner (diagonal) neighbour weights


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # these CPU models are tiny: one thread is fastest and avoids oversubscribing shared CI cores
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def image3(values):
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 3, 3)


def removed_at(h, w, *pixels):
    m = torch.zeros(1, h, w, dtype=torch.bool)
    for r, c in pixels:
        m[0, r, c] = True
    return m


GRID = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 20.0]]


def test_centre_is_weighted_mean_of_its_ring():
    out = noisy_linear_impute(image3(GRID), removed_at(3, 3, (1, 1)), noise=0)
    # edges 2, 4, 6, 8 weigh 1/6 and corners 1, 3, 7, 20 weigh 1/12; the weights sum to 1
    assert out[0, 0, 1, 1].item() == pytest.approx((2 + 4 + 6 + 8) * E + (1 + 3 + 7 + 20) * D, abs=1e-5)  # 71/12


def test_corner_weights_are_renormalised():
    out = noisy_linear_impute(image3(GRID), removed_at(3, 3, (0, 0)), noise=0)
    # neighbours inside: 2 and 4 (1/6 each), 5 (1/12); total weight 5/12
    assert out[0, 0, 0, 0].item() == pytest.approx((2 * E + 4 * E + 5 * D) / (2 * E + D), abs=1e-5)  # 17/5


def test_removed_pair_is_solved_jointly():
    out = noisy_linear_impute(image3(GRID), removed_at(3, 3, (1, 1), (1, 2)), noise=0)
    # centre a: all 8 neighbours (weight 1), b = (1, 2) among them:  a − b/6 = k1
    k1 = (2 + 4 + 8) * E + (1 + 3 + 7 + 20) * D  # 59/12
    # b = (1, 2) on the right edge: 3, 20, a at 1/6 and 2, 8 at 1/12 (weight 2/3):  (2/3) b − a/6 = k2
    s2, k2 = 3 * E + 2 * D, (3 + 20) * E + (2 + 8) * D  # 2/3, 56/12
    det = s2 - E * E
    a, b = (k1 * s2 + E * k2) / det, (k2 + E * k1) / det  # 146/23, 395/46
    assert out[0, 0, 1, 1].item() == pytest.approx(a, abs=1e-5)
    assert out[0, 0, 1, 2].item() == pytest.approx(b, abs=1e-5)
    # each removed pixel equals the weighted mean of its neighbours, the other imputed one included
    assert a == pytest.approx(k1 + E * b) and b == pytest.approx((k2 + E * a) / s2)


def test_every_removed_pixel_is_the_mean_of_its_neighbours():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 2, 7, 9, generator=g)
    removed = torch.rand(2, 7, 9, generator=g) < 0.6
    out = noisy_linear_impute(x, removed, noise=0).double()
    for b, r, c in removed.nonzero().tolist():
        total, weight = torch.zeros(2, dtype=torch.float64), 0.0
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                rr, cc = r + dr, c + dc
                if (dr or dc) and 0 <= rr < 7 and 0 <= cc < 9:
                    w = D if dr and dc else E
                    total += w * out[b, :, rr, cc]
                    weight += w
        torch.testing.assert_close(out[b, :, r, c], total / weight, atol=1e-5, rtol=0)


def test_channels_are_separate_right_hand_sides():
    g = torch.Generator().manual_seed(4)
    first = torch.randn(1, 1, 6, 6, generator=g)
    x = torch.cat([first, 2 * first + 1], 1)  # the weights sum to 1, so the imputation is affine
    out = noisy_linear_impute(x, torch.rand(1, 6, 6, generator=g) < 0.5, noise=0)
    torch.testing.assert_close(out[:, 1], 2 * out[:, 0] + 1, atol=1e-5, rtol=0)


def test_kept_pixels_unchanged_and_noise_only_on_removed():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 24, 24, generator=g)
    removed = torch.rand(2, 24, 24, generator=g) < 0.5
    clean = noisy_linear_impute(x, removed, noise=0)
    noisy = noisy_linear_impute(x, removed, noise=0.01, generator=torch.Generator().manual_seed(0))
    keep = ~removed[:, None].expand_as(x)
    assert torch.equal(clean[keep], x[keep]) and torch.equal(noisy[keep], x[keep])
    diff = (noisy - clean)[~keep]  # ~1700 draws of N(0, 0.01²)
    assert abs(diff.mean().item()) < 1e-3
    assert diff.std().item() == pytest.approx(0.01, rel=0.1)


def test_noise_is_reproducible_with_a_seed():
    x = torch.randn(1, 3, 8, 8)
    removed = torch.rand(1, 8, 8) < 0.5
    a, b, c = (noisy_linear_impute(x, removed, generator=torch.Generator().manual_seed(s)) for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_removed_count_matches_percentile_threshold():
    rng = np.random.default_rng(0)
    for n in (16, 37, 1024):
        m = rng.random(n)
        for p in (0.5, 10, 25, 50, 75, 90, 99.5):
            # grad-cam removes the pixels at or above np.percentile(map, 100 - p)
            assert removed_count(p, n) == int((m >= np.percentile(m, 100 - p)).sum())
            assert 1 <= removed_count(p, n) <= n - 1


class Patch(nn.Module):
    """Class 0 fires on the sum of a 2×2 patch of an 8×8 image; class 1 is constant."""

    def forward(self, x):
        s = x[:, 0, 3:5, 3:5].sum((1, 2))
        return torch.stack([s - 8, torch.zeros_like(s)], 1)


def test_a_faithful_map_scores_high_and_its_reverse_low():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 3:5, 3:5] = 4.0  # clean logit 8: p(class 0) ≈ 1
    good = torch.zeros(1, 8, 8)
    good[0, 3:5, 3:5] = 1.0
    good += 0.01 * torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0))
    r = road(Patch(), x, good, noise=0)
    assert r["target"].tolist() == [0]
    assert r["morf"].max() < 0.01 and r["lerf"].min() > 0.99  # MoRF removes the patch first; LeRF never does
    assert r["combined"].item() > 0.49
    assert road(Patch(), x, -good, noise=0)["combined"].item() < -0.49


def test_ties_split_by_pixel_index():
    x = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    net = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    # a constant map: both orders remove the first pixels in raster order, so they agree exactly
    r = road(net, x, torch.ones(1, 4, 4), noise=0)
    torch.testing.assert_close(r["morf"], r["lerf"], atol=0, rtol=0)


@pytest.fixture(scope="module")
def resnet():
    import torchvision
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return torchvision.models.resnet18(num_classes=5).eval()


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 32, 32, generator=g), torch.rand(2, 32, 32, generator=g)


PEER_WARNING = "ignore:__array_wrap__:DeprecationWarning"  # the peer calls np.float32(tensor)


@pytest.mark.filterwarnings(PEER_WARNING)
def test_imputation_matches_pytorch_grad_cam():
    import pytorch_grad_cam.metrics.road as gc_road
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 3, 20, 20, generator=g)
    removed = torch.rand(2, 20, 20, generator=g) < 0.5
    peer = gc_road.NoisyLinearImputer(noise=0.0)
    theirs = torch.stack([peer(x[b], (~removed[b]).float()) for b in range(2)])  # their mask: 1 = kept
    torch.testing.assert_close(noisy_linear_impute(x, removed, noise=0), theirs, atol=1e-5, rtol=0)

    # with the default noise, the added noise has the same distribution on both sides
    torch.manual_seed(0)
    theirs_noisy = torch.stack([gc_road.NoisyLinearImputer()(x[b], (~removed[b]).float()) for b in range(2)])
    ours_noisy = noisy_linear_impute(x, removed, generator=torch.Generator().manual_seed(0))
    sel = removed[:, None].expand_as(x)
    assert torch.equal(theirs_noisy[~sel], x[~sel])
    ours_sd, theirs_sd = (ours_noisy - theirs)[sel].std().item(), (theirs_noisy - theirs)[sel].std().item()
    assert ours_sd == pytest.approx(0.01, rel=0.1) and theirs_sd == pytest.approx(0.01, rel=0.1)


@pytest.mark.filterwarnings(PEER_WARNING)
def test_road_matches_pytorch_grad_cam(resnet, batch, monkeypatch):
    import pytorch_grad_cam.metrics.road as gc_road
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    x, maps = batch
    pcts = (10, 25, 60, 90)  # deliberately not symmetric about 50
    ours = road(resnet, x, maps, percentiles=pcts, noise=0, relative=True)
    assert ours["target"].tolist() == resnet(x).argmax(1).tolist()
    targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in ours["target"]]
    cams = maps.numpy()
    # its ROAD classes build NoisyLinearImputer() with noise 0.01 from the global RNG: make it deterministic
    monkeypatch.setattr(gc_road.NoisyLinearImputer.__init__, "__defaults__", (0.0, gc_road.neighbors_weights))
    kept = [100 - p for p in pcts]  # its percentile is the share of pixels KEPT
    for i, q in enumerate(kept):
        morf = gc_road.ROADMostRelevantFirst(percentile=q)(x, cams, targets, resnet)
        lerf = gc_road.ROADLeastRelevantFirst(percentile=q)(x, cams, targets, resnet)
        np.testing.assert_allclose(ours["morf"][:, i].numpy(), morf, atol=1e-5, rtol=0)
        np.testing.assert_allclose(ours["lerf"][:, i].numpy(), lerf, atol=1e-5, rtol=0)
    morf_mean = gc_road.ROADMostRelevantFirstAverage(percentiles=kept)(x, cams, targets, resnet)
    np.testing.assert_allclose(ours["morf_mean"].numpy(), morf_mean, atol=1e-5, rtol=0)
    combined = gc_road.ROADCombined(percentiles=kept)(x, cams, targets, resnet)
    np.testing.assert_allclose(ours["combined"].numpy(), combined, atol=1e-5, rtol=0)
    # the curves move well beyond the tolerance, so the agreement is not vacuous
    assert ours["morf"].abs().max() > 0.02 and ours["lerf"].abs().max() > 0.02


@pytest.mark.filterwarnings(PEER_WARNING)
def test_road_with_default_noise_matches_pytorch_grad_cam(resnet, batch):
    import pytorch_grad_cam.metrics.road as gc_road
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    x, maps = batch
    pcts = (20, 50, 80)
    ours = road(resnet, x, maps, percentiles=pcts, relative=True)  # noise 0.01, seed 0
    exact = road(resnet, x, maps, percentiles=pcts, noise=0, relative=True)
    targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in ours["target"]]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        combined = gc_road.ROADCombined(percentiles=[100 - p for p in pcts])(x, maps.numpy(), targets, resnet)
    # the values are a few 1e-3, so a tolerance must be well below that for an agreement to mean anything: the
    # noise moves these means by ~1e-4 from the noiseless ones (9e-5 here), and the peer, seeded alike, draws
    # the same noise (1.7e-6 apart here)
    assert not torch.equal(ours["combined"], exact["combined"])
    assert exact["combined"].abs().min() > 2e-3
    np.testing.assert_allclose(ours["combined"].numpy(), exact["combined"].numpy(), atol=4e-4, rtol=0)
    np.testing.assert_allclose(ours["combined"].numpy(), combined, atol=2e-5, rtol=0)


def test_views_keys_and_batching(resnet, batch):
    x, maps = batch
    kw = dict(percentiles=(30, 70), target=SoftmaxTarget([1, 2]))
    r = road(resnet, x, maps, batch_size=3, **kw)
    assert set(r) == {"percentiles", "clean", "morf", "lerf", "morf_mean", "lerf_mean", "combined", "target"}
    assert r["target"].tolist() == [1, 2] and tuple(r["morf"].shape) == (2, 2)
    assert ((r["morf"] >= 0) & (r["morf"] <= 1)).all()
    torch.testing.assert_close(r["clean"], resnet(x).softmax(1)[[0, 1], [1, 2]])
    # the same noise reaches each masked image whatever the batch size
    one = road(resnet, x, maps, batch_size=1, **kw)
    torch.testing.assert_close(one["morf"], r["morf"], atol=1e-6, rtol=0)
    torch.testing.assert_close(one["lerf"], r["lerf"], atol=1e-6, rtol=0)
    # an image's values do not depend on the other images of its batch (the noise is shared)
    alone = road(resnet, x[1:], maps[1:], percentiles=(30, 70), target=SoftmaxTarget([2]))
    torch.testing.assert_close(alone["combined"], r["combined"][1:], atol=1e-6, rtol=0)
    # MoRF draws its noise first, so it does not depend on whether LeRF is computed
    only = road(resnet, x, maps, order="morf", **kw)
    assert set(only) == {"percentiles", "clean", "morf", "morf_mean", "target"}
    torch.testing.assert_close(only["morf"], r["morf"], atol=1e-6, rtol=0)
    rel = road(resnet, x, maps, relative=True, **kw)
    torch.testing.assert_close(rel["morf"], r["morf"] - r["clean"][:, None])
    torch.testing.assert_close(rel["lerf_mean"], r["lerf_mean"] - r["clean"])
    torch.testing.assert_close(rel["combined"], r["combined"])
    torch.testing.assert_close(r["combined"], (r["lerf_mean"] - r["morf_mean"]) / 2)


def tiny():
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 3))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=torch.randn(3, 4, 4)), "B×C×H×W"),
        (dict(x=torch.zeros(1, 3, 4, 4, dtype=torch.long)), "float"),
        (dict(maps=torch.rand(1, 4, 5)), "maps must be B×H×W"),
        (dict(maps=torch.rand(1, 1, 4, 4)), r"maps\[:, 0\]"),
        (dict(maps=torch.full((1, 4, 4), float("nan"))), "NaN"),
        (dict(percentiles=(0, 50)), "strictly between 0 and 100"),
        (dict(percentiles=(50, 100)), "strictly between 0 and 100"),
        (dict(percentiles=()), "empty"),
        (dict(percentiles="50"), "sequence"),
        (dict(order="forward"), "unknown order"),
        (dict(noise=-0.1), "noise must be"),
        (dict(noise=float("inf")), "noise must be"),
        (dict(batch_size=0), "batch_size"),
        (dict(seed=1.5), "seed"),
    ],
)
def test_road_rejects_bad_input(kwargs, match):
    args = dict(model=tiny(), x=torch.randn(1, 3, 4, 4), maps=torch.rand(1, 4, 4)) | kwargs
    with pytest.raises(InputError, match=match):
        road(**args)


def test_impute_rejects_bad_input():
    x = torch.randn(1, 3, 4, 4)
    with pytest.raises(InputError, match="B×H×W bool"):
        noisy_linear_impute(x, torch.zeros(1, 4, 5, dtype=torch.bool))
    with pytest.raises(InputError, match="removed.bool"):
        noisy_linear_impute(x, torch.zeros(1, 4, 4))
    with pytest.raises(InputError, match="every pixel removed"):
        noisy_linear_impute(x, torch.ones(1, 4, 4, dtype=torch.bool))
    with pytest.raises(InputError, match="noise must be"):
        noisy_linear_impute(x, torch.zeros(1, 4, 4, dtype=torch.bool), noise=-1)
