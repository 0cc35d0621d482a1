"""The core's seams: the layer-layout hook (to_spatial), the one gradient path, the method factory."""

import pytest
import torch
import torchvision
from click.testing import CliRunner
from torch import nn

import cameras
from cameras import InputError, LayerError
from cameras.cli import main
from cameras.core.capture import LayerCapture
from cameras.core.gradients import layer_gradients

from .conftest import TinyNet


class TokenNet(nn.Module):
    """TinyNet's function with its feature map carried as tokens: a class token, then h·w patches.

    ``tokens`` outputs B×(1+h·w)×C; the head averages the ReLU of the patch tokens, exactly as
    TinyNet averages the ReLU of its B×C×h×w map, so both networks compute the same logits.
    """

    def __init__(self, net: TinyNet, layout: str = "tokens"):
        super().__init__()
        self.features, self.fc, self.layout = net.features, net.fc, layout
        self.cls = nn.Parameter(torch.randn(1, 1, net.fc.in_features))
        self.tokens = nn.Identity()
        self.grid = None

    def forward(self, x):
        f = self.features(x)
        B, C, h, w = f.shape
        self.grid = (h, w)
        if self.layout == "tokens":
            t = self.tokens(torch.cat([self.cls.expand(B, -1, -1), f.flatten(2).transpose(1, 2)], 1))
            patches = t[:, 1:]
        else:  # channels last, B×h×w×C
            patches = self.tokens(f.permute(0, 2, 3, 1)).reshape(B, h * w, C)
        return self.fc(torch.relu(patches).mean(1))

    def to_spatial(self, t):
        h, w = self.grid
        if self.layout == "tokens":
            return t[:, 1:].transpose(1, 2).reshape(t.shape[0], -1, h, w)
        return t.permute(0, 3, 1, 2)


@pytest.mark.parametrize("layout", ["tokens", "channels_last"])
@pytest.mark.parametrize("name, opts", [("cameras", {"scales": [32, 48, 64]}), ("gradcam", {}), ("normgrad", {})])
def test_to_spatial_layouts_equal_the_4d_map(layout, name, opts):
    base = TinyNet()
    twin = TokenNet(base, layout)
    x = torch.randn(2, 3, 32, 40)
    with torch.no_grad():
        assert torch.allclose(base(x), twin(x), atol=1e-6)
    want = cameras.build_method(name, base, layer="features", **opts)(x)
    got = cameras.build_method(name, twin, layer="tokens", to_spatial=twin.to_spatial, **opts)(x)
    assert torch.allclose(got.maps, want.maps, atol=1e-5)
    assert got.targets.tolist() == want.targets.tolist()
    if name == "cameras":
        assert got.kept_scales == want.kept_scales


def test_layer_gradients_through_to_spatial_by_hand():
    """Gradients go through the same rearrangement: ∂score/∂spatial equals the 4-D layer's gradient."""
    base = TinyNet()
    twin = TokenNet(base)
    x = torch.randn(1, 3, 16, 16)
    with LayerCapture(base.features, "features") as cap:
        ref = layer_gradients(base, x, [cap], None)
    with LayerCapture(twin.tokens, "tokens", twin.to_spatial) as cap:
        got = layer_gradients(twin, x, [cap], None)
    assert got.activations[0].shape == (1, 6, 8, 8)
    assert torch.allclose(got.activations[0], ref.activations[0], atol=1e-6)
    assert torch.allclose(got.gradients[0], ref.gradients[0], atol=1e-7)
    assert torch.equal(got.target.ids, ref.target.ids)


@pytest.mark.parametrize("layout", ["tokens", "channels_last"])
def test_token_and_channels_last_layers_are_read_without_to_spatial(layout):
    """A class token before h·w patch tokens, or a B×h×w×C map: read from the input's size, equal to the
    hand-written to_spatial, for square and non-square inputs."""
    twin = TokenNet(TinyNet(), layout)
    if layout == "channels_last":  # its 6 channels are fewer than the grid's sides: the model says (as timm's Swin)
        twin.output_fmt = "NHWC"
    for x in (torch.randn(2, 3, 16, 16), torch.randn(1, 3, 16, 24)):
        for name, opts in (("gradcam", {}), ("cameras", {"scales": [16, 24, 32]})):
            auto = cameras.build_method(name, twin, layer="tokens", **opts)(x, target=1)
            hand = cameras.build_method(name, twin, layer="tokens", to_spatial=twin.to_spatial, **opts)(x, target=1)
            assert torch.allclose(auto.maps, hand.maps, atol=1e-6) and auto.maps.std() > 0.01


def test_a_capture_without_recording_builds_no_graph_and_keeps_the_activation():
    conv = torch.nn.Conv2d(3, 4, 3)
    net = torch.nn.Sequential(conv, torch.nn.ReLU(inplace=True), torch.nn.Flatten(), torch.nn.Linear(4 * 36, 2))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        want = conv(x)
    with LayerCapture(conv, "0", record=False) as cap, torch.no_grad():
        out = net(x)
    assert not out.requires_grad and out.grad_fn is None  # nothing recorded above the layer
    assert not cap.activation.requires_grad and torch.equal(cap.activation, want)  # the in-place ReLU left it alone
    assert (want < 0).any()
    with LayerCapture(conv, "0") as cap, torch.no_grad():  # the default records from the layer up
        assert net(x).grad_fn is not None and cap.activation.requires_grad


