"""`cameras reproduce`: the quick mode end to end, each section equal to its standalone command,
resuming, the dataset tables, and the verdict rules on hand-made numbers."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cameras.cli import main
from cameras.reproduce import (
    DIRECTION,
    NOT,
    REPRODUCED,
    Settings,
    _verdict_attack,
    _verdict_gamma,
    _verdict_grid,
    _verdict_n,
    _verdict_sanity,
    _verdict_tables,
    _verdict_timing,
    report_md,
)

from .conftest import make_imagenet, make_voc

VERDICTS = (REPRODUCED, DIRECTION, NOT)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("repro") / "r"
    r = CliRunner().invoke(main, ["reproduce", "--quick", "--model", "efficientnet_lite0", "--out", str(out),
                                  "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out, r.output


def test_quick_writes_every_section_and_verdict(quick):
    out, output = quick
    rep = json.loads((out / "report.json").read_text())
    assert list(rep["sections"]) == ["A-1", "A-2", "A-3", "A-4", "A-5", "A-6"] and rep["quick"]
    md = (out / "report.md").read_text()
    for name, title in (("A-1", "Timing"), ("A-2", "number of scales"), ("A-3", "Interpolation"),
                        ("A-4", "Adversarial cleaning"), ("A-5", "Qualitative"), ("A-6", "enhanced PGD")):
        v = rep["sections"][name]["verdict"]
        assert v["verdict"] in VERDICTS and v["evidence"] and v["claim"]
        assert f"## {name} " in md and title in md
        assert f"| {name} | {v['claim']} | **{v['verdict']}** |" in md
        assert f"{name}: {v['verdict']}" in output
    assert "quick mode" in md and "0.11)" in md  # the paper's N matrix beside ours
    t = rep["sections"]["A-1"]["models"]["efficientnet_lite0"]
    assert {"gradcam", "cameras", "rise", "extremal", "normgrad", "gradient"} <= set(t)
    assert t["rise"]["scaled_from"] == 64 and t["rise"]["seconds"] == pytest.approx(
        t["rise"]["measured_seconds"] * 6000 / 64)
    assert "pytorch-grad-cam Grad-CAM" in t and "captum LayerGradCam" in t  # peers, installed in the test extras
    assert (out / "a5-qualitative" / "chelsea.png").exists()
    assert (out / "a2-n-sensitivity" / "n_sensitivity.png").exists()
    g = rep["sections"]["A-3"]
    assert len(g["rho_plus"]) == 11 and all(p is not None for p in g["pointing_game"])  # boxes of the photos
    # the ratio of means is what its two parts say
    assert g["rho_plus_of_means"][3] == pytest.approx(g["masked_prob"][3] / g["mean_psi"][3])


def test_sections_equal_the_standalone_commands(quick, tmp_path):
    out, _ = quick
    rep = json.loads((out / "report.json").read_text())
    imgs = [str(out / "images" / f"{n}.png") for n in ("chelsea", "coffee", "rocket", "camera", "motorcycle",
                                                        "astronaut")]
    run = CliRunner().invoke
    r = run(main, ["experiment", "n-sensitivity", *imgs[:2], "--max-size", "448", "--out", str(tmp_path / "n"),
                   "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    ours = json.loads((tmp_path / "n" / "n_sensitivity.json").read_text())["ours"]
    np.testing.assert_allclose(ours, rep["sections"]["A-2"]["ours"], atol=1e-4)
    r = run(main, ["experiment", "interpolation", *imgs, "--out", str(tmp_path / "i"), "--quiet"],
            catch_exceptions=False)
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "i" / "interpolation.json").read_text())
    np.testing.assert_allclose(s["rho_plus"], rep["sections"]["A-3"]["rho_plus"], rtol=1e-5)
    r = run(main, ["attack", imgs[0], "--out", str(tmp_path / "a"), "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    a = json.loads((tmp_path / "a" / "attack.json").read_text())
    assert len(a["images"]) == 1
    for mine, theirs in zip(a["images"], rep["sections"]["A-6"]["images"]):
        for k in ("vanilla", "enhanced"):
            assert mine[k]["steps"] == theirs[k]["steps"]
            assert mine[k]["l2"] == pytest.approx(theirs[k]["l2"], rel=1e-5)


def test_rerun_resumes_and_refuses_other_settings(quick):
    out, _ = quick
    before = json.loads((out / "report.json").read_text())
    r = CliRunner().invoke(main, ["reproduce", "--quick", "--model", "efficientnet_lite0", "--out", str(out),
                                  "--quiet", "--only", "A-1,A-2,A-5"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    after = json.loads((out / "report.json").read_text())
    assert list(after["sections"]) == list(before["sections"])  # --only adds to the report, the others are kept
    assert after["sections"] == before["sections"]  # timing kept, not re-measured; the rest as it was
    assert "A-6" in (out / "report.md").read_text()
    # timings measured with other CPU threads are measured again
    import torch

    threads = torch.get_num_threads()
    assert after["sections"]["A-1"]["threads"] == threads and after["sections"]["A-1"]["devices"] == ["cpu"]
    r = CliRunner().invoke(main, ["reproduce", "--quick", "--model", "efficientnet_lite0", "--out", str(out),
                                  "--quiet", "--only", "A-1", "--threads", str(threads + 1)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    again = json.loads((out / "report.json").read_text())["sections"]
    assert again["A-1"]["threads"] == threads + 1 and again["A-2"] == before["sections"]["A-2"]
    r = CliRunner().invoke(main, ["reproduce", "--model", "efficientnet_lite0", "--out", str(out), "--quiet",
                                  "--only", "A-2"])
    assert r.exit_code != 0 and "other settings" in r.output and "another --out" in r.output


def test_tables_with_a_dataset(tmp_path):
    import cameras
    from cameras.reproduce import reproduce

    root = make_imagenet(tmp_path / "inet", n=1)
    tiny = Settings(table_rise_masks=16, table_extremal_iterations=2, interp_images=1)
    rep = reproduce([cameras.load_model()], tmp_path / "r", root, "imagenet", only=["A-3", "Tables"], settings=tiny,
                    progress=False)
    assert list(rep["sections"]) == ["A-3", "Tables"]
    summary = rep["sections"]["Tables"]["summary"]
    assert set(summary["pointing_game"]) == {"gradient", "rise", "gradcam", "extremal", "normgrad", "cameras"}
    assert [v["section"] for v in rep["sections"]["Tables"]["verdicts"]] == ["Table 1", "Table 2"]
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Tables 1 and 2" in md and "custom settings" in md
    # an EfficientNet on ImageNet: no paper column fits (the paper has no ImageNet pointing table, nor this model)
    assert "no ImageNet pointing table" in md and "ImageNet: none for this architecture" in md
    assert "94.2 / 88.8" not in md and "3.20 / 0.81" not in md and "90.4 / 82.3" not in md
    assert rep["sections"]["A-3"]["items"] == 1  # the settings' cap applies to a dataset too
    # evaluate's own numbers, written in the section's folder
    ev = json.loads((tmp_path / "r" / "tables" / "summary.json").read_text())
    assert ev["rho_plus"]["cameras"] == summary["rho_plus"]["cameras"]


def test_bad_input(tmp_path):
    r = CliRunner().invoke(main, ["reproduce", "--model", "efficientnet_lite0", "--weights", "a", "--weights", "b",
                                  "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "once per --model" in r.output
    r = CliRunner().invoke(main, ["reproduce", "--model", "efficientnet_lite0", "--only", "A-9",
                                  "--out", str(tmp_path / "y")])
    assert r.exit_code != 0 and "unknown section(s) A-9" in r.output
    r = CliRunner().invoke(main, ["reproduce", "--model", "efficientnet_lite0", "--data", str(tmp_path),
                                  "--out", str(tmp_path / "z")])
    assert r.exit_code != 0 and "--format" in r.output
    r = CliRunner().invoke(main, ["reproduce", "--quick", "--limit", "3", "--out", str(tmp_path / "w")])
    assert r.exit_code == 2 and "--limit and --mapping apply to a --data dataset" in r.output
    img = tmp_path / "one.png"
    __import__("PIL.Image").Image.new("RGB", (40, 40)).save(img)
    r = CliRunner().invoke(main, ["experiment", "interpolation", str(img), "--format", "voc",
                                  "--out", str(tmp_path / "v")])
    assert r.exit_code == 2 and "--format and --mapping describe a --data dataset" in r.output


def test_verdict_rules_on_hand_made_numbers():
    m = np.full((6, 6), 0.1)
    np.fill_diagonal(m, 0)
    assert _verdict_n(m)["verdict"] == REPRODUCED
    m[0, 1] = m[1, 0] = 0.3
    assert _verdict_n(m)["verdict"] == DIRECTION  # the mean still ≤ 0.15
    assert _verdict_n(np.full((6, 6), 0.5))["verdict"] == NOT
    g = {"gamma": [0, 0.5, 1], "rho_plus": [2.0, 1.5, 1.0], "pointing_game": [None] * 3,
         "rho_plus_of_means": [2, 1.5, 1], "rho_plus_minmax": [2, 1.5, 1], "masked_prob": [1, 1, 1],
         "rho_plus_without_zero_maps": [2, 1.5, 1], "zero_gradcam_items": 0}
    assert _verdict_gamma(g)["verdict"] == REPRODUCED
    g["pointing_game"] = [0.9, 0.8, 0.7]  # monotone ρ⁺ but pointing moves by 20 points
    assert _verdict_gamma(g)["verdict"] == DIRECTION
    g["pointing_game"] = [None] * 3
    g["rho_plus"] = [2.0, 2.5, 1.0]
    v = _verdict_gamma(g)
    assert v["verdict"] == DIRECTION and "peak 2.500 at γ = 0.5" in v["evidence"]
    g["rho_plus"] = [1.0, 1.5, 2.0]
    assert _verdict_gamma(g)["verdict"] == NOT

    def img(c, gc):
        return {"methods": {"cameras": {"score": c}, "gradcam": {"score": gc}}}
    s = {"mean_score": {"cameras": 0.3, "gradcam": 0.5}, "images": [img(0.2, 0.6), img(0.4, 0.4)]}
    assert _verdict_sanity(s)["verdict"] == REPRODUCED
    s = {"mean_score": {"cameras": 0.3, "gradcam": 0.31}, "images": [img(0.1, 0.5), img(0.5, 0.12), img(0.3, 0.31)]}
    assert _verdict_sanity(s)["verdict"] == REPRODUCED  # 2 of 3 images
    s["images"] = [img(0.1, 0.5), img(0.5, 0.12), img(0.3, 0.29)]
    assert _verdict_sanity(s)["verdict"] == DIRECTION

    def att(red, both, n=10, enh=10):
        return {"images": [{}] * n, "mean_l2_reduction_percent": red, "both_successful": both,
                "enhanced_successful": enh, "vanilla_successful": n}
    assert _verdict_attack(att(60.0, 10))["verdict"] == REPRODUCED
    assert _verdict_attack(att(30.0, 10))["verdict"] == DIRECTION
    assert _verdict_attack(att(60.0, 3, enh=3))["verdict"] == NOT
    v = _verdict_attack(att(None, 0, enh=0))
    assert v["verdict"] == NOT and "0/10" in v["evidence"]
    summ = {"pointing_game": {"cameras": 0.9, "gradcam": 0.905},
            "rho_plus": {"cameras": 3, "gradcam": 2, "normgrad": 1}, "rho_minus": {"cameras": 0.8, "gradcam": 0.9}}
    assert [v["verdict"] for v in _verdict_tables(summ, "voc")] == [REPRODUCED, REPRODUCED]
    summ["rho_minus"]["cameras"] = 1.0
    summ["pointing_game"]["cameras"] = 0.8
    assert [v["verdict"] for v in _verdict_tables(summ, "voc")] == [NOT, DIRECTION]
    md = report_md({"models": ["m"], "quick": False, "settings": {}, "data": None, "images": [], "sections": {}})
    assert md.startswith("# Reproducing CAMERAS")


def test_timing_and_grid_verdicts_on_hand_made_numbers():
    def t(cam, rise, ext, gc=0.1):
        return {"models": {"m": {"cameras": {"seconds": cam}, "rise": {"seconds": rise},
                                 "extremal": {"seconds": ext}, "gradcam": {"seconds": gc}}}}
    v = _verdict_timing(t(1.0, 30.0, 12.0))
    assert v["verdict"] == REPRODUCED and "12× faster" in v["evidence"] and "10.0× Grad-CAM" in v["evidence"]
    assert _verdict_timing(t(1.0, 30.0, 5.0))["verdict"] == DIRECTION
    assert _verdict_timing(t(6.0, 30.0, 5.0))["verdict"] == NOT

    def g(dc, dg, mc, mg):
        return {"detail": {"m": {"cameras": dc, "gradcam": dg}}, "mass_in_box": {"m": {"cameras": mc, "gradcam": mg}}}
    assert _verdict_grid(g(2.0, 1.0, 0.70, 0.74))["verdict"] == REPRODUCED  # within 0.05 of Grad-CAM's mass
    assert _verdict_grid(g(2.0, 1.0, 0.60, 0.74))["verdict"] == DIRECTION
    assert _verdict_grid(g(1.0, 2.0, 0.90, 0.74))["verdict"] == NOT
    assert _verdict_grid(g(1.0, 2.0, float("nan"), float("nan")))["verdict"] == "not measured"


def test_tables_put_the_same_architectures_published_numbers_beside_ours():
    from cameras.reproduce import TABLE_METHODS, paper_architecture, report_md

    assert paper_architecture("torchvision:vgg16") == "VGG16" and paper_architecture("timm:resnet50.a1_in1k") == \
        "ResNet-50"
    assert paper_architecture("torchvision:resnet50d") is None and paper_architecture("timm:vgg16_bn") is None
    summary = {k: {m: 0.5 for m in TABLE_METHODS} for k in ("pointing_game", "pointing_game_difficult", "rho_plus",
                                                             "rho_minus")}

    def md(model, fmt):
        rep = {"models": [model], "quick": False, "settings": {}, "images": [],
               "data": {"format": fmt, "dir": "d", "mapping": None, "limit": None},
               "sections": {"Tables": {"summary": summary, "verdicts": []}}}
        text = report_md(rep)
        rows = [line for line in text[text.index("## Tables"):].splitlines() if line.startswith("| ")]
        return rows[0], {line.split(" | ")[0][2:]: line for line in rows[1:]}

    head, rows = md("torchvision:vgg16", "voc")
    assert "VOC07 VGG16" in head and "ImageNet: none for this architecture" in head
    assert rows["cameras"].endswith("| 86.2 / 76.2 | – |") and rows["center (paper only)"].endswith("69.6 / 42.4 | – |")
    head, rows = md("torchvision:resnet50", "coco")
    assert "COCO14 ResNet-50" in head and "ResNet-50, ImageNet" in head
    assert rows["cameras"].endswith("| 69.9 / 66.4 | 3.20 / 0.81 |")
    assert rows["normgrad"].endswith("| – | 1.67 / 0.96 |")  # the paper has no COCO NormGrad
    head, rows = md("timm:densenet121", "imagenet")
    assert "no ImageNet pointing table" in head and rows["gradcam"].endswith("| – | 2.35 / 0.94 |")
    assert "center (paper only)" not in rows


def test_a_dataset_section_rerun_under_another_mapping_is_refused(tmp_path):
    """The same files under another class mapping are other work: their finished sections are not reused."""
    import cameras
    from cameras import InputError
    from cameras.reproduce import reproduce

    root = make_voc(tmp_path / "voc")
    tiny = Settings(interp_images=1)
    for name, mapping in (("a.json", {"cat": 285, "dog": 207}), ("b.json", {"cat": 281, "dog": 207})):
        (tmp_path / name).write_text(json.dumps(mapping))
    bundle = cameras.load_model()
    rep = reproduce([bundle], tmp_path / "r", root, "voc", only=["A-3"], settings=tiny, progress=False,
                    mapping=tmp_path / "a.json")
    assert rep["sections"]["A-3"]["items"] == 1
    with pytest.raises(InputError, match=r"other settings \(data: .*b\.json.*another --out"):
        reproduce([bundle], tmp_path / "r", root, "voc", only=["A-3"], settings=tiny, progress=False,
                  mapping=tmp_path / "b.json")


def test_table_2_verdict_compares_cameras_with_the_papers_table_2_methods_only():
    from cameras.reproduce import REPRODUCED, _verdict_tables

    rp = {"gradient": 0.5, "rise": 2.0, "gradcam": 2.33, "extremal": 4.5, "normgrad": 1.67, "cameras": 3.2}
    rm = {"gradient": 0.9, "rise": 0.9, "gradcam": 0.86, "extremal": 0.5, "normgrad": 0.96, "cameras": 0.81}
    summary = {"pointing_game": {"cameras": 0.9, "gradcam": 0.9}, "rho_plus": rp, "rho_minus": rm}
    table2 = _verdict_tables(summary, "imagenet")[1]
    assert table2["verdict"] == REPRODUCED and "Grad-CAM and NormGrad" in table2["claim"]  # Extremal is no rival here
    rm["normgrad"] = 0.8
    assert _verdict_tables(summary, "imagenet")[1]["verdict"] != REPRODUCED
    rm["normgrad"], rm["gradcam"] = 0.96, None  # Grad-CAM's rho- missing: no win over it
    assert _verdict_tables(summary, "imagenet")[1]["verdict"] != REPRODUCED
