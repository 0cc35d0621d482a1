"""How far Extremal Perturbation's mask has converged after 50-300 iterations (the warning's threshold).

Run: .venv/bin/python scripts/extremal_convergence.py   (embedded model, chelsea; prints the
mask's standard deviation, range and mean area per iteration count; the area asked is 0.3).
"""

from PIL import Image
from skimage import data

import cameras


def main() -> None:
    bundle = cameras.load_model()
    x = bundle.prepare(Image.fromarray(data.chelsea()))
    for iterations in (50, 100, 200, 300):
        m = cameras.build_method("extremal", bundle, iterations=iterations, progress=False)(x).maps[0]
        print(f"{iterations:>4} iterations: std {float(m.std()):.3f}, range {float(m.max() - m.min()):.3f}, "
              f"area {float(m.mean()):.3f}", flush=True)


if __name__ == "__main__":
    main()
