"""The CPU allocator tuning: glibc keeps freed large blocks, and the CLI applies it."""

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")

PROBE = (r"""
import json, re, sys
from pathlib import Path
import torch
from cameras.allocator import tune_cpu_allocator

def rss():
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024

applied = tune_cpu_allocator() if sys.argv[1] == "tune" else False
x = torch.ones(64, 1024, 1024)  # 256 MiB, touched
during = rss()
del x
after = rss()
print(json.dumps({"applied": applied, "again": tune_cpu_allocator() if applied """
         r"""else False, "during": during, "after": after}))
""")


def run_probe(mode, **env):
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_tuned_allocator_keeps_freed_blocks_default_returns_them():
    tuned = run_probe("tune")
    assert tuned["applied"] is True and tuned["again"] is True
    assert tuned["after"] > tuned["during"] - 32  # the 256 MiB block stays for reuse
    plain = run_probe("plain")
    assert plain["after"] < plain["during"] - 200  # glibc's default unmaps it on free


def test_environment_opt_out():
    out = run_probe("tune", CAMERAS_CPU_ALLOCATOR="default")
    assert out["applied"] is False and out["after"] < out["during"] - 200


def test_cli_tunes_at_start(monkeypatch):
    from click.testing import CliRunner

    import cameras.allocator as alloc
    from cameras.cli import main

    calls = []
    monkeypatch.setattr(alloc, "tune_cpu_allocator", lambda: calls.append("alloc") or True)
    monkeypatch.setattr(alloc, "raise_onednn_cache", lambda: calls.append("cache") or True)
    assert CliRunner().invoke(main, ["methods"]).exit_code == 0
    assert calls == ["cache", "alloc"]
    # the app is a long-running server: it keeps glibc's behaviour, and keeps more kernels too
    assert CliRunner().invoke(main, ["app", "--help"]).exit_code == 0
    assert calls == ["cache", "alloc", "cache"]


CACHE_PROBE = r"""
import sys
from cameras.allocator import raise_onednn_cache
print(raise_onednn_cache() if sys.argv[1] == "raise" else False, flush=True)
import torch
conv = torch.nn.Conv2d(16, 16, 3)
with torch.no_grad():
    for _ in range(2):  # 600 shapes, each a convolution and its reorders (about 3,600 kernels): far over 1,024
        for s in range(600):
            conv(torch.zeros(2, 16, 16 + s, 16))
"""


def run_cache_probe(mode):
    env = {k: v for k, v in os.environ.items() if "PRIMITIVE_CACHE_CAPACITY" not in k}
    out = subprocess.run([sys.executable, "-c", CACHE_PROBE, mode], capture_output=True, text=True, check=True,
                         env={**env, "ONEDNN_VERBOSE": "2"})  # 2: each kernel built or found
    lines = out.stdout.splitlines()
    return lines[0], sum(",create:cache_miss,cpu,convolution," in line for line in lines)


def test_raised_onednn_cache_keeps_the_kernels_of_many_shapes(monkeypatch):
    # oneDNN's own limit (1,024 kernels) evicts the first shapes' kernels: the second round builds them again
    assert run_cache_probe("plain") == ("False", 1200)
    assert run_cache_probe("raise") == ("True", 600)  # every kernel of the second round is found
    from cameras.allocator import raise_onednn_cache

    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "0")  # recorded, so the test's settings are undone
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY")
    monkeypatch.setenv("DNNL_PRIMITIVE_CACHE_CAPACITY", "64")  # the user's own setting (older name) is kept
    assert raise_onednn_cache() is False and "ONEDNN_PRIMITIVE_CACHE_CAPACITY" not in os.environ
    monkeypatch.delenv("DNNL_PRIMITIVE_CACHE_CAPACITY")
    assert raise_onednn_cache(100) is True and os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "100"
    assert raise_onednn_cache() is False and os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "100"
    for bad in (0, -1, 1.5, True, "8192"):
        with pytest.raises(ValueError, match="capacity must be"):
            raise_onednn_cache(bad)
