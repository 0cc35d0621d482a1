"""Command-line edges found by a review: names that collide, bad option values, runaway sizes, memory."""

import gc
import json
import weakref
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import cameras.explain as explain_module
from cameras.cli import main
from cameras.images import image_size
from cameras.io import unique_stems

M = ["--model", "synthetic:cnn", "--quiet"]


def run(args):
    return CliRunner().invoke(main, args)


def save(path, h=64, w=64, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.random.default_rng(seed).random((h, w, 3)) * 255).astype("uint8")).save(path)
    return path


def test_repeated_names_never_share_output_files(tmp_path):
    from pathlib import Path
    assert unique_stems([Path("a/x.png"), Path("b/x.png"), Path("x_2.png")]) == ["x", "x_3", "x_2"]
    # suffixes follow the order a folder is listed in (sorted paths: a/ before a-b/), whatever order is given
    assert unique_stems([Path("a-b/x.png"), Path("a/x.png")]) == ["x_2", "x"]
    paths = [save(tmp_path / "a" / "x.png"), save(tmp_path / "b" / "x.png", seed=1), save(tmp_path / "x_2.png", seed=2)]
    out = tmp_path / "out"
    r = run(["explain", *map(str, paths), "--out", str(out), *M])
    assert r.exit_code == 0, r.output
    sources = {json.loads(f.read_text())["image"] for f in out.glob("*.json")}
    assert len(sources) == 3  # b/x.png's JSON had been overwritten by x_2.png's
    assert len(list(out.glob("*.npy"))) == 3
    # the same files listed in another order: each has its stem, so the rerun finds every one done
    r = run(["explain", *map(str, paths[::-1]), "--out", str(out), *M])
    assert "explained 0 of 3 images" in r.output and "3 already there" in r.output, r.output


@pytest.mark.parametrize("args,message", [
    (["--method", "rise", "--set", "seed=abc"], "seed must be an integer, got 'abc'"),
    (["--method", "rise", "--set", "p=abc"], "rise cannot take these options (p='abc')"),
    (["--steps", "2", "--set", "max_size=abc"], "max_size must be a positive integer, got 'abc'"),
    (["--max-size", "300"], "--max-size goes with --steps"),
])
def test_bad_option_values_are_one_line_errors(tmp_path, args, message):
    img = save(tmp_path / "a.png")
    r = run(["explain", str(img), "--out", str(tmp_path / "o"), *M, *args])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "o").exists()


def test_layers_and_bench_refuse_a_size_the_patch_model_cannot_take():
    for args in (["layers", "synthetic:vit", "--size", "30"], ["bench", "--model", "synthetic:vit", "--size", "30"]):
        r = run(args)
        assert r.exit_code == 2 and "not a multiple of synthetic:vit's patch size 8; use e.g. 32" in r.output, r.output


def test_attack_refuses_nan_and_out_of_range_budgets(tmp_path):
    img = save(tmp_path / "a.png")
    for args, message in ((["--alpha", "nan"], "'nan' is not a finite number"), (["--eps", "2"], "[0, 1] pixel range"),
                          (["--eps", "inf/1"], "'inf/1' is not a finite number")):
        r = run(["attack", str(img), "--out", str(tmp_path / "o"), "--steps", "2", *M, *args])
        assert r.exit_code == 2 and message in r.output, (args, r.output)
    assert not (tmp_path / "o").exists()


def test_randomize_refuses_a_folder_of_several_images(tmp_path):
    save(tmp_path / "imgs" / "a.png")
    save(tmp_path / "imgs" / "b.png", seed=1)
    r = run(["randomize", str(tmp_path / "imgs"), "--out", str(tmp_path / "o"), "--model", "synthetic:cnn"])
    assert r.exit_code == 2 and "randomize explains one image" in r.output and "holds 2" in r.output, r.output


def test_a_strip_is_refused_by_name_the_others_go_on(tmp_path):
    strip, fine = save(tmp_path / "strip.png", 8, 3000), save(tmp_path / "fine.png")
    r = run(["explain", str(strip), str(fine), "--out", str(tmp_path / "o"), *M])
    assert r.exit_code == 1 and "strip.png: the image is 3000×8 px, 375.0 times as wide as high" in r.output
    assert "explained 1 of 2" in r.output
    r = run(["explain", str(strip), "--square", "--out", str(tmp_path / "sq"), *M])
    assert r.exit_code == 0, r.output


