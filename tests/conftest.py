import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

torch.set_num_threads(max(1, torch.get_num_threads()))


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
