"""Regenerate docs/example-eval/: a two-image ImageNet-style dataset made from scikit-image's
photos (boxes drawn by hand) and `cameras evaluate` on it with the embedded model.

Run: .venv/bin/python scripts/example_eval.py
"""

import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image
from skimage import data

ROOT = Path(__file__).resolve().parents[1] / "docs" / "example-eval"
BOXES = {  # name: (WordNet id, (xmin, ymin, xmax, ymax)), 1-based inclusive like ImageNet's XML
    "chelsea": ("n02124075", (60, 1, 400, 300)),  # Egyptian cat: the face
    "coffee": ("n07920052", (150, 30, 470, 240)),  # espresso: the cup
}


def main():
    shutil.rmtree(ROOT, ignore_errors=True)
    (ROOT / "data").mkdir(parents=True)
    for name, (wnid, (x0, y0, x1, y1)) in BOXES.items():
        img = getattr(data, name)()
        Image.fromarray(img).save(ROOT / "data" / f"{name}.JPEG", quality=95)
        h, w = img.shape[:2]
        (ROOT / "data" / f"{name}.xml").write_text(
            f"<annotation><size><width>{w}</width><height>{h}</height><depth>3</depth></size><object><name>{wnid}</name>"
            f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object></annotation>")
    cmd = [sys.executable, "-m", "cameras", "evaluate", "--data", "data", "--format", "imagenet",
           "--methods", "cameras,gradcam,gradient,normgrad", "--metrics", "pointing,rho,insdel", "--quiet",
           "--out", "out"]
    subprocess.run(cmd, check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