def test_the_json_records_weights_topk_and_targets(tmp_path):
    img = save(tmp_path / "a.png")
    r = run(["explain", str(img), "--out", str(tmp_path / "o"), "--topk", "2", *M])
    assert r.exit_code == 0, r.output
    p = json.loads((tmp_path / "o" / "a.json").read_text())["parameters"]
    assert p["topk"] == 2 and "targets" not in p and "weights" not in p
    r = run(["explain", str(img), "--out", str(tmp_path / "t"), "--target", "1", "--target", "2", *M])
    p = json.loads((tmp_path / "t" / "a.json").read_text())["parameters"]
    assert p["targets"] == ["1", "2"] and "topk" not in p


def test_explain_holds_one_batch_of_images_not_the_folder(tmp_path, monkeypatch):
    """Images are read for their size first and again when their batch runs: a folder of large photos no
    longer sits in memory all at once (it had: 54 MB per 2500² photo)."""
    paths = [save(tmp_path / "imgs" / f"{i}.png", seed=i) for i in range(6)]
    alive, most = [], [0]
    real = explain_module.load_image

    def counting(path, *a, **k):
        gc.collect()
        most[0] = max(most[0], sum(ref() is not None for ref in alive) + 1)
        img = real(path, *a, **k)
        alive.append(weakref.ref(img))
        return img

    monkeypatch.setattr(explain_module, "load_image", counting)
    r = run(["explain", *map(str, paths), "--out", str(tmp_path / "o"), "--batch-size", "2", *M])
    assert r.exit_code == 0 and "explained 6 of 6" in r.output, r.output
    assert most[0] <= 3, most[0]  # one batch of 2, and the one being read
    assert len(alive) == 6  # each decoded once: the sizes came from the headers


def test_a_corrupt_image_body_fails_alone_and_sizes_come_from_headers(tmp_path):
    paths = [save(tmp_path / "imgs" / f"{i}.jpg", seed=i) for i in range(3)]
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) // 2])  # its header (and size) intact, its pixels cut
    assert image_size(paths[1]) == image_size(paths[0])
    r = run(["explain", *map(str, paths), "--out", str(tmp_path / "o"), "--batch-size", "3", *M])
    assert r.exit_code == 1 and "explained 2 of 3" in r.output and "1.jpg: corrupt or truncated" in r.output, r.output
    assert sorted(f.name for f in (tmp_path / "o").glob("*.json")) == ["0.json", "2.json"]


def test_options_that_would_be_ignored_are_refused(tmp_path):
    img = save(tmp_path / "a.png")
    for args, message in (
        (["compare", str(img), "--methods", "gradcam", "--set", "rise.n_masks=5", "--out", str(tmp_path / "c.png")],
         "--set rise.… sets a method that --methods does not run (gradcam)"),
        (["compare", str(img), "--model", "synthetic:cnn,synthetic:cnn", "--methods", "gradcam", "--out",
          str(tmp_path / "c.png")], "names a model twice"),
        (["evaluate", "--data", str(tmp_path), "--format", "imagenet", "--metrics", " , ", "--out",
          str(tmp_path / "e")], "--metrics names no metric"),
        (["evaluate", "--data", str(tmp_path), "--format", "imagenet", "--methods", "gradcam", "--set",
          "cameras.steps=2", "--out", str(tmp_path / "e")], "sets a method that --methods does not run"),
        (["explain", str(img), "--device", "meta", "--out", str(tmp_path / "o")], "a meta device cannot run"),
    ):
        r = run([*args, "--model", "synthetic:cnn"] if "--model" not in args else args)
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, (args, r.output)
    assert not any((tmp_path / n).exists() for n in ("c.png", "e", "o"))


