"""Gradient, Grad-CAM, NormGrad, RISE and Extremal Perturbation: exact values and behaviour."""

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import cameras
from cameras import InputError
from cameras.methods.extremal import SmoothMask

from .conftest import TinyNet, hook_count, snapshot

FAST = {
    "cameras": {"scales": [32, 48]},
    "gradcam": {},
    "gradient": {},
    "normgrad": {},
    "rise": {"n_masks": 40, "batch_size": 16},
    "extremal": {"iterations": 4},
    "gradcampp": {},
    "xgradcam": {},
    "layercam": {},
    "hirescam": {},
    "scorecam": {"batch_size": 4, "progress": False},
}


def build(name, net, **extra):
    opts = dict(FAST[name], **extra)
    if cameras.methods.method_class(name).uses_layer:
        opts.setdefault("layer", "features")
    return cameras.get_method(name, net, **opts)


@pytest.mark.parametrize("name", list(FAST))
def test_every_method_batch_nonsquare_state(name):
    net = TinyNet().train()
    net.fc.bias.grad = torch.ones(5)
    before = snapshot(net)
    x = torch.randn(3, 3, 32, 44)
    m = build(name, net)
    res = m(x)
    assert res.maps.shape == (3, 32, 44) and res.maps.dtype == torch.float32
    assert torch.isfinite(res.maps).all() and res.maps.min() >= 0 and res.maps.max() <= 1
    assert res.targets.shape == (3,) and res.probs.shape == (3,) and res.method == name
    with torch.no_grad():
        want = net.eval()(x)
    net.train()
    assert res.logits.shape == (3, 5) and (res.logits - want).abs().max() < 1e-5  # its own forward's logits
    assert torch.allclose(res.probs, want.softmax(1).gather(1, res.targets[:, None])[:, 0], atol=1e-6)
    after = snapshot(net)
    assert before[0] == after[0] and before[1] == after[1]
    assert all(g is None for g in after[2][:-1]) and torch.equal(after[2][-1], torch.ones(5))
    assert hook_count(net) == 0
    # one image at a time gives the same maps as the batch (RISE: same seed ⇒ same masks)
    one = m(x[1:2], target=res.targets[1:2])
    if name != "extremal":  # extremal's optimisation is per image but batch-independent too
        assert (one.maps[0] - res.maps[1]).abs().max() < 1e-4
    with torch.no_grad():
        assert torch.isfinite(m(torch.zeros(1, 3, 32, 32)).maps).all()  # blank image, no NaN


@pytest.mark.parametrize("name", list(FAST))
def test_every_method_state_after_exception(name):
    class Boom(TinyNet):
        def forward(self, x):
            super().forward(x)
            raise RuntimeError("boom")

    net = Boom().train()
    before = snapshot(net)
    with pytest.raises(RuntimeError, match="boom"):
        build(name, net)(torch.randn(1, 3, 32, 32), target=0)
    after = snapshot(net)
    assert before[:2] == after[:2] and all(g is None for g in after[2]) and hook_count(net) == 0


def test_bad_options():
    net = TinyNet()
    with pytest.raises(InputError, match="n_masks"):
        cameras.RISE(net, n_masks=-1)
    with pytest.raises(InputError, match=r"p must lie in \(0, 1\]"):
        cameras.RISE(net, p=0)
    with pytest.raises(InputError, match=r"area must lie in \(0, 1\)"):
        cameras.ExtremalPerturbation(net, area=1.5)
    with pytest.raises(InputError, match="iterations"):
        cameras.ExtremalPerturbation(net, iterations=0)
    with pytest.raises(InputError, match="step must be a positive integer, got 7.5"):  # was cut to 7
        cameras.ExtremalPerturbation(net, step=7.5)
    with pytest.raises(InputError, match="lambda_start must be positive"):  # a negative one lifted the area term
        cameras.ExtremalPerturbation(net, lambda_start=-1.0)
    with pytest.raises(InputError, match="lambda_growth must be >= 1"):
        cameras.ExtremalPerturbation(net, lambda_growth=0.5)
    with pytest.raises(InputError, match="levels must be an integer >= 2"):
        cameras.ExtremalPerturbation(net, levels=1)
    with pytest.raises(InputError, match=r"init must lie in \[0, 1\]"):
        cameras.ExtremalPerturbation(net, init=2)
    with pytest.raises(InputError, match="unknown method 'gradcom'. Did you mean gradcam"):
        cameras.get_method("gradcom", net)
    with pytest.raises(InputError, match="empty"):
        cameras.NormGrad(net, layer=[])
    # every count refuses a bool (True is an int to Python) and a fraction, with the same message
    for make in (lambda v: cameras.RISE(net, n_masks=v), lambda v: cameras.RISE(net, grid=v),
                 lambda v: cameras.ExtremalPerturbation(net, iterations=v),
                 lambda v: cameras.Smooth(cameras.Gradient(net), n=v), lambda v: cameras.RISE(net, batch_size=v)):
        for bad in (True, 2.5):
            with pytest.raises(InputError, match="must be a positive integer, got"):
                make(bad)
    with pytest.raises(InputError, match="steps must be a positive integer, got True"):
        cameras.scale_schedule(True, 1000)


