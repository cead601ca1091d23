"""Fixtures for the real-mount tests: a private runtime folder and a harness that cleans up by PID."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

# this folder (mfs.py) and tests/ (servers.py), however pytest was started
for _p in (Path(__file__).resolve().parent, Path(__file__).resolve().parents[1]):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from mfs import Harness, harness, short_run_dir  # noqa: E402


@pytest.fixture
def run_dir(monkeypatch: pytest.MonkeyPatch) -> str:
    """Control sockets and logs of this test's daemons: never the real /run/mountfs."""
    path = short_run_dir()
    monkeypatch.setenv("MOUNTFS_RUN_DIR", path)
    return path


@pytest.fixture
def h(run_dir: str, tmp_path: Path) -> Iterator[Harness]:
    """Starts daemons and runs the CLI in this test's environment; stops and unmounts all afterwards."""
    work = tmp_path / "work"
    work.mkdir()
    with harness(dict(os.environ), work) as hh:
        yield hh
