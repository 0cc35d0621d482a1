"""CAMERAS agrees with the straightforward implementation and with hand computation."""

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import cameras
from cameras.core.errors import InputError
from cameras.core.fusion import fuse_multiscale
from cameras.core.ops import interp_matrix, resize_images

from .conftest import TinyNet
from .reference import reference_cameras


def resnet_split(net):
    feats = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)

    def head(a):
        return net.fc(torch.flatten(net.avgpool(a), 1))

    return feats, head


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=20).eval()
    # make BN statistics non-trivial so that scales behave differently
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net


def test_interp_matrix_matches_interpolate():
    a = torch.randn(2, 3, 5, 7)
    R, C = interp_matrix(5, 19), interp_matrix(7, 23)
    assert torch.allclose(R @ a @ C.T, F.interpolate(a, (19, 23), mode="bilinear", align_corners=False), atol=1e-6)
    # downsampling too (a layer larger than the input)
    R, C = interp_matrix(9, 4), interp_matrix(7, 3)
    b = torch.randn(1, 2, 9, 7)
    assert torch.allclose(R @ b @ C.T, F.interpolate(b, (4, 3), mode="bilinear", align_corners=False), atol=1e-6)


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_resize_images_is_interpolate_as_matrix_products(mode):
    x = torch.randn(2, 3, 9, 13)
    for size in [(31, 17), (4, 6), (9, 13)]:  # up, down (clamped borders on both), unchanged
        want = F.interpolate(x, size, mode=mode, align_corners=False)
        assert (resize_images(x, size, mode) - want).abs().max() < 1e-5
    # bf16: bf16 products with float32 sums, within three bf16 steps (2^-8 relative) of the images' largest
    # value from the float32 resize (the cast alone is within one)
    big = torch.randn(1, 3, 40, 50) * 4
    want = F.interpolate(big, (97, 121), mode=mode, align_corners=False)
    got = resize_images(big.bfloat16(), (97, 121), mode)
    assert got.dtype == torch.bfloat16
    assert (got.float() - want).abs().max() <= 3 * 2.0 ** -8 * big.abs().max()
    assert (got.float() - want).abs().max() > 0  # rounded, so not the float32 values
    # the rounded weights still sum to 1 per row: a flat image stays flat (it darkened in stripes before)
    assert torch.equal(resize_images(torch.ones(1, 3, 224, 298).bfloat16(), (924, 1230), mode),
                       torch.ones(1, 3, 924, 1230).bfloat16())
    small = torch.rand(1, 1, 5, 7, dtype=torch.float64)  # float64 resized in float64
    want = F.interpolate(small, (11, 9), mode=mode, align_corners=False)
    with torch.inference_mode():  # matrices first built here serve a later call that records a graph
        assert (resize_images(small, (11, 9), mode) - want).abs().max() < 1e-12
    leaf = small.clone().requires_grad_(True)
    resize_images(leaf, (11, 9), mode).sum().backward()
    assert leaf.grad.shape == leaf.shape
    with pytest.raises(InputError, match="mode must be"):
        resize_images(x, (4, 4), "nearest")
    with pytest.raises(InputError, match="floating images"):
        resize_images(torch.ones(1, 1, 4, 4, dtype=torch.uint8), (8, 8), mode)


@pytest.mark.parametrize("chunk", [1, 7, 1 << 23])
def test_fusion_matches_full_stacks(chunk):
    g = torch.Generator().manual_seed(1)
    shapes = [(3, 4), (5, 6), (8, 9)]
    acts = [torch.randn(2, 11, h, w, generator=g) for h, w in shapes]
    grads = [torch.randn(2, 11, h, w, generator=g) for h, w in shapes]
    weights = torch.tensor([[1 / 3, 1 / 3, 1 / 3], [0.5, 0.0, 0.5]])
    got = fuse_multiscale(acts, grads, weights, (17, 21), chunk_elements=chunk)
    up = lambda t: F.interpolate(t, (17, 21), mode="bilinear", align_corners=False)  # noqa: E731
    abar = sum(w.view(2, 1, 1, 1) * up(a) for w, a in zip(weights.T, acts))
    gbar = sum(w.view(2, 1, 1, 1) * up(a) for w, a in zip(weights.T, grads))
    want = torch.relu((abar * gbar).sum(1))
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("target", [None, [3, 7]])
def test_matches_reference_resnet(resnet, target):
    torch.manual_seed(2)
    x = torch.randn(2, 3, 64, 80)
    scales = [64, 96, 128, 160]
    res = cameras.CAMERAS(resnet, scales=scales, scale_rule="paper")(x, target=target)
    feats, head = resnet_split(resnet)
    want, kept, tg = reference_cameras(feats, head, x, scales, None if target is None else torch.tensor(target))
    assert res.maps.shape == (2, 64, 80) and res.maps.dtype == torch.float32
    assert (res.maps - want).abs().max().item() < 1e-5
    assert res.kept_scales == kept
    assert res.targets.tolist() == tg


