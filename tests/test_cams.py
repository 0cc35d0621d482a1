"""Grad-CAM++, XGrad-CAM, LayerCAM, HiResCAM, Score-CAM, MultiScale and Smooth: by hand, by definition, and
against pytorch-grad-cam."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from skimage import data
from torch import nn

import cameras
from cameras import InputError
from cameras.methods import GradCAMPlusPlus, HiResCAM, LayerCAM, MultiScale, ScoreCAM, Smooth, XGradCAM

from .conftest import TinyNet
from .reference import reference_cameras


def pearson(a, b):
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).eval()


class FlatHead(nn.Module):
    """8×8 average pooling 'layer' then flatten + linear: the gradient at the layer is the linear weights."""

    def __init__(self, weight):
        super().__init__()
        self.layer = nn.AvgPool2d(8)
        self.fc = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        self.fc.weight.data = weight

    def forward(self, x):
        return self.fc(self.layer(x).flatten(1))


def blocks(a):
    """An input whose 8×8 average pooling is ``a``."""
    return a.repeat_interleave(8, 2).repeat_interleave(8, 3)


def test_local_cams_by_hand():
    # A: 2 channels on a 1×2 grid; the score's gradient G is the linear weights of class 0
    a = blocks(torch.tensor([[[[1.0, 2.0]], [[3.0, -1.0]]]]))
    g = torch.tensor([[2.0, -1.0, 1.0, 3.0], [0.0, 0.0, 0.0, 0.0]])  # G = [[2, -1], [1, 3]]
    net = FlatHead(g)
    hires = HiResCAM(net, layer="layer")(a, target=0).extras["low_res"]
    # Σ_k G⊙A: (2·1 + 1·3, −1·2 + 3·−1) = (5, −5) → ReLU (5, 0)
    assert hires.tolist() == [[[5.0, 0.0]]]
    layer = LayerCAM(net, layer="layer")(a, target=0).extras["low_res"]
    # Σ_k ReLU(G)⊙A: (2·1 + 1·3, 0·2 + 3·−1) = (5, −3) → (5, 0)
    assert layer.tolist() == [[[5.0, 0.0]]]
    xg = XGradCAM(net, layer="layer")(a, target=0).extras["low_res"]
    # w_0 = (1·2 + 2·−1)/3 = 0, w_1 = (3·1 + −1·3)/2 = 0 → all zero
    assert xg.abs().max().item() == 0.0
    # Grad-CAM++: ΣA = (3, 2); α = g²/(2g² + ΣA·g³)
    al = [[4 / (8 + 3 * 8), 1 / (2 + 3 * -1)], [1 / (2 + 2 * 1), 9 / (18 + 2 * 27)]]
    w0 = al[0][0] * 2 + al[0][1] * 0
    w1 = al[1][0] * 1 + al[1][1] * 3
    expect = torch.relu(torch.tensor([w0 * 1 + w1 * 3, w0 * 2 + w1 * -1]))
    pp = GradCAMPlusPlus(net, layer="layer")(a, target=0).extras["low_res"][0, 0]
    assert torch.allclose(pp, expect, atol=1e-6)


def test_gradcampp_zero_denominator_gives_zero_weight():
    net = FlatHead(torch.tensor([[0.0, 0.0, 1.0, 1.0]]))  # channel 0 has zero gradient everywhere
    out = GradCAMPlusPlus(net, layer="layer")(blocks(torch.tensor([[[[5.0, 5.0]], [[1.0, 2.0]]]])), target=0)
    assert torch.isfinite(out.extras["low_res"]).all()
    # w_0 = 0; w_1 = Σ_ij α·ReLU(1) over 2 locations with α = 1/(2 + 3·1) = 0.2, so 0.4 → map 0.4·(1, 2)
    assert torch.allclose(out.extras["low_res"], torch.tensor([[[0.4, 0.8]]]))


def reference_gradcampp(net, layer, x, t):
    """Grad-CAM++ by the paper: derivatives of Y = exp(S), with S piecewise linear in A (ReLU network)."""
    feats = {}
    mod = dict(net.named_modules())[layer]
    h = mod.register_forward_hook(lambda m, i, o: feats.__setitem__("a", o))
    out = net(x)
    h.remove()
    a = feats["a"]
    s = out[0, t]
    g, = torch.autograd.grad(s, a)
    a, ey = a.detach().double(), torch.exp(s.detach().double())
    g = g.double()
    d1, d2, d3 = ey * g, ey * g ** 2, ey * g ** 3
    den = 2 * d2 + a.sum((2, 3), keepdim=True) * d3
    alpha = torch.where(den != 0, d2 / den.where(den != 0, torch.ones_like(den)), torch.zeros_like(den))
    w = (alpha * torch.relu(d1)).sum((2, 3), keepdim=True)
    low = torch.relu((w * a).sum(1, keepdim=True))
    up = F.interpolate(low, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    return (up - up.min()) / (up.max() - up.min())


def test_gradcampp_equals_the_papers_exponential_formulation(resnet):
    x = torch.randn(1, 3, 96, 128)
    for layer in ("layer3", "layer4"):
        ours = GradCAMPlusPlus(resnet, layer=layer)(x, target=4).maps[0]
        assert (ours.double() - reference_gradcampp(resnet, layer, x, 4)).abs().max() < 1e-5


PEER = {"gradcampp": "GradCAMPlusPlus", "xgradcam": "XGradCAM", "layercam": "LayerCAM", "hirescam": "HiResCAM"}


@pytest.mark.parametrize("which", ["embedded", "resnet"])
@pytest.mark.parametrize("name", list(PEER))
def test_cams_agree_with_pytorch_grad_cam(name, which, embedded, resnet):
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if which == "embedded":
        net, layer, x, t = embedded.model, "bn2", cameras.preprocess(Image.fromarray(data.coffee())), 967
    else:
        net, layer, x, t = resnet, "layer3", torch.randn(1, 3, 96, 128), 3
    ours = cameras.build_method(name, net, layer=layer)(x, target=t).maps[0]
    with getattr(pytorch_grad_cam, PEER[name])(model=net, target_layers=[dict(net.named_modules())[layer]]) as cam:
        theirs = torch.from_numpy(cam(input_tensor=x, targets=[ClassifierOutputTarget(t)])[0])
    assert pearson(ours, theirs) >= 0.999


def peer_scorecam(net, layer, x, t, monkeypatch=None):
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if monkeypatch is not None:  # the peer's upsampling with align_corners=False, as the authors' code has it
        class Up(nn.Module):
            def __init__(self, size):
                super().__init__()
                self.size = size

            def forward(self, v):
                return F.interpolate(v, size=self.size, mode="bilinear", align_corners=False)

        monkeypatch.setattr(torch.nn, "UpsamplingBilinear2d", Up)
    with pytorch_grad_cam.ScoreCAM(model=net, target_layers=[dict(net.named_modules())[layer]]) as cam:
        cam.batch_size = 64
        return torch.from_numpy(cam(input_tensor=x, targets=[ClassifierOutputTarget(t)])[0])


@pytest.mark.parametrize("which", ["embedded", "resnet"])
def test_scorecam_agrees_with_pytorch_grad_cam(which, embedded, resnet, monkeypatch):
    if which == "embedded":  # 80 px (a 3×3 grid) keeps the 1280 masked forwards quick
        img = Image.fromarray(data.coffee()).resize((80, 80))
        net, layer, x, t = embedded.model, "bn2", cameras.preprocess(img, size=80), 967
    else:
        net, layer, x, t = resnet, "layer4", torch.randn(1, 3, 64, 96), 3
    ours = ScoreCAM(net, layer=layer, batch_size=64, progress=False)(x, target=t).maps[0]
    if which == "resnet":  # as is, the peer upsamples masks with align_corners=True: close, not equal
        assert pearson(ours, peer_scorecam(net, layer, x, t)) >= 0.99
    # with the peer's upsampling switched to align_corners=False, the maps are the same
    same = peer_scorecam(net, layer, x, t, monkeypatch)
    assert pearson(ours, same) >= 0.9999 and (ours - same).abs().max() < 1e-3


def test_scorecam_by_definition_and_options(tiny):
    x = torch.randn(2, 3, 20, 24)
    cam = ScoreCAM(tiny, layer="features", batch_size=5, progress=False)
    res = cam(x, target=[1, 3])
    with torch.no_grad():
        a = tiny.features(x)
        for b, t in enumerate([1, 3]):
            scores, probs = [], []
            for k in range(a.shape[1]):
                up = F.interpolate(a[b:b + 1, k:k + 1], size=(20, 24), mode="bilinear", align_corners=False)[0, 0]
                rng = up.max() - up.min()
                m = (up - up.min()) / rng if rng > 0 else torch.zeros_like(up)
                out = tiny(x[b:b + 1] * m)
                scores.append(out[0, t])
                probs.append(out.softmax(1)[0, t])
            for weighting, w in (("softmax", torch.stack(scores).softmax(0)), ("probability", torch.stack(probs))):
                low = torch.relu((w[:, None, None] * a[b]).sum(0))
                up = F.interpolate(low[None, None], size=(20, 24), mode="bilinear", align_corners=False)[0, 0]
                want = (up - up.min()) / (up.max() - up.min())
                got = res if weighting == "softmax" else \
                    ScoreCAM(tiny, layer="features", weighting="probability", progress=False)(x, target=[1, 3])
                assert (got.maps[b] - want).abs().max() < 1e-5
    # the batch size does not change the map
    assert torch.allclose(ScoreCAM(tiny, layer="features", batch_size=64, progress=False)(x, target=[1, 3]).maps,
                          res.maps, atol=1e-6)
    with pytest.raises(InputError, match="weighting"):
        ScoreCAM(tiny, weighting="mean")
    with pytest.raises(InputError, match="batch_size"):
        ScoreCAM(tiny, batch_size=0)


def test_scorecam_scores_constant_channels_once():
    net = TinyNet()
    net.features[2].weight.data[0] = 0  # channel 0 of the conv is zero, so after the ReLU it is constant
    net.features[2].bias.data[0] = 0
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        act = net.act(net.features(x)).flatten(2)
    live = int((act.amax(2) != act.amin(2)).sum())
    assert live < act.shape[1]
    calls = []
    h = net.register_forward_pre_hook(lambda m, i: calls.append(i[0].shape[0]))
    res = ScoreCAM(net, layer=net.act, batch_size=100, progress=False)(x, target=0)
    h.remove()
    # one clean forward, one forward of the all-zero input, one batch of the live channels
    assert calls == [1, 1, live]
    assert torch.isfinite(res.maps).all()


def test_multiscale_hirescam_is_cameras(resnet):
    x = torch.randn(2, 3, 64, 80)
    for rule in ("all", "paper"):
        ms = MultiScale(HiResCAM(resnet), scales=[64, 96, 128], scale_rule=rule)(x)
        cam = cameras.CAMERAS(resnet, scales=[64, 96, 128], scale_rule=rule)(x)
        assert (ms.maps - cam.maps).abs().max() <= 1e-6 and ms.kept_scales == cam.kept_scales
        assert ms.method == "multiscale-hirescam"


def test_multiscale_layercam_equals_reference(tiny):
    feats = tiny.features
    x = torch.randn(2, 3, 24, 32)
    scales = [24, 36, 48]
    want, kept, targets = reference_cameras(feats, tiny.head, x, scales, weights=torch.relu)
    res = MultiScale(LayerCAM(tiny, layer="features"), scales=scales, scale_rule="paper")(x)
    assert (res.maps - want).abs().max() < 1e-5
    assert res.kept_scales == kept and res.targets.tolist() == targets
    # a given class keeps every scale
    want, _, _ = reference_cameras(feats, tiny.head, x, scales, target=[1, 2], weights=torch.relu)
    got = MultiScale(LayerCAM(tiny, layer="features"), scales=scales)(x, target=[1, 2]).maps
    assert (got - want).abs().max() < 1e-5
    # and it differs from CAMERAS (the weights are ReLU'd)
    assert (got - cameras.CAMERAS(tiny, layer="features", scales=scales)(x, target=[1, 2]).maps).abs().max() > 1e-3


def test_multiscale_refuses_pooled_weights(tiny):
    for method in (cameras.GradCAM(tiny), GradCAMPlusPlus(tiny), XGradCAM(tiny)):
        with pytest.raises(InputError, match="pooled over each scale"):
            MultiScale(method)
    for method in (ScoreCAM(tiny), cameras.Gradient(tiny)):
        with pytest.raises(InputError, match="wraps a built gradient CAM"):
            MultiScale(method)
    opts = MultiScale(LayerCAM(tiny, layer="features"), scales=[16, 24]).options
    assert opts["method"] == "layercam" and opts["layer"] == "features" and opts["scales"] == [16, 24]


def test_smooth_equals_the_average_of_noisy_copies(tiny):
    x = torch.randn(2, 3, 20, 24)
    base = cameras.GradCAM(tiny, layer="features")
    res = Smooth(base, noise=0.2, n=5, seed=3, batch_size=4)(x)
    top1 = tiny(x).argmax(1)
    eps = torch.randn((5, 3, 20, 24), generator=torch.Generator().manual_seed(3))
    span = x.flatten(1).amax(1) - x.flatten(1).amin(1)
    for b in range(2):
        copies = x[b] + eps * 0.2 * span[b]
        maps = base(copies, target=int(top1[b])).maps
        avg = maps.mean(0)
        want = (avg - avg.min()) / (avg.max() - avg.min())
        assert (res.maps[b] - want).abs().max() < 1e-5
    assert res.targets.tolist() == top1.tolist() and res.extras["views"] == 5 and res.layer == "features"
    # seeded, and independent of how copies are batched and of the other images in the batch
    assert (Smooth(base, noise=0.2, n=5, seed=3, batch_size=100)(x).maps - res.maps).abs().max() < 1e-6
    assert (Smooth(base, noise=0.2, n=5, seed=3, batch_size=4)(x[1:]).maps - res.maps[1:]).abs().max() < 1e-6
    assert (Smooth(base, noise=0.2, n=5, seed=4)(x).maps - res.maps).abs().max() > 1e-3
    # no noise: the method's own map
    assert (Smooth(base, noise=0.0, n=3)(x).maps - base(x).maps).abs().max() < 1e-6


def test_smooth_tta_maps_views_back(tiny):
    x = torch.randn(1, 3, 20, 24)
    base = cameras.GradCAM(tiny, layer="features")
    res = Smooth(base, augment="tta", tta_scales=[1.0, 1.5])(x, target=2)
    total = 0
    for flip in (False, True):
        for s in (1.0, 1.5):
            v = x if s == 1.0 else F.interpolate(x, size=(30, 36), mode="bilinear", align_corners=False)
            v = v.flip(-1) if flip else v
            m = base(v, target=2).maps
            m = m.flip(-1) if flip else m
            total = total + F.interpolate(m[:, None], size=(20, 24), mode="bilinear", align_corners=False)[:, 0]
    want = (total - total.min()) / (total.max() - total.min())
    assert (res.maps - want).abs().max() < 1e-5 and res.extras["views"] == 4
    assert res.method == "tta-gradcam"
    # a map symmetric under mirroring: TTA of a mirror-symmetric image is mirror-symmetric
    sym = torch.cat([x[..., :12], x[..., :12].flip(-1)], -1)
    m = Smooth(base, augment="tta", tta_scales=[1.0])(sym, target=2).maps
    assert (m - m.flip(-1)).abs().max() < 1e-5


def test_tta_leaves_the_class_to_the_unchanged_view_when_the_method_fixes_it_alike(tiny):
    """With a factor of 1, the gradient CAMs' own pass on the input fixes the class: six views, six forwards."""
    torch.manual_seed(2)
    x = torch.randn(2, 3, 20, 24)
    calls = []
    hook = tiny.register_forward_pre_hook(lambda m, a: calls.append(tuple(a[0].shape[-2:])))
    try:
        res = Smooth(cameras.GradCAM(tiny, layer="features"), augment="tta")(x)
        n_own = len(calls)
        calls.clear()
        cams = Smooth(cameras.CAMERAS(tiny, layer="features", scales=[20, 28], scale_rule="paper"), augment="tta")
        cams(x)  # CAMERAS's map for target=None differs from a given class's under "paper": a pass of its own first
        n_cameras = len(calls)
        calls.clear()
        Smooth(cameras.GradCAM(tiny, layer="features"), augment="tta", tta_scales=[0.9, 1.1])(x)
        n_no_unit = len(calls)
    finally:
        hook.remove()
    assert n_own == 6 and n_no_unit == 5 and n_cameras == 1 + 6 * 2
    with torch.no_grad():
        out = tiny(x)
    top1 = out.argmax(1)
    assert res.targets.tolist() == top1.tolist() and res.extras["views"] == 6
    assert torch.allclose(res.probs, out.softmax(1)[torch.arange(2), top1], atol=1e-6)
    assert torch.allclose(res.logits, out, atol=1e-5)
    # the maps and probabilities are those of the top-1 given as the target
    given = Smooth(cameras.GradCAM(tiny, layer="features"), augment="tta")(x, target=top1)
    assert (res.maps - given.maps).abs().max() < 1e-6 and res.maps.abs().max() > 0
    assert torch.equal(given.probs, res.probs)

    class NoSkip(cameras.GradCAM):  # the path with a pass of its own, as every method without the flag takes
        untargeted_is_top1 = False

    # the same results as that path: no target, class ids, a rank; a factor that rounds to the input's size
    for target, scales, hw in ((None, (0.9, 1.0, 1.1), (20, 24)), ([3, 1], (0.9, 1.0, 1.1), (20, 24)),
                               (cameras.RankTarget(1), (1.05, 1.5), (10, 10))):
        xs = torch.randn(2, 3, *hw, generator=torch.Generator().manual_seed(6))
        new = Smooth(cameras.GradCAM(tiny, layer="features"), augment="tta", tta_scales=scales)(xs, target=target)
        old = Smooth(NoSkip(tiny, layer="features"), augment="tta", tta_scales=scales)(xs, target=target)
        assert (new.maps - old.maps).abs().max() < 1e-6 and new.maps.abs().amax((1, 2)).min() > 0
        assert torch.equal(new.targets, old.targets) and new.extras == old.extras
        assert torch.allclose(new.probs, old.probs, atol=1e-6) and torch.allclose(new.logits, old.logits, atol=1e-5)


