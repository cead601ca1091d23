"""The installed console script, run as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("mountfs")


@pytest.fixture
def run(env):
    if not SCRIPT.exists():
        pytest.skip(f"console script not installed at {SCRIPT}")

    def run(*args: str, code: int = 0) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(SCRIPT), *map(str, args)], cwd=env.work, env=dict(os.environ), capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == code, f"mountfs {' '.join(map(str, args))}: exit {proc.returncode}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr
        return proc

    return run


def test_help(run):
    out = run("--help").stdout
    assert out.startswith("Usage: mountfs") and "create" in out and "verify" in out


def test_create_add_close(env, run):
    ds_id = run("create", "--project", "p", "--name", "n").stdout.strip()
    run("add", "--files", env.data / "train", env.data / "labels.csv")
    run("close")
    assert run("info", "--id", ds_id, "--json").stdout.count('"completed"') == 1
    failed = run("add", "--id", ds_id, "--files", env.data, code=4)
    assert failed.stderr.count("\n") == 1 and failed.stderr.startswith("mountfs: error: ")
