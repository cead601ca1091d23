"""Fixtures for backend tests: a real SeaweedFS S3 server and one fresh store per test.

``MOUNTFS_SKIP_S3=1`` skips every S3 test for a quick local run.  Without it a
missing ``weed`` binary is a failure, never a silent skip, so CI cannot pass
without having exercised S3.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

# tests/ holds shared helpers (servers.py); make it importable however pytest was started
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from servers import SeaweedServer, find_weed  # noqa: E402

from mountfs.backends import Backend  # noqa: E402
from mountfs.backends.file import FileBackend  # noqa: E402
from mountfs.backends.retry import RetryingBackend  # noqa: E402
from mountfs.config import Config  # noqa: E402

def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "s3: needs the SeaweedFS S3 server (MOUNTFS_SKIP_S3=1 skips)")


def _start_seaweed(workdir: Path) -> SeaweedServer:
    if os.environ.get("MOUNTFS_SKIP_S3") == "1":
        pytest.skip("S3 tests skipped: MOUNTFS_SKIP_S3=1")
    try:
        find_weed()
    except FileNotFoundError as exc:
        pytest.fail(f"{exc} (set MOUNTFS_SKIP_S3=1 to skip S3 tests locally)", pytrace=False)
    server = SeaweedServer(workdir)
    server.start()
    return server


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """One SeaweedFS for the session; tests get their own bucket on it."""
    server = _start_seaweed(tmp_path_factory.mktemp("seaweed"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """A SeaweedFS of this test's own, free to be stopped and restarted."""
    server = _start_seaweed(tmp_path_factory.mktemp("seaweed-private"))
    try:
        yield server
    finally:
        server.stop()


S3Factory = Callable[..., Backend]


@pytest.fixture
def open_s3(seaweed: SeaweedServer) -> Iterator[S3Factory]:
    """``open_s3(server=seaweed, bucket=<new>, prefix="store/root", **s3_settings)`` -> S3Backend.

    The backend is opened the way users open one: ``S3Backend.from_url`` with
    the server's keys in ``Config.s3_hosts``; all are closed after the test.
    """
    from mountfs.backends.s3 import S3Backend

    opened: list[Backend] = []

    def factory(server: SeaweedServer = seaweed, bucket: str | None = None, prefix: str = "store/root",
                **s3: Any) -> Backend:
        config = Config(s3_hosts=server.s3_host_settings(), s3=s3, environ={})
        store = S3Backend.from_url(server.store_url(bucket or server.new_bucket(), prefix), config)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3), "file+retry"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh, empty store: a folder, or a new bucket + prefix on SeaweedFS.

    ``file+retry`` runs the whole contract through ``RetryingBackend`` too,
    proving the wrapper passes every behaviour through unchanged.
    """
    kind = request.param
    if kind == "s3":
        store: Backend = request.getfixturevalue("open_s3")()
    else:
        store = FileBackend(tmp_path / "store")
    if kind.endswith("+retry"):
        store = RetryingBackend(store)
    try:
        yield store
    finally:
        store.close()