def test_smooth_bad_options(tiny):
    base = cameras.GradCAM(tiny)
    for kw, msg in (({"augment": "blur"}, "augment"), ({"noise": 2}, "noise"), ({"n": 0}, "n must"),
                    ({"batch_size": -1}, "batch_size"), ({"tta_scales": [0.1]}, "tta_scales")):
        with pytest.raises(InputError, match=msg):
            Smooth(base, **kw)
    with pytest.raises(InputError, match="wraps a built method"):
        Smooth(tiny)


@pytest.mark.parametrize("wrap", ["multiscale", "smooth"])
def test_wrappers_restore_state(tiny, wrap):
    from .conftest import hook_count, snapshot

    tiny.train()
    before, hooks = snapshot(tiny), hook_count(tiny)
    inner = LayerCAM(tiny, layer="features")
    method = MultiScale(inner, scales=[16, 24]) if wrap == "multiscale" else Smooth(inner, n=2)
    method(torch.randn(1, 3, 16, 16))
    after = snapshot(tiny)
    assert after[0] == before[0] and after[1] == before[1] and hook_count(tiny) == hooks
    assert all(a is None and b is None for a, b in zip(after[2], before[2]))  # no .grad left on any parameter


def test_wrapped_method_names(resnet):
    from cameras.methods import build_method, method_names, method_option_names

    assert method_names("gradcam, Multiscale-LayerCAM, smooth-gradcam, tta-scorecam") == [
        "gradcam", "multiscale-layercam", "smooth-gradcam", "tta-scorecam"]
    takes = method_option_names("multiscale-layercam")
    assert {"layer", "scales", "scale_rule", "border_pad"} <= set(takes) and "method" not in takes
    assert {"layer", "weighting", "n", "noise", "batch_size"} <= set(method_option_names("smooth-scorecam"))
    assert "augment" not in method_option_names("tta-gradcam")  # fixed by the name
    x = torch.randn(1, 3, 64, 64)
    # the options go to the wrapper and to the wrapped method, and the maps equal the classes built by hand
    named = build_method("multiscale-layercam", resnet, scales="64,96", layer="layer3", scale_rule="paper")
    by_hand = MultiScale(LayerCAM(resnet, layer="layer3"), scales=[64, 96], scale_rule="paper")
    assert named.name == "multiscale-layercam" and torch.equal(named(x).maps, by_hand(x).maps)
    named = build_method("smooth-gradcam", resnet, n=3, noise=0.1, layer="layer3")
    assert torch.equal(named(x).maps, Smooth(cameras.GradCAM(resnet, layer="layer3"), n=3, noise=0.1)(x).maps)
    tta = build_method("tta-gradcam", resnet)
    assert tta(x).method == "tta-gradcam" and tta.augment == "tta"
    assert named.options["n"] == 3 and named.options["method"] == "gradcam"
    # an inner option named like a wrapper option is method_<name>; options unused by TTA leave the settings
    rise = build_method("smooth-rise", resnet, seed=2, method_seed=5, method_batch_size=8, n=2)
    assert (rise.seed, rise.method.seed, rise.method.batch_size, rise.batch_size) == (2, 5, 8, 16)
    assert rise.result_options()["method_options"] == {"n_masks": 1000, "grid": 8, "p": 0.1, "seed": 5}
    assert "method_batch_size" not in rise.result_options()  # neutral for RISE, so for the wrapper too
    assert not {"noise", "n", "seed"} & set(build_method("tta-gradcam", resnet).result_options())
    for bad, msg in (("multiscale-gradcam", "per-location weights"), ("smooth-nothing", "unknown method"),
                     ("smooth-multiscale-layercam", "nests wrappers")):
        with pytest.raises(InputError, match=msg):
            build_method(bad, resnet)
    with pytest.raises(InputError, match="has no option 'foo'"):
        build_method("smooth-gradcam", resnet, foo=1)


