"""PGD, saliency-enhanced PGD, the cleaning sanity score and model randomisation."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import cameras
from cameras import InputError
from cameras.attacks import enhanced_pgd, pgd, sanity_cleaning
from cameras.randomization import randomization_check, similarity

from .conftest import TinyNet


class Linear3(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.fc = nn.Linear(3 * 8 * 8, 4)
        self.fc.weight.data = torch.randn(4, 192, generator=g)
        self.fc.bias.data.zero_()

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_pgd_respects_ball_and_box_and_reaches_target():
    net = Linear3()
    x = torch.rand(3, 3, 8, 8)
    r = pgd(net, x, target=2, eps=0.2, alpha=0.01, steps=200, threshold=0.99)
    assert (r.linf <= 0.2 + 1e-6).all()
    assert (r.adversarial >= 0).all() and (r.adversarial <= 1).all()
    assert r.success.all() and (net(r.adversarial).argmax(1) == 2).all()
    assert (r.target_prob >= 0.99).all() and (r.steps < 200).all()
    # it stops at the threshold: one step fewer would not have reached it
    assert torch.allclose(r.perturbation, r.adversarial - x)


def test_pgd_step_cap_and_least_likely_default():
    net = Linear3()
    x = torch.rand(2, 3, 8, 8)
    ll = net(x).argmin(1)
    r = pgd(net, x, eps=1e-3, alpha=1e-3, steps=3)
    assert torch.equal(r.targets, ll) and (r.steps == 3).all() and not r.success.any()


def test_pgd_step_cap_is_per_image_in_a_batch():
    """An image that reaches its target at once must not give the others an extra step past the cap: each image's
    result equals its own attack alone, and its probability is the one at its returned image."""
    net = Linear3()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    logits = net(x)
    target = torch.stack([logits[0].argmax(), logits[1].argmin()])
    assert logits[0].softmax(0).max() > 0.9  # image 0 is there already
    r = pgd(net, x, target=target, eps=1e-3, alpha=1e-3, steps=3, threshold=0.9)
    alone = pgd(net, x[1:], target=target[1:], eps=1e-3, alpha=1e-3, steps=3, threshold=0.9)
    assert r.steps.tolist() == [0, 3] and alone.steps.tolist() == [3]
    assert torch.allclose(r.adversarial[1:], alone.adversarial, atol=1e-7)
    assert torch.allclose(r.target_prob[1], net(r.adversarial[1:]).softmax(1)[0, target[1]], atol=1e-6)


def test_pgd_l2_projection():
    net = Linear3()
    x = torch.full((2, 3, 8, 8), 0.5)
    r = pgd(net, x, target=1, eps=0.3, alpha=0.1, steps=50, norm="l2", threshold=1.0)
    assert (r.l2 <= 0.3 + 1e-5).all() and (r.l2 > 0.29).all()


def test_pgd_mask_limits_the_perturbation():
    net = Linear3()
    x = torch.full((1, 3, 8, 8), 0.5)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :] = 1
    r = pgd(net, x, target=3, eps=0.3, steps=30, mask=mask, threshold=1.0)
    assert r.perturbation[..., 4:, :].abs().max() == 0 and r.perturbation.abs().max() > 0


def test_bad_attack_options():
    net = Linear3()
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(InputError, match="eps must be ≥ 0"):
        pgd(net, x, target=1, eps=-0.1)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        pgd(net, x * 3, target=1)
    with pytest.raises(InputError, match="norm"):
        pgd(net, x, target=1, norm="l1")
    with pytest.raises(InputError, match=r"fraction must lie in \(0, 1\]"):
        sanity_cleaning(net, x, torch.rand(1, 8, 8), x, torch.tensor([0]), fraction=0)
    with pytest.raises(InputError, match="saliency must be B×H×W"):
        enhanced_pgd(net, x, torch.rand(8, 8))


def test_enhanced_pgd_focuses_energy_and_lowers_norm():
    net = Linear3(seed=3)
    sal = torch.zeros(1, 8, 8)
    sal[:, 2:6, 2:6] = 1.0  # the map's high region, where the model's evidence lies
    with torch.no_grad():  # as for a real classifier, the salient pixels carry the weight
        net.fc.weight.mul_((0.1 + 0.9 * sal.expand(3, 8, 8)).flatten())
    x = torch.full((1, 3, 8, 8), 0.5)
    kw = dict(target=1, eps=0.5, alpha=0.005, steps=1000, threshold=0.999)
    van = pgd(net, x, **kw)
    enh = enhanced_pgd(net, x, sal, beta=5.0, preset="literal", **kw)
    assert van.success.all() and enh.success.all()
    inside = sal.bool().expand(1, 8, 8).unsqueeze(1).expand(1, 3, 8, 8)
    e_in = enh.perturbation[inside].pow(2).sum() / enh.perturbation.pow(2).sum()
    v_in = van.perturbation[inside].pow(2).sum() / van.perturbation.pow(2).sum()
    assert e_in > v_in + 0.2  # energy moves where the map is high
    assert float(enh.l2[0]) < float(van.l2[0])  # and the norm drops at equal confidence


def test_sanity_score_ideal_flat_and_steps():
    class ProbByPixels(nn.Module):
        """P(class 0) = fraction of pixels equal to the clean value 1 (via a steep logit)."""

        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(1.0))

        def forward(self, x):
            frac = (x[:, 0] > 0.5).float().flatten(1).mean(1)
            return torch.stack([torch.log(frac.clamp(1e-6, 1 - 1e-6)),
                                torch.log((1 - frac).clamp(1e-6, 1))], 1) * self.w

    net = ProbByPixels()
    x = torch.ones(1, 3, 10, 10)
    adv = torch.zeros(1, 3, 10, 10)
    maps = torch.rand(1, 10, 10)
    r = sanity_cleaning(net, x, maps, adv, torch.tensor([0]), fraction=0.5, steps=5)
    assert r["curve"].shape == (1, 6) and r["pixels"].tolist() == [0, 10, 20, 30, 40, 50]
    # probability rises linearly from 0 to 0.5 while the ideal is the clean 1.0 throughout
    assert float(r["score"][0]) == pytest.approx(1 - 0.25 / 1.0, abs=0.02)
    flat = sanity_cleaning(net, x, maps, torch.zeros_like(x), torch.tensor([0]), fraction=0.01, steps=1)
    assert float(flat["score"][0]) > 0.9  # nearly flat at 0: near 1
    ideal = sanity_cleaning(net, x, maps, x, torch.tensor([0]), fraction=0.3, steps=3)
    assert float(ideal["score"][0]) == pytest.approx(0.0, abs=1e-6)  # curve at the clean level: 0


def test_sanity_cleaning_checks_its_inputs_and_batches_its_forwards():
    calls = []
    net = Linear3()
    with torch.no_grad():
        net.fc.weight.mul_(0.1)  # logits of a few units: no probability so near 0 that rounding dominates the score
    net.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[0]))
    g = torch.Generator().manual_seed(12)
    x = torch.rand(2, 3, 8, 8, generator=g)
    adv = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    maps = torch.rand(2, 8, 8, generator=g)
    whole = sanity_cleaning(net, x, maps, adv, torch.tensor([0, 1]), fraction=0.5, steps=9)
    calls.clear()
    parts = sanity_cleaning(net, x, maps, adv, torch.tensor([0, 1]), fraction=0.5, steps=9, batch_size=4)
    assert calls == [2, 4, 4, 2, 4, 4, 2]  # the clean pass, then at most 4 restored images per forward
    assert torch.allclose(whole["curve"], parts["curve"], atol=1e-6)
    # the score divides the curve's area by the clean probability: forwards of another batch size round
    # differently, and the score can differ by more than the curve does
    assert torch.allclose(whole["score"], parts["score"], atol=1e-5)
    with pytest.raises(InputError, match=r"maps must be B×H×W on x's grid, expected \(2, 8, 8\), got \(2, 2, 2\)"):
        sanity_cleaning(net, x, torch.rand(2, 2, 2), adv, torch.tensor([0, 1]))
    with pytest.raises(InputError, match=r"maps must be B×H×W on x's grid, expected \(2, 8, 8\), got \(1, 8, 8\)"):
        sanity_cleaning(net, x, maps[:1], adv, torch.tensor([0, 1]))
    with pytest.raises(InputError, match=r"adversarial must be the attacked images, shaped as x"):
        sanity_cleaning(net, x, maps, adv[:, :, :4], torch.tensor([0, 1]))
    with pytest.raises(InputError, match="batch_size must be a positive int"):
        sanity_cleaning(net, x, maps, adv, torch.tensor([0, 1]), batch_size=0)


def test_attacks_work_under_inference_mode():
    """The attacks need gradients: under a caller's inference_mode they give what they give outside it."""
    net = Linear3()
    x = torch.rand(2, 3, 8, 8)
    sal = torch.rand(2, 8, 8)
    mask = torch.ones(1, 1, 8, 8)
    ref = pgd(net, x, steps=3, mask=mask)
    ref_enh = enhanced_pgd(net, x, sal, steps=3)
    with torch.inference_mode():
        x_inf, sal_inf, mask_inf = x.clone(), sal.clone(), mask.clone()
        got = pgd(net, x_inf, steps=3, mask=mask_inf)
        got_enh = enhanced_pgd(net, x_inf, sal_inf, steps=3)
    assert torch.equal(got.adversarial, ref.adversarial) and torch.equal(got.steps, ref.steps)
    assert torch.equal(got_enh.adversarial, ref_enh.adversarial)


