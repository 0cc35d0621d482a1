"""Dataset readers on fixture datasets written here, and `cameras evaluate` end to end."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import cameras
from cameras.cli import main
from cameras.data import DatasetError, load_mapping, read_coco, read_imagenet, read_voc

from .conftest import CAT, make_coco, make_imagenet, make_voc, rand_image, strip_seconds, voc_xml


def test_imagenet_xml_and_csv(tmp_path, embedded):
    root = make_imagenet(tmp_path / "inet")
    items = read_imagenet(root, embedded.wnids)
    assert len(items) == 3 and items[0].classes() == [285, 967] and items[1].classes() == [285]
    reg = items[0].region(285)
    assert reg.shape == (60, 80) and reg[4:30, 4:40].all() and reg.sum() == 26 * 36
    csv_root = tmp_path / "inet_csv"
    csv_root.mkdir()
    Image.fromarray(rand_image(60, 80)).save(csv_root / "img1.JPEG")
    (csv_root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n"
                                                   f"img1,{CAT} 4 4 39 29 {CAT} 50 50 60 55 \n")
    items = read_imagenet(csv_root, embedded.wnids)
    assert items[0].size == (60, 80) and len(items[0].objects) == 2 and items[0].region(285)[4, 4]
    (csv_root / "img1.JPEG").write_text("junk")
    with pytest.raises(DatasetError, match=r"img1.JPEG: not a readable image .*remove its line 2"):
        read_imagenet(csv_root, embedded.wnids)


def test_imagenet_malformed(tmp_path, embedded):
    root = make_imagenet(tmp_path / "bad")
    (root / "ILSVRC2012_val_00000001.xml").write_text("<annotation><size><width>8</width></size></annotation>")
    with pytest.raises(DatasetError, match="ILSVRC2012_val_00000001.xml: missing field 'height'"):
        read_imagenet(root, embedded.wnids)
    (root / "ILSVRC2012_val_00000001.xml").write_text(voc_xml([("n99999999", (1, 1, 5, 5), False)]))
    with pytest.raises(DatasetError, match="not a WordNet id"):
        read_imagenet(root, embedded.wnids)
    (root / "ILSVRC2012_val_00000001.xml").write_text("<annotation><size>")
    with pytest.raises(DatasetError, match="not a readable XML"):
        read_imagenet(root, embedded.wnids)
    c = tmp_path / "c"
    c.mkdir()
    Image.fromarray(rand_image()).save(c / "x.JPEG")
    (c / "LOC_val_solution.csv").write_text(f"ImageId,PredictionString\nx,{CAT} 1 2 3\n")
    with pytest.raises(DatasetError, match=r"LOC_val_solution.csv:2: PredictionString"):
        read_imagenet(c, embedded.wnids)
    with pytest.raises(DatasetError, match="dataset folder not found"):
        read_imagenet(tmp_path / "nope", embedded.wnids)
    (tmp_path / "classes.txt").write_text("x")
    with pytest.raises(DatasetError, match="classes.txt: is a file; give the dataset's folder"):
        read_imagenet(tmp_path / "classes.txt", embedded.wnids)


def test_voc_reader_difficult_and_mapping(tmp_path):
    root = make_voc(tmp_path / "voc")
    items = read_voc(root, {"cat": 285, "dog": 207})
    assert [it.classes() for it in items] == [[285, 207], [285]]
    assert items[0].all_difficult(207) and not items[0].all_difficult(285)
    assert read_voc(root, {"cat": 285})[0].classes() == [285]  # unmapped classes are left out
    (tmp_path / "m.json").write_text('{"kat": 1}')
    with pytest.raises(DatasetError, match="unknown dataset classes"):
        load_mapping(tmp_path / "m.json", ["cat", "dog"])
    (tmp_path / "m.json").write_text('{"cat": "x"}')
    with pytest.raises(DatasetError, match="integer model class ids"):
        load_mapping(tmp_path / "m.json")
    (root / "Annotations" / "000002.xml").write_text(voc_xml([("cow", (5, 5, 3, 3), False)]))
    with pytest.raises(DatasetError, match="000002.xml: object 'cow' has an empty box"):
        read_voc(root, None)
    with pytest.raises(DatasetError, match="split file not found"):
        read_voc(tmp_path, None)
    with pytest.raises(DatasetError, match="split file not found"):  # not a VOC folder: said before any mapping
        read_voc(tmp_path, None, num_classes=1000)


def test_coco_reader_polygon_and_rle(tmp_path):
    root = make_coco(tmp_path / "coco")
    items = read_coco(root, {"cat": 285, "cup": 968})
    assert len(items) == 1 and items[0].classes() == [285, 968]
    cat = items[0].region(285)
    assert cat[12, 15] and not cat[40, 5] and 150 < cat.sum() < 260
    cup = items[0].region(968)
    assert cup.sum() == 100 and cup[45, 65]
    data = json.loads((root / "instances.json").read_text())
    del data["annotations"][0]["segmentation"]
    (root / "instances.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"annotations\[0\] has no field 'segmentation'"):
        read_coco(root, None)
    (root / "instances.json").write_text("{")
    with pytest.raises(DatasetError, match="not a readable JSON"):
        read_coco(root, None)


def test_dataset_classes_must_be_the_models(tmp_path):
    """Without a mapping, VOC class i (COCO category i) would be scored as the model's class i: refused unless the
    model has as many classes; a mapping's ids must be the model's. Checked before any image is read."""
    voc, coco = make_voc(tmp_path / "voc"), make_coco(tmp_path / "coco")
    with pytest.raises(DatasetError, match="PASCAL VOC has 20 classes but the model has 1000.*--mapping"):
        read_voc(voc, None, num_classes=1000)
    assert [it.classes() for it in read_voc(voc, None, num_classes=20)] == [[7, 11], [7]]  # a VOC model: VOC order
    with pytest.raises(DatasetError, match=r"class ids the model does not have \(\{'dog': 1000\}\).*0\.\.999"):
        read_voc(voc, {"cat": 285, "dog": 1000}, num_classes=1000)
    assert read_voc(voc, {"cat": 285}, num_classes=1000)[1].classes() == [285]
    with pytest.raises(DatasetError, match=r"instances.json \(COCO\) has 2 classes but the model has 1000"):
        read_coco(coco, None, num_classes=1000)
    assert read_coco(coco, None, num_classes=2)[0].classes() == [0, 1]
    with pytest.raises(DatasetError, match="class ids the model does not have"):
        read_coco(coco, {"cat": -1}, num_classes=1000)
    out = tmp_path / "out"
    for fmt, root in (("voc", voc), ("coco", coco)):
        r = CliRunner().invoke(main, ["evaluate", "--data", str(root), "--format", fmt, "--methods", "gradcam",
                                      "--out", str(out), "--quiet"])
        assert r.exit_code == 2 and "--mapping FILE.json" in r.output and "Traceback" not in r.output, r.output
        assert not out.exists()  # refused before anything is written


FAST = ["--set", "cameras.scales=[224, 256]", "--quiet"]


def test_evaluate_end_to_end(tmp_path):
    root = make_imagenet(tmp_path / "inet", n=2)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["evaluate", "--data", str(root), "--format", "imagenet", "--methods",
                                  "cameras,gradcam,gradient", "--metrics", "pointing,rho,insdel", "--insdel-step",
                                  "6000", "--out", str(out), *FAST], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 3 * 3  # (2 + 1 classes) × 3 methods
    assert {r["method"] for r in rows} == {"cameras", "gradcam", "gradient"}
    for row in rows:
        assert (row["pointing_hit"] in ("0", "1") and float(row["rho_plus"]) >= 0
                and 0 <= float(row["insertion_auc"]) <= 1)
    assert rows[0]["kept_scales"] == "224 256"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"pointing_game", "rho_plus", "rho_minus", "insertion_auc", "deletion_auc", "items"}
    assert summary["items"] == {"cameras": 3, "gradcam": 3, "gradient": 3}
    report = (out / "report.md").read_text()
    assert "94.2 / 88.8" in report and "ρ⁺" in report and "curves.png" in report
    assert (out / "metrics.png").exists() and (out / "curves.png").exists()
    # the console names the metrics asked for, with the summary's values, and only those
    line = next(t for t in r.output.splitlines() if t.startswith("gradcam:"))
    ins = summary["insertion_auc"]["gradcam"]
    assert line.startswith("gradcam: 3 items, pointing ") and f"insertion AUC {ins:.3f}" in line, line
    assert "rho+" in line and "deletion AUC" in line and "energy" not in line and "ROAD" not in line, line
    # a rerun finds everything finished and changes nothing
    before = (out / "results.csv").read_bytes()
    r = CliRunner().invoke(main, ["evaluate", "--data", str(root), "--format", "imagenet", "--methods",
                                  "cameras,gradcam,gradient", "--metrics", "pointing,rho,insdel", "--insdel-step",
                                  "6000", "--out", str(out), *FAST], catch_exceptions=False)
    assert r.exit_code == 0 and (out / "results.csv").read_bytes() == before


def test_other_settings_into_the_same_folder_are_refused(tmp_path):
    """The measured bug: a random network's run into the first run's folder reported the first
    run's numbers. Now every setting that changes results is checked, and nothing is touched."""
    root = make_imagenet(tmp_path / "inet", n=2)
    out = tmp_path / "out"
    args = ["evaluate", "--data", str(root), "--format", "imagenet", "--methods", "gradcam", "--out", str(out),
            "--quiet"]
    assert CliRunner().invoke(main, args).exit_code == 0
    files = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    for extra, named in [(["--model", "torchvision:resnet18", "--weights", "random"],
                          "model: 'efficientnet_lite0' before"),
                         (["--square"], "square: False before, True now"),
                         (["--metrics", "pointing"], "metrics:"),
                         (["--insdel-step", "100"], "insdel_step: 224 before, 100 now"),
                         (["--set", "gradcam.layer=blocks"], "methods.gradcam: {'layer': 'bn2'"),
                         (["--target-kind", "softmax"], "target_kind: 'class' before, 'softmax' now")]:
        r = CliRunner().invoke(main, [*args, *extra])
        assert r.exit_code != 0 and "holds a run of evaluate with other settings" in r.output and named in r.output, (
            extra, r.output)
        assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == files  # nothing changed
    other = make_imagenet(tmp_path / "inet2", n=1)
    r = CliRunner().invoke(main, [*args[:2], str(other), *args[3:]])
    assert r.exit_code != 0 and "data:" in r.output
    # the same settings resume (here: nothing left to do) and give the same results
    assert CliRunner().invoke(main, args).exit_code == 0
    assert (out / "results.csv").read_bytes() == files["results.csv"]
    # options that do not change maps may differ, and a rerun may add a method
    more = [*args[:6], "gradcam,gradient", *args[7:]]
    r = CliRunner().invoke(main, more)
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["method"] for r in rows].count("gradient") == 3 and [r["method"] for r in rows].count("gradcam") == 3
    before = list(csv.DictReader(io.StringIO(files["results.csv"].decode())))
    assert [r for r in rows if r["method"] == "gradcam"] == before
    config = json.loads((out / "evaluate.config.json").read_text())
    assert set(config["methods"]) == {"gradcam", "gradient"}
    # a rerun naming only a new method keeps the earlier methods' rows in the results and the summary
    both = (out / "results.csv").read_text()
    r = CliRunner().invoke(main, [*args[:6], "gradient", *args[7:]])
    assert r.exit_code == 0, r.output
    assert (out / "results.csv").read_text() == both
    r = CliRunner().invoke(main, [*args[:6], "gradcampp", *args[7:]])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [r["method"] for r in rows] == ["gradcam"] * 2 + ["gradient"] * 2 + ["gradcampp"] * 2 + [
        "gradcam", "gradient", "gradcampp"]
    assert json.loads((out / "summary.json").read_text())["items"] == {"gradcam": 3, "gradient": 3, "gradcampp": 3}
    assert [r for r in rows if r["method"] != "gradcampp"] == list(csv.DictReader(io.StringIO(both)))
    assert "different numbers of items" not in (out / "report.md").read_text()
    # a method added over more images than the earlier one had: the report says the means are not comparable
    out2 = tmp_path / "out2"
    first = [*args[:-2], str(out2), "--quiet"]
    assert CliRunner().invoke(main, [*first, "--limit", "1"]).exit_code == 0
    r = CliRunner().invoke(main, [*first[:6], "gradient", *first[7:]])
    assert r.exit_code == 0, r.output
    assert json.loads((out2 / "summary.json").read_text())["items"] == {"gradcam": 2, "gradient": 3}
    assert "different numbers of items" in (out2 / "report.md").read_text()
    assert "note: the methods were scored on different numbers of items" in r.output


