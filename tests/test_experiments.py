"""The supplement's experiments end to end on tiny inputs."""

import json

import numpy as np
from click.testing import CliRunner

from cameras.cli import main

from .conftest import make_imagenet


def test_n_sensitivity(sample_dir, tmp_path):
    out = tmp_path / "n"
    r = CliRunner().invoke(main, ["experiment", "n-sensitivity", str(sample_dir / "coffee.png"), "--max-size", "300",
                                  "--square", "--out", str(out), "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    data = json.loads((out / "n_sensitivity.json").read_text())
    m = np.array(data["ours"])
    assert m.shape == (6, 6) and np.allclose(np.diag(m), 0) and np.allclose(m, m.T, atol=1e-4)
    assert (m >= 0).all() and (m <= 2).all() and m[0, 5] > 0
    assert data["paper"][1][4] == 0.15
    assert (out / "n_sensitivity.png").exists() and (out / "n_sensitivity.csv").read_text().startswith("N,5,6")
    assert "(0.11)" in r.output


def test_interpolation_with_dataset(tmp_path):
    import torch

    import cameras
    from cameras.metrics import map_density

    root = make_imagenet(tmp_path / "inet", n=1)
    out = tmp_path / "i"
    r = CliRunner().invoke(main, ["experiment", "interpolation", "--data", str(root), "--format", "imagenet",
                                  "--square", "--out", str(out), "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    s = json.loads((out / "interpolation.json").read_text())
    assert s["gamma"] == [round(0.1 * i, 1) for i in range(11)] and len(s["rho_plus"]) == 11
    assert all(p is not None for p in s["pointing_game"]) and s["items"] == 2
    # γ = 1 is Grad-CAM's map: its ρ⁺ equals the metric computed directly (mean over the 2 items)
    bundle = cameras.load_model()
    from PIL import Image

    from cameras.images import resize_image

    img = Image.open(root / "ILSVRC2012_val_00000000.JPEG").convert("RGB")
    x01 = resize_image(img, 224, square=True)
    x = bundle.normalize(x01)
    vals = []
    for cls in (285, 967):
        g = cameras.GradCAM(bundle.model, layer="bn2")(x, target=cls).maps
        vals.append(float(map_density(bundle.model, x01, g, torch.tensor([cls]), bundle.normalize)[0][0]))
    assert abs(s["rho_plus"][-1] - np.mean(vals)) < 1e-4
    assert (out / "interpolation.png").exists()


def test_experiment_needs_input(tmp_path):
    r = CliRunner().invoke(main, ["experiment", "interpolation", "--out", str(tmp_path)])
    assert r.exit_code != 0 and "IMAGE files or --data" in r.output


def test_interpolation_towards_an_all_zero_gradcam_map(sample_dir, tmp_path, monkeypatch):
    """ρ⁺ is 0 by its guard where the blend is all zero; P(K(I ⊙ Ψ)) is still read (a black image)."""
    import torch

    import cameras
    from cameras.experiments import interpolation
    from cameras.methods.gradcam import GradCAM

    orig = GradCAM.__call__

    def zero(self, x, target=None):
        r = orig(self, x, target=target)
        r.maps.zero_()
        return r

    monkeypatch.setattr(GradCAM, "__call__", zero)
    bundle = cameras.load_model()
    s = interpolation(bundle, [(sample_dir / "coffee.png", 967, None)], tmp_path, progress=False)
    assert s["zero_gradcam_items"] == 1 and s["rho_plus"][-1] == 0 and s["mean_psi"][-1] == 0
    x01 = bundle.prepare(cameras.images.load_image(sample_dir / "coffee.png"), normalized=False)
    with torch.no_grad():
        black = bundle.model(bundle.normalize(torch.zeros_like(x01))).softmax(1)[0, 967]
    assert abs(s["masked_prob"][-1] - float(black)) < 1e-5
    assert s["rho_plus_without_zero_maps"] == [0.0] * 11  # no item left


def test_interpolation_on_a_dataset_records_the_dataset(tmp_path):
    """A rerun of the interpolation experiment under another mapping is other work: refused, not mixed."""
    from .conftest import make_voc

    root = make_voc(tmp_path / "voc")
    out = tmp_path / "out"
    (tmp_path / "m.json").write_text('{"cat": 285}')
    args = ["experiment", "interpolation", "--data", str(root), "--format", "voc", "--mapping",
            str(tmp_path / "m.json"), "--limit", "1", "--out", str(out), "--quiet"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    config = json.loads((out / "interpolation.config.json").read_text())
    assert config["format"] == "voc" and config["protocol"] == 2 and config["mapping_sha256"]
    (tmp_path / "m.json").write_text('{"cat": 281}')
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and "mapping_sha256" in r.output, r.output
