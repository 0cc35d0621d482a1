"""The web app's logic without a browser: upload checks, explanations, downloads, cancellation."""

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cameras
from cameras import Cancelled, ImageError, InputError
from cameras.app import Explorer, check_upload, details_markdown, parse_scale_text, render, write_downloads

from .conftest import TinyNet, hook_count, snapshot


def test_check_upload_limits_and_messages(sample_dir, tmp_path):
    img = check_upload(sample_dir / "chelsea.jpg")
    assert img.size == (451, 300) and img.mode == "RGB"
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 3000)
    with pytest.raises(ImageError, match=r"big.png is 2.9 KB, over the 2.0 KB upload limit; upload a smaller"):
        check_upload(big, max_bytes=2048)
    text = tmp_path / "notes.jpg"
    text.write_text("hello, not an image")
    with pytest.raises(ImageError, match=r"^notes.jpg is not an image \(upload a JPEG"):
        check_upload(text)
    with pytest.raises(ImageError, match=r"chelsea.jpg is 451×300 = 135,300 pixels, over this app's limit of 100,000"):
        check_upload(sample_dir / "chelsea.jpg", max_pixels=100_000)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes((sample_dir / "chelsea.jpg").read_bytes()[:4000])
    with pytest.raises(ImageError, match=r"^cut.jpg: corrupt or truncated") as e:
        check_upload(cut)
    assert str(tmp_path) not in str(e.value)  # the page shows the file's name, not a server path
    strip = tmp_path / "strip.png"
    Image.new("RGB", (20000, 8)).save(strip)  # a few KB; 224×560000 as a model input
    with pytest.raises(ImageError, match=r"strip.png is 20000×8, longer than 10:1"):
        check_upload(strip)
    Image.new("RGB", (800, 80)).save(strip)  # 10:1 is fine
    assert check_upload(strip).size == (800, 80)


def test_parse_scale_text():
    assert parse_scale_text(" 224, 324 424 ") == [224, 324, 424]
    with pytest.raises(InputError, match="go up to 2048 here"):
        parse_scale_text("224,4096")
    for bad in ("224,abc", "", "  "):
        with pytest.raises(InputError, match="scale"):
            parse_scale_text(bad)


@pytest.fixture(scope="module")
def explorer():
    return Explorer(["efficientnet_lite0"])


def test_explain_two_classes_matches_the_library(explorer, sample_dir):
    img = check_upload(sample_dir / "chelsea.jpg")
    top = explorer.top_classes(img, "efficientnet_lite0", 3)
    assert [c for c, _, _ in top][:1] == [285] and top[0][2] > top[1][2] > top[2][2]
    choices, first = explorer.class_choices(img, "efficientnet_lite0")
    assert first == "285" and len(choices) == 1000 and choices[0][0].startswith("285 · Egyptian cat (")
    assert len({v for _, v in choices}) == 1000
    exps = list(explorer.explain(img, "efficientnet_lite0", ["cameras", "gradcam"], [285, 281], [224, 288]))
    # methods outermost, fastest first
    assert [(e.method, e.cls) for e in exps] == [("gradcam", 285), ("gradcam", 281), ("cameras", 285), ("cameras", 281)]
    assert exps[2].kept_scales == [224, 288] and exps[0].kept_scales is None
    assert all(e.saliency.shape == (300, 451) and e.saliency.dtype == np.float32 for e in exps)
    assert np.abs(exps[2].saliency - exps[3].saliency).max() > 0.1  # two classes, two maps
    b = explorer.bundle("efficientnet_lite0")
    x = cameras.preprocess(img, b.input_size, b.mean, b.std)
    want = cameras.CAMERAS(b.model, layer=b.layer, scales=[224, 288])(x, target=285).maps
    want = cameras.resize_maps(want, (300, 451))[0].clamp(0, 1).numpy()
    assert np.abs(exps[2].saliency - want).max() < 1e-5
    shown = render(img, exps, 0.3)
    assert len(shown) == 4 and shown[3][1] == "cameras · tabby (281)" and shown[0][0].size == (451, 300)
    # as `cameras explain` draws them: saliency near zero leaves the photo untinted
    zero = exps[2].saliency < 1e-3
    assert zero.any() and np.array_equal(np.asarray(shown[2][0])[zero], np.asarray(img)[zero])
    assert not np.array_equal(np.asarray(shown[2][0])[~zero], np.asarray(img)[~zero])
    assert "224, 288" in details_markdown(exps) and "| gradcam | 281 · tabby |" in details_markdown(exps)


