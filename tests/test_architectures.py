"""Automatic layer detection and CAMERAS on every supported architecture (random weights)."""

import pytest
import timm
import torch
import torchvision.models as tvm

import cameras
from cameras.core.layers import known_layer, probe_layer

ARCHS = {
    "resnet18": (lambda: tvm.resnet18(num_classes=10), "layer4"),
    "densenet121": (lambda: tvm.densenet121(num_classes=10), "features"),
    "inception_v3": (lambda: tvm.inception_v3(num_classes=10, aux_logits=False, init_weights=False), "Mixed_7c"),
    "vgg11": (lambda: tvm.vgg11(num_classes=10), "features.19"),
    "efficientnet_b0": (lambda: tvm.efficientnet_b0(num_classes=10), "features"),
    "mobilenet_v2": (lambda: tvm.mobilenet_v2(num_classes=10), "features"),
    "mobilenet_v3_small": (lambda: tvm.mobilenet_v3_small(num_classes=10), "features"),
    "convnext_tiny": (lambda: tvm.convnext_tiny(num_classes=10), "features"),
    "timm_efficientnet_lite0": (lambda: timm.create_model("efficientnet_lite0", num_classes=10), "bn2"),
    "timm_resnet18": (lambda: timm.create_model("resnet18", num_classes=10), "layer4"),
}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_detected_layer_works_non_square(arch):
    build, expected = ARCHS[arch]
    torch.manual_seed(0)
    net = build().eval()
    m = cameras.CAMERAS(net, scales=[96, 128])
    x = torch.randn(1, 3, 96, 128)
    res = m(x)
    assert m.layer_name == expected
    assert res.maps.shape == (1, 96, 128)
    assert torch.isfinite(res.maps).all()
    assert 0 <= float(res.maps.min()) and float(res.maps.max()) <= 1
    if arch != "vgg11":
        # the table of known names agrees with the generic dummy-forward rule
        assert probe_layer(net, (3, 224, 224)) == known_layer(net) == expected
    else:
        # VGG: the reference explains the last ReLU before the final max-pool
        assert known_layer(net) == expected


def test_probe_on_unknown_architecture():
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 8, 3, stride=2), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 3),
    )
    m = cameras.CAMERAS(net, scales=[32, 48])
    m(torch.randn(1, 3, 32, 40))
    assert m.layer_name == "3"


def test_layer_by_module():
    net = tvm.resnet18(num_classes=4)
    m = cameras.CAMERAS(net, layer=net.layer3, scales=[64])
    assert m.layer_name == "layer3"
    assert m(torch.randn(1, 3, 64, 64)).maps.shape == (1, 64, 64)


# activations fused into folded convolutions for precision="bf16" (CPU): which architectures have them
FUSES = {"resnet18": True,
         "densenet121": True,  # each dense layer's second norm and ReLU (the first reads a concatenation)
         "inception_v3": False,  # its convolution blocks call F.relu, not an activation module
         "vgg11": False, "convnext_tiny": False,  # no batch norms
         "efficientnet_b0": True, "mobilenet_v2": True, "mobilenet_v3_small": True,
         "timm_efficientnet_lite0": True, "timm_resnet18": True}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_fused_activations_hold_at_another_input_size(arch):
    from cameras.core.folding import FoldedBelow, fusion_available

    build, layer_name = ARCHS[arch]
    torch.manual_seed(0)
    net = build().eval()
    with torch.no_grad():  # affine parameters and statistics away from the initial 1, 0, 0 and 1: a wrong fold shows
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.5, 0.5)
    # statistics from images: with random ones, four of these networks gave the same output for any input (their
    # activations collapse), and folded and unfolded outputs then agreed whatever the fold did
    if any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()):  # VGG and ConvNeXt have none
        g = torch.Generator().manual_seed(0)
        cameras.recalibrate_batch_norms(net, [torch.randn(4, 3, 96, 128, generator=g) for _ in range(2)])
    layer = net.get_submodule(layer_name)
    folded = FoldedBelow(net, layer, torch.randn(1, 3, 96, 128), fuse_activations=True)
    fused = sum(a is not None for a in folded.activations)
    assert (fused > 0) == (FUSES[arch] and fusion_available()), fused
    # found and checked at 96×128; another size and batch follow the same structure
    x = torch.randn(2, 3, 112, 80)
    with torch.no_grad():
        want = net(x)
        with folded.active():
            got = net(x)
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()
    assert (want[0] - want[1]).abs().max() > 0.01 * want.abs().max()  # the output depends on the input
    assert all("forward" not in vars(m) for m in net.modules())