def test_gradient_equals_autograd():
    net = TinyNet()
    x = torch.randn(2, 3, 20, 24)
    res = cameras.Gradient(net)(x, target=[1, 3])
    xg = x.clone().requires_grad_(True)
    out = net(xg)
    (g,) = torch.autograd.grad(out[0, 1] + out[1, 3], xg)
    want = g.abs().amax(1)
    assert torch.allclose(res.extras["raw"], want, atol=1e-7)
    lo, hi = want.flatten(1).min(1).values, want.flatten(1).max(1).values
    assert torch.allclose(res.maps, (want - lo[:, None, None]) / (hi - lo)[:, None, None], atol=1e-6)


def _split_grads(net, x, target):
    a = net.features(x).detach().requires_grad_(True)
    out = net.head(a)
    (g,) = torch.autograd.grad(out.gather(1, target[:, None]).sum(), a)
    return a.detach(), g


def _norm(m):
    lo = m.flatten(1).min(1).values[:, None, None]
    hi = m.flatten(1).max(1).values[:, None, None]
    return (m - lo) / (hi - lo)


def test_normgrad_by_hand():
    net = TinyNet()
    x = torch.randn(2, 3, 16, 20)
    t = torch.tensor([0, 2])
    a, g = _split_grads(net, x, t)
    up = lambda m: F.interpolate(m[:, None], size=(16, 20), mode="bilinear", align_corners=False)[:, 0]  # noqa: E731
    plain = up(a.norm(dim=1) * g.norm(dim=1))
    res = cameras.NormGrad(net, layer="features")(x, target=t)
    assert torch.allclose(res.maps, _norm(plain), atol=1e-5)
    sel = up(torch.relu(a * g).norm(dim=1))
    res = cameras.NormGrad(net, layer="features", selective=True)(x, target=t)
    assert torch.allclose(res.maps, _norm(sel), atol=1e-5)


def test_normgrad_combined_by_hand():
    net = TinyNet()
    x = torch.randn(1, 3, 16, 16)
    t = torch.tensor([1])
    # layer features.0 (16×16) and features (8×8), computed by splitting the net by hand
    a0 = net.features[0](x).detach().requires_grad_(True)
    a1 = net.features[2](net.features[1](a0))
    out = net.head(a1)
    g0, g1 = torch.autograd.grad(out[0, 1], [a0, a1])
    up = lambda m: F.interpolate(m[:, None], size=(16, 16), mode="bilinear", align_corners=False)[:, 0]  # noqa: E731
    m0 = _norm(up(a0.detach().norm(dim=1) * g0.norm(dim=1)))
    m1 = _norm(up(a1.detach().norm(dim=1) * g1.norm(dim=1)))
    res = cameras.NormGrad(net, layer=["features.0", "features"])(x, target=t)
    assert torch.allclose(res.maps, _norm(m0 * m1), atol=1e-5)
    assert res.layer == "features.0,features"


def test_gradcam_by_hand():
    net = TinyNet()
    x = torch.randn(2, 3, 16, 20)
    t = torch.tensor([4, 0])
    a, g = _split_grads(net, x, t)
    low = torch.relu((g.mean((2, 3), keepdim=True) * a).sum(1))
    want = _norm(F.interpolate(low[:, None], size=(16, 20), mode="bilinear", align_corners=False)[:, 0])
    res = cameras.GradCAM(net, layer="features")(x, target=t)
    assert torch.allclose(res.maps, want, atol=1e-5)


class RegionNet(nn.Module):
    """Class 0 scores the mean of the image inside one region only; class 1 is constant, at the
    level of a half-masked region, so that softmax probabilities do not saturate."""

    def __init__(self, region, scale=10.0):
        super().__init__()
        self.region = region
        self.scale = nn.Parameter(torch.tensor(float(scale)))

    def forward(self, x):
        (r0, r1), (c0, c1) = self.region
        s = x[:, :, r0:r1, c0:c1].mean((1, 2, 3)) * self.scale
        return torch.stack([s, torch.full_like(s, 0.5) * self.scale], 1)


