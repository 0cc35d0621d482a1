"""Targets: class ids, multi-label and binary models, probabilities, callables, model outputs."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

import cameras
import cameras.metrics
from cameras import ClassTarget, InputError, OutputTarget, SigmoidTarget, SoftmaxTarget
from cameras.targets import as_target, bind_target, model_logits

from .conftest import TinyNet

METHODS = {
    "cameras": {"scales": [32, 48], "layer": "features"},
    "gradcam": {"layer": "features"},
    "gradient": {},
    "normgrad": {"layer": "features"},
    "rise": {"n_masks": 24, "batch_size": 8},
    "extremal": {"iterations": 3},
}


@dataclass
class FakeModelOutput(dict):
    """Stands for Hugging Face's ModelOutput: a mapping with a ``logits`` attribute and key."""

    logits: torch.Tensor = None

    def __post_init__(self):
        self["logits"] = self.logits


class Wrapped(nn.Module):
    """TinyNet whose forward returns another output type around the same logits."""

    def __init__(self, kind):
        super().__init__()
        self.net, self.kind = TinyNet(), kind
        self.features = self.net.features

    def forward(self, x):
        y = self.net(x)
        return {"tuple": lambda: (y, y.detach() * 0), "list": lambda: [y], "dict": lambda: {"logits": y, "aux": 1},
                "hf": lambda: FakeModelOutput(logits=y)}[self.kind]()


def test_model_logits_adapters():
    y = torch.randn(2, 3)
    assert model_logits(y) is y
    assert model_logits((y, None)) is y and model_logits([y]) is y
    assert model_logits({"logits": y}) is y and model_logits(FakeModelOutput(logits=y)) is y
    with pytest.raises(InputError, match="without 'logits'"):
        model_logits({"out": y})
    with pytest.raises(InputError, match="cannot find class scores"):
        model_logits("text")


@pytest.mark.parametrize("kind", ["tuple", "list", "dict", "hf"])
@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_reads_other_output_types(kind, name):
    x = torch.randn(2, 3, 32, 40)
    plain = cameras.build_method(name, TinyNet(), **METHODS[name])(x, target=[1, 3])
    other = cameras.build_method(name, Wrapped(kind), **METHODS[name])(x, target=[1, 3])
    assert torch.allclose(plain.maps, other.maps, atol=1e-6)
    assert torch.allclose(plain.probs, other.probs) and other.targets.tolist() == [1, 3]
    assert torch.allclose(plain.logits, other.logits)


@pytest.mark.parametrize("name", list(METHODS))
def test_class_target_object_equals_ints(name):
    x = torch.randn(2, 3, 32, 40)
    m = cameras.build_method(name, TinyNet(), **METHODS[name])
    a, b = m(x, target=[1, 3]), m(x, target=ClassTarget([1, 3]))
    assert torch.equal(a.maps, b.maps) and torch.equal(a.targets, b.targets) and torch.equal(a.probs, b.probs)
    c = m(x, target=ClassTarget(2))  # one id for the whole batch
    assert c.targets.tolist() == [2, 2]


def test_probabilities_per_target_kind():
    net = TinyNet()
    x = torch.randn(2, 3, 32, 40)
    logits = net(x).detach()
    gc = cameras.GradCAM(net, layer="features")
    assert torch.allclose(gc(x, target=1).probs, logits.softmax(1)[:, 1])
    assert torch.allclose(gc(x, target=SigmoidTarget(1)).probs, torch.sigmoid(logits[:, 1]))
    assert torch.allclose(gc(x, target=SigmoidTarget(1, negative=True)).probs, 1 - torch.sigmoid(logits[:, 1]))
    assert torch.allclose(gc(x, target=SoftmaxTarget(1)).probs, logits.softmax(1)[:, 1])
    res = gc(x, target=lambda out: out[:, 0] - out[:, 1])
    assert torch.allclose(res.probs, logits[:, 0] - logits[:, 1], atol=1e-6)
    assert res.targets.tolist() == [-1, -1] and isinstance(res.target, OutputTarget)


def gradient_of(net, x, score):
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(score(net(xg)).sum(), xg)
    return cameras.normalize_maps(g.abs().amax(1))


@pytest.mark.parametrize("target, score", [
    (SoftmaxTarget(2), lambda out: out.softmax(1)[:, 2]),
    (SigmoidTarget(2, negative=True), lambda out: -out[:, 2]),
    (OutputTarget(lambda out: out[:, 0] - out[:, 4]), lambda out: out[:, 0] - out[:, 4]),
])
def test_gradient_differentiates_the_target_score(target, score):
    net, x = TinyNet(), torch.randn(2, 3, 24, 24)
    got = cameras.Gradient(net)(x, target=target).maps
    assert torch.allclose(got, gradient_of(net, x, score), atol=1e-6)


