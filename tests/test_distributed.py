"""`cameras evaluate`, `experiment`, `attack` and `sanity` under torchrun (gloo on the CPU):
same results as one process; resumable after a killed rank, with another process count."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from .conftest import make_imagenet, strip_seconds

ARGS = ["evaluate", "--format", "imagenet", "--methods", "cameras,gradcam", "--metrics", "pointing,rho",
        "--set", "cameras.scales=[224, 256]", "--quiet"]


def torchrun(n, data, out, args=ARGS, **kw):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
           "-m", "cameras", *args, "--data", str(data), "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True, **kw)


def run_single(data, out, args=ARGS):
    """The single-process reference, with one CPU thread like each rank on a 2-core machine."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "cameras", *args, "--data", str(data), "--out", str(out)], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def kill_one_worker(p, out, pattern, lines):
    """Once the shards matching ``pattern`` hold ``lines`` lines, SIGKILL one worker (not the
    launcher): torchrun must then fail the whole job."""
    deadline = time.time() + 300
    while time.time() < deadline:
        shards = list((out / "shards").glob(pattern)) if (out / "shards").exists() else []
        if sum(f.read_bytes().count(b"\n") for f in shards) >= lines:
            break
        time.sleep(0.05)
    workers = subprocess.run(["pgrep", "-f", "-P", str(p.pid), "cameras"], capture_output=True,
                             text=True).stdout.split()
    assert workers, "no worker processes found"
    os.kill(int(workers[-1]), signal.SIGKILL)
    log, _ = p.communicate(timeout=300)
    assert p.returncode != 0, log


def rows(path):
    return list(csv.DictReader(open(path)))


def same_rows(a, b):
    """Equal rows (seconds ignored); floats to 1e-6 relative in case kernels differ by process."""
    a, b = strip_seconds(a), strip_seconds(b)
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            if k in ("rho_plus", "rho_minus", "insertion_auc", "deletion_auc") and ra[k] and rb[k]:
                assert abs(float(ra[k]) - float(rb[k])) <= 1e-6 * max(1e-12, abs(float(rb[k]))), (k, ra, rb)
            else:
                assert ra[k] == rb[k], (k, ra, rb)
    return True


def test_two_processes_equal_one(tmp_path):
    data = make_imagenet(tmp_path / "inet", n=4)
    single = tmp_path / "single"
    run_single(data, single)
    p = torchrun(2, data, tmp_path / "two")
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out
    assert same_rows(rows(tmp_path / "two" / "results.csv"), rows(single / "results.csv"))
    assert not list((tmp_path / "two" / "shards").glob("evaluate-*.jsonl"))  # merged and removed
    assert (tmp_path / "two" / "summary.json").read_text() != ""


def test_killed_rank_then_three_processes_complete(tmp_path):
    data = make_imagenet(tmp_path / "inet", n=6)
    single = tmp_path / "single"
    run_single(data, single)
    out = tmp_path / "dist"
    kill_one_worker(torchrun(2, data, out), out, "evaluate-*.jsonl", 6)
    partial = sum(f.read_bytes().count(b"\n") for f in (out / "shards").glob("evaluate-*.jsonl"))
    assert 0 < partial < len(rows(single / "results.csv"))
    p = torchrun(3, data, out)
    log, _ = p.communicate(timeout=600)
    assert p.returncode == 0, log
    assert same_rows(rows(out / "results.csv"), rows(single / "results.csv"))


def close(a, b, path="$"):
    """JSON values equal, floats to 1e-5 relative (kernels may differ slightly between processes)."""
    if isinstance(a, float) or isinstance(b, float):
        assert abs(a - b) <= 1e-5 * max(1.0, abs(b)), (path, a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), (path, a.keys(), b.keys())
        for k in a:
            close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), (path, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            close(x, y, f"{path}[{i}]")
    else:
        assert a == b, (path, a, b)
    return True


def records(path):
    return [json.loads(line) for line in open(path)]


ATTACK = ["attack", "--steps", "3", "--square", "--quiet"]
OTHERS = {  # command → (arguments, records file, summary file)
    "interpolation": (["experiment", "interpolation", "--format", "imagenet", "--square", "--quiet"],
                      "interpolation.records.jsonl", "interpolation.json"),
    "attack": (ATTACK, "attack.records.jsonl", "attack.json"),
    "sanity": (["sanity", "--methods", "gradcam,gradient", "--attack-steps", "2", "--steps", "3", "--square",
                "--quiet"],
               "sanity.records.jsonl", "sanity.json"),
}


@pytest.mark.parametrize("name", list(OTHERS))
def test_experiment_attack_sanity_two_processes_equal_one(name, tmp_path):
    args, recs, summary = OTHERS[name]
    data = make_imagenet(tmp_path / "inet", n=3)
    run_single(data, tmp_path / "single", args)
    p = torchrun(2, data, tmp_path / "two", args)
    log, _ = p.communicate(timeout=600)
    assert p.returncode == 0, log
    one, two = records(tmp_path / "single" / recs), records(tmp_path / "two" / recs)
    assert len(one) == (5 if name == "interpolation" else 3)  # (image, class) items or images
    assert close(two, one)
    assert close(json.loads((tmp_path / "two" / summary).read_text()),
                 json.loads((tmp_path / "single" / summary).read_text()))
    assert not list((tmp_path / "two" / "shards").glob("*.jsonl"))  # merged and removed


def test_attack_killed_rank_then_three_processes_complete(tmp_path):
    data = make_imagenet(tmp_path / "inet", n=4)
    args = ["attack", "--steps", "10", "--threshold", "0.999999", "--square", "--quiet"]
    run_single(data, tmp_path / "single", args)
    out = tmp_path / "dist"
    kill_one_worker(torchrun(2, data, out, args), out, "*.jsonl", 2)
    partial = sum(len(records(f)) for f in (out / "shards").glob("*.jsonl"))
    assert 0 < partial < 4
    p = torchrun(3, data, out, args)
    log, _ = p.communicate(timeout=600)
    assert p.returncode == 0, log
    assert close(records(out / "attack.records.jsonl"), records(tmp_path / "single" / "attack.records.jsonl"))
    assert close(json.loads((out / "attack.json").read_text()),
                 json.loads((tmp_path / "single" / "attack.json").read_text()))


@pytest.mark.parametrize("n", [1, 2])
def test_check_script_joins_a_group_even_with_one_rank(n, tmp_path):
    """benchmarks/distributed_check.py (run on GPU machines with NCCL) on the CPU with gloo."""
    from pathlib import Path

    script = Path(__file__).parents[1] / "benchmarks" / "distributed_check.py"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", str(script),
           str(tmp_path / "out"), "--device", "cpu"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    ranks = "[0, 1]" if n == 2 else "[0]"
    assert f"world {n}, backend gloo, devices ['cpu'], ranks {ranks}, 6 records merged" in r.stdout
