import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

torch.set_num_threads(max(1, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def seeded_generators():
    """Every test starts from the same global random state, whatever ran before it: a test's unseeded draws
    (torch.rand, a module's initialisation) are then the same on every run, so a pass or a failure repeats."""
    torch.manual_seed(0)
    np.random.seed(0)


class TinyNet(nn.Module):
    """features → (layer) → inplace ReLU → GAP → Linear. Small and fast."""

    def __init__(self, classes: int = 5, width: int = 6, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, stride=2, padding=1)
        )
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, classes)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g) * 0.5

    def head(self, a):
        return self.fc(self.pool(self.act(a.clone())).flatten(1))

    def forward(self, x):
        return self.fc(self.pool(self.act(self.features(x))).flatten(1))


@pytest.fixture
def tiny():
    return TinyNet()


@pytest.fixture(scope="session")
def embedded():
    import cameras

    return cameras.load_model()


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory):
    from skimage import data

    d = tmp_path_factory.mktemp("samples")
    Image.fromarray(data.chelsea()).save(d / "chelsea.jpg", quality=95)
    Image.fromarray(data.coffee()).save(d / "coffee.png")
    return d


def rand_image(h=40, w=56, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def snapshot(model):
    return (
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        [None if p.grad is None else p.grad.clone() for p in model.parameters()],
    )


CAT, ESPRESSO = "n02124075", "n07920052"


def voc_xml(objs, w=80, h=60):
    body = "".join(
        f"<object><name>{n}</name><difficult>{int(d)}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b, d in objs
    )
    return f"<annotation><size><width>{w}</width><height>{h}</height><depth>3</depth></size>{body}</annotation>"


def make_imagenet(root, n=3):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rand_image(60, 80, seed=i)).save(root / f"ILSVRC2012_val_{i:08d}.JPEG")
        objs = [(CAT, (5, 5, 40, 30), False)] + ([(ESPRESSO, (45, 30, 78, 58), False)] if i % 2 == 0 else [])
        (root / f"ILSVRC2012_val_{i:08d}.xml").write_text(voc_xml(objs))
    return root


def make_voc(root):
    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    (root / "ImageSets" / "Main").mkdir(parents=True)
    ids = ["000001", "000002"]
    for i, name in enumerate(ids):
        Image.fromarray(rand_image(60, 80, seed=10 + i)).save(root / "JPEGImages" / f"{name}.jpg")
    (root / "Annotations" / "000001.xml").write_text(voc_xml([("cat", (5, 5, 40, 30), False),
                                                              ("dog", (50, 30, 70, 50), True)]))
    (root / "Annotations" / "000002.xml").write_text(voc_xml([("cat", (1, 1, 80, 60), False)]))
    (root / "ImageSets" / "Main" / "test.txt").write_text("\n".join(ids) + "\n")
    return root


def make_coco(root):
    from pycocotools import mask as mask_utils

    root.mkdir(parents=True)
    Image.fromarray(rand_image(60, 80, seed=20)).save(root / "a.jpg")
    m = np.zeros((60, 80), dtype=np.uint8, order="F")
    m[40:50, 60:70] = 1
    rle = mask_utils.encode(m)
    rle["counts"] = rle["counts"].decode()
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 60, "width": 80}],
        "categories": [{"id": 17, "name": "cat"}, {"id": 47, "name": "cup"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 17, "iscrowd": 0,
             "segmentation": [[10, 10, 30, 10, 30, 20, 10, 20]]},
            {"id": 2, "image_id": 1, "category_id": 47, "iscrowd": 0, "segmentation": rle},
        ],
    }
    (root / "instances.json").write_text(json.dumps(data))
    return root


def strip_seconds(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
