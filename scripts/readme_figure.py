"""Regenerate docs/images/cameras_demo.png: sample photos and their CAMERAS overlays.

Run: .venv/bin/python scripts/readme_figure.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

import cameras  # noqa: E402
from cameras.viz import DEFAULT_FADE  # noqa: E402

bundle = cameras.load_model()
method = cameras.CAMERAS(bundle.model, layer=bundle.layer)
fig, axes = plt.subplots(2, 2, figsize=(9, 6.4))
for row, name in zip(axes, ("chelsea", "coffee")):
    img = Image.fromarray(getattr(data, name)())
    res = method(cameras.preprocess(img))
    sal = cameras.resize_maps(res.maps, (img.height, img.width))[0].numpy()
    cls = int(res.targets[0])
    row[0].imshow(img)
    row[0].set_title(f"{name}.jpg")
    row[1].imshow(cameras.overlay(np.asarray(img), sal, fade=DEFAULT_FADE))
    row[1].set_title(f"CAMERAS: {bundle.class_name(cls)} ({float(res.probs[0]):.2f}), {res.seconds:.1f} s")
    for ax in row:
        ax.axis("off")
fig.tight_layout()
out = Path(__file__).resolve().parents[1] / "docs" / "images" / "cameras_demo.png"
fig.savefig(out, dpi=80)
print(out)
