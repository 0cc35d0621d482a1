"""CAMERAS's mean saliency against the distance from the image border, for growing scale sets.

Run: .venv/bin/python scripts/border_profile.py   (embedded model; chelsea, coffee, rocket and
astronaut at 224 px, every scale kept; one line per largest scale: the mean map value at
0, 1, …, 15 px from the border). A "frame" would show as a bump a few pixels in.
"""

import numpy as np
from PIL import Image
from skimage import data

import cameras

PHOTOS = ("chelsea", "coffee", "rocket", "astronaut")


def profile(m: np.ndarray, depth: int = 16) -> list[float]:
    """Mean of ``m`` over the pixels at each distance 0 … depth-1 from the nearest border."""
    h, w = m.shape
    yy, xx = np.mgrid[:h, :w]
    d = np.minimum(np.minimum(yy, h - 1 - yy), np.minimum(xx, w - 1 - xx))
    return [float(m[d == k].mean()) for k in range(depth)]


def main() -> None:
    bundle = cameras.load_model()
    for scales in ([224], [224, 324, 424], list(range(224, 1000, 100))):
        rows = []
        for name in PHOTOS:
            x = bundle.prepare(Image.fromarray(getattr(data, name)()))
            rows.append(profile(cameras.build_method("cameras", bundle, scales=scales, scale_rule="all")(x).maps[0]
                                .numpy()))
        print(f"up to {scales[-1]:>3}: " + " ".join(f"{v:.3f}" for v in np.mean(rows, 0)), flush=True)


if __name__ == "__main__":
    main()