def region_image(size, region):
    x = torch.zeros(1, 3, *size)
    (r0, r1), (c0, c1) = region
    x[:, :, r0:r1, c0:c1] = 1.0
    return x


def test_rise_peaks_in_region_and_is_seeded():
    region = ((8, 20), (20, 32))
    net = RegionNet(region)
    x = region_image((32, 40), region)
    m = cameras.RISE(net, n_masks=400, grid=4, p=0.5, batch_size=64, seed=3)
    res = m(x, target=0)
    (r0, r1), (c0, c1) = region
    inside = res.maps[0, r0:r1, c0:c1].mean()
    outside = torch.cat([res.maps[0, :r0].flatten(), res.maps[0, r1:].flatten()]).mean()
    assert inside > outside + 0.3
    peak = int(res.maps[0].argmax())
    assert r0 <= peak // 40 < r1 and c0 <= peak % 40 < c1
    again = cameras.RISE(net, n_masks=400, grid=4, p=0.5, batch_size=16, seed=3)(x, target=0)
    assert torch.equal(res.maps, again.maps) or (res.maps - again.maps).abs().max() < 1e-6
    other = cameras.RISE(net, n_masks=400, grid=4, p=0.5, seed=4)(x, target=0)
    assert (other.maps - res.maps).abs().max() > 1e-3


def test_rise_normalisation_by_n_times_p():
    class Const(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.tensor([[2.0, 0.0]]).expand(x.shape[0], 2) + 0 * self.w

    p = 0.3
    res = cameras.RISE(Const(), n_masks=2000, grid=6, p=p, batch_size=500)(torch.randn(1, 3, 24, 24), target=0)
    prob = torch.tensor([2.0, 0.0]).softmax(0)[0]
    # E[M] = p, so Σ P·M / (N·p) ≈ P everywhere
    assert abs(float(res.extras["raw"].mean()) - float(prob)) < 0.02
    assert abs(float(res.probs[0]) - float(prob)) < 1e-6


def test_smooth_mask_of_ones_is_one():
    gen = SmoothMask((40, 50))
    m = gen(torch.ones(1, *gen.grid_shape))
    # a smooth maximum over neighbours of value ≤ 1 stays just under 1
    assert m.shape == (1, 40, 50) and float(m.min()) > 0.97 and float(m.max()) <= 1
    z = gen(torch.zeros(1, *gen.grid_shape))
    assert z.abs().max() == 0


@pytest.mark.parametrize("size,step,sigma", [((13, 17), 3, 5.0), ((9, 11), 2, 2.5), ((16, 10), 4, 6.0)])
def test_smooth_mask_matches_per_pixel_definition(size, step, sigma):
    # straightforward per-pixel evaluation in float64: pixel y lies in cell c = ⌊(y+σ)/step⌋,
    # its neighbours are the grid points (c+o)·step − σ for |o| ≤ r, stored at index c+o+r
    gen = SmoothMask(size, step=step, sigma=sigma)
    r = 1 + math.ceil(sigma / step)
    torch.manual_seed(0)
    params = torch.rand(2, *gen.grid_shape, dtype=torch.float64, requires_grad=True)
    ref = torch.zeros(2, *size, dtype=torch.float64)
    rows = []
    for y in range(size[0]):
        for x in range(size[1]):
            cy, cx = math.floor((y + sigma) / step), math.floor((x + sigma) / step)
            vals = []
            for oy in range(-r, r + 1):
                for ox in range(-r, r + 1):
                    d = math.hypot(y - ((cy + oy) * step - sigma), x - ((cx + ox) * step - sigma))
                    w = math.exp(-2.0 * max(d / sigma - 0.5, 0.0) ** 2)
                    vals.append(params[:, cy + oy + r, cx + ox + r] * w)
            v = torch.stack(vals, 1)
            rows.append((y, x, (v * torch.softmax(20.0 * v, 1)).sum(1).clamp(0, 1)))
    ref = torch.stack([m for _, _, m in rows], 1).view(2, *size)
    probe = torch.rand(2, *size, dtype=torch.float64)
    (g_ref,) = torch.autograd.grad((ref * probe).sum(), params)
    # both code paths (max-shifted softmax, and the unshifted one for parameters in [0, 1])
    # in both dtypes; float64 to rounding, float32 to its precision
    for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-12)):
        for bounded in (False, True):
            p = params.detach().to(dtype).requires_grad_(True)
            got = gen(p, bounded=bounded)
            assert got.dtype == dtype and (got.double() - ref).abs().max().item() < tol
            (g_got,) = torch.autograd.grad((got * probe.to(dtype)).sum(), p)
            assert (g_got.double() - g_ref).abs().max().item() < 10 * tol * g_ref.abs().max().item()


