"""The command line: outputs for good images, clear errors for bad ones."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cameras.cli import main
from cameras.methods.cameras import parse_scales

from .conftest import rand_image

FAST = ["--scales", "224,288", "--quiet"]


def run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_explain_outputs(sample_dir, tmp_path):
    out = tmp_path / "out"
    r = run(["explain", str(sample_dir / "chelsea.jpg"), str(sample_dir / "coffee.png"), "--out", str(out), *FAST])
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "chelsea.json").read_text())
    assert meta["topk"][0]["class"] == 285 and meta["topk"][0]["name"] == "Egyptian cat"
    exp = meta["explanations"][0]
    assert exp["target"] == 285 and exp["kept_scales"][0] == 224
    assert exp["png"] == "chelsea.cameras.285-egyptian_cat.png"
    assert meta["model"] == "efficientnet_lite0" and meta["layer"] == "bn2"
    assert meta["parameters"]["scales"] == [224, 288]
    sal = np.load(out / "chelsea.cameras.285-egyptian_cat.npy")
    assert sal.shape == (300, 451) and sal.dtype == np.float32 and 0 <= sal.min() and sal.max() <= 1
    png = Image.open(out / "chelsea.cameras.285-egyptian_cat.png")  # with a title and a colour bar
    assert png.size[0] > 451 + 50 and png.size[1] > 300 + 20
    assert (out / "coffee.cameras.967-espresso.png").exists()
    assert meta["parameters"]["cmap"] == "jet" and meta["parameters"]["fade"] == 0.15
    assert not list(out.glob("*.part"))


def test_topk_and_named_target(sample_dir, tmp_path):
    out = tmp_path / "o"
    r = run(["explain", str(sample_dir / "coffee.png"), "--topk", "2", "--out", str(out), *FAST])
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "coffee.json").read_text())
    assert len(meta["topk"]) == 2 and len(meta["explanations"]) == 2
    second = meta["topk"][1]["class"]
    second_npy = meta["explanations"][1]["npy"]
    assert second_npy.startswith(f"coffee.cameras.{second}-") and (out / second_npy).exists()
    a = np.load(out / "coffee.cameras.967-espresso.npy")
    b = np.load(out / second_npy)
    assert np.abs(a - b).max() > 0.05
    r = run(["explain", str(sample_dir / "chelsea.jpg"), "--target", "espresso", "--target", "285", "--out", str(out),
             *FAST])
    assert r.exit_code == 0, r.output
    assert (out / "chelsea.cameras.967-espresso.png").exists()
    assert (out / "chelsea.cameras.285-egyptian_cat.png").exists()


def test_bad_inputs_each_fail_clearly(sample_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "text.jpg").write_text("hello")
    Image.fromarray(rand_image(200, 200)).save(bad / "full.jpg")
    data = (bad / "full.jpg").read_bytes()
    (bad / "trunc.jpg").write_bytes(data[: len(data) // 3])
    Image.fromarray(rand_image(6, 40)).save(bad / "tiny.png")
    cases = {
        str(tmp_path / "missing.jpg"): "no such file",
        str(bad): "is a directory",
        str(bad / "text.jpg"): "not an image",
        str(bad / "trunc.jpg"): "truncated",
        str(bad / "tiny.png"): "at least 8 px",
    }
    for path, msg in cases.items():
        out = tmp_path / ("o" + str(abs(hash(path))))
        r = subprocess.run([sys.executable, "-m", "cameras", "explain", path, "--out", str(out), *FAST],
                           capture_output=True, text=True) if path == str(bad) else None
        if r is None:
            res = run(["explain", path, "--out", str(out), *FAST])
            code, err = res.exit_code, res.output
        else:
            code, err = r.returncode, r.stderr
        if path == str(bad):  # a folder expands to its images, which all fail
            assert code != 0 and "not an image" in err
        else:
            assert code != 0 and msg in err, (path, err)
            assert not out.exists() or not any(out.iterdir())


def test_bad_options(sample_dir, tmp_path):
    img = str(sample_dir / "coffee.png")
    for args, msg in [
        (["--model", "nope"], "unknown model"),
        (["--layer", "bn9"], "unknown layer 'bn9'"),
        (["--target", "expresso"], "did you mean 'espresso'"),
        (["--target", "1000"], "out of range"),
        (["--method", "gradcom"], "unknown method"),
        (["--scales", "324,224"], "strictly increasing"),
        (["--method", "gradient", "--layer", "bn2"], "--layer do not apply to gradient"),
        (["--method", "gradcam", "--scales", "224,288", "--scale-rule", "paper"],
         "--scales, --scale-rule do not apply to gradcam"),
    ]:
        r = run(["explain", img, "--out", str(tmp_path / "x"), "--quiet", *args])
        assert r.exit_code != 0 and msg in r.output, (args, r.output)
        assert not (tmp_path / "x").exists()


def test_tool_commands_refuse_bad_options_clearly(sample_dir, tmp_path):
    """bench, samples, synthetic and compare: bad values are one-line errors (exit 2), before any work."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    img = str(sample_dir / "coffee.png")
    for args, msg in [(["bench", "--scales", "900,224"], "strictly increasing"),
                      (["bench", "--batch-size", "0"], "batch sizes are at least 1"),
                      (["bench", "--size", "-5"], "-5 is not in the range"),
                      (["samples", "--out", str(afile)], "is a file, not a folder"),
                      (["synthetic", "--out", str(afile / "x")], "is a file, so the output cannot be created"),
                      (["compare", img, "--model", "efficientnet_lite0,efficientnet_lite1", "--weights", "random",
                        "--out", str(tmp_path / "c.png")], "--weights random names one model's weights")]:
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2 and msg in r.output and "Traceback" not in r.output, (args, r.output)
    assert not (tmp_path / "c.png").exists()