def test_a_file_that_changes_between_reads_fails_alone(tmp_path, monkeypatch):
    paths = [save(tmp_path / "imgs" / f"{i}.png", seed=i) for i in range(3)]
    real = explain_module.load_image

    def changing(path, *a, **k):  # 1.png is rewritten at another size after its header was read
        img = real(path, *a, **k)
        return img.resize((96, 64)) if path.name == "1.png" else img

    monkeypatch.setattr(explain_module, "load_image", changing)
    r = run(["explain", *map(str, paths), "--out", str(tmp_path / "o"), "--batch-size", "3", *M])
    assert r.exit_code == 1 and "explained 2 of 3" in r.output, r.output  # the whole batch had failed
    assert "1.png: the file changed while the folder was explained" in r.output
    assert sorted(f.name for f in (tmp_path / "o").glob("*.json")) == ["0.json", "2.json"]


def test_strips_fail_before_any_work_in_attack_and_alias_models_count_once(tmp_path):
    fine, strip = save(tmp_path / "a.png"), save(tmp_path / "strip.png", 20, 340)
    r = run(["attack", str(fine), str(strip), "--steps", "2", "--out", str(tmp_path / "att"), *M])
    assert r.exit_code == 2 and "strip.png: the image is 340×20 px, 17.0 times as wide as high" in r.output, r.output
    assert not (tmp_path / "att").exists()  # nothing done for a.png first
    r = run(["attack", str(strip), "--steps", "2", "--square", "--out", str(tmp_path / "sq"), *M])
    assert r.exit_code == 0, r.output
    r = run(["compare", str(fine), "--methods", "gradcam", "--model", "efficientnet_lite0,default",
             "--out", str(tmp_path / "c.png")])
    assert r.exit_code == 2 and "a model twice" in r.output and not (tmp_path / "c.png").exists(), r.output


def test_a_rerun_goes_on_where_it_stopped_and_skips_its_own_outputs(tmp_path):
    folder = tmp_path / "imgs"
    paths = [save(folder / f"{i}.png", seed=i) for i in range(3)]
    r = run(["explain", str(paths[0]), "--out", str(folder), *M])  # an interrupted run: one image done
    assert r.exit_code == 0 and "explained 1 of 1" in r.output, r.output
    first = (folder / "0.json").stat().st_mtime_ns
    r = run(["explain", str(folder), "--out", str(folder), *M])  # the folder into itself
    assert r.exit_code == 0, r.output
    assert "explained 2 of 3 images" in r.output and "1 already there with these settings, skipped" in r.output
    assert (folder / "0.json").stat().st_mtime_ns == first
    assert sorted(f.name for f in folder.glob("*.json")) == ["0.json", "1.json", "2.json"]  # no outputs explained
    r = run(["explain", str(folder), "--out", str(folder), *M])
    assert "explained 0 of 3 images" in r.output and "3 already there" in r.output, r.output
    # options that cannot change a map may differ (a rerun after running out of memory takes a smaller batch)
    r = run(["explain", str(folder), "--out", str(folder), "--batch-size", "1", "--set", "batch_pixels=5000", *M])
    assert "explained 0 of 3 images" in r.output and "3 already there" in r.output, r.output
    for other in (["--alpha", "0.3"], ["--set", "scale_rule=paper"], ["--topk", "2"]):  # pictures or maps change
        r = run(["explain", str(folder), "--out", str(folder), *other, *M])
        assert "explained 3 of 3 images" in r.output, (other, r.output)
    r = run(["explain", str(folder), "--out", str(folder), *M])
    assert "explained 3 of 3 images" in r.output, r.output
    # a record from before records kept `settings` is skipped when its parameters are the same, as then
    for f in folder.glob("*.json"):
        rec = json.loads(f.read_text())
        del rec["settings"]
        f.write_text(json.dumps(rec))
    r = run(["explain", str(folder), "--out", str(folder), *M])
    assert "explained 0 of 3 images" in r.output and "3 already there" in r.output, r.output
    assert not any("settings" in json.loads(f.read_text()) for f in folder.glob("*.json"))  # left as they were
    r = run(["explain", str(folder), "--out", str(folder), "--batch-size", "2", *M])  # then every one counted
    assert "explained 3 of 3 images" in r.output, r.output
    (folder / "1.json").unlink()
    (folder / json.loads((folder / "2.json").read_text())["explanations"][0]["npy"]).unlink()  # a map missing: redone
    r = run(["explain", str(folder), "--out", str(folder), *M])
    assert "explained 2 of 3 images" in r.output and "1 already there" in r.output, r.output
    r = run(["explain", str(folder), "--out", str(folder), "--method", "gradcam", *M])  # other settings: redone
    assert "explained 3 of 3 images" in r.output, r.output  # and cameras's pictures, now unlisted, are no inputs
    r = run(["explain", str(folder), "--out", str(folder), "--method", "gradcam", "--overwrite", *M])
    assert "explained 3 of 3 images" in r.output and "already there" not in r.output, r.output
    assert (folder / "0.json").stat().st_mtime_ns != first


