"""The catalog (mountfs/catalog/catalog.py) on a real folder store: draft state, metadata, pointers, records."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from mountfs.backends import open_backend
from mountfs.backends.base import Backend
from mountfs.catalog.catalog import Catalog
from mountfs.catalog.records import DatasetRecord
from mountfs.errors import Conflict, NotFound, UsageError

ID = "0190a1b2c3d4deadbeef"


@pytest.fixture
def backend(tmp_path: Path) -> Backend:
    return open_backend(str(tmp_path / "catalog"))


@pytest.fixture
def catalog(backend: Backend) -> Catalog:
    return Catalog(backend)


def test_draft_state_round_trip(catalog: Catalog, backend: Backend, tmp_path: Path) -> None:
    assert catalog.read_draft_state(ID) is None
    catalog.write_draft_state(ID, b"state bytes")
    data, where = catalog.read_draft_state(ID) or (b"", "")
    assert data == b"state bytes"
    assert where == f"{backend.url}/datasets/{ID}/state"
    assert (tmp_path / "catalog" / "datasets" / ID / "state").read_bytes() == b"state bytes"
    catalog.write_draft_state(ID, b"newer")
    assert (catalog.read_draft_state(ID) or (b"",))[0] == b"newer"
    catalog.drop_draft_state(ID)
    assert catalog.read_draft_state(ID) is None
    catalog.drop_draft_state(ID)  # already gone is fine


def test_metadata_round_trip(catalog: Catalog, tmp_path: Path) -> None:
    catalog.write_metadata(ID, "stats", b'{"n": 1}')
    catalog.write_metadata(ID, "table.v2", b"csv", ext="csv")
    assert catalog.read_metadata(ID, "stats") == b'{"n": 1}'
    assert catalog.read_metadata(ID, "table.v2", ext="csv") == b"csv"
    folder = tmp_path / "catalog" / "datasets" / ID / "metadata"
    assert sorted(p.name for p in folder.iterdir()) == ["stats.json", "table.v2.csv"]


def test_missing_metadata_is_not_found(catalog: Catalog) -> None:
    with pytest.raises(NotFound, match="has no metadata 'stats'"):
        catalog.read_metadata(ID, "stats")


@pytest.mark.parametrize("name", ["", "a/b", "..", "../x", ".hidden", " x", "a\\b", "a\0b"])
def test_bad_metadata_names_are_refused(catalog: Catalog, backend: Backend, name: str) -> None:
    with pytest.raises(UsageError, match="metadata name"):
        catalog.write_metadata(ID, name, b"x")
    with pytest.raises(UsageError, match="metadata name"):
        catalog.read_metadata(ID, name)
    assert list(backend.list()) == []


@pytest.mark.parametrize("ext", ["", "a/b", "..", "tar.gz", ".json"])
def test_bad_metadata_extensions_are_refused(catalog: Catalog, backend: Backend, ext: str) -> None:
    with pytest.raises(UsageError, match="metadata extension"):
        catalog.write_metadata(ID, "stats", b"x", ext=ext)
    assert list(backend.list()) == []


@pytest.mark.parametrize("dataset_id", ["", "..", "a/b", "../../etc"])
def test_bad_dataset_ids_write_nothing(catalog: Catalog, backend: Backend, dataset_id: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: catalog.write_draft_state(dataset_id, b"x"), lambda: catalog.read_draft_state(dataset_id),
        lambda: catalog.drop_draft_state(dataset_id), lambda: catalog.write_metadata(dataset_id, "m", b"x"),
    ]
    for call in calls:
        with pytest.raises(UsageError, match="dataset id"):
            call()
    with pytest.raises(NotFound):
        catalog.get(dataset_id)
    assert list(backend.list()) == []


def _record(dataset_id: str, version: str, project: str = "vision/det", name: str = "cats") -> DatasetRecord:
    return DatasetRecord(id=dataset_id, project=project, name=name, version=version)


def test_claim_put_find(catalog: Catalog, tmp_path: Path) -> None:
    a, b = "0190a1b2c3d40000000a", "0190a1b2c3d50000000b"
    assert catalog.claim("vision/det", "cats", None, a) == "1.0.0"
    catalog.put(_record(a, "1.0.0"))
    assert catalog.claim("vision/det", "cats", None, b) == "1.0.1"
    catalog.put(_record(b, "1.0.1"))
    with pytest.raises(Conflict):
        catalog.claim("vision/det", "cats", "1.0.0", b)
    assert (tmp_path / "catalog" / "catalog" / "vision" / "det" / "cats" / "1.0.0").is_file()
    assert catalog.versions("vision/det", "cats") == {"1.0.0": a, "1.0.1": b}
    assert catalog.pointers() == {("vision/det", "cats", "1.0.0"): a, ("vision/det", "cats", "1.0.1"): b}
    assert [r.id for r in catalog.find("vision/det", "cats")] == [b, a]
    assert [r.id for r in catalog.all()] == [b, a]
    catalog.release("vision/det", "cats", "1.0.1")
    assert catalog.versions("vision/det", "cats") == {"1.0.0": a}


def test_versions_leave_out_nested_projects(catalog: Catalog) -> None:
    a, b = "0190a1b2c3d40000000a", "0190a1b2c3d50000000b"
    catalog.claim("p", "n", "1.0", a)
    catalog.claim("p/n", "x", "2.0", b)  # listed under catalog/p/n/ too
    assert catalog.versions("p", "n") == {"1.0": a}
    assert catalog.versions("p/n", "x") == {"2.0": b}


@pytest.mark.allow_warnings
def test_unusable_pointer_keys_are_skipped_with_a_warning(catalog: Catalog, backend: Backend,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    good = "0190a1b2c3d40000000a"
    catalog.claim("p", "n", "1.0", good)
    body = b'{"id": "%s"}' % good.encode()
    for key in ("catalog/p/n/notaversion", "catalog/p/.n/1.0", "catalog/x/1.0"):
        backend.put(key, body)
    assert catalog.pointers() == {("p", "n", "1.0"): good}
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "catalog/p/n/notaversion" in warned and "malformed version" in warned
    assert "catalog/p/.n/1.0" in warned and "catalog/x/1.0" in warned


@pytest.mark.allow_warnings
def test_records_with_bad_ids_are_skipped(catalog: Catalog, backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    backend.put("datasets/.bad/info.json", b"{}")
    backend.put(f"datasets/{ID}/previews/x.png", b"png")  # no record, no problem
    assert catalog.all() == []
    assert "datasets/.bad/info.json" in caplog.text
    assert "previews" not in caplog.text


def test_versions_made_in_the_same_millisecond_are_newest_by_version_number(catalog: Catalog) -> None:
    # the same 12 time digits; the random tail of the later version sorts first
    first, second = "0190a1b2c3d4ffffffff", "0190a1b2c3d400000000"
    for dataset_id, version in ((first, "1.0.0"), (second, "1.0.1")):
        catalog.claim("vision/det", "cats", version, dataset_id)
        catalog.put(_record(dataset_id, version))
    assert [r.version for r in catalog.find("vision/det", "cats")] == ["1.0.1", "1.0.0"]
    assert [r.version for r in catalog.find(partial_name="cat")] == ["1.0.1", "1.0.0"]
    assert [r.version for r in catalog.all()] == ["1.0.1", "1.0.0"]