def test_negative_sigmoid_flips_gradcam_by_hand():
    """Grad-CAM of the negated logit is ReLU(−Σ α_k A_k): the other side of the decision."""
    net, x = TinyNet(), torch.randn(1, 3, 24, 24)
    a = net.features(x).detach()
    fc_w = net.fc.weight.detach()  # GAP + linear: ∂y_c/∂A_k = w_ck / (h·w) at every location
    alpha = -fc_w[2] / a[0, 0].numel()
    # the ReLU after the layer masks the gradient where A ≤ 0; Grad-CAM averages the masked gradient
    g = (alpha.view(-1, 1, 1) * (a[0] > 0)).mean((1, 2))
    low = torch.relu((g.view(-1, 1, 1) * a[0]).sum(0))
    want = cameras.normalize_maps(cameras.resize_maps(low[None], (24, 24)))
    got = cameras.GradCAM(net, layer="features")(x, target=SigmoidTarget(2, negative=True))
    assert torch.allclose(got.maps, want, atol=1e-5)
    assert torch.allclose(got.extras["low_res"][0], low, atol=1e-6)


class Binary(nn.Module):
    """A B×1 binary classifier (a single logit)."""

    def __init__(self):
        super().__init__()
        self.net = TinyNet(classes=1, seed=3)
        self.features = self.net.features

    def forward(self, x):
        return self.net(x)


def test_binary_model_both_sides_with_cameras():
    net, x = Binary(), torch.randn(1, 3, 32, 32)
    logit = float(net(x).detach())
    cam = cameras.CAMERAS(net, layer="features", scales=[32, 48, 64])
    pos = cam(x, target=SigmoidTarget())
    neg = cam(x, target=SigmoidTarget(negative=True))
    assert pos.targets.tolist() == [0] and abs(float(pos.probs) - 1 / (1 + np.exp(-logit))) < 1e-6
    assert abs(float(neg.probs) - (1 - float(pos.probs))) < 1e-6
    # non-class targets keep every scale, and say why
    assert pos.kept_scales == [[32, 48, 64]] and pos.extras["scale_rule"] == "all (non-class target)"
    # the two sides are explained by different evidence (the ReLU after the fusion keeps opposite signs)
    assert float((pos.maps - neg.maps).abs().max()) > 0.1


def test_multilabel_model_one_map_per_label():
    net, x = TinyNet(classes=4, seed=5), torch.randn(1, 3, 32, 32)
    cam = cameras.CAMERAS(net, layer="features", scales=[32, 48])
    maps = [cam(x, target=SigmoidTarget(k)).maps for k in range(4)]
    for k in range(4):  # the sigmoid logit's gradient is the class logit's: same maps as the class ids
        assert torch.allclose(maps[k], cam(x, target=k).maps, atol=1e-6)
    assert float((maps[0] - maps[1]).abs().max()) > 1e-3


def test_cameras_sub_batches_keep_target_objects():
    net, x = TinyNet(), torch.randn(3, 3, 32, 32)
    t = SigmoidTarget([1, 4, 2], negative=True)
    whole = cameras.CAMERAS(net, layer="features", scales=[32, 48], batch_pixels=None)(x, target=t)
    split = cameras.CAMERAS(net, layer="features", scales=[32, 48], batch_pixels=32 * 48)(x, target=t)
    assert torch.allclose(whole.maps, split.maps, atol=1e-6) and split.targets.tolist() == [1, 4, 2]
    f = OutputTarget(lambda out: out[:, 1] - out[:, 0])
    a = cameras.CAMERAS(net, layer="features", scales=[32, 48], batch_pixels=None)(x, target=f)
    b = cameras.CAMERAS(net, layer="features", scales=[32, 48], batch_pixels=32 * 48)(x, target=f)
    assert torch.allclose(a.maps, b.maps, atol=1e-6)


def test_rise_reads_the_target_probability():
    net, x = TinyNet(), torch.randn(1, 3, 24, 24)
    rise = cameras.RISE(net, n_masks=16, batch_size=8)
    a, b = rise(x, target=3), rise(x, target=SoftmaxTarget(3))
    assert torch.allclose(a.extras["raw"], b.extras["raw"], atol=1e-7)  # both read the softmax probability
    c = rise(x, target=SigmoidTarget(3))
    masks = cameras.methods.rise.rise_masks(
        *cameras.methods.rise.rise_grids(16, 8, 0.1, (24, 24), torch.Generator().manual_seed(0)), (24, 24))
    with torch.no_grad():
        p = torch.sigmoid(net(x * masks)[:, 3])
    want = (p.view(-1, 1, 1) * masks[:, 0]).sum(0) / (16 * 0.1)
    assert torch.allclose(c.extras["raw"][0], want, atol=1e-6)


