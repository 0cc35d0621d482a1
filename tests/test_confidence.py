"""Average Drop / Increase in Confidence: by hand and against pytorch-grad-cam."""

import pytest
import torch
import torchvision
from torch import nn

from cameras import InputError
from cameras.metrics import confidence_change


class Sum(nn.Module):
    """Two classes: logit 0 = sum of pixels, logit 1 = 0."""

    def forward(self, x):
        s = x.flatten(1).sum(1)
        return torch.stack([s, torch.zeros_like(s)], 1)


def test_confidence_change_by_hand():
    x = torch.ones(2, 1, 8, 8)
    maps = torch.zeros(2, 8, 8)
    maps[0, :4] = 1.0  # keeps 32 of 64 pixels: logit 32
    maps[1] = 0.5  # halves every pixel: logit 32
    x[1] = 2.0  # image 1 has logit 128, masked 64
    r = confidence_change(Sum(), x, maps, target=0)
    y = torch.sigmoid(torch.tensor([64.0, 128.0]))  # softmax of (s, 0) for class 0
    o = torch.sigmoid(torch.tensor([32.0, 64.0]))
    assert torch.allclose(r["clean"], y) and torch.allclose(r["masked"], o)
    assert torch.allclose(r["drop"], (y - o).clamp(min=0) / y)
    # class 1 gains confidence when class 0's logit falls
    r1 = confidence_change(Sum(), x, maps, target=1)
    assert r1["increase"].tolist() == [True, True] and float(r1["increase_in_confidence"]) == 100.0
    assert float(r1["average_drop"]) == 0.0


def test_confidence_change_agrees_with_pytorch_grad_cam():
    from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence, IncreaseInConfidence
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=5).eval()
    x = torch.randn(3, 3, 48, 48)
    maps = torch.rand(3, 48, 48)
    # per image, the class whose confidence drops most (images 0, 1) or rises most (image 2): every comparison
    # below then has a non-zero side (with fixed classes two of three drops were 0 on both sides)
    with torch.no_grad():
        change = net(x * maps[:, None]).softmax(1) - net(x).softmax(1)
    classes = [int(change[0].argmin()), int(change[1].argmin()), int(change[2].argmax())]
    ours = confidence_change(net, x, maps, target=classes, batch_size=2)
    targets = [ClassifierOutputSoftmaxTarget(t) for t in classes]
    drop = torch.from_numpy(DropInConfidence()(x, maps.numpy(), targets, net)).flatten()
    inc = torch.from_numpy(IncreaseInConfidence()(x, maps.numpy(), targets, net)).flatten()
    assert (drop[:2] > 1e-3).all() and drop[2] == 0 and inc.tolist() == [0.0, 0.0, 1.0]
    # the peer's drop is max(0, Y − O) without dividing by Y (Chattopadhyay et al. divide)
    assert torch.allclose(ours["drop"] * ours["clean"], drop, atol=1e-6)
    assert ours["increase"].float().tolist() == inc.tolist()


def test_confidence_change_bad_input():
    with pytest.raises(InputError, match="maps must be B×H×W"):
        confidence_change(Sum(), torch.ones(1, 1, 8, 8), torch.ones(8, 8))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        confidence_change(Sum(), torch.ones(1, 1, 8, 8), torch.full((1, 8, 8), 2.0))
    with pytest.raises(InputError, match="batch_size"):
        confidence_change(Sum(), torch.ones(1, 1, 8, 8), torch.ones(1, 8, 8), batch_size=0)
    # a raw score is no probability: its "drop" was ~1e11
    with pytest.raises(InputError, match="outside \\[0, 1\\].*explain a class"):
        confidence_change(Sum(), torch.ones(2, 1, 8, 8), torch.full((2, 8, 8), 0.5), target=lambda o: o[:, 0] - 5)
    with pytest.raises(InputError, match="outside \\[0, 1\\]"):  # NaN is no probability either
        confidence_change(Sum(), torch.ones(1, 1, 8, 8), torch.full((1, 8, 8), 0.5),
                          target=lambda o: o[:, 0] * float("nan"))