def test_only_explain_records_mark_outputs(tmp_path):
    """JSON beside the images counts as a record only as explain writes one: an object listing bare file names."""
    folder = tmp_path / "imgs"
    for name in ("a.png", "b.png", "x.png"):
        save(folder / name)
    (tmp_path / "outside.png").write_bytes(b"")
    head = {"model": "m", "image": str(folder / "a.png")}  # what _finished compares first: all of them match

    def record(name, explanations, **extra):
        (folder / name).write_text(json.dumps({**head, "explanations": explanations, **extra}))

    record("a.json", [{"png": "a.png", "npy": "gone.npy"}])
    record("b.json", 5)  # not a list (iterating it failed)
    (folder / "c.json").write_text(json.dumps([{**head, "png": "b.png"}]))  # not an object
    record("d.json", [{"png": "../outside.png"}, {"png": "sub/b.png"}, {"png": ".."}])  # not bare names
    (folder / "e.json").write_text("{not json")
    record("x.json", [{"png": "x.png"}], pad="x" * explain_module.RECORD_MAX_BYTES)  # over 4 MB: not read
    assert explain_module.written_outputs(folder, by_name=False) == {(folder / "a.png").resolve(),
                                                                     (folder / "gone.npy").resolve()}
    record("a.json", [{"png": "a.png"}])
    record("x.json", [{"png": "x.png"}])
    assert explain_module._finished(folder / "a.png", folder / "a.json", {"model": "m"}) == [
        folder / "a.png", folder / "a.json"]
    assert explain_module._finished(folder / "a.png", folder / "x.json", {"model": "m"}) == [
        folder / "x.png", folder / "x.json"]  # the same record under 4 MB is read
    for name in ("b.json", "c.json", "d.json", "e.json"):
        assert explain_module._finished(folder / "a.png", folder / name, {"model": "m"}) is None
    record("x.json", [{"png": "x.png"}], pad="x" * explain_module.RECORD_MAX_BYTES)
    assert explain_module._finished(folder / "a.png", folder / "x.json", {"model": "m"}) is None


def test_explain_images_skips_only_what_this_call_would_write(tmp_path):
    """From Python too: the call's own classes and picture options decide whether an image is done."""
    import cameras

    bundle = cameras.load_model("synthetic:cnn")
    img = save(tmp_path / "a.png")
    out = tmp_path / "o"

    def call(**kw):
        method = cameras.GradCAM(bundle.model, layer=bundle.layer)
        return explain_module.explain_images([img], bundle, method, out, skip_done=True, **kw)[0]

    assert not call().skipped
    assert call().skipped and call(batch_size=4).skipped
    for kw in ({"topk": 2}, {"targets": [1]}, {"alpha": 0.2}, {"square": True}, {"plain": True}, {"cmap": "gray"}):
        assert not call(**kw).skipped, kw  # written anew, and then done with those settings
        assert call(**kw).skipped, kw


def test_a_rerun_knows_the_file_however_its_path_is_typed(tmp_path, monkeypatch):
    img = save(tmp_path / "imgs" / "a.png")
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)
    r = run(["explain", "imgs/a.png", "--out", str(out), *M])
    assert r.exit_code == 0 and "explained 1 of 1" in r.output, r.output
    record = json.loads((out / "a.json").read_text())
    assert record["image"] == "imgs/a.png" and record["image_file"] == str(img.resolve())
    for typed in (str(img), "./imgs/../imgs/a.png"):  # absolute, and relative another way
        r = run(["explain", typed, "--out", str(out), *M])
        assert "explained 0 of 1" in r.output and "1 already there" in r.output, r.output
    other = save(tmp_path / "other" / "a.png", seed=3)  # another file of the same name is not skipped
    r = run(["explain", str(other), "--out", str(out), *M])
    assert "explained 1 of 1" in r.output and "already there" not in r.output, r.output


