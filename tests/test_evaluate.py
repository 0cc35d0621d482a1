"""Dataset readers on fixture datasets written here, and `cameras evaluate` end to end."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cameras.cli import main
from cameras.data import DatasetError, load_mapping, read_coco, read_imagenet, read_voc

from .conftest import rand_image

CAT, ESPRESSO = "n02124075", "n07920052"


def voc_xml(objs, w=80, h=60):
    body = "".join(
        f"<object><name>{n}</name><difficult>{int(d)}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b, d in objs
    )
    return f"<annotation><size><width>{w}</width><height>{h}</height><depth>3</depth></size>{body}</annotation>"


def make_imagenet(root, n=3):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rand_image(60, 80, seed=i)).save(root / f"ILSVRC2012_val_{i:08d}.JPEG")
        objs = [(CAT, (5, 5, 40, 30), False)] + ([(ESPRESSO, (45, 30, 78, 58), False)] if i % 2 == 0 else [])
        (root / f"ILSVRC2012_val_{i:08d}.xml").write_text(voc_xml(objs))
    return root


def make_voc(root):
    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    (root / "ImageSets" / "Main").mkdir(parents=True)
    ids = ["000001", "000002"]
    for i, name in enumerate(ids):
        Image.fromarray(rand_image(60, 80, seed=10 + i)).save(root / "JPEGImages" / f"{name}.jpg")
    (root / "Annotations" / "000001.xml").write_text(voc_xml([("cat", (5, 5, 40, 30), False), ("dog", (50, 30, 70, 50), True)]))
    (root / "Annotations" / "000002.xml").write_text(voc_xml([("cat", (1, 1, 80, 60), False)]))
    (root / "ImageSets" / "Main" / "test.txt").write_text("\n".join(ids) + "\n")
    return root


def make_coco(root):
    from pycocotools import mask as mask_utils

    root.mkdir(parents=True)
    Image.fromarray(rand_image(60, 80, seed=20)).save(root / "a.jpg")
    m = np.zeros((60, 80), dtype=np.uint8, order="F")
    m[40:50, 60:70] = 1
    rle = mask_utils.encode(m)
    rle["counts"] = rle["counts"].decode()
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 60, "width": 80}],
        "categories": [{"id": 17, "name": "cat"}, {"id": 47, "name": "cup"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 17, "iscrowd": 0, "segmentation": [[10, 10, 30, 10, 30, 20, 10, 20]]},
            {"id": 2, "image_id": 1, "category_id": 47, "iscrowd": 0, "segmentation": rle},
        ],
    }
    (root / "instances.json").write_text(json.dumps(data))
    return root


def test_imagenet_xml_and_csv(tmp_path, embedded):
    root = make_imagenet(tmp_path / "inet")
    items = read_imagenet(root, embedded.wnids)
    assert len(items) == 3 and items[0].classes() == [285, 967] and items[1].classes() == [285]
    reg = items[0].region(285)
    assert reg.shape == (60, 80) and reg[4:30, 4:40].all() and reg.sum() == 26 * 36
    csv_root = tmp_path / "inet_csv"
    csv_root.mkdir()
    Image.fromarray(rand_image(60, 80)).save(csv_root / "img1.JPEG")
    (csv_root / "LOC_val_solution.csv").write_text(f"ImageId,PredictionString\nimg1,{CAT} 4 4 39 29 {CAT} 50 50 60 55 \n")
    items = read_imagenet(csv_root, embedded.wnids)
    assert items[0].size == (60, 80) and len(items[0].objects) == 2 and items[0].region(285)[4, 4]


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
        assert row["pointing_hit"] in ("0", "1") and float(row["rho_plus"]) >= 0 and 0 <= float(row["insertion_auc"]) <= 1
    assert rows[0]["kept_scales"] == "224 256"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"pointing_game", "rho_plus", "rho_minus", "insertion_auc", "deletion_auc", "items"}
    assert summary["items"] == {"cameras": 3, "gradcam": 3, "gradient": 3}
    report = (out / "report.md").read_text()
    assert "94.2 / 88.8" in report and "ρ⁺" in report and "curves.png" in report
    assert (out / "metrics.png").exists() and (out / "curves.png").exists()
    # a rerun finds everything finished and changes nothing
    before = (out / "results.csv").read_bytes()
    r = CliRunner().invoke(main, ["evaluate", "--data", str(root), "--format", "imagenet", "--methods",
                                  "cameras,gradcam,gradient", "--metrics", "pointing,rho,insdel", "--insdel-step",
                                  "6000", "--out", str(out), *FAST], catch_exceptions=False)
    assert r.exit_code == 0 and (out / "results.csv").read_bytes() == before


def test_evaluate_bad_options(tmp_path):
    root = make_voc(tmp_path / "voc")
    for args, msg in [
        (["--format", "voc", "--metrics", "pointing,speed"], "unknown metric speed"),
        (["--format", "voc", "--methods", "nope"], "unknown method"),
        (["--format", "coco"], "expected exactly one COCO"),
    ]:
        r = CliRunner().invoke(main, ["evaluate", "--data", str(root), "--out", str(tmp_path / "o"), *args])
        assert r.exit_code != 0 and msg in r.output, (args, r.output)


def strip_seconds(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


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
    while time.time() < deadline:
        f = part / "results.csv"
        if f.exists() and f.read_bytes().count(b"\n") >= 5:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    got_partial = list(csv.DictReader(open(part / "results.csv")))
    assert 4 <= len(got_partial) < len(want), "the kill did not land part-way"
    assert not (part / "summary.json").exists()
    # simulate a torn write as well: a half line at the end must be dropped on resume
    with open(part / "results.csv", "a") as fh:
        fh.write("ILSVRC2012_val_0000")
    assert CliRunner().invoke(main, [*args, "--out", str(part)]).exit_code == 0
    got = list(csv.DictReader(open(part / "results.csv")))
    assert strip_seconds(got) == strip_seconds(want)
    assert json.loads((part / "summary.json").read_text())["pointing_game"] == json.loads(
        (full / "summary.json").read_text())["pointing_game"]