def test_area_penalty_equals_the_sorted_definition_with_ties():
    from cameras.methods.extremal import area_penalty

    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        n = int(torch.randint(2, 60, (), generator=g))
        n_zero = int(torch.randint(0, n, (), generator=g))
        levels = int(torch.randint(1, 5, (), generator=g))
        m = (torch.rand(3, n, generator=g) * levels).round().div(levels).requires_grad_(True)  # many ties
        ref = torch.zeros(n)
        ref[n_zero:] = 1
        want = ((m.sort(dim=1, stable=True).values - ref) ** 2).mean(1)
        (g_want,) = torch.autograd.grad(want.sum(), m)
        got = area_penalty(m, n_zero)
        (g_got,) = torch.autograd.grad(got.sum(), m)
        assert torch.allclose(got, want, atol=1e-6) and torch.allclose(g_got, g_want, atol=1e-6)


def test_extremal_covers_region_with_requested_area():
    region = ((36, 60), (44, 68))
    net = RegionNet(region, scale=1000.0)  # a logit as sensitive as a real network's
    x = region_image((96, 112), region)
    (r0, r1), (c0, c1) = region
    areas = {}
    for its in (150, 300):
        res = cameras.ExtremalPerturbation(net, area=0.6, iterations=its, progress=False)(x, target=0)
        m = res.maps[0]
        assert float(m[r0:r1, c0:c1].min()) > 0.9  # the region that drives the score is kept
        areas[its] = float((m > 0.5).float().mean())
    # the mask starts at 1 everywhere and the ranking constraint pulls its area down to 0.6
    assert areas[300] < areas[150]
    assert abs(areas[300] - 0.6) < 0.1
    assert abs(float(res.extras["achieved_area"][0]) - float(m.mean())) < 1e-6


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).eval()


def pearson(a, b):
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


@pytest.mark.parametrize("which", ["embedded", "resnet"])
def test_gradcam_agrees_with_captum(which, embedded, resnet):
    from captum.attr import LayerAttribution, LayerGradCam

    if which == "embedded":
        from PIL import Image
        from skimage import data

        net, layer, x = embedded.model, "bn2", cameras.preprocess(Image.fromarray(data.chelsea()))
        t = 285
    else:
        net, layer, x, t = resnet, "layer4", torch.randn(1, 3, 96, 128), 3
    ours = cameras.GradCAM(net, layer=layer)(x, target=t).maps[0]
    mod = dict(net.named_modules())[layer]
    attr = LayerGradCam(net, mod).attribute(x, target=t, relu_attributions=True)
    theirs = LayerAttribution.interpolate(attr, tuple(x.shape[-2:]), interpolate_mode="bilinear")[0, 0]
    assert pearson(ours, theirs.detach()) >= 0.999


@pytest.mark.parametrize("which", ["embedded", "resnet"])
def test_gradcam_agrees_with_pytorch_grad_cam(which, embedded, resnet):
    from pytorch_grad_cam import GradCAM as PeerGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if which == "embedded":
        from PIL import Image
        from skimage import data

        net, layer, x, t = embedded.model, "bn2", cameras.preprocess(Image.fromarray(data.coffee())), 967
    else:
        net, layer, x, t = resnet, "layer4", torch.randn(1, 3, 96, 128), 3
    ours = cameras.GradCAM(net, layer=layer)(x, target=t).maps[0]
    mod = dict(net.named_modules())[layer]
    with PeerGradCAM(model=net, target_layers=[mod]) as cam:
        theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(t)])[0]
    assert pearson(ours, torch.from_numpy(theirs)) >= 0.999


def test_convergence_warnings():
    net = TinyNet()
    assert cameras.ExtremalPerturbation(net, iterations=50).convergence_warning().startswith(
        "extremal: 50 iterations are too few for the mask to converge")
    assert cameras.ExtremalPerturbation(net).convergence_warning() is None
    assert cameras.RISE(net, n_masks=100).convergence_warning().startswith("rise: 100 masks give a noisy map")
    assert cameras.RISE(net).convergence_warning() is None and cameras.GradCAM(net).convergence_warning() is None
