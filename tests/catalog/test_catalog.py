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


def test_versions_leave_out_nested_projects(catalog: Catalog, backend: Backend) -> None:
    a, b = "0190a1b2c3d40000000a", "0190a1b2c3d50000000b"
    catalog.claim("p", "n", "1.0", a)
    # an older store may hold a project at a dataset's path (claim refuses it now): listed under catalog/p/n/ too
    backend.put("catalog/p/n/x/2.0", b'{"id": "%s"}' % b.encode())
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


# --- one path, one meaning (issue 16) ----------------------------------------------------------------

A, B, C = "0190a1b2c3d40000000a", "0190a1b2c3d50000000b", "0190a1b2c3d60000000c"


def test_a_project_cannot_be_created_at_a_datasets_path(catalog: Catalog) -> None:
    catalog.claim("nu/proj", "things", "2.0", A)
    for project in ("nu/proj/things", "nu/proj/things/deeper"):
        with pytest.raises(Conflict, match="nu/proj/things is a dataset, so it cannot hold project"):
            catalog.claim(project, "x", None, B)
    assert catalog.pointers() == {("nu/proj", "things", "2.0"): A}
    assert catalog.claim("nu/proj/thingsx", "x", None, B) == "1.0.0"  # a longer name is another path


def test_a_dataset_cannot_be_created_at_a_projects_path(catalog: Catalog) -> None:
    catalog.claim("nu/proj/things", "x", None, A)
    for project, name in (("nu/proj", "things"), ("nu", "proj")):
        with pytest.raises(Conflict, match=f"{project}/{name} is a project .*choose another name"):
            catalog.claim(project, name, "1.0", B)
    assert catalog.pointers() == {("nu/proj/things", "x", "1.0.0"): A}


@pytest.mark.parametrize("project, name, says", [
    ("nu/proj/things", "latest", "dataset name 'latest' is reserved"),
    ("p", "3.0", "dataset name '3.0' is reserved .*e.g. 'v3.0'"),
    ("p", "1.0.0", "dataset name '1.0.0' is reserved"),
    ("p/2.0/x", "n", "project level '2.0' is reserved"),
    ("latest", "n", "project level 'latest' is reserved"),
])
def test_latest_and_version_numbers_are_no_names(catalog: Catalog, project: str, name: str, says: str) -> None:
    with pytest.raises(UsageError, match=says) as info:
        catalog.claim(project, name, None, A)
    assert "\n" not in str(info.value)
    assert catalog.pointers() == {}


def test_an_older_store_keeps_its_reserved_names_and_collisions(catalog: Catalog, backend: Backend) -> None:
    for key, dataset_id in (("catalog/p/n/1.0", A), ("catalog/p/n/latest/1.0", B), ("catalog/p/3.0/2.0", C)):
        backend.put(key, b'{"id": "%s"}' % dataset_id.encode())
    assert catalog.pointers() == {("p", "n", "1.0"): A, ("p/n", "latest", "1.0"): B, ("p", "3.0", "2.0"): C}
    # new versions of what is there are fine; only new datasets at such places are refused
    assert catalog.claim("p/n", "latest", None, "0190a1b2c3d70000000d") == "1.1"
    assert catalog.claim("p", "3.0", "2.1", "0190a1b2c3d80000000e") == "2.1"
    with pytest.raises(Conflict, match="p/n is a dataset"):
        catalog.claim("p/n", "other", None, "0190a1b2c3d90000000f")


@pytest.mark.parametrize("existing, asked, held", [("1.0", "1.0.0", "1.0"), ("1.0.0", "1", "1.0.0"),
                                                   ("2.10", "2.10.0.0", "2.10")])
def test_a_second_spelling_of_a_version_is_refused(catalog: Catalog, existing: str, asked: str, held: str) -> None:
    catalog.claim("p", "n", existing, A)
    with pytest.raises(Conflict, match=f"version {asked} of p/n exists as {held}; name it {held}"):
        catalog.claim("p", "n", asked, B)
    assert catalog.versions("p", "n") == {existing: A}


@pytest.mark.parametrize("asked, canonical", [("01.0", "1.0"), ("1.00", "1.0"), ("007", "7"), ("1.0.01", "1.0.1")])
def test_leading_zeros_are_refused_naming_the_canonical_form(catalog: Catalog, asked: str, canonical: str) -> None:
    with pytest.raises(UsageError, match=f"version '{asked}' has a leading zero; write it as {canonical}$"):
        catalog.claim("p", "n", asked, A)
    assert catalog.pointers() == {}


def test_a_draft_may_take_another_spelling_of_its_own_version(catalog: Catalog) -> None:
    catalog.claim("p", "n", "1.0", A)
    assert catalog.claim("p", "n", "1.0.0", A) == "1.0.0"  # renumbering: claim the new, then release the old


def test_automatic_versions_follow_the_number_of_an_older_stores_spellings(catalog: Catalog, backend: Backend) -> None:
    for key, dataset_id in (("catalog/p/n/01.0", A), ("catalog/p/n/1.00", B), ("catalog/p/n/0.9", C)):
        backend.put(key, b'{"id": "%s"}' % dataset_id.encode())
    assert catalog.claim("p", "n", None, "0190a1b2c3d70000000d") == "1.1"


def test_a_collision_that_appears_during_the_claim_gives_the_pointer_back(catalog: Catalog, backend: Backend) -> None:
    """Two writers racing: the other's pointer lands between our checks and our pointer; we see it after."""
    put_if_absent = backend.put_if_absent

    def racing(key: str, data: bytes) -> None:
        if key == "catalog/p/n/1.0.0":
            backend.put("catalog/p/n/1.0", b'{"id": "%s"}' % B.encode())
        put_if_absent(key, data)

    backend.put_if_absent = racing  # type: ignore[method-assign]
    with pytest.raises(Conflict, match="exists as 1.0.*another writer"):
        catalog.claim("p", "n", "1.0.0", A)
    assert catalog.versions("p", "n") == {"1.0": B}


def test_a_move_keeps_to_the_same_rules(catalog: Catalog) -> None:
    catalog.claim("p", "n", "1.0", A)
    catalog.put(_record(A, "1.0", "p", "n"))
    catalog.claim("q", "m", "1.0", B)
    catalog.put(_record(B, "1.0", "q", "m"))
    with pytest.raises(UsageError, match="dataset name 'latest' is reserved"):
        catalog.move_dataset("p", "n", "p", "latest")
    with pytest.raises(Conflict, match="q/m is a dataset"):
        catalog.move_dataset("p", "n", "q/m", "n")
    assert catalog.pointers() == {("p", "n", "1.0"): A, ("q", "m", "1.0"): B}
    # into a project below its own old path: its own versions do not count
    assert [r.project for r in catalog.move_dataset("p", "n", "p/n", "n")] == ["p/n"]
    assert catalog.pointers() == {("p/n", "n", "1.0"): A, ("q", "m", "1.0"): B}