def test_compare_counts_its_maps_unless_quiet(tmp_path, monkeypatch):
    import cameras.compare as compare_module
    img = save(tmp_path / "a.png")
    args = ["compare", str(img), "--methods", "gradcam,gradient", "--model", "synthetic:cnn"]
    seen, real = [], compare_module.tqdm

    def spy(*a, **k):
        seen.append((k.get("total"), k.get("disable")))
        return real(*a, **k)

    monkeypatch.setattr(compare_module, "tqdm", spy)
    for extra, name in (([], "c.png"), (["--quiet"], "q.png")):
        r = run([*args, "--out", str(tmp_path / name), *extra])
        assert r.exit_code == 0, r.output
    assert seen == [(2, None), (2, True)]  # two maps; on a terminal only, and never with --quiet


def test_an_option_given_as_a_flag_and_in_set_is_refused(tmp_path):
    img = save(tmp_path / "a.png")
    r = run(["explain", str(img), "--scales", "64,96", "--set", "scales=64,128", "--out", str(tmp_path / "o"), *M])
    assert r.exit_code == 2 and "--set scales=… repeats --scales: give each option once" in r.output, r.output
    assert not (tmp_path / "o").exists()
    r = run(["explain", str(img), "--set", "scales=64,128", "--out", str(tmp_path / "o"), *M])  # once is fine
    assert r.exit_code == 0 and json.loads((tmp_path / "o" / "a.json").read_text())["parameters"]["scales"] == [64, 128]


def test_a_class_named_twice_is_explained_once(tmp_path):
    img = save(tmp_path / "a.png")
    out = tmp_path / "o"
    r = run(["explain", str(img), "--target", "1", "--target", "2", "--target", "1", "--out", str(out), *M])
    assert r.exit_code == 0 and "more than once; each class is explained once" in r.output, r.output
    record = json.loads((out / "a.json").read_text())
    assert [e["target"] for e in record["explanations"]] == [1, 2]
    assert len(list(out.glob("a.cameras.*.npy"))) == 2 and record["parameters"]["targets"] == ["1", "2"]
    r = run(["explain", str(img), "--target", "1", "--target", "2", "--out", str(out), *M])  # the same work
    assert "1 already there" in r.output, r.output


def test_a_layer_without_a_spatial_output_stops_the_run_once(tmp_path):
    folder = tmp_path / "imgs"
    for i in range(3):
        save(folder / f"{i}.png", seed=i)
    out = tmp_path / "o"
    r = run(["explain", str(folder), "--layer", "3", "--out", str(out), *M])
    assert r.exit_code == 2 and r.output.count("error:") == 1, r.output
    assert "layer '3' gives shape" in r.output and "`cameras layers synthetic:cnn` lists the layers" in r.output
    assert not out.exists() or not list(out.iterdir())


def test_scales_not_starting_at_the_input_size_get_a_note(tmp_path):
    img = save(tmp_path / "a.png")
    r = run(["explain", str(img), "--scales", "96,128", "--out", str(tmp_path / "o"), *M])  # synthetic:cnn: 64 px
    assert r.exit_code == 0, r.output
    assert "the scales start at 96 but the model's input is 64 px" in r.output and "128 runs 85 px" in r.output
    r = run(["explain", str(img), "--scales", "64,128", "--out", str(tmp_path / "p"), *M])  # nor by default:
    assert r.exit_code == 0 and "note: the scales start" not in r.output, r.output
    r = run(["explain", str(img), "--out", str(tmp_path / "q"), *M])  # the default 224…924 is relative by design
    assert r.exit_code == 0 and "note: the scales start" not in r.output, r.output
    r = run(["explain", str(img), "--set", "scales=96,128", "--out", str(tmp_path / "s"), *M])
    assert "the scales start at 96" in r.output, r.output