def test_class_search_finds_names_parts_and_near_misses(explorer):
    ids, msg = explorer.find_classes("efficientnet_lite0", "espressso")
    assert ids[0] == 967 and msg.startswith("no class is called 'espressso'; closest: 967 · espresso")
    ids, msg = explorer.find_classes("efficientnet_lite0", "Egyptian cat")
    assert ids == [285] and msg == "1 class match 'Egyptian cat': 285 · Egyptian cat"
    ids, msg = explorer.find_classes("efficientnet_lite0", "cat")  # a whole word in several names
    assert {281, 282, 285} <= set(ids) and msg.startswith(f"{len(ids)} classes match 'cat': ")
    ids, _ = explorer.find_classes("efficientnet_lite0", "spress")  # any substring
    assert 967 in ids and 550 in ids
    assert explorer.find_classes("efficientnet_lite0", "zzzzqqq") == ([], "no class name resembles 'zzzzqqq'")
    assert explorer.find_classes("efficientnet_lite0", "967") == ([967], "class 967 is espresso")


def test_downloads_are_the_maps(explorer, sample_dir, tmp_path):
    img = check_upload(sample_dir / "coffee.png")
    exps = list(explorer.explain(img, "efficientnet_lite0", ["gradcam"], [967]))
    files = write_downloads(tmp_path, "coffee", img, exps, 0.5)
    assert sorted(p.split("/")[-1] for p in files) == ["coffee.gradcam.967.npy", "coffee.gradcam.967.png"]
    assert np.array_equal(np.load(tmp_path / "coffee.gradcam.967.npy"), exps[0].saliency)
    assert Image.open(tmp_path / "coffee.gradcam.967.png").size == img.size


def test_bad_requests(explorer, sample_dir):
    img = check_upload(sample_dir / "coffee.png")
    with pytest.raises(InputError, match="not served by this app"):
        explorer.bundle("torchvision:resnet50")
    with pytest.raises(InputError, match="at least one method"):
        list(explorer.explain(img, "efficientnet_lite0", [], [1]))
    with pytest.raises(InputError, match="at least one class"):
        list(explorer.explain(img, "efficientnet_lite0", ["gradcam"], []))
    with pytest.raises(InputError, match="class 1000 does not exist"):
        list(explorer.explain(img, "efficientnet_lite0", ["gradcam"], [1000]))


def test_stop_event_cancels_a_running_method_and_restores_state():
    net = TinyNet().train()
    before = snapshot(net)
    stop = threading.Event()
    seen = []

    def hook(module, args, out):  # the model's 3rd forward (2nd mask batch): cancel from "outside"
        seen.append(1)
        if len(seen) == 3:
            stop.set()

    h = net.register_forward_hook(hook)
    m = cameras.RISE(net, n_masks=64, batch_size=8, progress=False)
    m.stop = stop
    with pytest.raises(Cancelled, match="cancelled"):
        m(torch.randn(1, 3, 24, 24), target=0)
    assert len(seen) == 3  # stopped at the next progress step, not at the end (1 + 8 forwards)
    h.remove()
    after = snapshot(net)
    assert before[0] == after[0] and before[1] == after[1] and hook_count(net) == 0
    for method in (cameras.CAMERAS(net, layer="features", scales=[24, 32]),
                   cameras.ExtremalPerturbation(net, iterations=3, progress=False)):
        method.stop = stop  # already set: refused before any work
        with pytest.raises(Cancelled):
            method(torch.randn(1, 3, 24, 24), target=0)
    stop.clear()
    assert cameras.RISE(net, n_masks=16, batch_size=8)(torch.randn(1, 3, 24, 24), target=0).maps.shape == (1, 24, 24)


def test_cli_binds_to_loopback_by_default(monkeypatch):
    from click.testing import CliRunner

    import cameras.app
    from cameras.cli import main

    pytest.importorskip("gradio", reason="the app extra is not installed: pip install 'cameras[app]'")
    calls = []
    monkeypatch.setattr(cameras.app, "serve", lambda *a, **k: calls.append(a))
    r = CliRunner().invoke(main, ["app", "--port", "7999"])
    assert r.exit_code == 0, r.output
    models, host, port = calls[0][:3]
    assert (models, host, port) == (["efficientnet_lite0"], "127.0.0.1", 7999) and "warning" not in r.output
    r = CliRunner().invoke(main, ["app", "--host", "0.0.0.0"])
    assert calls[1][1] == "0.0.0.0" and "anyone who can reach this machine" in r.output
    r = CliRunner().invoke(main, ["app", "--model", "nope:net"])
    assert r.exit_code == 2 and "error:" in r.output and len(calls) == 2
    r = CliRunner().invoke(main, ["app", "--model", "efficientnet_lite0", "--model", "timm:resnet18",
                                  "--weights", "random"])
    assert r.exit_code == 2 and "exactly one --model" in r.output and len(calls) == 2
    r = CliRunner().invoke(main, ["app", "--model", "torchvision:resnet18", "--weights", "random"])
    assert r.exit_code == 0 and calls[2][0] == ["torchvision:resnet18"]