def test_randomization_checks_one_image_and_makes_every_map_alike():
    net = _trained_tiny()
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(InputError, match=r"x must be one image, 1×C×H×W, got \(2, 3, 16, 16\)"):
        randomization_check(net, x.expand(2, -1, -1, -1), lambda m: cameras.GradCAM(m, layer="features"))
    # no target: the trained top-1 is given to every map explicitly, so a CAMERAS whose scale rule drops scales
    # for target=None makes the trained map as it makes the randomised ones
    seen = []

    def spy(m):
        cam = cameras.GradCAM(m, layer="features")

        def call(x, target=None):
            seen.append(target)
            return cam(x, target=target)
        return call

    out = randomization_check(net, x, spy, blocks=["fc"])
    top1 = int(net(x).argmax(1))
    assert len(seen) == 2 and all(t is not None and int(getattr(t, "ids", t).reshape(-1)[0]) == top1 for t in seen)
    assert out[0]["spearman"] == 1.0
    # the caller's random stream is untouched
    torch.manual_seed(5)
    want = torch.rand(3)
    torch.manual_seed(5)
    randomization_check(net, x, lambda m: cameras.GradCAM(m, layer="features"), blocks=["fc"], target=0)
    assert torch.equal(torch.rand(3), want)


def test_randomization_shows_a_bar_over_its_maps_on_request(capsys, monkeypatch):
    import cameras.randomization as randomization

    bars, real = [], randomization.progress_bar
    monkeypatch.setattr(randomization, "progress_bar", lambda *a: bars.append(real(*a)) or bars[-1])
    net = _trained_tiny()
    x = torch.rand(1, 3, 16, 16)
    randomization_check(net, x, lambda m: cameras.GradCAM(m, layer="features"), blocks=["fc"], progress=True,
                        label="randomization (gradcam)")
    err = capsys.readouterr().err
    assert "randomization (gradcam)" in err and "0/2" in err
    assert bars[0].n == bars[0].total == 2  # the trained map, then one per block
    randomization_check(net, x, lambda m: cameras.GradCAM(m, layer="features"), blocks=["fc"])
    assert capsys.readouterr().err == ""  # the library default: no bar


