"""`cameras explain --method` for every method, and `cameras compare`."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from cameras.cli import main
from cameras.methods import method_option_names
from cameras.methods import parse_option_strings as parse_settings

FAST_SET = {
    "cameras": ["--scales", "224,256"],
    "gradcam": [],
    "gradient": [],
    "normgrad": [],
    "rise": ["--set", "n_masks=8", "--set", "batch_size=8"],
    "extremal": ["--set", "iterations=2"],
}


def run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.mark.parametrize("method", list(FAST_SET))
def test_explain_every_method(method, sample_dir, tmp_path):
    r = run(["explain", str(sample_dir / "coffee.png"), "--method", method, "--out", str(tmp_path), "--quiet",
             *FAST_SET[method]])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "coffee.json").read_text())
    assert meta["method"] == method and meta["explanations"][0]["target"] == 967
    assert list(meta["parameters"]["method_options"]) == method_option_names(method)  # every option, with defaults
    sal = np.load(tmp_path / f"coffee.{method}.967-espresso.npy")
    assert sal.shape == (400, 600) and np.isfinite(sal).all() and sal.max() <= 1


def test_compare_writes_figure_maps_json(sample_dir, tmp_path):
    out = tmp_path / "cmp" / "fig.png"
    r = run(["compare", str(sample_dir / "chelsea.jpg"), "--methods", "gradcam,rise,cameras",
             "--set", "rise.n_masks=8", "--set", "cameras.scales=[224, 256]", "--out", str(out)])
    assert r.exit_code == 0, r.output
    meta = json.loads(out.with_suffix(".json").read_text())
    row = meta["models"][0]
    assert row["target"] == 285 and 0 < row["probability"] < 1
    assert list(row["methods"]) == ["gradcam", "rise", "cameras"]
    assert row["methods"]["cameras"]["kept_scales"] == [224, 256]
    # every option of every method, defaults included
    assert row["methods"]["rise"]["options"] == {"n_masks": 8, "grid": 8, "p": 0.1, "batch_size": 32, "seed": 0,
                                                 "progress": None, "channels_last": "auto"}
    assert row["methods"]["cameras"]["options"]["scales"] == [224, 256]
    for m in ("gradcam", "rise", "cameras"):
        assert np.load(out.parent / f"fig.efficientnet_lite0.{m}.npy").shape == (300, 451)
    from PIL import Image

    assert Image.open(out).size[0] >= 4 * 400  # the image and three methods, each panel at least 400 px wide
    # RISE with 8 masks cannot converge: said on stderr and in the JSON
    assert meta["warnings"] == [
        "rise: 8 masks give a noisy map; use n_masks ≥ 500 (1000 by default, 6000 in the paper)"]
    assert "warning: rise: 8 masks give a noisy map" in r.output


def test_compare_two_models_rows(sample_dir, tmp_path):
    out = tmp_path / "two.png"
    r = run(["compare", str(sample_dir / "coffee.png"), "--methods", "gradcam", "--model",
             "efficientnet_lite0,efficientnet_lite1", "--target", "espresso", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert len(json.loads(out.with_suffix(".json").read_text())["models"]) == 2
    assert len(list(tmp_path.glob("two.*.gradcam.npy"))) == 2  # one map file per model


def test_compare_bad_options(sample_dir, tmp_path):
    img = str(sample_dir / "coffee.png")
    for args, msg in [
        (["--methods", "gradcam,nope"], "unknown method 'nope'"),
        (["--set", "rise.foo=1"], "has no option 'foo'"),
        (["--set", "n_masks=3"], "METHOD.KEY=VALUE"),
        (["--set", "extremal.area=2"], "area must lie in (0, 1)"),
    ]:
        out = tmp_path / "x.png"
        r = run(["compare", img, "--out", str(out), *args])
        assert r.exit_code != 0 and msg in r.output, (args, r.output)
        assert not out.exists()


def test_parse_settings():
    assert parse_settings(["a=1", "b=x", "c=[1, 2]"]) == {"a": 1, "b": "x", "c": [1, 2]}


def test_comparison_figure_wraps_many_methods():
    import numpy as np

    from cameras.viz import comparison_figure

    cells = [(f"m{i}", np.random.default_rng(i).random((8, 8))) for i in range(15)]
    fig = comparison_figure(np.zeros((8, 8, 3), np.uint8), [{"label": "a", "cells": cells},
                                                            {"label": "b", "cells": cells[:2]}], max_columns=8)
    titles = [ax.get_title() for ax in fig.axes]
    # model a: 3 lines of 7 methods (the last holds 1), model b: 1 line; 8 columns each
    assert len(fig.axes) == 4 * 8
    assert titles[:9] == ["image", "m0", "m1", "m2", "m3", "m4", "m5", "m6", ""]
    assert titles[17] == "m14" and titles[24:27] == ["image", "m0", "m1"]
    assert not fig.axes[8].axison and fig.axes[0].axison  # continuation lines leave the image column empty