def flipping_input(net, scales):
    """A 1×3×64×64 input whose prediction flips at some scale (deterministic search), with
    the reference map and kept scales."""
    feats, head = resnet_split(net)
    for seed in range(50):
        torch.manual_seed(seed)
        x = torch.randn(1, 3, 64, 64)
        want, kept, _ = reference_cameras(feats, head, x, scales)
        if len(kept[0]) < len(scales):
            return x, want, kept
    raise AssertionError("no flipping case found")


def test_dropped_scale_matches_reference(resnet):
    scales = [64, 96, 128, 160]
    x, want, kept = flipping_input(resnet, scales)
    res = cameras.CAMERAS(resnet, scales=scales, scale_rule="paper")(x)
    assert res.kept_scales == kept
    assert (res.maps - want).abs().max().item() < 1e-5
    # with the target given, every scale is kept and the map differs
    res_t = cameras.CAMERAS(resnet, scales=scales)(x, target=res.targets)
    assert res_t.kept_scales == [scales]
    assert (res_t.maps - res.maps).abs().max().item() > 1e-3


def test_matches_reference_embedded(embedded):
    from PIL import Image
    from skimage import data

    x = cameras.preprocess(Image.fromarray(data.coffee()), size=160)
    net = embedded.model
    scales = [160, 224, 288]
    res = cameras.CAMERAS(net, layer="bn2", scales=scales, scale_rule="paper")(x)
    want, kept, _ = reference_cameras(net.forward_features, net.forward_head, x, scales)
    assert (res.maps - want).abs().max().item() < 1e-5
    assert res.kept_scales == kept


def test_bilinear_resample_option(resnet):
    x = torch.randn(1, 3, 64, 64)
    feats, head = resnet_split(resnet)
    res = cameras.CAMERAS(resnet, scales=[64, 100], resample="bilinear")(x, target=1)
    want, _, _ = reference_cameras(feats, head, x, [64, 100], torch.tensor([1]), resample="bilinear")
    assert (res.maps - want).abs().max().item() < 1e-5