def test_similarity_values_are_coefficients():
    a = torch.rand(32, 32)
    s = similarity(a, a)
    assert s == pytest.approx({"spearman": 1.0, "spearman_abs": 1.0, "ssim": 1.0, "hog": 1.0})
    const = similarity(a, torch.zeros(32, 32))
    assert all(np.isfinite(v) for v in const.values()) and const["spearman"] == 0.0
    assert similarity(a, 1 - a)["spearman"] == pytest.approx(-1.0)


def _trained_tiny():
    """A small CNN trained in the test to tell a bright top-left square from bottom-right."""
    torch.manual_seed(0)
    net = TinyNet(classes=2, width=8)
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(60):
        x = torch.rand(32, 3, 16, 16) * 0.2
        y = torch.randint(0, 2, (32,))
        for i in range(32):
            if y[i] == 0:
                x[i, :, 2:7, 2:7] += 0.8
            else:
                x[i, :, 9:14, 9:14] += 0.8
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@pytest.mark.parametrize("mode", ["cascading", "independent"])
def test_randomization_drops_for_gradcam(mode):
    net = _trained_tiny()
    x = torch.rand(1, 3, 16, 16) * 0.2
    x[0, :, 2:7, 2:7] += 0.8
    before = {k: v.clone() for k, v in net.state_dict().items()}
    out = randomization_check(net, x, lambda m: cameras.GradCAM(m, layer="features"), mode=mode, target=0, seed=1)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # the model is untouched
    assert out[0]["spearman"] == 1.0 and out[0]["ssim"] == pytest.approx(1.0)
    assert [o["block"] for o in out[1:]] == ["fc", "features"]
    for o in out:
        assert all(np.isfinite(o[k]) for k in ("spearman", "spearman_abs", "ssim", "hog"))
        assert "p" not in o and "pvalue" not in o
    assert out[1]["reinitialized"] == ["fc"]
    assert min(o["spearman"] for o in out[1:]) < 0.8  # similarity drops once weights are random
    again = randomization_check(net, x, lambda m: cameras.GradCAM(m, layer="features"), mode=mode, target=0, seed=1)
    assert [o["spearman"] for o in again] == [o["spearman"] for o in out]  # seeded
    with pytest.raises(InputError, match="unknown block 'head'"):
        randomization_check(net, x, lambda m: cameras.GradCAM(m, layer="features"), blocks=["head"])
    # any submodule with parameters, by its dotted name; one without parameters, or none at all, is refused
    fine = randomization_check(net, x, lambda m: cameras.GradCAM(m, layer="features"), mode=mode, target=0, seed=1,
                               blocks=["fc", "features.2", "features.0"])
    assert [o["block"] for o in fine[1:]] == ["fc", "features.2", "features.0"]
    assert fine[1]["spearman"] == out[1]["spearman"]  # the same first step as the top-level walk
    with pytest.raises(InputError, match="'features.1' has no parameters"):
        randomization_check(net, x, lambda m: cameras.GradCAM(m, layer="features"), blocks=["features.1"])
    with pytest.raises(InputError, match="no blocks to re-initialise"):
        randomization_check(net, x, lambda m: cameras.GradCAM(m, layer="features"), blocks=[])