def test_bad_targets_are_refused():
    net, x = TinyNet(), torch.randn(2, 3, 24, 24)
    gc = cameras.GradCAM(net, layer="features")
    with pytest.raises(InputError, match="one score per image"):
        gc(x, target=lambda out: out.sum())
    with pytest.raises(InputError, match="out of range"):
        gc(x, target=SigmoidTarget(7))
    with pytest.raises(InputError, match="got 3 targets for a batch of 2"):
        gc(x, target=SoftmaxTarget([1, 2, 3]))
    with pytest.raises(InputError, match="not a bool"):
        as_target(True, 2, torch.device("cpu"))
    with pytest.raises(InputError, match="must hold integer"):
        gc(x, target=torch.tensor([0.5, 1.0]))


def test_bind_target_resolves_the_top1():
    out = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    assert bind_target(None, out).ids.tolist() == [1, 0]
    assert SigmoidTarget().bind(torch.zeros(2, 1)).ids.tolist() == [0, 0]


def test_metrics_and_attacks_take_targets():
    net = TinyNet()
    x01 = torch.rand(2, 3, 24, 24)
    maps = torch.rand(2, 24, 24)
    ident = lambda t: t  # noqa: E731
    rp, rm = cameras.metrics.map_density(net, x01, maps, [1, 2], ident)
    rp2, rm2 = cameras.metrics.map_density(net, x01, maps, ClassTarget([1, 2]), ident)
    assert torch.equal(rp, rp2) and torch.equal(rm, rm2)
    rs, _ = cameras.metrics.map_density(net, x01, maps, SigmoidTarget([1, 2]), ident)
    with torch.no_grad():
        want = torch.sigmoid(net(x01 * maps[:, None])[[0, 1], [1, 2]]) / maps.flatten(1).mean(1)
    assert torch.allclose(rs, want, atol=1e-6)
    a = cameras.metrics.insertion_deletion(net, x01, maps, step=64, target=torch.tensor([1, 2]))
    b = cameras.metrics.insertion_deletion(net, x01, maps, step=64, target=SoftmaxTarget([1, 2]))
    assert torch.equal(a["deletion"], b["deletion"]) and torch.equal(a["insertion"], b["insertion"])
    from cameras.attacks import pgd

    r = pgd(net, x01, target=SigmoidTarget(1), eps=0.5, alpha=0.05, steps=40, threshold=0.95)
    with torch.no_grad():
        before, after = torch.sigmoid(net(x01)[:, 1]), torch.sigmoid(net(r.adversarial)[:, 1])
    assert (after > before).all() and torch.allclose(r.target_prob, after, atol=1e-6)
    assert r.targets.tolist() == [1, 1]


def test_old_insertion_blur_is_kept():
    """Insertion starts from the same 11×11, σ = 5 blur as before (replicate borders)."""
    import torch.nn.functional as F

    from cameras.core.ops import gaussian_blur

    x = torch.rand(2, 3, 17, 23)
    t = torch.arange(-5, 6, dtype=x.dtype)
    k = torch.exp(-(t**2) / 50.0)
    k = k / k.sum()
    y = F.conv2d(F.pad(x, (5, 5, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    want = F.conv2d(F.pad(y, (0, 0, 5, 5), mode="replicate"), k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    assert torch.equal(gaussian_blur(x, 5.0, radius=5), want)


def test_explain_and_evaluate_with_sigmoid_targets(embedded, sample_dir, tmp_path):
    import json

    from click.testing import CliRunner

    from cameras.cli import main

    from .conftest import make_imagenet

    img = sample_dir / "coffee.png"
    r = CliRunner().invoke(main, ["explain", str(img), "--method", "gradcam", "--target-kind", "sigmoid",
                                  "--target", "espresso", "--out", str(tmp_path / "e"), "--quiet"])
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp_path / "e" / "coffee.json").read_text())
    x = embedded.prepare(cameras.load_image(img))
    with torch.no_grad():
        z = float(embedded.model(x)[0, 967])
    (e,) = rec["explanations"]
    assert e["target"] == 967 and e["target_kind"] == "sigmoid logit"
    assert abs(e["probability"] - 1 / (1 + np.exp(-z))) < 1e-5
    assert rec["parameters"]["target_kind"] == "sigmoid"
    root = make_imagenet(tmp_path / "inet", n=1)
    args = ["evaluate", "--data", str(root), "--format", "imagenet", "--methods", "gradcam", "--out",
            str(tmp_path / "o"), "--quiet"]
    assert CliRunner().invoke(main, [*args, "--target-kind", "sigmoid"]).exit_code == 0
    r = CliRunner().invoke(main, args)
    assert r.exit_code != 0 and "target_kind: 'sigmoid' before, 'class' now" in r.output
