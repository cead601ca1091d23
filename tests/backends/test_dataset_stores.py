"""A dataset round trip through the SDK on every kind of store: the user's view.

``MOUNTFS_STORE`` names the store and the credentials come the way a user
gives them (the config file for S3, the standard environment variables for
GCS and Azure); the SDK uploads, finalizes and builds a local copy, which must
hold the same bytes as the source tree.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from servers import AzuriteServer, GcsEmulator, SeaweedServer

from mountfs import Dataset
from mountfs.errors import Conflict


def _point_at_store(kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                    tmp_path: Path) -> tuple[str, dict[str, str]]:
    """Set MOUNTFS_STORE and credentials for ``kind``; returns the URL and what the test server lacks."""
    lacks: dict[str, str] = {}
    if kind == "file":
        url = f"file://{tmp_path / 'shared-store'}"
    elif kind == "s3":
        seaweed: SeaweedServer = request.getfixturevalue("seaweed")
        url = seaweed.store_url(seaweed.new_bucket(), "mountfs")
        (host, entry), = seaweed.s3_host_settings().items()
        Path(str(request.getfixturevalue("isolated_env")["MOUNTFS_CONFIG"])).write_text(
            f'[s3.hosts."{host}"]\nkey = "{entry["key"]}"\nsecret = "{entry["secret"]}"\nsecure = false\n')
    elif kind == "gs":
        gcs: GcsEmulator = request.getfixturevalue("gcs")
        url = gcs.store_url(gcs.new_bucket(), "mountfs")
        for name, value in gcs.environ().items():
            monkeypatch.setenv(name, value)
        lacks = gcs.lacks
    else:
        azurite: AzuriteServer = request.getfixturevalue("azurite")
        url = azurite.store_url(azurite.new_container(), "mountfs")
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.setenv("MOUNTFS_STORE", url)
    return url, lacks


def _same_tree(a: Path, b: Path) -> None:
    left = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    right = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert left == right
    for rel in left:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


@pytest.mark.parametrize("kind", ["file", pytest.param("s3", marks=pytest.mark.s3),
                                  pytest.param("gs", marks=pytest.mark.gs),
                                  pytest.param("azure", marks=pytest.mark.azure)])
def test_dataset_round_trip(kind: str, tree: Path, tmp_path: Path, request: pytest.FixtureRequest,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    url, lacks = _point_at_store(kind, request, monkeypatch, tmp_path)
    # one file big enough to span several chunks, beside the small ones
    (tree / "big.bin").write_bytes(random.Random(9).randbytes(3 << 20))

    ds = Dataset.create(dataset_name="ds", dataset_project="p", dataset_version="1.0.0")
    ds.add_files(tree)
    ds.upload(show_progress=False)
    assert ds.finalize()
    assert ds.storage.url.rstrip("/") == url.rstrip("/").removeprefix("file://")

    got = Dataset.get(dataset_project="p", dataset_name="ds")
    assert got.id == ds.id and got.is_final()
    _same_tree(tree, Path(got.get_local_copy()))

    # the catalog pointer is a conditional create: a second 1.0.0 must lose
    if "conditional_write" in lacks:
        return  # the GCS emulator overwrites instead (GcsEmulator.lacks)
    with pytest.raises(Conflict):
        Dataset.create(dataset_name="ds", dataset_project="p", dataset_version="1.0.0")
