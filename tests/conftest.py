"""Fixtures shared by every test: each test gets its own store and cache under tmp."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Iterator

import pytest


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A private default store, cache and config file: tests never touch the user's own.

    Each test is a new "process" for the configuration: the SDK resolves it once
    per process (config.process_config), so it is forgotten before and after.
    """
    from mountfs import config

    env = {
        "MOUNTFS_STORE": str(tmp_path / "store"),
        "MOUNTFS_CACHE_DIR": str(tmp_path / "cache"),
        # beside tmp_path, not in it: a test may make tmp_path itself a store, and a store is
        # started only in an empty folder
        "MOUNTFS_CONFIG": str(tmp_path.parent / f"{tmp_path.name}.config.toml"),
    }
    # an empty config file: MOUNTFS_CONFIG naming a missing one is an error
    Path(env["MOUNTFS_CONFIG"]).touch()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("MOUNTFS_CACHE_SIZE", raising=False)
    config.set_process_config(None)
    yield env
    config.set_process_config(None)


@pytest.fixture(autouse=True)
def no_unexpected_warnings(caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest):
    """Like s3ql's checklogs: a WARNING from mountfs is a bug unless the test expects it."""
    caplog.set_level(logging.INFO, logger="mountfs")
    yield
    if request.node.get_closest_marker("allow_warnings"):
        return
    bad = [r for r in caplog.get_records("call") if r.levelno >= logging.WARNING and r.name.startswith("mountfs")]
    assert not bad, f"unexpected log warnings: {[r.getMessage() for r in bad]}"


def make_tree(root: Path, files: int = 30, seed: int = 1, max_size: int = 40_000) -> Path:
    """Deterministic random files in a few folders."""
    rng = random.Random(seed)
    for i in range(files):
        p = root / f"d{i % 4}" / f"f{i:03d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(rng.randint(0, max_size)))
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_warnings: the test expects mountfs to log warnings")
    os.environ.setdefault("PYTHONHASHSEED", "0")
