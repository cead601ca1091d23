"""Fixtures for the CLI tests: an isolated store, cache and working folder, and a runner."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner, Result

from mountfs.cli import cli


@dataclass
class Env:
    store: Path
    cache: Path
    work: Path  # the current directory during the test: the draft state file lands here
    data: Path  # a small tree of source files


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    store, cache, work = tmp_path / "store", tmp_path / "cache", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("MOUNTFS_STORE", str(store))
    monkeypatch.setenv("MOUNTFS_CACHE_DIR", str(cache))
    # no config file from the user's home: tests/conftest.py names an empty one of the test's own
    monkeypatch.chdir(work)
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    (data / "val").mkdir()
    (data / "train" / "img_0001.jpg").write_bytes(b"\xff\xd8jpeg-one" * 100)
    (data / "train" / "img_0002.jpg").write_bytes(b"\xff\xd8jpeg-two" * 200)
    (data / "val" / "img_0003.jpg").write_bytes(b"\xff\xd8jpeg-three" * 50)
    (data / "labels.csv").write_text("file,label\nimg_0001.jpg,cat\n")
    return Env(store, cache, work, data)


class Cli:
    """Runs ``mountfs`` in-process and checks the exit code."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0) -> Result:
        result = self.runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == code, (
            f"mountfs {' '.join(map(str, args))}: exit {result.exit_code}, wanted {code}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
        return result

    def json(self, *args: str):
        return json.loads(self(*args, "--json").stdout)

    def fails(self, *args: str, code: int) -> str:
        """Run a command that must fail with ``code`` and exactly one error line; return that line."""
        result = self(*args, code=code)
        lines = result.stderr.splitlines()
        assert len(lines) == 1, f"wanted one line on stderr, got:\n{result.stderr}"
        assert lines[0].startswith("mountfs: error: "), lines[0]
        assert "Traceback" not in result.output
        return lines[0]


@pytest.fixture
def mountfs() -> Cli:
    return Cli()


@pytest.fixture
def empty_store(env: Env) -> Path:
    """The test's store, started with no datasets in it: a command pointed at a missing store says
    "no mountfs store at ..." instead of what a test of an empty catalog wants to see."""
    from mountfs.session import current

    current().create_store()
    return env.store


@pytest.fixture
def seaweed_store(env: Env, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The CLI's catalog store in a SeaweedFS bucket of the test's own server (keys in the test's config file)."""
    from servers import started_seaweed

    with started_seaweed(tmp_path_factory.mktemp("seaweed-cli")) as server:
        (host, settings), = server.s3_host_settings().items()
        Path(os.environ["MOUNTFS_CONFIG"]).write_text(
            f'[s3.hosts."{host}"]\nkey = "{settings["key"]}"\nsecret = "{settings["secret"]}"\nsecure = false\n'
        )
        url = server.store_url(server.new_bucket("cli"), "catalog")
        monkeypatch.setenv("MOUNTFS_STORE", url)
        yield url


@pytest.fixture(autouse=True)
def no_unexpected_warnings(caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest):
    """Warnings are bugs until proven otherwise (s3ql's checklogs), unless the test is marked allow_warnings."""
    caplog.set_level(logging.WARNING, logger="mountfs")
    yield
    if request.node.get_closest_marker("allow_warnings"):
        return
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