def test_mix_of_good_and_bad(sample_dir, tmp_path):
    out = tmp_path / "mix"
    r = run(["explain", str(tmp_path / "missing.png"), str(sample_dir / "coffee.png"), "--out", str(out), *FAST])
    assert r.exit_code == 1
    assert "missing.png: no such file" in r.output
    assert "explained 1 of 2" in r.output
    assert (out / "coffee.json").exists()
    # an image whose files cannot be written (a folder holds its .json's name) fails alone and leaves no files
    (out / "chelsea.json").mkdir()
    r = run(["explain", str(sample_dir / "chelsea.jpg"), str(tmp_path / "missing.png"), "--out", str(out), *FAST])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "chelsea.jpg: IsADirectoryError" in r.output and "explained 0 of 2 images (nothing written)" in r.output
    assert not list(out.glob("chelsea.cameras.*")) and not list(out.glob("*.part"))
    shutil.copy(sample_dir / "chelsea.jpg", tmp_path / "twin.jpg")
    r = run(["explain", str(sample_dir / "chelsea.jpg"), str(tmp_path / "twin.jpg"), "--out", str(out), *FAST,
             "--batch-size", "2"])  # within one batch: the other image is still written
    assert r.exit_code == 1 and "explained 1 of 2" in r.output and "twin.jpg:" not in r.output, r.output
    assert (out / "twin.json").exists() and not list(out.glob("chelsea.cameras.*"))