def test_running_out_of_memory_names_the_options_that_shrink_the_work(tmp_path, monkeypatch):
    def no_memory(*_a, **_k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] . DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(explain_module, "_explain_batch", no_memory)
    r = run(["explain", str(save(tmp_path / "a.png")), "--out", str(tmp_path / "o"), *M])
    assert r.exit_code == 1 and "can't allocate memory (out of memory: give smaller --scales" in r.output, r.output
    assert "explained 0 of 1 images (nothing written)" in r.output and not (tmp_path / "o").exists()


def test_an_earlier_runs_output_folder_inside_the_input_is_no_input(tmp_path):
    folder = tmp_path / "rec"
    save(folder / "a.png")
    r = run(["explain", str(folder), "--out", str(folder / "res"), *M])
    assert r.exit_code == 0 and "explained 1 of 1" in r.output, r.output
    r = run(["explain", str(folder), "--out", str(folder / "res2"), *M])  # res holds only outputs: no note
    assert r.exit_code == 0 and "explained 1 of 1" in r.output and "skipped" not in r.output, r.output
    r = run(["explain", str(folder), "--recursive", "--out", str(folder / "res3"), *M])
    assert r.exit_code == 0 and "explained 1 of 1" in r.output, r.output  # res's and res2's pictures left out
    save(folder / "sub" / "b.png")  # a subfolder of real images still gets the note
    r = run(["explain", str(folder), "--out", str(folder / "res4"), *M])
    assert "skipped 1 subfolder(s) with images" in r.output and str(folder / "sub") in r.output, r.output


def test_pictures_named_like_outputs_are_inputs_outside_the_out_folder(tmp_path):
    """Only --out is read by name pattern; an input folder loses only what a record there lists."""
    folder = tmp_path / "scans"
    for name in ("cat.png", "scan.gradient.1.png", "frame.rise.0002.png"):
        save(folder / name)
    r = run(["explain", str(folder), "--out", str(tmp_path / "o"), *M])
    assert r.exit_code == 0 and "explained 3 of 3" in r.output, r.output
    r = run(["explain", str(folder / "scan.gradient.1.png"), "--out", str(folder), *M])  # named: kept, even in --out
    assert r.exit_code == 0 and "explained 1 of 1" in r.output, r.output


def test_attack_and_sanity_name_their_steps_alike_and_keep_the_old_names(tmp_path):
    # attack's step cap is --attack-steps as on sanity (--steps still works); sanity's cleaning steps are
    # --clean-steps (--steps still works); both take --step-size (--alpha, attack's older name)
    img = save(tmp_path / "a.png")
    runs = {"new": ["--attack-steps", "2", "--step-size", "2/255", "--no-squared"],
            "old": ["--steps", "2", "--alpha", "2/255", "--not-squared"]}
    for name, args in runs.items():
        r = run(["attack", str(img), "--out", str(tmp_path / name), *M, *args])
        assert r.exit_code == 0, r.output
    new, old = (json.loads((tmp_path / n / "attack.json").read_text()) for n in runs)
    for a in (new, old):
        assert a["steps"] == 2 and a["alpha"] == pytest.approx(2 / 255) and a["reading"]["squared"] is False
    assert new["images"][0]["vanilla"]["l2"] == old["images"][0]["vanilla"]["l2"]
    r = run(["sanity", str(img), "--methods", "gradcam", "--attack-steps", "2", "--clean-steps", "3",
             "--step-size", "3/255", "--out", str(tmp_path / "s"), *M])
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "s" / "sanity.json").read_text())
    assert s["steps"] == 3 and s["attack_steps"] == 2 and s["alpha"] == pytest.approx(3 / 255)
    assert len(s["images"][0]["methods"]["gradcam"]["curve"]) == 4
    r = run(["sanity", str(img), "--methods", "gradcam", "--attack-steps", "2", "--steps", "3", "--out",
             str(tmp_path / "s2"), *M])
    assert r.exit_code == 0 and json.loads((tmp_path / "s2" / "sanity.json").read_text())["steps"] == 3, r.output


