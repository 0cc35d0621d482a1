"""The benchmark report: BENCHMARKS.md is what benchmarks/report.py renders from the committed results."""

import importlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmarks_md_is_rendered_from_the_committed_results():
    # every results file under benchmarks/results renders (a file of another shape there broke the report
    # once), and the committed BENCHMARKS.md is exactly what they render to: no hand edits, no stale tables
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        report = importlib.import_module("report")
        text = report.render()
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert text == (ROOT / "BENCHMARKS.md").read_text()
    assert "## Below the eager floor: cuda (NVIDIA H200" in text and "CAMERAS cuda_graphs" in text


def test_gpu_session_refuses_an_unknown_step(tmp_path):
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_session.sh"), str(tmp_path / "out"), "5",
                        "cuda_graphs,graphs"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "unknown step graphs" in r.stderr and not (tmp_path / "out").exists()


def test_a_second_gpu_run_replaces_only_the_models_it_measures():
    # benchmarks/run.py --update: a lent GPU's session in two runs; the second may stop at any row
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        run = importlib.import_module("run")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    earlier = [{"model": "a", "batch": 1}, {"model": "a", "batch": 8}, {"model": "b", "batch": 1},
               {"model": "c", "batch": 1}, {"kind": "allocator"}]
    # the second run has measured b's batch 1 so far: b's earlier row goes, a's and c's stay, in model order
    got = run.merge_rows(earlier, [{"model": "b", "batch": 1, "new": True}])
    assert got == [*earlier[:2], {"model": "b", "batch": 1, "new": True}, earlier[3], earlier[4]]
    # a model new to the file comes last; a run that measures the allocator row again replaces the old one
    got = run.merge_rows(earlier, [{"kind": "allocator", "new": True}, {"model": "d", "batch": 1}],
                         replaces_unnamed=True)
    assert got == [*earlier[:4], {"kind": "allocator", "new": True}, {"model": "d", "batch": 1}]


def _bench_module(name):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_the_benchmark_inception_gives_maps_that_are_not_all_zero():
    # the random-weight Inception-v3 gives all-zero maps (activations ~1e-6 at Mixed_7c), so
    # the benchmark's map comparisons on it compared zeros; recalibrated, its maps are not constant
    import torch

    import cameras

    run = _bench_module("run")
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    raw = cameras.load_model("torchvision:inception_v3", weights="random").model
    assert cameras.GradCAM(raw, layer="Mixed_7c")(x).maps.amax() == 0
    net = run.load("inception_v3", "cpu").model
    maps = cameras.GradCAM(net, layer="Mixed_7c")(x).maps
    assert (maps.amax((1, 2)) == 1).all() and (maps.std((1, 2)) > 0.1).all()