def test_any_error_while_explaining_is_shown_and_keeps_no_stale_downloads(sample_dir, monkeypatch):
    """Not only our errors and RuntimeError: whatever a model raises mid-run is reported on the page (the run ends
    with the maps finished so far), and the state never pairs the previous run's .npy files with new overlays."""
    from cameras.app import Explorer, build_app

    demo = build_app(["efficientnet_lite0"])
    on_run = next(f.fn for f in demo.fns.values() if f.name == "on_run")
    real = Explorer.explain

    def failing(self, img, model, methods, ids, scales, rule):
        yield next(real(self, img, model, methods[:1], ids[:1], scales, rule))
        raise ValueError(f"a model's own complaint about {img_path} in {work}")

    monkeypatch.setattr(Explorer, "explain", failing)
    img_path, work = sample_dir / "coffee.png", "/nowhere"
    state = {"path": str(img_path), "stem": "coffee", "explanations": [], "npy": ["old.npy"]}
    steps = list(on_run(state, "efficientnet_lite0", ["gradcam", "gradient"], [967], "224", "all", 0.5,
                        progress=lambda *a, **k: None))
    assert all(s[-1]["npy"] != ["old.npy"] for s in steps)
    final = steps[-1]
    shown = final[3].replace("&#x27;", "'")
    assert "ValueError: a model's own complaint about coffee.png" in shown and str(sample_dir) not in shown
    assert len(final[-1]["explanations"]) == 1
    # our own kind of error (out of memory is a RuntimeError) keeps its plain message, also without server paths
    work = str(demo.cameras_work_dir)

    def out_of_memory(self, *args):
        raise RuntimeError(f"out of memory while writing {work}/scratch")
        yield

    monkeypatch.setattr(Explorer, "explain", out_of_memory)
    final = list(on_run(state, "efficientnet_lite0", ["gradcam"], [967], "224", "all", 0.5,
                        progress=lambda *a, **k: None))[-1]
    assert "out of memory while writing …/scratch" in final[3] and "RuntimeError" not in final[3]


def test_cancel_while_queued_reaches_the_run_and_is_spent_by_it(sample_dir):
    """Explain clicked, then Cancel pressed while the run still waits in the queue: the run stops at once.
    The flag is spent by that run, so the next one runs whole."""
    from cameras.app import build_app

    demo = build_app(["efficientnet_lite0"])
    fns = {f.name: f for f in demo.fns.values()}
    on_run, click, cancel = fns["on_run"].fn, fns["clear"].fn, fns["set"].fn
    assert fns["clear"].concurrency_id == fns["set"].concurrency_id == "cancel"  # both outside the model's queue
    state = {"path": str(sample_dir / "coffee.png"), "stem": "coffee", "explanations": []}

    def run():
        return list(on_run(state, "efficientnet_lite0", ["gradcam"], [967], "224", "all", 0.5,
                           progress=lambda *a, **k: None))[-1][3]

    cancel()  # a stale Cancel, pressed before the click, does not count
    click()
    cancel()  # the run is queued (e.g. behind an upload)
    assert "Cancelled after 0 of 1 maps" in run()
    click()
    assert "Done: 1 map in" in run()


def test_work_folder_is_pruned_and_removed_at_exit(tmp_path):
    import os
    import subprocess
    import sys
    import time

    from cameras import app

    demo = app.build_app(["efficientnet_lite0"])
    work = demo.cameras_work_dir
    on_sample = next(f.fn for f in demo.fns.values() if f.name == "on_sample")
    old = work / f"run-{time.time_ns() - int((app.KEEP_SECONDS + 60) * 1e9)}"
    recent = work / f"upload-{time.time_ns() - int(60 * 1e9)}"
    for d in (old, recent):
        d.mkdir()
    new = Path(on_sample("coffee"))
    assert new.exists() and recent.exists() and not old.exists()
    # the folder goes at exit; one the caller named is theirs and stays
    code = ("import sys; from cameras.app import build_app\n"
            "print(build_app(['efficientnet_lite0']).cameras_work_dir)\n"
            "print(build_app(['efficientnet_lite0'], work_dir='').cameras_work_dir)\n"
            "build_app(['efficientnet_lite0'], work_dir=sys.argv[1])")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "w")], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, GRADIO_ANALYTICS_ENABLED="False"))
    assert done.returncode == 0, done.stderr
    made = [Path(line) for line in done.stdout.split()]
    assert len(made) == 2 and all(m.name.startswith("cameras-app-") and not m.exists() for m in made)
    assert (tmp_path / "w" / "samples" / "coffee.jpg").is_file()


def test_details_explain_an_all_zero_map():
    from cameras.app import Explanation

    blank = Explanation("gradcam", 1, "up", 0.5, 0.1, None, np.zeros((4, 4), np.float32))
    shown = Explanation("gradcam", 2, "down", 0.5, 0.1, None, np.eye(4, dtype=np.float32))
    text = details_markdown([blank, shown])
    assert ("**Note:** the gradcam map for up is all zero: at no location does the method find positive evidence "
            "for the class (common with untrained weights; a map that overflowed to NaN or inf, as fp16 can, is "
            "shown as zero too); another method may show some.") in text
    assert "map for down" not in text