def test_a_step_size_above_the_budget_is_warned_about(tmp_path):
    # --alpha 0.5 on attack is a step size (on explain and compare it is an overlay opacity): larger than ε,
    # every step lands on the budget's edge, which the user hears about; within the budget, no warning
    img = save(tmp_path / "a.png")
    r = CliRunner().invoke(main, ["attack", str(img), "--out", str(tmp_path / "o"), "--steps", "1", "--alpha", "0.5",
                                  *M])
    assert r.exit_code == 0 and "warning: --step-size 0.5 is larger than the budget --eps 0.04706" in r.output, r.output
    r = CliRunner().invoke(main, ["attack", str(img), "--out", str(tmp_path / "p"), "--steps", "1", *M])
    assert r.exit_code == 0 and "warning" not in r.output, r.output


def test_compare_takes_repeated_models_and_refuses_a_second_target(tmp_path):
    img = save(tmp_path / "a.png")
    out = tmp_path / "c.png"
    r = run(["compare", str(img), "--methods", "gradcam", "--model", "synthetic:cnn", "--model", "synthetic:vit",
             "--quiet", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert [m["model"] for m in json.loads(out.with_suffix(".json").read_text())["models"]] == ["synthetic:cnn",
                                                                                               "synthetic:vit"]
    r = run(["compare", str(img), "--methods", "gradcam", "--model", "synthetic:cnn,synthetic:cnn", "--quiet",
             "--out", str(tmp_path / "d.png")])
    assert r.exit_code == 2 and "names a model twice" in r.output, r.output
    r = run(["compare", str(img), "--methods", "gradcam", *M, "--target", "1", "--target", "2", "--out",
             str(tmp_path / "e.png")])
    assert r.exit_code == 2 and "--target is given 2 times (1, 2)" in r.output, r.output
    assert not (tmp_path / "d.png").exists() and not (tmp_path / "e.png").exists()


def test_explain_takes_the_method_prefix_of_compare_and_refuses_another_method(tmp_path):
    img = save(tmp_path / "a.png")
    r = run(["explain", str(img), "--out", str(tmp_path / "a"), *M, "--set", "cameras.scales=[64, 96]"])
    assert r.exit_code == 0, r.output
    r2 = run(["explain", str(img), "--out", str(tmp_path / "b"), *M, "--set", "scales=[64, 96]"])
    assert r2.exit_code == 0, r2.output
    (fa,), (fb,) = (list((tmp_path / d).glob("a.cameras.*.npy")) for d in "ab")
    assert fa.name == fb.name and np.array_equal(np.load(fa), np.load(fb))
    assert json.loads((tmp_path / "a" / "a.json").read_text())["parameters"]["scales"] == [64, 96]
    r = run(["explain", str(img), "--out", str(tmp_path / "c"), *M, "--set", "rise.n_masks=5"])
    assert r.exit_code == 2 and "--set rise.n_masks=5 sets rise but --method is cameras; give --method rise" in \
        r.output, r.output
    # an option both methods take: the hint offers the --method's own
    r = run(["explain", str(img), "--out", str(tmp_path / "c"), *M, "--set", "gradcam.layer=0"])
    assert "give --set layer=0 for cameras's own option, or --method gradcam" in r.output, r.output
    r = run(["explain", str(img), "--out", str(tmp_path / "c"), *M, "--set", "foo.bar=1"])
    assert r.exit_code == 2 and "--set foo.bar=1: unknown method 'foo'" in r.output, r.output
    assert not (tmp_path / "c").exists()


def test_multi_model_commands_read_repeats_and_comma_lists_alike():
    from cameras.cli.common import model_names

    assert model_names(("a,b", " c ")) == model_names(("a", "b", "c")) == ["a", "b", "c"]
    assert model_names(("a,,b,",)) == ["a", "b"]  # empty pieces dropped, as compare always did
    with pytest.raises(Exception, match="names no model"):
        model_names((" , ",))
    r = run(["reproduce", "--model", "synthetic:cnn,synthetic:vit", "--weights", "none", "--out", "/nonexistent/x"])
    assert r.exit_code == 2 and "give --weights once per --model (2)" in r.output and "not a comma list" in r.output, \
        r.output


def test_attack_and_sanity_take_a_limit_like_the_dataset_commands(tmp_path):
    for i, name in enumerate("cab"):
        save(tmp_path / "imgs" / f"{name}.png", seed=i)
    r = run(["attack", "--data", str(tmp_path / "imgs"), "--limit", "2", "--steps", "1", "--out", str(tmp_path / "a"),
             *M])
    assert r.exit_code == 0, r.output
    assert [Path(i["image"]).name for i in json.loads((tmp_path / "a" / "attack.json").read_text())["images"]] == [
        "a.png", "b.png"]
    r = run(["sanity", "--data", str(tmp_path / "imgs"), "--limit", "1", "--methods", "gradcam", "--attack-steps", "1",
             "--clean-steps", "2", "--out", str(tmp_path / "s"), *M])
    assert r.exit_code == 0, r.output
    assert len(json.loads((tmp_path / "s" / "sanity.json").read_text())["images"]) == 1
    r = run(["attack", "--data", str(tmp_path / "imgs"), "--limit", "0", "--out", str(tmp_path / "z"), *M])
    assert r.exit_code == 2 and "--limit" in r.output and not (tmp_path / "z").exists(), r.output


def test_compare_and_evaluate_take_layer_and_scales_for_every_method_that_takes_them(tmp_path):
    img = save(tmp_path / "a.png")
    out = tmp_path / "c.png"
    r = run(["compare", str(img), "--methods", "cameras,gradcam,gradient", "--layer", "0.5", "--scales", "64,96",
             "--out", str(out), *M])
    assert r.exit_code == 0, r.output
    methods = json.loads(out.with_suffix(".json").read_text())["models"][0]["methods"]
    assert methods["cameras"]["layer"] == methods["gradcam"]["layer"] == "0.5"
    assert methods["cameras"]["options"]["scales"] == [64, 96] and methods["cameras"]["kept_scales"] == [64, 96]
    assert "layer" not in methods["gradient"]["options"]  # an input-gradient method takes no layer
    # the same as --set for each
    r = run(["compare", str(img), "--methods", "cameras,gradcam", "--set", "cameras.layer=0.5", "--set",
             "gradcam.layer=0.5", "--set", "cameras.scales=[64, 96]", "--out", str(tmp_path / "d.png"), *M])
    assert r.exit_code == 0, r.output
    for m in ("cameras", "gradcam"):
        c, d = (np.load(tmp_path / f"{f}.synthetic-cnn.{m}.npy") for f in "cd")
        assert np.array_equal(c, d)
    for args, message in ((["--methods", "rise", "--layer", "0.5"], "--layer applies to none of the methods run"),
                          (["--methods", "gradcam", "--scales", "64"], "--scales applies to none"),
                          (["--methods", "gradcam", "--layer", "0.5", "--set", "gradcam.layer=0.2"],
                           "--layer and --set gradcam.layer both give gradcam's layer")):
        r = run(["compare", str(img), *args, "--out", str(tmp_path / "e.png"), *M])
        assert r.exit_code == 2 and message in r.output, (args, r.output)
        r = run(["evaluate", "--data", str(tmp_path), "--format", "imagenet", *args, "--out", str(tmp_path / "ev"),
                 *M])
        assert r.exit_code == 2 and message in r.output, (args, r.output)
    assert not (tmp_path / "e.png").exists() and not (tmp_path / "ev").exists()
    # one layer for two models that do not share it: the error names the model and why
    r = run(["compare", str(img), "--methods", "gradcam", "--model", "synthetic:cnn,synthetic:vit", "--layer", "0.5",
             "--quiet", "--out", str(tmp_path / "f.png")])
    assert r.exit_code == 2 and "synthetic:vit: " in r.output and "applies to every compared model" in r.output, \
        r.output
    # a layer list and a quoted or None layer keep their meaning; a number-like name stays a name
    r = run(["compare", str(img), "--methods", "normgrad", "--set", "normgrad.layer=['0.3', '0.5']", "--out",
             str(tmp_path / "g.png"), *M])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "g.json").read_text())["models"][0]["methods"]["normgrad"]["layer"] == "0.3,0.5"
