"""`cameras evaluate` under torchrun (gloo on the CPU): same rows as one process; resumable."""

import csv
import os
import signal
import subprocess
import sys
import time

from .test_evaluate import make_imagenet, strip_seconds

ARGS = ["evaluate", "--format", "imagenet", "--methods", "cameras,gradcam", "--metrics", "pointing,rho",
        "--set", "cameras.scales=[224, 256]", "--quiet"]


def torchrun(n, data, out, **kw):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
           "-m", "cameras", *ARGS, "--data", str(data), "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True, **kw)


def run_single(data, out):
    """The single-process reference, with one CPU thread like each rank on a 2-core machine."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "cameras", *ARGS, "--data", str(data), "--out", str(out)], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


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
    assert not list((tmp_path / "two" / "shards").glob("*.csv"))  # merged and removed
    assert (tmp_path / "two" / "summary.json").read_text() != ""


def test_killed_rank_then_three_processes_complete(tmp_path):
    data = make_imagenet(tmp_path / "inet", n=6)
    single = tmp_path / "single"
    run_single(data, single)
    out = tmp_path / "dist"
    p = torchrun(2, data, out)
    deadline = time.time() + 300
    while time.time() < deadline:
        shards = list((out / "shards").glob("*.csv")) if (out / "shards").exists() else []
        if sum(f.read_bytes().count(b"\n") for f in shards) >= 6:
            break
        time.sleep(0.05)
    # kill one worker (not the launcher): torchrun must fail the whole job
    workers = subprocess.run(["pgrep", "-f", "-P", str(p.pid), "cameras"], capture_output=True, text=True).stdout.split()
    assert workers, "no worker processes found"
    os.kill(int(workers[-1]), signal.SIGKILL)
    log, _ = p.communicate(timeout=300)
    assert p.returncode != 0, log
    partial = sum(len(rows(f)) for f in (out / "shards").glob("*.csv"))
    assert 0 < partial < len(rows(single / "results.csv"))
    p = torchrun(3, data, out)
    log, _ = p.communicate(timeout=600)
    assert p.returncode == 0, log
    assert same_rows(rows(out / "results.csv"), rows(single / "results.csv"))
