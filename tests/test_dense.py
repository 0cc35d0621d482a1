"""Segmentation and detection: RegionTarget, BoxTarget, InputView, the detector's resizing, the CLI.

Exactness: CAMERAS (and Grad-CAM) with these targets against a straightforward reference
(tests/reference.py: one image and scale at a time, the region or box scaled by hand) on
random-weight torchvision models and a tiny Hugging Face SegFormer; quality: the trained
synthetic:seg network on two-object synthetic scenes.
"""

import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image
from torchvision.models import get_model
from torchvision.ops import box_iou

from cameras import CAMERAS, BoxTarget, InputError, RegionTarget, recalibrate_batch_norms
from cameras.cli import main
from cameras.core.dense import box_mask, detections, segmentation_logits
from cameras.core.layers import known_layer
from cameras.core.layouts import any_input_size
from cameras.core.targets import InputView
from cameras.methods import GradCAM, Smooth

from .reference import reference_cameras_dense

warnings.filterwarnings("ignore", category=UserWarning)


def recalibrated(net, size):
    """Batch-norm statistics from random images: as built, the random MobileNet-v3 models' activations collapse
    to 1e-8 … 1e-15 and their outputs do not depend on the input, so every comparison would compare rounding."""
    g = torch.Generator().manual_seed(0)
    return recalibrate_batch_norms(net, [torch.randn(4, 3, *size, generator=g) for _ in range(3)])


def seg_model(name, classes=4, seed=0):
    torch.manual_seed(seed)
    return recalibrated(get_model(name, weights=None, weights_backbone=None, num_classes=classes).eval(), (64, 64))


def depends_on_input(out_of, size):
    """How far the model's output (``out_of(x)``, a tensor) moves between two random inputs of ``size``."""
    with torch.no_grad():
        a, b = (out_of(torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(s))) for s in (11, 12))
    return float((a - b).abs().max())


def largest_activation(net, layer, x):
    """max |activation| of ``layer`` on ``x``: collapsed random models have 1e-8 … 1e-15 there."""
    seen = []
    h = layer.register_forward_hook(lambda m, i, o: seen.append(float(o.abs().max())))
    try:
        with torch.no_grad(), any_input_size(net):
            net(x)
    finally:
        h.remove()
    return max(seen)


REFERENCE_PATH = {"channels_last": False, "fold_batchnorm": False}  # NCHW, nothing folded: the reference's order
FAST_ATOL = 5e-4  # the default path (channels-last, folded norms) sums in another order: float rounding

_DET = {}


def det_model(name):
    if name not in _DET:
        torch.manual_seed(0)
        kw = {"box_score_thresh": 0.0} if "rcnn" in name else {"score_thresh": 0.0}
        net = get_model(name, weights=None, weights_backbone=None, num_classes=5, **kw).eval()
        if name.startswith("ssd"):  # its initial head scores every class alike (no gradient): randomise it
            with torch.no_grad():
                for p in net.head.parameters():
                    p.normal_(0, 0.05)
        if any(isinstance(m, torch.nn.BatchNorm2d) for m in net.backbone.modules()):
            recalibrated(net.backbone, (96, 128))  # the backbone takes the normalised image
        _DET[name] = net
    return _DET[name]