def test_options_that_do_not_change_maps_may_differ(embedded, tmp_path):
    from cameras import InputError, build_method
    from cameras.evaluate import evaluate_items

    items = read_imagenet(make_imagenet(tmp_path / "inet", n=1), embedded.wnids)
    out = tmp_path / "o"

    def run(**opts):
        methods = {"cameras": build_method("cameras", embedded, **opts)}
        return evaluate_items(items, embedded, methods, {"pointing"}, out)

    first = run(scales=[224, 256], batch_pixels=None)
    assert strip_seconds(run(scales="224,256", batch_pixels=1000, chunk_elements=4096)) == strip_seconds(first)
    with pytest.raises(InputError, match=r"methods.cameras: \{.*'scales': \[224, 256\]"):
        run(scales=[224, 288])


def test_evaluate_bad_options(tmp_path):
    root = make_voc(tmp_path / "voc")
    for args, msg in [
        (["--format", "voc", "--metrics", "pointing,speed"], "unknown metric speed"),
        (["--format", "voc", "--methods", "nope"], "unknown method"),
        (["--format", "coco"], "expected exactly one COCO"),
    ]:
        r = CliRunner().invoke(main, ["evaluate", "--data", str(root), "--out", str(tmp_path / "o"), *args])
        assert r.exit_code != 0 and msg in r.output, (args, r.output)