def test_attack_sanity_randomize_commands(sample_dir, tmp_path):
    import json

    from click.testing import CliRunner

    from cameras.cli import main

    img = str(sample_dir / "coffee.png")
    r = CliRunner().invoke(main, ["attack", img, "--steps", "4", "--square", "--out", str(tmp_path / "a")],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    a = json.loads((tmp_path / "a" / "attack.json").read_text())
    rec = a["images"][0]
    assert rec["vanilla"]["steps"] == 4 and rec["vanilla"]["linf"] <= 12 / 255 + 1e-6
    assert a["paper_mean_l2_reduction_percent"] == 56.5 and (tmp_path / "a" / "coffee.attack.png").exists()
    # an image left out of the mean (either attack short of the threshold) says so on its line
    both = rec["vanilla"]["success"] and rec["enhanced"]["success"]
    assert a["both_successful"] == int(both) and ("not in the mean" in r.output) == (not both)
    if not both:
        assert f"stayed below {a['threshold']:.2%}" in r.output
    r = CliRunner().invoke(main, ["sanity", img, "--methods", "gradcam,gradient", "--attack-steps", "3", "--steps", "4",
                                  "--square", "--out", str(tmp_path / "s")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "s" / "sanity.json").read_text())
    assert set(s["mean_score"]) == {"gradcam", "gradient"} and all(0 <= v <= 1 for v in s["mean_score"].values())
    assert len(s["images"][0]["methods"]["gradcam"]["curve"]) == 5
    # the settings the scores depend on go with them
    assert s["attack_steps"] == 3 and s["steps"] == 4 and s["methods"] == ["gradcam", "gradient"]
    assert s["reading"] == cameras.attacks.reading("literal") and s["weights_fingerprint"]
    r = CliRunner().invoke(main, ["randomize", img, "--methods", "gradcam", "--square", "--out", str(tmp_path / "r")],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    z = json.loads((tmp_path / "r" / "coffee.randomize.json").read_text())
    steps = z["methods"]["gradcam"]
    assert steps[0]["spearman"] == 1.0 and steps[1]["block"] == "classifier"
    assert (tmp_path / "r" / "coffee.similarity.png").exists()
    # a finer walk: submodules of the EfficientNet's one container of blocks, by their dotted names
    r = CliRunner().invoke(main, ["randomize", img, "--methods", "gradcam", "--square", "--blocks",
                                  "classifier,blocks.6,blocks.5", "--out", str(tmp_path / "r2")],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    z = json.loads((tmp_path / "r2" / "coffee.randomize.json").read_text())
    assert [o["block"] for o in z["methods"]["gradcam"]] == [None, "classifier", "blocks.6", "blocks.5"]
    r = CliRunner().invoke(main, ["randomize", img, "--methods", "gradcam", "--blocks", "blocks.99",
                                  "--out", str(tmp_path / "r3")])
    assert r.exit_code == 2 and "unknown block 'blocks.99'" in r.output and "dotted name" in r.output
    # two images with one stem get two figures; a rerun with other weights into the same folder is refused
    (tmp_path / "b").mkdir()
    Image.open(img).save(tmp_path / "b" / "coffee.jpg")
    r = CliRunner().invoke(main, ["attack", img, str(tmp_path / "b" / "coffee.jpg"), "--steps", "2", "--square",
                                  "--out", str(tmp_path / "a2")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "a2" / "coffee.attack.png").exists() and (tmp_path / "a2" / "coffee_2.attack.png").exists()
    r = CliRunner().invoke(main, ["attack", img, "--steps", "2", "--square", "--model", "torchvision:resnet18",
                                  "--weights", "random", "--out", str(tmp_path / "a2")])
    assert r.exit_code == 2 and "other settings (model:" in r.output and "weights_fingerprint" in r.output
    for args, msg in [(["attack", img, "--eps", "-1/255"], "eps must be ≥ 0"),
                      (["attack", img, "--alpha", "0"], "--step-size (--alpha) must be > 0"),
                      (["sanity", img, "--methods", ","], "no method given"),
                      (["sanity", img, "--eps", "-2/255"], "eps must be ≥ 0"),
                      (["experiment", "n-sensitivity", str(tmp_path / "b" / "nothing-here")], "no such file"),
                      (["sanity", img, "--fraction", "0"], "0<x<=1"),
                      (["sanity", img, "--methods", "nope"], "unknown method")]:
        r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "x")])
        assert r.exit_code != 0 and msg in r.output, (args, r.output)


def test_eq4_penalty_readings_by_hand():
    from cameras.attacks import eq4_penalty

    p = torch.zeros(1, 3, 2, 2)
    p[0, :, 0, 0] = 0.1  # one pixel moved by 0.1 in each channel
    sal = torch.tensor([[[0.5, 1.0], [0.0, 0.0]]])  # Ψ = 0.5 there
    base = (3 * (0.1 * 0.5) ** 2) ** 0.5  # ‖p ⊙ (1 − Ψ)‖ = √3·0.05
    assert float(eq4_penalty(p, sal, 50)) == pytest.approx(50 * base)
    assert float(eq4_penalty(p, sal, 50, pixel_scale=255)) == pytest.approx(50 * 255 * base)
    assert float(eq4_penalty(p, sal, 50, squared=True)) == pytest.approx(50 * base**2)
    assert float(eq4_penalty(p, sal, 50, per_pixel=True)) == pytest.approx(50 * base / 12**0.5)
    assert float(eq4_penalty(p, sal, 5, 255, True, True)) == pytest.approx(5 * (255 * base) ** 2 / 12)
    sal[0, 0, 0] = 1.0  # no penalty where Ψ = 1
    assert float(eq4_penalty(p, sal, 50)) == 0


def test_readings_presets_and_overrides():
    from cameras.attacks import PGD_READINGS, reading, vanilla_for

    assert set(PGD_READINGS) == {"paper", "literal"}
    assert reading("literal") == {"step": "sign", "eps": 12 / 255, "pixel_scale": 1.0, "squared": False,
                                  "per_pixel": False, "beta": 50.0}
    assert reading("paper")["per_pixel"] and reading("paper")["beta"] == 5.0
    assert reading("literal", eps=None)["eps"] is None
    with pytest.raises(InputError, match="unknown preset 'x'"):
        reading("x")
    net = Linear3(seed=1)
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    sal = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(1))
    # β = 0 leaves plain PGD under the same reading: options reach the attack unchanged
    for preset in PGD_READINGS:
        kw = dict(target=1, steps=15, threshold=1.0)
        van = vanilla_for(net, x, preset, **kw)
        enh = enhanced_pgd(net, x, sal, beta=0.0, preset=preset, **kw)
        assert torch.equal(van.adversarial, enh.adversarial)
    # unbounded: ℓ∞ may pass 12/255; bounded: it may not
    kw = dict(target=1, steps=40, threshold=1.0, alpha=0.01)
    assert float(enhanced_pgd(net, x, sal, beta=0.0, preset="literal", eps=None, **kw).linf[0]) > 12 / 255 + 1e-3
    assert float(enhanced_pgd(net, x, sal, beta=0.0, preset="literal", **kw).linf[0]) <= 12 / 255 + 1e-6
    with pytest.raises(InputError, match="pixel_scale must be > 0"):
        enhanced_pgd(net, x, sal, pixel_scale=0)
    with pytest.raises(InputError, match="step must be 'sign' or 'l2'"):
        enhanced_pgd(net, x, sal, step="adam")


def test_attack_command_reading_options(sample_dir, tmp_path):
    import json

    from click.testing import CliRunner

    from cameras.cli import main

    img = str(sample_dir / "coffee.png")
    r = CliRunner().invoke(main, ["attack", img, "--steps", "3", "--square", "--preset", "literal", "--eps", "none",
                                  "--step", "l2", "--pixel-scale", "255", "--squared", "--out", str(tmp_path / "a")],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    a = json.loads((tmp_path / "a" / "attack.json").read_text())
    assert a["reading"] == {"step": "l2", "eps": None, "pixel_scale": 255.0, "squared": True, "per_pixel": False,
                            "beta": 50.0}
    r = CliRunner().invoke(main, ["attack", img, "--eps", "-1/255", "--out", str(tmp_path / "b")])
    assert r.exit_code != 0 and "--eps must be ≥ 0 or 'none'" in r.output
    r = CliRunner().invoke(main, ["attack", img, "--preset", "loose", "--out", str(tmp_path / "c")])
    assert r.exit_code != 0 and "'loose' is not one of 'paper', 'literal'" in r.output