def test_batching_same_size_images(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(3):
        Image.fromarray(rand_image(60, 80, seed=i)).save(d / f"r{i}.png")
    out = tmp_path / "o"
    r = run(["explain", str(d), "--batch-size", "3", "--out", str(out), "--steps", "2", "--max-size", "288", "--quiet"])
    assert r.exit_code == 0, r.output
    single = tmp_path / "s"
    run(["explain", str(d / "r1.png"), "--out", str(single), "--steps", "2", "--max-size", "288", "--quiet"])
    m_single = json.loads((single / "r1.json").read_text())["explanations"][0]
    m_batch = json.loads((out / "r1.json").read_text())["explanations"][0]
    assert m_single["target"] == m_batch["target"]
    a = np.load(single / m_single["npy"])
    b = np.load(out / m_batch["npy"])
    assert np.abs(a - b).max() < 1e-4


def test_parse_scales():
    assert parse_scales("224:1000:100") == list(range(224, 1000, 100))
    assert parse_scales("224, 300") == [224, 300]
    with pytest.raises(Exception, match="not a list"):
        parse_scales("a,b")


def test_output_files_have_usual_permissions(sample_dir, tmp_path):
    import os
    import stat

    r = run(["explain", str(sample_dir / "coffee.png"), "--out", str(tmp_path), *FAST])
    assert r.exit_code == 0
    mode = stat.S_IMODE(os.stat(tmp_path / "coffee.json").st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_topk_runs_no_extra_forward(tmp_path):
    """explain_images takes the top-k list from the explanation's own forward passes, and CAMERAS explains the
    three classes from one forward pass per scale."""
    import torch

    import cameras
    from cameras.explain import explain_images
    from cameras.models import ModelBundle

    from .conftest import TinyNet

    net = TinyNet()
    calls = []
    net.register_forward_hook(lambda m, i, o: calls.append(tuple(i[0].shape)))
    bundle = ModelBundle(net, "tiny", 32, (0.5,) * 3, (0.5,) * 3, class_names=[f"c{i}" for i in range(5)])
    Image.fromarray(rand_image(40, 48)).save(tmp_path / "a.png")
    method = cameras.CAMERAS(net, layer="features", scales=[32, 48])
    (o,) = explain_images([tmp_path / "a.png"], bundle, method, tmp_path / "out", topk=3, progress=False)
    assert o.error is None, o.error
    assert len(calls) == 2  # one forward per scale for the three classes, nothing else
    meta = json.loads((tmp_path / "out" / "a.json").read_text())
    with torch.no_grad():
        x = cameras.preprocess(cameras.load_image(tmp_path / "a.png"), 32, (0.5,) * 3, (0.5,) * 3)
        probs = net(x).softmax(1)[0]
    top = probs.topk(3)
    assert [t["class"] for t in meta["topk"]] == top.indices.tolist()
    assert np.allclose([t["probability"] for t in meta["topk"]], top.values.tolist(), atol=1e-6)


def test_out_threads_recursive_topk_and_layers(sample_dir, tmp_path):
    img = str(sample_dir / "coffee.png")
    afile = tmp_path / "afile"
    afile.write_text("x")
    for args, msg in [(["explain", img, "--out", str(afile)], f"--out {afile} is a file, not a folder"),
                      (["explain", img, "--out", str(afile / "sub")], "is a file, so the output cannot be created"),
                      (["compare", img, "--out", str(afile / "c.png")], "is a file, so the output cannot be created"),
                      (["evaluate", "--data", str(tmp_path), "--format", "voc", "--out", str(afile)], "is a file"),
                      (["explain", img, "--device", "gpu", "--out", str(tmp_path / "o")], "did you mean cuda?"),
                      (["explain", img, "--target", "cat", "--out", str(tmp_path / "o")], "282 tiger cat")]:
        r = run(args)
        assert r.exit_code == 2 and msg in r.output and "Traceback" not in r.output, (args, r.output)
    if not __import__("torch").cuda.is_available():
        for cmd in (["explain", img], ["attack", img], ["evaluate", "--data", str(sample_dir), "--format", "voc"],
                    ["experiment", "interpolation", img]):
            r = run([*cmd, "--device", "cuda", "--out", str(tmp_path / "o")])
            assert r.exit_code == 2 and "no CUDA GPU is available" in r.output, (cmd, r.output)
    import torch

    threads_before = torch.get_num_threads()
    # folders: subfolders only with --recursive, said without it
    top = tmp_path / "photos"
    (top / "more").mkdir(parents=True)
    shutil.copy(img, top / "more" / "coffee.png")
    r = run(["explain", str(top), "--out", str(tmp_path / "o"), "--method", "gradcam", "--quiet"])
    assert r.exit_code == 2 and "skipped 1 subfolder(s) with images" in r.output and "--recursive" in r.output
    r = run(["explain", str(top), "--recursive", "--threads", "1", "--target", "espresso", "--topk", "3",
             "--out", str(tmp_path / "o"), "--method", "gradcam", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "--topk 3 is ignored with --target" in r.output and "explained 1 of 1" in r.output
    assert (tmp_path / "o" / "coffee.gradcam.967-espresso.npy").exists()
    import torch

    assert torch.get_num_threads() == threads_before  # --threads lasts for its command only
    r = run(["layers"])
    assert r.exit_code == 0 and "* bn2" in r.output and "1×1280×7×7" in r.output
    assert "blocks.6" in r.output and "global_pool" not in r.output  # spatial maps only, without --all
    r = run(["layers", "torchvision:resnet18", "--weights", "random", "--size", "64", "--all"])
    assert r.exit_code == 0 and "* layer4" in r.output and "1×512×2×2" in r.output and "runs 2×" in r.output


def test_plain_overlay_cmap_and_fade(sample_dir, tmp_path):
    img = str(sample_dir / "coffee.png")
    r = run(["explain", img, "--method", "gradcam", "--plain", "--cmap", "inferno", "--alpha", "0.6", "--out",
             str(tmp_path / "p"), "--quiet"])
    assert r.exit_code == 0, r.output
    png = np.asarray(Image.open(tmp_path / "p" / "coffee.gradcam.967-espresso.png"))
    sal = np.load(tmp_path / "p" / "coffee.gradcam.967-espresso.npy")
    assert png.shape == (400, 600, 3)
    from cameras.viz import overlay

    photo = np.asarray(Image.open(img).convert("RGB"))
    assert np.array_equal(png, overlay(photo, sal, 0.6, "inferno", 0.15))
    low = sal < 1e-3  # (near-)zero saliency leaves the photo as it is: weight ≤ 0.6 · 0.001 / 0.15
    assert low.sum() > 500 and np.abs(png[low].astype(int) - photo[low]).max() <= 1
    high = sal > 0.5
    assert np.abs(png[high].astype(int) - photo[high]).mean() > 20  # and tints where the map is high
    r = run(["explain", img, "--cmap", "nope", "--out", str(tmp_path / "q")])
    assert r.exit_code == 2 and "unknown colour map 'nope'" in r.output


def test_few_scales_are_reported_and_app_and_cli_agree(embedded, tmp_path):
    """Under the paper's rule the astronaut keeps one of eight scales: a warning, a JSON flag, the remedy; by
    default (rule "all") every scale is kept; the app, compare and explain give the same map of the top-1."""
    from skimage import data

    from cameras.app import Explorer, details_markdown

    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    r = run(["explain", str(path), "--scale-rule", "paper", "--out", str(tmp_path / "a"), "--quiet"])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "a" / "astronaut.json").read_text())
    (exp,) = meta["explanations"]
    assert len(exp["kept_scales"]) < 4 and exp["few_scales"] is True
    assert f"used {len(exp['kept_scales'])} of 8 scales" in r.output and "--scale-rule all (the default)" in r.output
    r = run(["explain", str(path), "--out", str(tmp_path / "b"), "--quiet"])
    meta_all = json.loads((tmp_path / "b" / "astronaut.json").read_text())
    exp_all = meta_all["explanations"][0]
    assert meta_all["parameters"]["method_options"]["scale_rule"] == "all"
    assert len(exp_all["kept_scales"]) == 8 and "few_scales" not in exp_all and "warning" not in r.output
    img = Image.open(path).convert("RGB")
    for rule, e, out in (("paper", exp, "a"), (None, exp_all, "b")):
        cli_map = np.load(tmp_path / out / e["npy"])
        app = list(Explorer([embedded.name]).explain(img, embedded.name, ["cameras"], [e["target"]], None, rule))[0]
        assert app.kept_scales == e["kept_scales"] and app.few_scales == (rule == "paper")
        assert np.abs(app.saliency - cli_map).max() < 1e-5
    assert f"used {len(exp['kept_scales'])} of 8 scales" in details_markdown(
        list(Explorer([embedded.name]).explain(img, embedded.name, ["cameras"], [exp["target"]], None, "paper")))
    r = run(["compare", str(path), "--methods", "cameras", "--set", "cameras.scale_rule=paper",
             "--out", str(tmp_path / "c.png")])
    entry = json.loads((tmp_path / "c.json").read_text())["models"][0]["methods"]["cameras"]
    assert entry["kept_scales"] == exp["kept_scales"] and entry["few_scales"] is True
    assert "warning:" in r.output and "cameras.scale_rule=all (the default)" in r.output
    assert np.abs(np.load(tmp_path / entry["npy"]) - np.load(tmp_path / "a" / exp["npy"])).max() < 1e-5
    r = run(["compare", str(path), "--methods", "cameras", "--out", str(tmp_path / "d.png")])
    entry = json.loads((tmp_path / "d.json").read_text())["models"][0]["methods"]["cameras"]
    assert len(entry["kept_scales"]) == 8 and "warning:" not in r.output
    assert np.abs(np.load(tmp_path / entry["npy"]) - np.load(tmp_path / "b" / exp_all["npy"])).max() < 1e-5


@pytest.mark.parametrize("args", [["--help"], ["methods"], ["models"], ["explain", "--help"]])
def test_help_methods_models_do_not_load_torch(args):
    code = ("import sys\nfrom cameras.cli import main\n"
            f"sys.argv = ['cameras', *{args!r}]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip().endswith("NO-TORCH"), r.stdout + r.stderr
    if args == ["methods"]:
        assert r.stdout.split()[:6] == ["cameras", "gradcam", "gradient", "normgrad", "rise", "extremal"]


def test_lazy_package_names():
    import cameras

    assert cameras.CAMERAS.name == "cameras" and cameras.methods.method_class("rise").__name__ == "RISE"
    assert "build_method" in dir(cameras) and cameras.metrics.map_density.__name__ == "map_density"
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        cameras.nothing  # noqa: B018


def test_border_pad_option(sample_dir, tmp_path):
    """--border-pad reaches CAMERAS (recorded in the JSON, a different map); out of range is a usage error."""
    img = str(sample_dir / "chelsea.jpg")
    maps = {}
    for pad in ("0", "0.1"):
        out = tmp_path / pad
        r = run(["explain", img, "--scales", "224,324", "--scale-rule", "all", "--border-pad", pad, "--out", str(out),
                 "--quiet"])
        assert r.exit_code == 0, r.output
        meta = json.loads((out / "chelsea.json").read_text())
        (exp,) = meta["explanations"]
        assert meta["parameters"]["method_options"]["border_pad"] == float(pad)
        maps[pad] = np.load(out / exp["npy"])
    assert maps["0"].shape == maps["0.1"].shape == (300, 451)
    assert np.abs(maps["0"] - maps["0.1"]).max() > 0.05
    r = run(["explain", img, "--border-pad", "0.7", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "0.7 is not in the range 0<=x<=0.5" in r.output


def test_evaluate_help_names_every_metric():
    from cameras.evaluate import METRICS

    text = " ".join(run(["evaluate", "--help"]).output.split())
    assert all(m in text for m in METRICS), text


def test_an_all_zero_map_is_flagged_and_explained(tmp_path):
    """A blank overlay needs a reason: a map that is zero everywhere is marked in the JSON and warned about
    (explain and compare), a map that is not is not."""
    import torch

    from cameras.compare import compare
    from cameras.explain import explain_images
    from cameras.methods import GradCAM
    from cameras.models import ModelBundle

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with torch.no_grad():  # class 0 falls wherever the activations rise: its Grad-CAM is ReLU(negative) = 0
        net[4].weight.copy_(torch.tensor([[-1.0] * 4, [1.0] * 4]))
        net[4].bias.zero_()
    bundle = ModelBundle(net, "tiny", 32, (0.5,) * 3, (0.5,) * 3, class_names=["down", "up"])
    Image.fromarray(rand_image(32, 32)).save(tmp_path / "a.png")
    (o,) = explain_images([tmp_path / "a.png"], bundle, GradCAM(net, layer="1"), tmp_path / "out", targets=[0, 1],
                          progress=False)
    meta = json.loads((tmp_path / "out" / "a.json").read_text())
    assert [e.get("all_zero", False) for e in meta["explanations"]] == [True, False]
    assert o.warnings == [f"{tmp_path / 'a.png'}: the gradcam map for down is all zero: at no location at 1 does the "
                          "method find positive evidence for the class (common with untrained weights; a map that "
                          "overflowed to NaN or inf, as fp16 can, is shown as zero too); another --layer or method "
                          "may show some"]
    rec = compare(tmp_path / "a.png", [bundle], ["gradcam"], tmp_path / "c.png", target=0,
                  options={"gradcam": {"layer": "1"}}, progress=False)
    assert rec["models"][0]["methods"]["gradcam"]["all_zero"] is True
    rec = compare(tmp_path / "a.png", [bundle], ["gradcam"], tmp_path / "d.png", target=1,
                  options={"gradcam": {"layer": "1"}}, progress=False)
    assert "all_zero" not in rec["models"][0]["methods"]["gradcam"]