def test_resume_after_kill_equals_uninterrupted(tmp_path):
    root = make_imagenet(tmp_path / "inet", n=6)
    args = ["evaluate", "--data", str(root), "--format", "imagenet", "--methods", "cameras,gradcam",
            "--metrics", "pointing,rho", *FAST]
    full = tmp_path / "full"
    assert CliRunner().invoke(main, [*args, "--out", str(full)]).exit_code == 0
    want = list(csv.DictReader(open(full / "results.csv")))
    assert len(want) == 9 * 2

    part = tmp_path / "part"
    proc = subprocess.Popen([sys.executable, "-m", "cameras", *args, "--out", str(part)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    records = part / "evaluate.records.jsonl"
    while time.time() < deadline:
        if records.exists() and records.read_bytes().count(b"\n") >= 4:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    got_partial = records.read_bytes().count(b"\n")
    assert 4 <= got_partial < len(want), "the kill did not land part-way"
    assert not (part / "summary.json").exists() and not (part / "results.csv").exists()
    # simulate a torn write as well: a half line at the end must be dropped on resume
    with open(records, "a") as fh:
        fh.write('{"row": {"image": "ILSVRC2012_val_0000')
    assert CliRunner().invoke(main, [*args, "--out", str(part)]).exit_code == 0
    got = list(csv.DictReader(open(part / "results.csv")))
    assert strip_seconds(got) == strip_seconds(want)
    assert json.loads((part / "summary.json").read_text())["pointing_game"] == json.loads(
        (full / "summary.json").read_text())["pointing_game"]


def test_evaluate_road_and_average_drop(tmp_path, embedded):
    """The new metric columns equal direct calls of road() and confidence_change() on the method's map."""
    from cameras.data import read_imagenet
    from cameras.images import load_image
    from cameras.metrics import confidence_change, energy_in_region, road

    root = make_imagenet(tmp_path / "inet", n=1)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["evaluate", "--data", str(root), "--format", "imagenet", "--methods", "layercam",
                                  "--metrics", "energy,road,avgdrop", "--out", str(out), "--quiet"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "ROAD combined" in r.output
    rows = list(csv.DictReader(open(out / "results.csv")))
    row = rows[0]
    assert row["pointing_hit"] == "" and row["rho_plus"] == ""
    x = embedded.prepare(load_image(root / row["image"]))
    cls = int(row["class"])
    sal = cameras.LayerCAM(embedded.model, layer=embedded.layer)(x, target=cls).maps
    want = road(embedded.model, x, sal, target=[cls])
    assert abs(float(row["road_morf"]) - float(want["morf_mean"][0])) < 1e-5
    assert abs(float(row["road_combined"]) - float(want["combined"][0])) < 1e-5
    item = next(it for it in read_imagenet(root, embedded.wnids) if it.name == row["image"])
    region = torch.from_numpy(item.region(cls))
    assert abs(float(row["energy"]) - float(energy_in_region(sal, region[None])[0])) < 1e-6
    conf = confidence_change(embedded.model, x, sal, target=[cls])
    assert abs(float(row["average_drop"]) - 100 * float(conf["drop"][0])) < 1e-4
    assert row["increase"] == ("1" if bool(conf["increase"][0]) else "0")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["road_combined"]["layercam"] == pytest.approx(sum(float(r["road_combined"]) for r in rows) / 2)
    assert summary["increase_in_confidence"]["layercam"] == 100 * sum(r["increase"] == "1" for r in rows) / 2
    report = (out / "report.md").read_text()
    assert "ROAD MoRF ↓" in report and "| layercam |" in report.split("Faithfulness")[1]


def test_resume_from_records_written_before_the_new_metric_columns(tmp_path):
    """Records of a run from before energy/ROAD/Average Drop existed lack those columns: a rerun
    resumes them, with the new columns empty and the summary's new means None."""
    root = make_imagenet(tmp_path / "inet", n=1)
    out = tmp_path / "out"
    args = ["evaluate", "--data", str(root), "--format", "imagenet", "--methods", "gradcam", "--metrics",
            "pointing", "--out", str(out), "--quiet"]
    assert CliRunner().invoke(main, args, catch_exceptions=False).exit_code == 0
    rec = out / "evaluate.records.jsonl"
    new = ("energy", "road_morf", "road_lerf", "road_combined", "average_drop", "increase")
    old_lines = []
    for line in rec.read_text().splitlines():
        r = json.loads(line)
        if "row" in r:
            r["row"] = {k: v for k, v in r["row"].items() if k not in new}
        old_lines.append(json.dumps(r))
    rec.write_text("\n".join(old_lines) + "\n")
    (out / "results.csv").unlink()
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 2 and all(row[c] == "" for row in rows for c in new)
    assert all(row["pointing_hit"] in ("0", "1") for row in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["road_combined"]["gradcam"] is None and summary["items"]["gradcam"] == 2
    assert "Faithfulness" not in (out / "report.md").read_text()


def test_pointing_smooths_every_input_gradient_map(embedded, tmp_path):
    """Input-level gradient maps (gradient, smooth-gradient, tta-gradient) are smoothed before the pointing game:
    a map whose one small spike lies outside the class's box and whose broad plateau covers it misses unsmoothed
    and hits smoothed. The method's ``input_gradient`` decides, not its name."""
    import torch.nn.functional as F

    from cameras.core.base import SaliencyMethod
    from cameras.core.targets import bind_target, logits_or_none
    from cameras.evaluate import evaluate_items
    from cameras.methods import build_method

    class Spiky(SaliencyMethod):
        name, uses_layer = "spiky", False

        def explain_batch(self, x, target):
            with torch.no_grad():
                out = self.model(x)
            t = bind_target(target, out)
            H, W = x.shape[-2:]
            m = torch.zeros(x.shape[0], 60, 80)
            m[:, 5:30, 5:40] = 0.5  # the cat's box of the 60×80 image
            m[:, 50:52, 70:72] = 1.0  # a small spike far from the box (> 15 px)
            maps = F.interpolate(m[:, None], size=(H, W), mode="nearest")[:, 0]
            return self.result(maps, t, t.probability(out), logits_or_none(out))

    class SpikyGradient(Spiky):
        name, input_gradient = "spiky-gradient", True

    items = read_imagenet(make_imagenet(tmp_path / "inet", n=2), embedded.wnids)[1:]  # one cat, no espresso
    rows = evaluate_items(items, embedded, {"spiky": Spiky(embedded.model), "spiky-gradient":
                                            SpikyGradient(embedded.model)}, {"pointing"}, tmp_path / "out")
    assert {r["method"]: r["pointing_hit"] for r in rows} == {"spiky": "0", "spiky-gradient": "1"}
    assert [build_method(n, embedded).input_gradient for n in ("gradient", "smooth-gradient", "tta-gradient")] == [
        True, True, True]
    assert not any(build_method(n, embedded).input_gradient for n in ("gradcam", "smooth-gradcam", "rise"))


def test_coco_crowds_order_mapping_keys_missing_files_and_subfolders(tmp_path):
    import shutil

    root = make_coco(tmp_path / "coco")
    data = json.loads((root / "instances.json").read_text())
    # a crowd of dogs (category 18, listed first): kept, as TorchRay keeps crowds, in the classes and the region
    data["categories"].insert(0, {"id": 18, "name": "dog"})
    data["annotations"].append({"id": 3, "image_id": 1, "category_id": 18, "iscrowd": 1,
                                "segmentation": {"counts": [0, 10, 4790], "size": [60, 80]}})
    (root / "instances.json").write_text(json.dumps(data))
    item = read_coco(root, {"cat": 285, "cup": 968, "dog": 207})[0]
    assert item.classes() == [285, 968, 207] and item.region(207).sum() == 10
    # no mapping: categories numbered by ascending id (17 cat, 18 dog, 47 cup), not by their place in the file
    assert read_coco(root, None)[0].classes() == [0, 2, 1]
    # every key of a mapping must name a category of the file
    with pytest.raises(DatasetError, match=r"names categories instances.json does not have \(\['persn'\]\)"):
        read_coco(root, {"persn": 0, "dog": 1})
    # a class the mapping leaves out is not scored but is another class present
    item = read_coco(root, {"cat": 285})[0]
    assert item.classes() == [285] and item.unmapped == 2 and item.class_count() == 3
    # images in subfolders: named by their path there (two a.jpg are two images); a missing file fails at once
    for sub in ("x", "y"):
        (root / sub).mkdir()
        shutil.copyfile(root / "a.jpg", root / sub / "a.jpg")
    data["images"] = [dict(data["images"][0], id=1, file_name="x/a.jpg"), dict(data["images"][0], id=2,
                                                                               file_name="y/a.jpg")]
    data["annotations"].append(dict(data["annotations"][0], id=9, image_id=2))
    (root / "instances.json").write_text(json.dumps(data))
    assert [it.name for it in read_coco(root, None)] == ["x/a.jpg", "y/a.jpg"]
    # a missing file fails before any work, but only among the images a --limit keeps (a partial download)
    from cameras.data.readers import check_files

    (root / "y" / "a.jpg").unlink()
    items = read_coco(root, None)
    with pytest.raises(DatasetError, match=r"1 of 2 annotated images are missing \(first: .*y/a.jpg"):
        check_files(items)
    check_files(items[:1])
    out = tmp_path / "out"
    args = ["evaluate", "--data", str(root), "--format", "coco", "--methods", "gradcam", "--metrics", "pointing",
            "--out", str(out), "--quiet"]
    (tmp_path / "m.json").write_text('{"cat": 0, "dog": 1, "cup": 2}')
    r = CliRunner().invoke(main, [*args, "--mapping", str(tmp_path / "m.json")])
    assert r.exit_code == 2 and "1 of 2 annotated images are missing" in r.output and not out.exists(), r.output
    assert "belong under" in r.output
    r = CliRunner().invoke(main, [*args, "--mapping", str(tmp_path / "m.json"), "--limit", "1"])
    assert r.exit_code == 0, r.output
    # the run records the mapping's classes: key order and layout do not count, the same file edited is refused
    (tmp_path / "m.json").write_text('{\n  "cup": 2,\n  "dog": 1,\n  "cat": 0\n}\n')
    r = CliRunner().invoke(main, [*args, "--mapping", str(tmp_path / "m.json"), "--limit", "1"])
    assert r.exit_code == 0, r.output
    (tmp_path / "m.json").write_text('{"cat": 0, "dog": 2, "cup": 1}')
    r = CliRunner().invoke(main, [*args, "--mapping", str(tmp_path / "m.json"), "--limit", "1"])
    assert r.exit_code == 2 and "mapping_sha256" in r.output and "another --out" in r.output, r.output


def test_imagenet_refuses_a_mapping(tmp_path, embedded):
    from cameras.data import read_dataset

    root = make_imagenet(tmp_path / "inet", n=1)
    with pytest.raises(DatasetError, match="--mapping applies to VOC and COCO"):
        read_dataset("imagenet", root, wnids=embedded.wnids, mapping={"cat": 1})


def test_voc_class_left_out_by_the_mapping_still_makes_a_pair_difficult(tmp_path, embedded):
    """Image 1 has a small cat and a dog; an ImageNet mapping without "dog" must still count the dog as another
    class, so the cat pair is in the difficult subset (box area 35×25 of 80×60 < 1/4)."""
    from cameras import build_method
    from cameras.evaluate import evaluate_items

    voc = make_voc(tmp_path / "voc")
    items = read_voc(voc, {"cat": 285})
    assert [it.unmapped for it in items] == [1, 0]
    rows = evaluate_items(items[:1], embedded, {"gradcam": build_method("gradcam", embedded)}, {"pointing"},
                          tmp_path / "out", progress=False)
    assert [(r["class"], r["difficult"]) for r in rows] == [("285", "1")]


def test_dataset_images_are_read_as_stored_not_rotated(tmp_path, embedded, monkeypatch):
    """Annotations are in stored pixels: an image with an EXIF rotation is evaluated unrotated (rotating it put
    the map on other pixels than the boxes)."""
    import cameras.evaluate as ev
    from cameras import build_method
    from cameras.images import load_image

    root = make_voc(tmp_path / "voc")
    img = Image.open(root / "JPEGImages" / "000001.jpg")
    exif = img.getexif()
    exif[0x0112] = 6  # shown rotated by 90°
    img.save(root / "JPEGImages" / "000001.jpg", exif=exif)
    assert load_image(root / "JPEGImages" / "000001.jpg").size == (60, 80)  # a photo for the eye: upright
    seen = []

    def spy(path, upright=True):
        im = load_image(path, upright)
        seen.append(im.size)
        return im

    monkeypatch.setattr(ev, "load_image", spy)
    items = read_voc(root, {"cat": 285, "dog": 207})
    ev.evaluate_items(items[:1], embedded, {"gradcam": build_method("gradcam", embedded)}, {"pointing"},
                      tmp_path / "out", progress=False)
    assert seen and all(s == (80, 60) for s in seen) and items[0].size == (60, 80)


def test_all_zero_maps_are_counted_and_explained(tmp_path, embedded):
    """A model with no positive evidence for the cat anywhere (its cat logit falls wherever activations rise)
    gives all-zero Grad-CAM maps: results.csv marks them, summary.json counts them, report.md explains how the
    metrics score them; the espresso maps are not zero and are not counted."""
    from cameras.evaluate import evaluate_items, summarize, write_report, zero_map_counts
    from cameras.methods import GradCAM
    from cameras.models import ModelBundle

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 1000)).eval()
    with torch.no_grad():
        net[4].weight.zero_()
        net[4].weight[285] = -1.0  # cat
        net[4].weight[967] = 1.0  # espresso
    bundle = ModelBundle(net, "tiny", 32, (0.5,) * 3, (0.5,) * 3, class_names=embedded.class_names,
                         wnids=embedded.wnids)
    items = read_imagenet(make_imagenet(tmp_path / "inet", n=2), embedded.wnids)
    rows = evaluate_items(items, bundle, {"gradcam": GradCAM(net, layer="1")}, {"pointing"}, tmp_path / "o")
    assert sorted((r["class"], r["all_zero"]) for r in rows) == [("285", "1"), ("285", "1"), ("967", "0")]
    summary = summarize(rows)
    assert summary["all_zero"] == {"gradcam": 2} and summary["items"] == {"gradcam": 3}
    write_report(tmp_path / "o", rows, {"model": "tiny", "metrics": ["pointing"]})
    report = (tmp_path / "o" / "report.md").read_text()
    assert "**Note:** all-zero maps: 2 of 3 items (gradcam). An all-zero map finds no positive evidence" in report
    # rows of an older version have no such column: the count is unknown (None), not "no zero maps"
    old = summarize([{**r, "all_zero": ""} if r["class"] == "967" else r for r in rows])
    assert old["all_zero"] == {"gradcam": None} and zero_map_counts(old) == ""