def test_hand_computed_single_scale():
    """layer = identity on 2 channels, logits = w·GAP(A): S = ReLU(Σ_k w_ℓk x_k / HW)."""

    class Hand(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Identity()
            self.fc = nn.Linear(2, 2, bias=False)
            self.fc.weight.data = torch.tensor([[1.0, -1.0], [0.5, 2.0]])

        def forward(self, x):
            return self.fc(self.layer(x[:, :2]).mean((2, 3)))

    x = torch.rand(1, 3, 8, 10)
    res = cameras.CAMERAS(Hand(), layer="layer", scales=[8])(x, target=0)
    s = torch.relu(x[0, 0] - x[0, 1]) / 80
    want = (s - s.min()) / (s.max() - s.min())
    assert torch.allclose(res.maps[0], want, atol=1e-6)
    assert res.probs.shape == (1,)


def test_hand_computed_two_scales_average_separately():
    """Gradients of a GAP head are 1/(h_t w_t) per channel; they are averaged over scales
    separately from activations (not a mean of per-scale products)."""

    class Hand(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Identity()
            self.fc = nn.Linear(1, 1, bias=False)
            self.fc.weight.data = torch.tensor([[1.0]])

        def forward(self, x):
            return self.fc(self.layer(x[:, :1]).mean((2, 3)))

    x = torch.rand(1, 3, 8, 8) + 0.1
    res = cameras.CAMERAS(Hand(), layer="layer", scales=[8, 16])(x, target=0)
    x1 = F.interpolate(x[:, :1], size=(16, 16), mode="bicubic", align_corners=False)
    abar = (x[0, 0] + F.interpolate(x1, size=(8, 8), mode="bilinear", align_corners=False)[0, 0]) / 2
    gbar = (1 / 64 + 1 / 256) / 2
    s = torch.relu(abar * gbar)
    want = (s - s.min()) / (s.max() - s.min())
    assert torch.allclose(res.maps[0], want, atol=1e-5)


def test_batch_equals_single(resnet):
    torch.manual_seed(3)
    x = torch.randn(3, 3, 64, 72)
    m = cameras.CAMERAS(resnet, scales=[64, 96, 128])
    batch = m(x)
    for i in range(3):
        one = m(x[i : i + 1])
        assert (batch.maps[i] - one.maps[0]).abs().max().item() < 1e-5
        assert batch.kept_scales[i] == one.kept_scales[0]
        assert int(batch.targets[i]) == int(one.targets[0])


def test_per_image_targets(resnet):
    x = torch.randn(2, 3, 64, 64)
    m = cameras.CAMERAS(resnet, scales=[64, 96])
    both = m(x, target=torch.tensor([1, 2]))
    assert both.targets.tolist() == [1, 2]
    single = m(x[1:], target=2)
    assert (both.maps[1] - single.maps[0]).abs().max().item() < 1e-5
    same = m(x, target=4)
    assert same.targets.tolist() == [4, 4]


def test_steps_schedule_and_aspect():
    assert cameras.scale_schedule(5, 1000) == [224, 418, 612, 806, 1000]
    m = cameras.CAMERAS(TinyNet(), layer="features", steps=3, max_size=448)
    assert m.scales == [224, 336, 448]
    assert m.scale_sizes(100, 150) == [(100, 150), (150, 225), (200, 300)]
    assert cameras.CAMERAS(TinyNet(), layer="features").scales == list(range(224, 1000, 100))


def test_zero_map_is_zero_not_nan():
    class Zero(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Conv2d(3, 2, 1)
            nn.init.zeros_(self.layer.weight)
            nn.init.zeros_(self.layer.bias)
            self.fc = nn.Linear(2, 3)

        def forward(self, x):
            return self.fc(self.layer(x).mean((2, 3)))

    res = cameras.CAMERAS(Zero(), layer="layer", scales=[16, 24])(torch.zeros(2, 3, 16, 16))
    assert torch.isfinite(res.maps).all() and res.maps.abs().sum() == 0


def test_grid_fusion_mode_is_close_and_cheap_path(resnet):
    from cameras.core.fusion import fuse_multiscale, fuse_on_grid

    x = torch.randn(1, 3, 64, 64)
    exact = cameras.CAMERAS(resnet, scales=[64, 96, 128])(x, target=2)
    grid = cameras.CAMERAS(resnet, scales=[64, 96, 128], fusion="grid")(x, target=2)
    assert grid.extras["fusion"] == "grid" and grid.maps.shape == exact.maps.shape
    # a GAP head has spatially constant gradients: grid mode takes the exact shortcut
    assert (grid.maps - exact.maps).abs().max() < 1e-5
    a = [torch.rand(2, 3, 2, 2), torch.rand(2, 3, 4, 4)]
    const = [torch.rand(2, 3, 1, 1).expand(2, 3, 2, 2), torch.rand(2, 3, 1, 1).expand(2, 3, 4, 4)]
    w = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    assert torch.allclose(fuse_on_grid(a, const, w, (8, 8)), fuse_multiscale(a, const, w, (8, 8)), atol=1e-6)
    # by hand: resize to the largest grid, average, fuse, upsample
    a = [torch.rand(1, 3, 2, 2), torch.rand(1, 3, 4, 4)]
    g = [torch.rand(1, 3, 2, 2), torch.rand(1, 3, 4, 4)]
    up = lambda t, s: F.interpolate(t, size=s, mode="bilinear", align_corners=False)  # noqa: E731
    abar = (up(a[0], (4, 4)) + a[1]) / 2
    gbar = (up(g[0], (4, 4)) + g[1]) / 2
    want = up(torch.relu((abar * gbar).sum(1, keepdim=True)), (8, 8))[:, 0]
    assert torch.allclose(fuse_on_grid(a, g, torch.full((1, 2), 0.5), (8, 8)), want, atol=1e-6)


def test_amp_and_channels_last_options(resnet):
    x = torch.randn(1, 3, 64, 64)
    ref = cameras.CAMERAS(resnet, scales=[64, 96])(x, target=1).maps
    bf = cameras.CAMERAS(resnet, scales=[64, 96], amp="bf16", channels_last=True)(x, target=1).maps
    assert bf.dtype == torch.float32 and torch.isfinite(bf).all()
    assert torch.corrcoef(torch.stack([bf.flatten(), ref.flatten()]))[0, 1] > 0.9
    cl = cameras.CAMERAS(resnet, scales=[64, 96], channels_last=True)(x, target=1).maps
    assert (cl - ref).abs().max() < 1e-4
    with pytest.raises(cameras.InputError, match="amp"):
        cameras.CAMERAS(resnet, amp="fp8")
    with pytest.raises(cameras.InputError, match="fusion"):
        cameras.CAMERAS(resnet, fusion="fast")


def test_bench_helper_reports_ratios(capsys, monkeypatch):
    from tqdm import tqdm

    import cameras.bench
    from cameras.bench import bench_cameras, interleaved_seconds

    r = bench_cameras(TinyNet(), torch.randn(1, 3, 32, 32), target=1, layer="features", scales=[32, 48], reps=1)
    for key in ("floor", "cameras", "cameras_grid", "forward", "gradcam"):
        assert r[key] > 0
    assert r["cameras/floor"] == r["cameras"] / r["floor"] and "cameras_bf16" not in r
    assert capsys.readouterr().err == ""  # no bar by default
    # the bar counts every warm-up and timed call: 5 functions × (2 rounds + a warm-up)
    closed = []

    class Recorded(tqdm):
        def close(self):
            closed.append((self.n, self.total, self.disable))
            super().close()

    monkeypatch.setattr(cameras.bench, "tqdm", Recorded)
    bench_cameras(TinyNet(), torch.randn(1, 3, 32, 32), target=1, layer="features", scales=[32, 48], reps=2,
                  progress=True)
    assert closed[0] == (15, 15, False) and "bench batch 1" in capsys.readouterr().err  # (closed again when freed)
    ticks = []
    interleaved_seconds({"a": lambda: 1, "b": lambda: 2}, torch.device("cpu"), reps=3, warmup=0,
                        tick=lambda: ticks.append(1))
    assert len(ticks) == 6  # no warm-up: one per timing


def test_bench_measures_bf16_and_its_fidelity_on_request():
    import warnings

    import torchvision

    from cameras.bench import bench_cameras
    from cameras.cli import main

    net = torchvision.models.resnet18(num_classes=4)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the emulated-bf16 warning is the timing's to tell
        r = bench_cameras(net, x, target=1, layer="layer4", scales=[64, 96], reps=1, bf16=True)
    assert r["cameras_bf16"] > 0 and r["cameras_bf16/floor"] == r["cameras_bf16"] / r["floor"]
    low = cameras.CAMERAS(net, layer="layer4", scales=[64, 96], precision="bf16")(x, target=1).maps.flatten(1)
    ref = cameras.CAMERAS(net, layer="layer4", scales=[64, 96])(x, target=1).maps.flatten(1)
    want = min(float(torch.corrcoef(torch.stack([a.double(), b.double()]))[0, 1]) for a, b in zip(ref, low))
    assert r["bf16_pearson"] == pytest.approx(want, abs=1e-6) and 0.9 < want < 1.0
    from click.testing import CliRunner

    out = CliRunner().invoke(main, ["bench", "--model", "synthetic:cnn", "--scales", "64,96",
                                    "--reps", "1", "--bf16", "--quiet"])
    assert out.exit_code == 0, out.output
    assert "bf16 r" in out.output and len(out.output.strip().splitlines()[-1].split()) == 11


def test_constant_gradient_shortcut_is_exact():
    """GAP heads give spatially constant gradients; the shortcut must equal the general path."""
    from cameras.core import fusion

    g = torch.Generator().manual_seed(5)
    shapes = [(3, 4), (5, 6), (8, 9)]
    acts = [torch.randn(2, 7, h, w, generator=g) for h, w in shapes]
    grads = [torch.randn(2, 7, 1, 1, generator=g).expand(2, 7, h, w).contiguous() for h, w in shapes]
    weights = torch.tensor([[1 / 3, 1 / 3, 1 / 3], [0.5, 0.0, 0.5]])
    assert all(fusion._spatially_constant(t) for t in grads)
    fast = fusion.fuse_multiscale(acts, grads, weights, (17, 21))
    grads[0][0, 0, 0, 0] += 1e-3  # no longer constant: the general path runs
    assert not fusion._spatially_constant(grads[0])
    grads[0][0, 0, 0, 0] -= 1e-3
    up = lambda t: F.interpolate(t, (17, 21), mode="bilinear", align_corners=False)  # noqa: E731
    abar = sum(w.view(2, 1, 1, 1) * up(a) for w, a in zip(weights.T, acts))
    gbar = sum(w.view(2, 1, 1, 1) * up(a) for w, a in zip(weights.T, grads))
    want = torch.relu((abar * gbar).sum(1))
    assert torch.allclose(fast, want, atol=1e-5)


def test_sub_batches_give_the_whole_batch_result(resnet):
    # a batch with an image whose prediction flips at some scale, split unevenly per scale
    scales = [64, 96, 128, 160]
    flip, _, _ = flipping_input(resnet, scales)
    x = torch.cat([torch.randn(2, 3, 64, 64), flip, torch.randn(2, 3, 64, 64)])
    whole = cameras.CAMERAS(resnet, scales=scales, batch_pixels=None, scale_rule="paper")
    split = cameras.CAMERAS(resnet, scales=scales, batch_pixels=2 * 96 * 96, scale_rule="paper")
    assert [len(split.sub_batches(5, s, x.device)) for s in split.scale_sizes(64, 64)] == [2, 3, 5, 5]
    assert [sl.stop - sl.start for sl in split.sub_batches(5, (96, 96), x.device)] == [2, 2, 1]
    whole(x[:1]), split(x[:1])  # the first call also finds the batch norms to fold (one pass of one image)
    calls = []
    hook = resnet.fc.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    try:
        a, b = whole(x), split(x)
    finally:
        hook.remove()
    assert calls[:4] == [5, 5, 5, 5] and calls[4:] == [3, 2, 2, 2, 1] + [1] * 10
    assert a.kept_scales == b.kept_scales and any(len(k) < len(scales) for k in a.kept_scales)
    assert a.targets.tolist() == b.targets.tolist()
    assert (a.maps - b.maps).abs().max().item() < 1e-5
    assert torch.allclose(a.probs, b.probs, atol=1e-6) and torch.allclose(a.logits, b.logits, atol=1e-5)
    with_target = split(x, target=[1, 2, 3, 4, 5])
    assert (with_target.maps - whole(x, target=[1, 2, 3, 4, 5]).maps).abs().max().item() < 1e-5


def test_batch_pixels_defaults_and_checks(resnet):
    m = cameras.CAMERAS(resnet)
    # auto: about two 324² images per pass on a CPU, the whole batch on a GPU
    assert m.sub_batches(8, (224, 224), torch.device("cpu")) == [slice(0, 4), slice(4, 8)]
    assert len(m.sub_batches(8, (924, 924), torch.device("cpu"))) == 8
    assert m.sub_batches(8, (924, 924), torch.device("cuda")) == [slice(0, 8)]
    for bad in (0, -5, 1.5, True, "big"):
        with pytest.raises(cameras.InputError, match="batch_pixels"):
            cameras.CAMERAS(resnet, batch_pixels=bad)
    with pytest.raises(cameras.InputError, match="out of range"):
        cameras.CAMERAS(resnet, scales=[64, 96], batch_pixels=64 * 64)(torch.randn(2, 3, 64, 64), target=[1, 99])


def test_scale_rules(resnet):
    """paper: keep a scale when its top-1 is the class; top5: while the class is in its top 5; all: every scale
    (then the map equals the map of the top-1 given as the target)."""
    scales = [64, 96, 128, 160]
    x, want, kept = flipping_input(resnet, scales)
    assert cameras.CAMERAS(resnet).scale_rule == "all"  # the default, chosen by measurement
    paper = cameras.CAMERAS(resnet, scales=scales, scale_rule="paper")(x)
    assert paper.kept_scales == kept and paper.extras["scale_rule"] == "paper"
    cls = int(paper.targets[0])
    with torch.no_grad():
        top5 = [cls in resnet(F.interpolate(x, size=(s, s), mode="bicubic", align_corners=False) if s != 64 else x)
                .topk(5, 1).indices[0].tolist() for s in scales]
    got = cameras.CAMERAS(resnet, scales=scales, scale_rule="top5")(x)
    assert got.kept_scales == [[s for s, k in zip(scales, top5) if k]] and got.extras["scale_rule"] == "top5"
    assert len(got.kept_scales[0]) >= len(kept[0])  # tolerant: never fewer than the paper's rule
    every = cameras.CAMERAS(resnet, scales=scales)(x)
    assert every.kept_scales == [scales] and every.extras["scale_rule"] == "all"
    assert torch.allclose(every.maps, cameras.CAMERAS(resnet, scales=scales)(x, target=cls).maps, atol=1e-6)
    # with a given target, every rule keeps every scale
    assert cameras.CAMERAS(resnet, scales=scales, scale_rule="top5")(x, target=cls).kept_scales == [scales]
    with pytest.raises(cameras.InputError, match="scale_rule must be one of paper, top5, all"):
        cameras.CAMERAS(resnet, scale_rule="most")


@pytest.mark.parametrize("batch_pixels", [None, 64 * 64])
def test_explain_targets_share_passes_and_equal_separate_calls(resnet, batch_pixels):
    """[top-1 with the rule, the class at rank 1, a given class]: one forward pass per scale, the same maps."""
    scales = [64, 96, 128, 160]
    x, _, kept = flipping_input(resnet, scales)
    x = torch.cat([x, torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))])
    cam = cameras.CAMERAS(resnet, scales=scales, batch_pixels=batch_pixels, scale_rule="paper")
    cam(x[:1])  # the first call also finds the batch norms to fold (one pass of one image)
    calls = []
    hook = resnet.conv1.register_forward_hook(lambda *a: calls.append(1))
    try:
        many = cam.explain_targets(x, [None, cameras.RankTarget(1), 3])
        shared = len(calls)
        calls.clear()
        one = [cam(x), cam(x, target=cameras.RankTarget(1)), cam(x, target=3)]
    finally:
        hook.remove()
    assert shared * 3 == len(calls)  # a third of the forward passes
    for a, b in zip(many, one):
        assert torch.allclose(a.maps, b.maps, atol=1e-6)
        assert a.kept_scales == b.kept_scales and torch.equal(a.targets, b.targets)
        assert torch.allclose(a.probs, b.probs)
    assert many[0].kept_scales[0] == kept[0]  # the top-1 keeps the paper's rule
    with torch.no_grad():
        assert many[1].targets.tolist() == resnet(x).topk(2, 1).indices[:, 1].tolist()
    assert many[1].kept_scales == [scales, scales] and many[2].targets.tolist() == [3, 3]


def test_border_pad_is_the_reference_on_the_mirrored_input_cropped_back(resnet):
    """border_pad: reflect-pad, explain the padded input, crop to the input, renormalise; the class of
    target=None and the probabilities are those of the input as given."""
    torch.manual_seed(5)
    x = torch.randn(1, 3, 64, 80)
    scales = [64, 96, 128]
    cam = cameras.CAMERAS(resnet, scales=scales, border_pad=0.125, scale_rule="all")
    p = cam.pad_pixels(64, 80)
    assert p == 8
    with torch.no_grad():
        logits = resnet(x)
    top1 = int(logits.argmax(1))
    feats, head = resnet_split(resnet)
    padded = F.pad(x, (p, p, p, p), mode="reflect")
    want, _, _ = reference_cameras(feats, head, padded, scales, torch.tensor([top1]))
    want = want[:, p:p + 64, p:p + 80]
    want = (want - want.amin()) / (want.amax() - want.amin())
    res = cam(x)
    assert res.maps.shape == (1, 64, 80) and res.targets.tolist() == [top1]
    assert (res.maps - want).abs().max().item() < 1e-5
    assert torch.allclose(res.probs, logits.softmax(1)[0, top1:top1 + 1], atol=1e-6)
    assert res.extras["border_pad_pixels"] == 8 and res.extras["sizes"][0] == (80, 96)
    # it changes the map near the border only where zero padding mattered: not a no-op
    assert (res.maps - cameras.CAMERAS(resnet, scales=scales, scale_rule="all")(x).maps).abs().max() > 1e-3
    # the paper's rule with padding: a scale is kept where the padded image's top-1 is the input's top-1
    paper = cameras.CAMERAS(resnet, scales=scales, border_pad=0.125, scale_rule="paper")(x)
    with torch.no_grad():
        tops = [int(resnet(padded if z == 64 else F.interpolate(padded, size=size, mode="bicubic",
                                                                 align_corners=False)).argmax(1))
                for z, size in zip(scales, paper.extras["sizes"])]
    assert paper.kept_scales == [[z for z, t in zip(scales, tops) if t == top1 or z == 64]]
    assert paper.targets.tolist() == [top1] and paper.extras["scale_rule"] == "paper"
    for bad in (-0.1, 0.6, "0.1"):
        with pytest.raises(cameras.InputError, match="border_pad must be a fraction"):
            cameras.CAMERAS(resnet, border_pad=bad)