def test_wrapped_methods_from_the_command_line(tmp_path, sample_dir):
    import json

    from click.testing import CliRunner

    from cameras.cli import main

    img = str(sample_dir / "coffee.png")
    out = tmp_path / "e"
    r = CliRunner().invoke(main, ["explain", img, "--method", "multiscale-layercam", "--scales", "224,288",
                                  "--scale-rule", "paper", "--out", str(out), "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "coffee.json").read_text())
    assert meta["parameters"]["method_options"]["scales"] == [224, 288]
    assert meta["parameters"]["method_options"]["method"] == "layercam"
    r = CliRunner().invoke(main, ["compare", img, "--methods", "layercam,hirescam,multiscale-hirescam,cameras",
                                  "--set", "multiscale-hirescam.scales=[224, 288]",
                                  "--set", "cameras.scales=[224, 288]",
                                  "--out", str(tmp_path / "c.png")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    maps = {m: np.load(next(tmp_path.glob(f"c.*.{m}.npy"))) for m in ("hirescam", "multiscale-hirescam", "cameras")}
    assert np.abs(maps["multiscale-hirescam"] - maps["cameras"]).max() < 1e-6
    r = CliRunner().invoke(main, ["methods"])
    assert "scorecam" in r.output and "multiscale-layercam" in r.output