def region_score(mask, cls, reduce="mean"):
    """The reference region score: the mask resized (bilinear) to the output grid of each scale."""
    def score(out, b, size):
        logits = segmentation_logits(out)[b:b + 1]
        w = F.interpolate(mask[None, None].float(), size=logits.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
        s = (logits[0, cls] * w).sum()
        return s if reduce == "sum" else s / w.sum()
    return score


# ---------------------------------------------------------------- InputView and the targets by hand


def test_input_view_composes_resize_pad_and_flip():
    v = InputView.identity((10, 20))
    assert v.is_identity
    w = v.padded(5).resized((40, 60)).flipped()
    assert w.dst_hw == (40, 60)
    # (x, y) = (0, 0) → padded (5, 5) → scaled ×2 (y: 40/20), ×2 (x: 60/30) → (10, 10) → flipped x: 60 - 10
    got = w.map_boxes(torch.tensor([[0.0, 0.0, 20.0, 10.0]]))
    assert got.tolist() == [[10.0, 10.0, 50.0, 30.0]]
    m = torch.rand(2, 10, 20)
    for out_hw in [(5, 10), (10, 20), (23, 41)]:  # a pure resize reads the mask as bilinear interpolation does
        want = F.interpolate(m[:, None], size=out_hw, mode="bilinear", align_corners=False)[:, 0]
        assert torch.allclose(v.resized((30, 60)).sample(m, out_hw), want, atol=1e-6)
    flipped = v.flipped().sample(m, (10, 20))
    assert torch.allclose(flipped, m.flip(-1), atol=1e-6)
    padded = v.padded(5).sample(m, (20, 30))
    assert torch.allclose(padded[:, 5:15, 5:25], m, atol=1e-6) and padded[:, :5].abs().sum() == 0


def test_region_target_by_hand():
    out = torch.zeros(2, 3, 2, 2)
    out[0, 1] = torch.tensor([[4.0, 2.0], [0.0, 0.0]])
    out[1, 2] = torch.tensor([[1.0, 1.0], [1.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    t = RegionTarget([1, 2], mask).for_batch(2, torch.device("cpu")).bind(out)
    assert t.score(out).tolist() == [3.0, 1.0]
    t = RegionTarget([1, 2], mask, reduce="sum").for_batch(2, torch.device("cpu")).bind(out)
    assert t.score(out).tolist() == [6.0, 2.0]
    # no mask: the pixels where the class wins (image 0: class 1 wins where its logit is 4 and 2)
    t = RegionTarget([1, 2]).for_batch(2, torch.device("cpu")).bind(out)
    assert t.score(out).tolist() == [3.0, 2.5]
    assert t.notes()["region"] == "predicted" and t.notes()["region_fraction"] == [0.5, 1.0]
    # an absent class: an empty region scores 0 and the notes say so
    t = RegionTarget(0).for_batch(2, torch.device("cpu")).bind(out)
    assert t.notes()["empty"] == [False, True] and t.score(out).tolist() == [0.0, 0.0]
    # probabilities: the class's softmax averaged over the region
    t = RegionTarget([1, 2], mask).for_batch(2, torch.device("cpu")).bind(out)
    p = out.softmax(1)
    assert torch.allclose(t.probability(out), torch.stack([p[0, 1, 0].mean(), p[1, 2, 0].mean()]))
    # select and join keep each image's mask
    both = t.select(slice(0, 1)).join([t.select(slice(0, 1)), t.select(slice(1, 2))])
    assert both.score(out).tolist() == [3.0, 1.0]
    assert RegionTarget.from_box(1, [0, 0, 2, 1], (2, 2)).mask[0].tolist() == [[1.0, 1.0], [0.0, 0.0]]


def test_region_target_errors():
    out = torch.zeros(1, 3, 4, 4)
    with pytest.raises(InputError, match="out of range"):
        RegionTarget(5).for_batch(1, torch.device("cpu")).bind(out)
    with pytest.raises(InputError, match="reduce"):
        RegionTarget(1, reduce="max")
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        RegionTarget(1, torch.full((4, 4), 2.0)).for_batch(1, torch.device("cpu"))
    with pytest.raises(InputError, match="mask must be"):
        RegionTarget(1, torch.ones(3, 4, 4)).for_batch(2, torch.device("cpu"))
    with pytest.raises(InputError, match="input's size"):
        RegionTarget(1, torch.ones(4, 4)).for_batch(1, torch.device("cpu")).placed((8, 8))
    with pytest.raises(InputError, match="B×classes×h×w"):
        RegionTarget(1).for_batch(1, torch.device("cpu")).bind(torch.zeros(1, 3))
    with pytest.raises(InputError, match="needs the class"):
        RegionTarget(None)
    with pytest.raises(InputError, match=r"box \[40.0, 40.0, 60.0, 60.0\] covers no pixel of the 16×12 input"):
        RegionTarget.from_box(1, [40, 40, 60, 60], (12, 16))  # a box in another image's pixels: not an empty map
    with pytest.raises(InputError, match="covers no pixel"):
        RegionTarget.from_box(1, [[0, 0, 8, 8], [5, 5, 5.2, 5.2]], (12, 16))  # any image's box
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    with pytest.raises(InputError, match="segmentation"):
        GradCAM(net, layer="0")(torch.rand(1, 3, 8, 8), RegionTarget(1))
    assert segmentation_logits({"out": torch.zeros(1, 2, 3, 3)}).shape == (1, 2, 3, 3)
    assert segmentation_logits((torch.zeros(1, 2, 3, 3),)).shape == (1, 2, 3, 3)


def test_box_target_by_hand():
    out = [{"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 9.0], [20.0, 20.0, 30.0, 30.0]]),
            "labels": torch.tensor([1, 1, 2]), "scores": torch.tensor([0.9, 0.8, 0.7])},
           {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "scores": torch.zeros(0)}]
    t = BoxTarget([[0, 0, 10, 9], [0, 0, 5, 5]], [1, 1]).for_batch(2, torch.device("cpu")).bind(out)
    assert t.score(out).tolist() == pytest.approx([0.8, 0.0])  # the better IoU wins over the higher score
    notes = t.notes()
    assert notes["matched"] == [True, False] and notes["iou"][0] == 1.0 and notes["matched_box"][1] is None
    # a label with no detection there, and an IoU under the threshold, score 0
    assert BoxTarget([20, 20, 30, 30], 1).for_batch(1, torch.device("cpu")).bind(out[:1]).score(out[:1]).item() == 0
    half = BoxTarget([20, 20, 30, 40], 2, iou=0.6).for_batch(1, torch.device("cpu")).bind(out[:1])
    assert half.notes()["matched"] == [False]
    assert BoxTarget([20, 20, 30, 40], 2, iou=0.5).for_batch(1, torch.device("cpu")).bind(out[:1]).notes()["matched"] \
        == [True]
    # the box follows a view of the input: at twice the size it is twice as large
    big = [{k: (v * 2 if k == "boxes" else v) for k, v in out[0].items()}]
    t2 = BoxTarget([0, 0, 10, 9], 1).for_batch(1, torch.device("cpu")).placed((40, 40))
    assert t2.view(InputView.identity((40, 40)).resized((80, 80))).score(big).item() == pytest.approx(0.8)
    assert t.select(torch.tensor([1])).notes()["matched"] == [False]
    with pytest.raises(InputError, match="x0 < x1"):
        BoxTarget([5, 0, 1, 4], 1)
    with pytest.raises(InputError, match="iou"):
        BoxTarget([0, 0, 1, 1], 1, iou=0)
    with pytest.raises(InputError, match="detector"):
        detections(torch.zeros(1, 5))


# ---------------------------------------------------------------- segmentation models: exactness


@pytest.mark.parametrize("name,scales,size", [
    ("lraspp_mobilenet_v3_large", [64, 88, 112], (64, 80)),
    ("deeplabv3_mobilenet_v3_large", [64, 96], (64, 72)),
    ("fcn_resnet50", [48], (48, 56)),
])
def test_cameras_region_matches_reference_on_torchvision_segmentation(name, scales, size):
    net = seg_model(name)
    layer = known_layer(net)
    assert layer == ("backbone.layer4" if "resnet" in name else "backbone.16")
    assert depends_on_input(lambda v: net(v)["out"], size) > 0.1  # maps of a model that sees the image
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(size)
    mask[10:40, 20:50] = 1
    res = CAMERAS(net, scales=scales, **REFERENCE_PATH)(x, RegionTarget(2, mask))
    assert res.layer == layer and res.targets.tolist() == [2]
    mod = dict(net.named_modules())[layer]
    want = reference_cameras_dense(net, mod, x, scales, region_score(mask, 2))
    assert torch.allclose(res.maps, want, atol=1e-5) and res.maps.std() > 0.05
    assert torch.allclose(CAMERAS(net, scales=scales)(x, RegionTarget(2, mask)).maps, want, atol=FAST_ATOL)
    # the predicted region of a class the model gives some pixels, not all
    with torch.no_grad():
        pred = net(x)["out"].argmax(1)[0]
    cls = int(pred.flatten().mode().values)
    res = CAMERAS(net, scales=scales, **REFERENCE_PATH)(x, RegionTarget(cls))
    want = reference_cameras_dense(net, mod, x, scales, region_score((pred == cls).float(), cls))
    assert torch.allclose(res.maps, want, atol=1e-5) and res.maps.std() > 0.05
    assert res.extras["target"]["region"] == "predicted" and res.extras["target"]["region_fraction"][0] < 1


def test_region_sum_batch_and_border_pad_match_reference():
    net = seg_model("lraspp_mobilenet_v3_large")
    mod = dict(net.named_modules())["backbone.16"]
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    masks = torch.zeros(2, 64, 64)
    masks[0, 16:40, 10:30] = 1
    masks[1, 30:60, 30:50] = 0.5
    res = CAMERAS(net, scales=[64, 96], batch_pixels=64 * 64)(x, RegionTarget([1, 3], masks, reduce="sum"))
    for b, cls in enumerate([1, 3]):
        want = reference_cameras_dense(net, mod, x[b:b + 1], [64, 96], region_score(masks[b], cls, "sum"))
        assert torch.allclose(res.maps[b], want[0], atol=1e-5)
    # with a mirrored border the region stays inside the image (the mask is 0 in the border)
    p = 6
    res = CAMERAS(net, scales=[64, 96], border_pad=p / 64)(x[:1], RegionTarget(1, masks[0]))
    padded = F.pad(masks[0], (p, p, p, p))
    want = reference_cameras_dense(net, mod, x[:1], [64, 96], region_score(padded, 1), border_pad=p)
    assert torch.allclose(res.maps, want, atol=1e-5)


def test_gradcam_region_agrees_with_pytorch_grad_cam():
    from pytorch_grad_cam import GradCAM as PeerGradCAM
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    net = seg_model("deeplabv3_mobilenet_v3_large")

    class Out(torch.nn.Module):  # the peer needs a tensor output
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x)["out"]

    wrapped = Out(net).eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    mask = np.zeros((64, 64), np.float32)
    mask[8:40, 12:44] = 1
    ours = GradCAM(wrapped, layer="m.backbone.16")(x, RegionTarget(2, torch.from_numpy(mask), reduce="sum")).maps[0]
    with PeerGradCAM(model=wrapped, target_layers=[net.backbone["16"]]) as cam:
        peer = torch.from_numpy(cam(input_tensor=x, targets=[SemanticSegmentationTarget(2, mask)])[0])
    r = np.corrcoef(ours.flatten().numpy(), peer.flatten().numpy())[0, 1]
    assert r > 0.999


def test_segformer_region_matches_reference():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.SegformerConfig(depths=[1, 1, 1, 1], hidden_sizes=[16, 32, 48, 64], decoder_hidden_size=32,
                                       num_attention_heads=[1, 1, 2, 2], num_labels=4)
    torch.manual_seed(0)
    net = transformers.SegformerForSemanticSegmentation(cfg).eval()
    x = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(4))
    assert segmentation_logits(net(x)).shape == (1, 4, 24, 32)  # a quarter of the input's resolution
    layer = known_layer(net)
    mod = dict(net.named_modules())[layer]
    mask = torch.zeros(96, 128)
    mask[20:70, 30:90] = 1
    res = CAMERAS(net, scales=[96, 128])(x, RegionTarget(1, mask))
    assert res.layer == layer
    to_map = None
    if "layer_norm" in layer:  # older transformers: the last stage as tokens
        def to_map(t, size):
            h, w = [-(-v // 32) for v in size]
            return t.transpose(1, 2).reshape(t.shape[0], -1, h, w)
    want = reference_cameras_dense(net, mod, x, [96, 128], region_score(mask, 1), to_map=to_map)
    assert torch.allclose(res.maps, want, atol=1e-5)


def test_tta_region_follows_each_view():
    net = seg_model("lraspp_mobilenet_v3_large")
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    mask = torch.zeros(64, 64)
    mask[10:30, 5:25] = 1  # off centre: a flip moves it
    res = Smooth(GradCAM(net), augment="tta", tta_scales=(1.0, 1.5))(x, RegionTarget(1, mask))
    total = torch.zeros(64, 64)
    for flip in (False, True):
        for s in (1.0, 1.5):
            size = (round(64 * s), round(64 * s))
            v = x if s == 1.0 else F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            m = mask if s == 1.0 else F.interpolate(mask[None, None], size=size, mode="bilinear",
                                                    align_corners=False)[0, 0]
            if flip:
                v, m = v.flip(-1), m.flip(-1)
            one = GradCAM(net)(v, RegionTarget(1, m)).maps[0]
            one = one.flip(-1) if flip else one
            total += F.interpolate(one[None, None], size=(64, 64), mode="bilinear", align_corners=False)[0, 0]
    want = (total - total.min()) / (total.max() - total.min())
    assert torch.allclose(res.maps[0], want, atol=1e-5)
    assert res.extras["target"]["region"] == "given"


# ---------------------------------------------------------------- detectors


def test_detector_resizing_is_switched_off_for_the_call_and_restored():
    net = det_model("fasterrcnn_mobilenet_v3_large_fpn")
    tr = net.transform
    shapes = []
    h = net.backbone.body["16"].register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[-2:])))
    try:
        with torch.no_grad(), any_input_size(net):
            net(torch.rand(1, 3, 96, 128))
            out = net(torch.rand(1, 3, 192, 256))
        net(torch.rand(1, 3, 96, 128))  # outside: resized to its own 800 px again
    finally:
        h.remove()
    assert shapes[:2] == [(3, 4), (6, 8)] and shapes[2][0] == 25
    assert (tr.min_size, tr.max_size) == ((800,), 1333) and "resize" not in tr.__dict__
    # a list of images of different sizes: each keeps its own
    with torch.no_grad(), any_input_size(net):
        outs = net([torch.rand(3, 64, 96), torch.rand(3, 128, 80)])
    assert float(outs[1]["boxes"][:, 3].max()) <= 128 + 1e-3 and float(outs[0]["boxes"][:, 3].max()) <= 64 + 1e-3
    with pytest.raises(RuntimeError), any_input_size(net):  # restored when the forward raises
        net(torch.rand(1, 2, 64, 64))
    assert "resize" not in tr.__dict__
    assert float(out[0]["boxes"][:, 2].max()) <= 256 + 1e-3  # boxes in the input's own pixels
    assert known_layer(net) == "backbone.body.16"
    assert known_layer(det_model("retinanet_resnet50_fpn")) == "backbone.body.layer4"
    assert known_layer(det_model("ssdlite320_mobilenet_v3_large")) == "backbone.features.1"
    torch.manual_seed(0)
    ssd = get_model("ssd300_vgg16", weights=None, weights_backbone=None, num_classes=3)
    assert known_layer(ssd) == "backbone.features.22"  # conv4_3's ReLU, the trunk the extra maps read


def box_score(box, label, iou=0.5):
    """The reference detection score: the box scaled by hand, matched by IoU among the label's detections."""
    def score(out, b, size):
        d = out[b]
        sy, sx = size[0] / score.hw[0], size[1] / score.hw[1]
        bx = torch.tensor([[box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy]])
        ok = (d["labels"] == label).nonzero()[:, 0]
        if len(ok):
            ious = box_iou(d["boxes"].detach()[ok], bx)[:, 0]
            if float(ious.max()) >= iou:
                return d["scores"][ok[int(ious.argmax())]]
        return d["scores"].sum() * 0
    return score


class NoResize(torch.nn.Module):
    """The reference detector: its transform's size set by hand to each input's own."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        tr = self.net.transform
        old = tr.min_size, tr.max_size, tr.fixed_size
        tr.min_size, tr.max_size = (min(x.shape[-2:]),), max(x.shape[-2:])
        if tr.fixed_size is not None:
            tr.fixed_size = (x.shape[-1], x.shape[-2])
        try:
            return self.net(x)
        finally:
            tr.min_size, tr.max_size, tr.fixed_size = old


@pytest.mark.parametrize("name,scales", [
    ("fasterrcnn_mobilenet_v3_large_fpn", [96, 128, 160]),
    ("retinanet_resnet50_fpn", [96]),
    ("fcos_resnet50_fpn", [96, 128]),
    ("ssdlite320_mobilenet_v3_large", [320, 384]),  # a fixed-size transform
])
def test_cameras_box_matches_reference_on_torchvision_detectors(name, scales):
    net = det_model(name)
    x = torch.rand(1, 3, scales[0], scales[0] + 16, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        d = NoResize(net)(x)[0]
    box, label = d["boxes"][0].tolist(), int(d["labels"][0])
    res = CAMERAS(net, scales=scales, **REFERENCE_PATH)(x, BoxTarget(box, label))
    notes = res.extras["target"]
    assert notes["matched"] == [True] and notes["iou"][0] == pytest.approx(1.0, abs=1e-4)
    assert res.probs.item() == pytest.approx(float(d["scores"][0]), rel=1e-4)
    layer = known_layer(net)
    mod = dict(net.named_modules())[layer]
    assert largest_activation(net, mod, x) > 0.1  # a backbone that has not collapsed
    score = box_score(box, label)
    score.hw = tuple(x.shape[-2:])
    d = getattr(net.transform, "size_divisible", 1)  # the detector pads each scale's input to a multiple of d
    want = reference_cameras_dense(NoResize(net), mod, x, scales, score,
                                   canvas=lambda hw: tuple(-(-v // d) * d for v in hw))
    assert torch.allclose(res.maps, want, atol=1e-5) and res.maps.std() > 0.05
    fast = CAMERAS(net, scales=scales)(x, BoxTarget(box, label))  # channels-last: the same detection, up to rounding
    assert fast.extras["target"]["iou"][0] == pytest.approx(1.0, abs=1e-3)
    assert torch.allclose(fast.maps, want, atol=FAST_ATOL)


def test_interp_matrix_cover_is_the_first_part_of_a_larger_upsampling():
    from cameras.core.ops import interp_matrix, resize_maps
    assert torch.equal(interp_matrix(5, 9, cover=1.0), interp_matrix(5, 9))
    for n_in, n_out, cover in [(4, 4, 0.5), (3, 5, 5 / 8), (7, 30, 0.75), (4, 100, 100 / 128)]:
        full = interp_matrix(n_in, round(n_out / cover))[:n_out]
        assert torch.allclose(interp_matrix(n_in, n_out, cover=cover), full, atol=1e-6)
    m = torch.rand(2, 4, 5)
    want = F.interpolate(m[:, None], size=(128, 160), mode="bilinear", align_corners=False)[:, 0, :100, :150]
    assert torch.allclose(resize_maps(m, (100, 150), cover=(100 / 128, 150 / 160)), want, atol=1e-6)
    with pytest.raises(InputError, match="cover"):
        interp_matrix(3, 4, cover=1.5)


def test_detector_maps_lie_on_the_image_not_on_its_padded_canvas():
    """torchvision detectors pad each batch to a multiple of 32 at the bottom and right: the layer's grid covers
    that canvas, so the map is upsampled over it and cropped (before, it was stretched over the image)."""
    from cameras.core.layouts import canvas_cover
    net = det_model("fasterrcnn_mobilenet_v3_large_fpn")
    assert canvas_cover(net, (100, 150)) == (100 / 128, 150 / 160) and canvas_cover(net, (96, 128)) == (1.0, 1.0)
    x = torch.rand(1, 3, 100, 150, generator=torch.Generator().manual_seed(6))
    with torch.no_grad(), any_input_size(net):
        d = net(x)[0]
    target = BoxTarget(d["boxes"][0].tolist(), int(d["labels"][0]))
    res = GradCAM(net)(x, target)
    low = res.extras["low_res"]
    assert tuple(low.shape[-2:]) == (4, 5)  # the 128×160 canvas at stride 32
    up = F.interpolate(low[:, None], size=(128, 160), mode="bilinear", align_corners=False)[:, 0, :100, :150]
    want = (up - up.amin()) / (up.amax() - up.amin())
    assert torch.allclose(res.maps, want, atol=1e-5)
    stretched = F.interpolate(low[:, None], size=(100, 150), mode="bilinear", align_corners=False)[:, 0]
    assert (res.maps - (stretched - stretched.amin()) / (stretched.amax() - stretched.amin())).abs().max() > 0.05
    # the approximate grid fusion takes the exact one when the scales' canvases differ
    exact = CAMERAS(net, scales=[100, 140])(x, target).maps
    assert torch.allclose(CAMERAS(net, scales=[100, 140], fusion="grid")(x, target).maps, exact, atol=1e-6)


def test_detections_checks_every_image():
    ok = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0), "scores": torch.zeros(0)}
    with pytest.raises(InputError, match="detections lack scores"):
        detections([ok, {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}])


def test_metrics_score_a_detector_at_the_size_the_method_explains():
    """A detector resizes inputs to its own min_size (800 px): the metrics switch that off as the methods do,
    so they score the detection that was explained (before, the box no longer matched and curves were 0)."""
    from cameras.metrics import confidence_change, insertion_deletion
    net = det_model("fasterrcnn_mobilenet_v3_large_fpn")
    x = torch.rand(1, 3, 96, 112, generator=torch.Generator().manual_seed(6))
    with torch.no_grad(), any_input_size(net):
        d = net(x)[0]
    target = BoxTarget(d["boxes"][0].tolist(), int(d["labels"][0]))
    res = GradCAM(net)(x, target)
    assert res.extras["target"]["matched"] == [True] and res.probs.item() > 0
    r = insertion_deletion(net, x, res.maps, target=target, step=112 * 24, batch_size=2)
    assert r["deletion"][0, 0].item() == pytest.approx(res.probs.item(), rel=1e-4)
    assert r["insertion"][0, -1].item() == pytest.approx(res.probs.item(), rel=1e-4)
    # the curves move: the detection's score depends on the pixels removed (a constant one would pass the above)
    assert (r["deletion"][0] - r["deletion"][0, 0]).abs().max() > 0.01
    c = confidence_change(net, x, torch.ones(1, 96, 112), target=target)
    assert c["clean"].item() == pytest.approx(res.probs.item(), rel=1e-4) and c["drop"].tolist() == [0.0]
    with pytest.raises(InputError, match="outside the 112×96 input"):
        insertion_deletion(net, x, res.maps, target=BoxTarget([200, 200, 300, 300], 1), step=112 * 24)


def test_box_without_a_match_gives_a_zero_map_and_says_so():
    net = det_model("fasterrcnn_mobilenet_v3_large_fpn")
    x = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(7))
    res = GradCAM(net)(x, BoxTarget([0, 0, 3, 3], 4, iou=0.99))
    assert res.extras["target"]["matched"] == [False] and res.probs.tolist() == [0.0]
    assert res.maps.abs().sum() == 0


# ---------------------------------------------------------------- quality on the synthetic task


def test_region_maps_concentrate_on_the_object_in_the_region():
    """Two objects of one class side by side: a region around one gives a map on that one."""
    from cameras.data.synthetic import synthetic_scene
    from cameras.models import load_model

    bundle = load_model("synthetic:seg")
    assert bundle.task == "segmentation" and known_layer(bundle.model) == "backbone.3"
    rng = np.random.default_rng(11)
    cam = CAMERAS(bundle.model, scales=[64, 96, 128, 160])
    ratios, other = [], []
    for i in range(8):
        label = i % 4
        img, seg, labels, boxes = synthetic_scene(rng, 64, labels=(label, label))
        x = bundle.normalize(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255)
        side = i % 2  # explain the left object, then the right one
        obj = torch.zeros(64, 64, dtype=torch.bool)
        x0, y0, x1, y1 = boxes[side]
        obj[y0:y1, x0:x1] = torch.from_numpy(seg[y0:y1, x0:x1] > 0)
        twin = torch.zeros(64, 64, dtype=torch.bool)
        a0, b0, a1, b1 = boxes[1 - side]
        twin[b0:b1, a0:a1] = torch.from_numpy(seg[b0:b1, a0:a1] > 0)
        region = [0, 0, 32, 64] if side == 0 else [32, 0, 64, 64]  # the half holding the object
        m = cam(x, RegionTarget.from_box(1 + label, region, (64, 64))).maps[0]
        ratios.append(float(m[obj].mean() / m.mean()))
        other.append(float(m[twin].mean() / m.mean()))
    assert min(ratios) >= 2.0, ratios
    assert all(r > 2 * o for r, o in zip(ratios, other)), (ratios, other)


# ---------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def scene_png(tmp_path_factory):
    from cameras.data.synthetic import synthetic_scene

    img, seg, labels, boxes = synthetic_scene(np.random.default_rng(3), 64, labels=(0, 0))
    d = tmp_path_factory.mktemp("scene")
    big = Image.fromarray(img).resize((128, 128), Image.NEAREST)  # the image file is twice the model's size
    big.save(d / "scene.png")
    mask = Image.fromarray(((seg > 0) * 255).astype(np.uint8)).resize((128, 128), Image.NEAREST)
    left = np.asarray(mask).copy()
    left[:, 64:] = 0
    Image.fromarray(left).save(d / "left.png")
    return d / "scene.png", d / "left.png", boxes


def test_cli_explains_a_segmentation_region(scene_png, tmp_path):
    img, mask, boxes = scene_png
    runner = CliRunner()
    r = runner.invoke(main, ["explain", str(img), "--model", "synthetic:seg", "--task", "segmentation",
                             "--target", "red_square", "--region", "0,0,64,128", "--scales", "64,96",
                             "--out", str(tmp_path / "a"), "--quiet"])
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp_path / "a" / "scene.json").read_text())
    e = rec["explanations"][0]
    assert e["target"] == 1 and e["name"] == "red_square" and e["target_facts"]["region"] == "given"
    assert e["target_facts"]["region_fraction"] == pytest.approx(0.5)
    sal = np.load(tmp_path / "a" / e["npy"])
    assert sal.shape == (128, 128)
    x0, y0, x1, y1 = (2 * v for v in boxes[0])
    assert sal[y0:y1, x0:x1].mean() > 2 * sal.mean()
    png = np.asarray(Image.open(tmp_path / "a" / e["png"]))
    assert png.ndim == 3
    # a mask file; and the predicted region
    r = runner.invoke(main, ["explain", str(img), "--model", "synthetic:seg", "--target", "red_square", "--mask",
                             str(mask), "--scales", "64", "--out", str(tmp_path / "b"), "--quiet", "--plain"])
    assert r.exit_code == 0, r.output
    e = json.loads((tmp_path / "b" / "scene.json").read_text())["explanations"][0]
    assert 0 < e["target_facts"]["region_fraction"] < 0.25
    plain = np.asarray(Image.open(tmp_path / "b" / e["png"]))
    assert plain.shape == (128, 128, 3) and (plain == 255).all(-1).any()  # the region's outline in white
    r = runner.invoke(main, ["explain", str(img), "--model", "synthetic:seg", "--target", "1", "--method", "gradcam",
                             "--out", str(tmp_path / "c"), "--quiet"])
    assert r.exit_code == 0, r.output
    e = json.loads((tmp_path / "c" / "scene.json").read_text())["explanations"][0]
    assert e["target_facts"]["region"] == "predicted"


@pytest.mark.parametrize("args,message", [
    (["--task", "segmentation"], "needs --target"),
    (["--target", "1", "--box", "0,0,4,4"], "--box is for detection"),
    (["--target", "1", "--region", "4,0,2,4"], "x0 < x1"),
    (["--target", "1", "--region", "0,0,4,4", "--mask", "m.png"], "not both"),
    (["--target", "purple_blob"], "unknown class"),
    (["--target", "1", "--task", "classification", "--region", "0,0,4,4"], "needs --task segmentation"),
    (["--target", "1", "--region", "1000,1000,2000,2000"], "--region 1000,1000,2000,2000 lies outside the"),
])
def test_cli_segmentation_errors(scene_png, tmp_path, args, message):
    img, _, _ = scene_png
    r = CliRunner().invoke(main, ["explain", str(img), "--model", "synthetic:seg", "--out", str(tmp_path / "o"),
                                  "--quiet", *args])
    assert r.exit_code != 0 and message in r.output, r.output
    assert not (tmp_path / "o" / "scene.json").exists()


@pytest.mark.parametrize("args,message", [
    (["--task", "detection", "--region", "0,0,4,4"], "--region and --mask are for segmentation"),
    (["--task", "detection", "--box", "0,0,4,4"], "--box needs --target"),
    (["--task", "segmentation", "--box", "0,0,4,4"], "--box is for detection"),
    (["--task", "segmentation", "--target", "1", "--target", "2"], "one --target at a time"),
    (["--task", "detection", "--target-kind", "sigmoid"], "is for classifiers"),
    (["--task", "classification", "--mask", "m.png"], "needs --task segmentation or detection (--task classification)"),
    (["--region", "0,0,4,4", "--mask", "m.png"], "not both"),  # no task takes both
])
def test_cli_task_options_are_refused_before_the_model_loads(tmp_path, monkeypatch, args, message):
    import cameras.models

    def no_model(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(cameras.models, "load_model", no_model)
    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    r = CliRunner().invoke(main, ["explain", str(tmp_path / "a.png"), "--model", "synthetic:seg",
                                  "--out", str(tmp_path / "o"), "--quiet", *args])
    assert r.exit_code == 2 and message in r.output and "was loaded" not in r.output, r.output
    assert not (tmp_path / "o").exists()


def test_cli_mask_of_another_size_fails_without_files(scene_png, tmp_path):
    img, _, _ = scene_png
    Image.new("L", (10, 10), 255).save(tmp_path / "small.png")
    r = CliRunner().invoke(main, ["explain", str(img), "--model", "synthetic:seg", "--target", "1", "--mask",
                                  str(tmp_path / "small.png"), "--out", str(tmp_path / "o"), "--quiet"])
    assert r.exit_code == 1 and "mask of the image's size" in r.output
    assert not (tmp_path / "o" / "scene.json").exists()


def test_cli_explains_a_detection_box(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(tmp_path / "street.png")
    r = CliRunner().invoke(main, ["explain", str(tmp_path / "street.png"), "--model",
                                  "torchvision:fasterrcnn_mobilenet_v3_large_fpn", "--weights", "random",
                                  "--method", "gradcam", "--box", "10,10,40,50", "--target", "dog",
                                  "--out", str(tmp_path / "o"), "--quiet"])
    assert r.exit_code == 0, r.output
    rec = json.loads((tmp_path / "o" / "street.json").read_text())
    e = rec["explanations"][0]
    assert e["name"] == "dog" and rec["parameters"]["task"] == "detection"
    # random weights find no dog there: the map is zero and the JSON and the warning say why
    assert e["target_facts"]["matched"] is False and e["probability"] == 0.0 and e["all_zero"] is True
    assert "the gradcam map for dog is all zero: no detection of it matches the box" in r.output
    assert rec["input_size"] == [800, 1067]  # the detector's own 800-px shorter side
    sy, sx = 800 / 60, 1067 / 80  # the box in the model input's pixels
    assert e["target_facts"]["box"] == pytest.approx([10 * sx, 10 * sy, 40 * sx, 50 * sy], rel=1e-3)
    r = CliRunner().invoke(main, ["explain", str(tmp_path / "street.png"), "--model",
                                  "torchvision:fasterrcnn_mobilenet_v3_large_fpn", "--weights", "random",
                                  "--box", "10,10,40,50", "--out", str(tmp_path / "p"), "--quiet"])
    assert r.exit_code != 0 and "--box needs --target" in r.output


def test_models_load_segmentation_and_detection_bundles():
    from cameras.models import load_model

    seg = load_model("torchvision:lraspp_mobilenet_v3_large", weights="random")
    assert seg.task == "segmentation" and seg.class_names[15] == "person" and seg.input_size == 520
    det = load_model("torchvision:fcos_resnet50_fpn", weights="random")
    assert det.task == "detection" and det.class_index("dog") == 18 and det.mean == (0.0, 0.0, 0.0)
    x = torch.rand(1, 3, 4, 4)
    assert torch.equal(det.normalize(x), x)  # the detector normalises its [0, 1] input itself
    assert box_mask([0, 0, 2, 2], (3, 3)).sum() == 4


def test_targets_follow_mirrored_copies_extremal_and_density():
    from cameras.methods import ExtremalPerturbation
    from cameras.metrics.density import map_density

    out = torch.randn(1, 3, 8, 8)
    mask = torch.zeros(8, 8)
    mask[2:5, 1:4] = 1
    t = RegionTarget(1, mask).for_batch(1, torch.device("cpu")).placed((8, 8))
    mirrored = t.view(t.input_view.flipped())
    assert torch.allclose(mirrored.score(out.flip(-1)), t.score(out))  # what Extremal's jitter relies on
    net = seg_model("lraspp_mobilenet_v3_large")
    x = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(8))
    res = ExtremalPerturbation(net, iterations=4, progress=False)(x, RegionTarget(1, torch.ones(48, 48)))
    assert res.maps.shape == (1, 48, 48) and res.targets.tolist() == [1]
    # ρ of a predicted region: the region of the image as given, not of each masked copy
    ident = lambda t: t  # noqa: E731
    with torch.no_grad():
        pred = (net(x)["out"].argmax(1)[0] == 1).float()
    psi = torch.rand(1, 48, 48, generator=torch.Generator().manual_seed(9))
    got = map_density(net, x, psi, RegionTarget(1), ident)
    want = map_density(net, x, psi, RegionTarget(1, pred), ident)
    assert torch.allclose(got[0], want[0]) and torch.allclose(got[1], want[1])


def test_border_pad_box_facts_are_on_the_input_as_given_and_per_scale():
    net = det_model("fasterrcnn_mobilenet_v3_large_fpn")
    x = torch.rand(1, 3, 96, 112, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        d = NoResize(net)(x)[0]
    box, label = d["boxes"][0].tolist(), int(d["labels"][0])
    res = CAMERAS(net, scales=[96, 128], border_pad=0.1)(x, BoxTarget(box, label))
    notes = res.extras["target"]
    assert notes["matched"] == [True] and notes["iou"][0] == pytest.approx(1.0, abs=1e-4)
    assert notes["matched_box"][0] == pytest.approx(box, abs=1e-2)
    assert res.probs.item() == pytest.approx(float(d["scores"][0]), rel=1e-4)
    res = CAMERAS(net, scales=[96, 128, 160])(x, BoxTarget(box, label))
    per = res.extras["target_per_scale"]
    assert len(per) == 3 and per[0]["matched"] == [True] and per[0] == res.extras["target"]
    for p in per[1:]:  # a match at a larger scale is reported in the input's own pixels
        if p["matched"][0]:
            assert p["iou"][0] >= 0.5
    with pytest.raises(InputError, match="outside the 112×96 input"):
        GradCAM(net)(x, BoxTarget([200, 10, 240, 40], label))


def test_cli_batch_with_one_bad_mask_fails_that_image_only(scene_png, tmp_path):
    img, mask, _ = scene_png
    Image.open(img).resize((256, 256)).save(tmp_path / "big.png")  # the mask does not fit this one
    r = CliRunner().invoke(main, ["explain", str(img), str(tmp_path / "big.png"), "--model", "synthetic:seg",
                                  "--target", "1", "--mask", str(mask), "--scales", "64", "--batch-size", "2",
                                  "--out", str(tmp_path / "o"), "--quiet"])
    assert r.exit_code == 1 and "explained 1 of 2" in r.output
    assert "big.png: --mask is 128×128 pixels but the image is 256×256" in r.output
    assert (tmp_path / "o" / "scene.json").exists() and not (tmp_path / "o" / "big.json").exists()


def test_classifier_commands_refuse_segmentation_models(scene_png, tmp_path):
    img, _, _ = scene_png
    r = CliRunner().invoke(main, ["compare", str(img), "--model", "synthetic:seg", "--out", str(tmp_path / "c.png")])
    assert r.exit_code == 2 and "cameras compare explains classifiers" in r.output and "--target CLASS" in r.output
    from cameras.models import load_model

    det = load_model("torchvision:fasterrcnn_mobilenet_v3_large_fpn", weights="random")
    assert det.prepare(Image.new("RGB", (400, 100))).shape == (1, 3, 333, 1332)  # longer side ≤ 1333, as torchvision


def test_unbound_targets_say_what_binds_them():
    """Label, region and box targets share their ids handling; an unbound one names the call that binds it."""
    from cameras.core.targets import ClassTarget

    cpu = torch.device("cpu")
    with pytest.raises(InputError, match=r"ClassTarget is not bound to a batch; call bind\(output\) first"):
        ClassTarget().labels(1, cpu)
    with pytest.raises(InputError, match=r"RegionTarget is not bound to a batch; call for_batch\(B, device\) first"):
        RegionTarget(1).labels(1, cpu)
    with pytest.raises(InputError, match=r"BoxTarget is not bound to a batch; call for_batch"):
        BoxTarget([0, 0, 4, 4], label=1).labels(1, cpu)
    bound = BoxTarget([0, 0, 4, 4], label=[1, 2]).for_batch(2, cpu)
    assert bound.labels(2, cpu).tolist() == [1, 2] and bound.select(slice(1, 2)).labels(1, cpu).tolist() == [2]
    assert ClassTarget(3).for_batch(2, cpu).labels(2, cpu).tolist() == [3, 3]