def test_layouts_that_are_not_maps_are_refused_clearly():
    twin = TokenNet(TinyNet())
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(LayerError, match="pass to_spatial="):
        cameras.GradCAM(twin, layer="fc")(x)
    with pytest.raises(LayerError, match="its to_spatial function must return"):
        cameras.GradCAM(twin, layer="tokens", to_spatial=lambda t: t[:, 1:])(x)
    with pytest.raises(InputError, match="to_spatial must be a function"):
        cameras.GradCAM(twin, layer="tokens", to_spatial="tokens")


def test_build_method_checks_options_and_uses_the_bundle(embedded):
    with pytest.raises(InputError, match=r"method rise has no option 'n_mask'; valid options: n_masks, grid"):
        cameras.build_method("rise", TinyNet(), n_mask=10)
    with pytest.raises(InputError, match="unknown method 'gradcom'. Did you mean gradcam"):
        cameras.build_method("gradcom", TinyNet())
    cam = cameras.build_method("cameras", embedded, steps=3, max_size=424)
    assert cam.layer_name == embedded.layer and cam.scales == [224, 324, 424]
    assert cameras.build_method("gradcam", embedded).layer_name == "bn2"
    assert cameras.build_method("gradcam", embedded, layer="blocks").layer_name == "blocks"
    assert cameras.build_method("cameras", TinyNet(), scales="16:40:8").scales == [16, 24, 32]
    with pytest.raises(InputError, match="not a list like"):
        cameras.build_method("cameras", TinyNet(), scales="16;24")
    assert cameras.get_method("gradient", TinyNet()).name == "gradient"


def test_options_record_every_argument_with_defaults():
    net = torchvision.models.resnet18(num_classes=3)
    cam = cameras.build_method("cameras", net, scales=[64, 96])
    opts = cam.options
    assert opts["scales"] == [64, 96] and opts["resample"] == "bicubic" and opts["fusion"] == "exact"
    assert opts["layer"] is None  # found at the first call, as self.layer_name; options stay as given
    cam(torch.randn(1, 3, 64, 64))
    assert cam.options["layer"] is None and cam.layer_name == "layer4"
    assert cameras.build_method("cameras", net, scales="64,96").options["scales"] == [64, 96]
    assert "batch_pixels" in cam.options and "batch_pixels" not in cam.result_options()
    assert cameras.NormGrad(net, layer=[net.layer3, "layer4"]).options["layer"] == ["layer3", "layer4"]
    assert cameras.RISE(net, n_masks=8).options == {"n_masks": 8, "grid": 8, "p": 0.1, "batch_size": 32, "seed": 0,
                                                    "progress": None, "channels_last": "auto"}


def test_cli_unknown_option_names_the_valid_ones(sample_dir, tmp_path):
    r = CliRunner().invoke(main, ["explain", str(sample_dir / "coffee.png"), "--method", "rise", "--set", "masks=5",
                                  "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "method rise has no option 'masks'; valid options: n_masks" in r.output
    r = CliRunner().invoke(main, ["compare", str(sample_dir / "coffee.png"), "--set", "gradcam.foo=1",
                                  "--out", str(tmp_path / "c.png")])
    assert r.exit_code == 2 and "method gradcam has no option 'foo'" in r.output
    assert not (tmp_path / "o").exists() and not (tmp_path / "c.png").exists()


def test_bundle_prepare_equals_preprocess(embedded):
    from PIL import Image
    from skimage import data

    img = Image.fromarray(data.astronaut())
    x = embedded.prepare(img)
    assert torch.equal(x, cameras.preprocess(img, embedded.input_size, embedded.mean, embedded.std))
    x01 = embedded.prepare(img, square=True, normalized=False)
    assert x01.shape == (1, 3, 224, 224) and float(x01.min()) >= 0 and float(x01.max()) <= 1


def test_cameras_stays_float32_inside_a_callers_autocast():
    net, x = TinyNet(), torch.randn(1, 3, 32, 32)
    cam = cameras.CAMERAS(net, layer="features", scales=[32, 48])
    want = cam(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = cam(x)
    assert torch.equal(got.maps, want.maps) and torch.equal(got.probs, want.probs)


def test_to_spatial_that_does_not_fit_a_layer_is_named():
    twin = TokenNet(TinyNet())
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(LayerError, match=r"to_spatial failed on layer 'tokens', whose output has shape \(1, 65, 6\)"):
        cameras.NormGrad(twin, layer=["tokens"], to_spatial=lambda t: t.permute(0, 3, 1, 2))(x)


def test_a_target_class_instead_of_an_instance_is_refused():
    with pytest.raises(InputError, match="is a class; pass an instance, e.g. SigmoidTarget"):
        cameras.GradCAM(TinyNet(), layer="features")(torch.randn(1, 3, 16, 16), target=cameras.SigmoidTarget)


def test_sanity_cleaning_takes_one_class_for_a_batch():
    from cameras.attacks import sanity_cleaning

    net, x = TinyNet(), torch.rand(2, 3, 16, 16)
    adv = (x + 0.1).clamp(0, 1)
    maps = torch.rand(2, 16, 16)
    a = sanity_cleaning(net, x, maps, adv, torch.tensor([3]), steps=2)
    b = sanity_cleaning(net, x, maps, adv, torch.tensor([3, 3]), steps=2)
    assert torch.equal(a["curve"], b["curve"])
