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
    monkeypatch.setattr(alloc, "tune_cpu_allocator", lambda: calls.append(1) or True)
    assert CliRunner().invoke(main, ["methods"]).exit_code == 0
    assert calls == [1]
    # the app is a long-running server: it keeps glibc's behaviour
    assert CliRunner().invoke(main, ["app", "--help"]).exit_code == 0
    assert calls == [1]
