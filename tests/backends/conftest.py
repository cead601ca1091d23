"""Fixtures for backend tests: real servers (SeaweedFS for S3, gcp-storage-emulator
for GCS, Azurite for Azure) and one fresh store per test.

``MOUNTFS_SKIP_S3=1``, ``MOUNTFS_SKIP_GS=1`` and ``MOUNTFS_SKIP_AZURE=1`` skip
those tests for a quick local run.  Without them a missing server is a
failure, never a silent skip, so CI cannot pass without having exercised
every backend.  Azurite is installed with npm on first use
(``servers.install_azurite``) when it is not there yet.
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

from servers import AzuriteServer, GcsEmulator, SeaweedServer, install_azurite, started_seaweed  # noqa: E402

from mountfs.backends import Backend  # noqa: E402
from mountfs.backends.file import FileBackend  # noqa: E402
from mountfs.backends.retry import RetryingBackend  # noqa: E402
from mountfs.config import Config  # noqa: E402

def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "s3: needs the SeaweedFS S3 server (MOUNTFS_SKIP_S3=1 skips)")
    config.addinivalue_line("markers", "gs: needs the GCS emulator (MOUNTFS_SKIP_GS=1 skips)")
    config.addinivalue_line("markers", "azure: needs Azurite (MOUNTFS_SKIP_AZURE=1 skips)")
    config.addinivalue_line("markers", "server_feature(name): relies on a server feature that a test server may "
                                       "lack (its ``lacks``): a strict xfail there")


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """One SeaweedFS for the session; tests get their own bucket on it."""
    with started_seaweed(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture
def private_seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """A SeaweedFS of this test's own, free to be stopped and restarted."""
    with started_seaweed(tmp_path_factory.mktemp("seaweed-private")) as server:
        yield server


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


# --- GCS: gcp-storage-emulator -------------------------------------------------


def _start_gcs(workdir: Path) -> GcsEmulator:
    if os.environ.get("MOUNTFS_SKIP_GS") == "1":
        pytest.skip("GCS tests skipped: MOUNTFS_SKIP_GS=1")
    try:
        server = GcsEmulator(workdir)
    except FileNotFoundError as exc:
        pytest.fail(f"{exc} (set MOUNTFS_SKIP_GS=1 to skip GCS tests locally)", pytrace=False)
    server.start()
    return server


@pytest.fixture(scope="session")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    """One GCS emulator for the session; tests get their own bucket on it."""
    server = _start_gcs(tmp_path_factory.mktemp("gcs"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    """A GCS emulator of this test's own, free to be stopped and restarted."""
    server = _start_gcs(tmp_path_factory.mktemp("gcs-private"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def open_gs(gcs: GcsEmulator) -> Iterator[Callable[..., Backend]]:
    """``open_gs(server=gcs, bucket=<new>, prefix="store/root", **gs_settings)`` -> GsBackend.

    Opened the way users open one: ``STORAGE_EMULATOR_HOST`` in the
    environment the config carries, ``[gs]`` settings from ``gs_settings``.
    """
    from mountfs.backends.gs import GsBackend

    opened: list[Backend] = []

    def factory(server: GcsEmulator = gcs, bucket: str | None = None, prefix: str = "store/root",
                **gs: Any) -> Backend:
        config = Config(gs=gs, environ=server.environ())
        store = GsBackend.from_url(server.store_url(bucket or server.new_bucket(), prefix), config)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


# --- Azure: Azurite ---------------------------------------------------------------


def _start_azurite(workdir: Path) -> AzuriteServer:
    if os.environ.get("MOUNTFS_SKIP_AZURE") == "1":
        pytest.skip("Azure tests skipped: MOUNTFS_SKIP_AZURE=1")
    try:
        binary = None if os.environ.get("MOUNTFS_AZURITE") else install_azurite()
        server = AzuriteServer(workdir, binary=binary)
    except (FileNotFoundError, OSError) as exc:
        pytest.fail(f"{exc} (set MOUNTFS_SKIP_AZURE=1 to skip Azure tests locally)", pytrace=False)
    server.start()
    return server


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    """One Azurite for the session; tests get their own container on it."""
    server = _start_azurite(tmp_path_factory.mktemp("azurite"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    """An Azurite of this test's own, free to be stopped and restarted."""
    server = _start_azurite(tmp_path_factory.mktemp("azurite-private"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def open_azure(azurite: AzuriteServer) -> Iterator[Callable[..., Backend]]:
    """``open_azure(server=azurite, container=<new>, prefix="store/root", **azure_settings)`` -> AzureBackend.

    Opened the way users open one: ``AzureBackend.from_url`` with the
    account key and Azurite's endpoint in the config's ``[azure]`` section.
    """
    from mountfs.backends.azure import AzureBackend

    opened: list[Backend] = []

    def factory(server: AzuriteServer = azurite, container: str | None = None, prefix: str = "store/root",
                **azure: Any) -> Backend:
        config = Config(azure={**server.azure_settings(), **azure}, environ={})
        store = AzureBackend.from_url(server.store_url(container or server.new_container(), prefix), config)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


# --- the contract's store --------------------------------------------------------


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3), "file+retry",
                        pytest.param("gs", marks=pytest.mark.gs), pytest.param("azure", marks=pytest.mark.azure)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh, empty store: a folder, or a new bucket/container + prefix on a real server.

    ``file+retry`` runs the whole contract through ``RetryingBackend`` too,
    proving the wrapper passes every behaviour through unchanged.  A test
    marked ``server_feature(name)`` is a strict xfail on a test server that
    lacks that feature (the GCS emulator's ``lacks``): it must fail there, for
    the reason given, and fails the run once the server learns the feature.
    """
    kind = request.param
    if kind == "s3":
        store: Backend = request.getfixturevalue("open_s3")()
    elif kind == "gs":
        server: GcsEmulator = request.getfixturevalue("gcs")
        for mark in request.node.iter_markers("server_feature"):
            if mark.args[0] in server.lacks:
                request.applymarker(pytest.mark.xfail(strict=True, reason=server.lacks[mark.args[0]]))
        store = request.getfixturevalue("open_gs")()
    elif kind == "azure":
        store = request.getfixturevalue("open_azure")()
    else:
        store = FileBackend(tmp_path / "store")
    if kind.endswith("+retry"):
        store = RetryingBackend(store)
    try:
        yield store
    finally:
        store.close()
