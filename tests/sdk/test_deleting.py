"""Dataset.delete: ClearML's rules for what may go, children stay whole, and a crash leaves each version whole or gone."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pytest
from sdkhelp import Crash, CrashingBackend, write_files

from mountfs import Dataset
from mountfs.backends.file import FileBackend
from mountfs.catalog import Catalog
from mountfs.errors import NotFound, StateError, UsageError
from mountfs.sdk import lifecycle
from mountfs.session import Session

#: the ``finalized`` fixture of conftest.py: ``finalized({rel: bytes}, name=..., project=...)``
Finalized = Callable[..., Dataset]


def _snapshot(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def _objects_of(store: Path, dataset_id: str) -> list[str]:
    """Every object of ``dataset_id`` in the store: below datasets/<id>/, and pointers naming it."""
    found = [str(p.relative_to(store)) for p in (store / "datasets" / dataset_id).rglob("*") if p.is_file()]
    found += [str(p.relative_to(store)) for p in (store / "catalog").rglob("*")
              if p.is_file() and dataset_id.encode() in p.read_bytes()]
    return found


def test_delete_one_version_by_id_or_by_version(finalized: Finalized, tmp_path: Path) -> None:
    v1 = finalized({"a.txt": b"one"})
    v2 = finalized({"a.txt": b"two"})
    v2.set_metadata({"k": 1})
    other = finalized({"o.txt": b"o"}, name="other")
    store = tmp_path / "store"
    assert Dataset.delete(dataset_id=v1.id) is None  # ClearML's return value
    with pytest.raises(NotFound):
        Dataset.get(dataset_id=v1.id)
    assert _objects_of(store, v1.id) == []
    assert [d["id"] for d in Dataset.list_datasets(dataset_project="p")] == [other.id, v2.id]
    Dataset.delete(dataset_project="p", dataset_name="ds", dataset_version=v2.version)
    assert _objects_of(store, v2.id) == []
    with pytest.raises(NotFound, match="no dataset matches p/ds"):
        Dataset.get(dataset_project="p", dataset_name="ds")
    assert Dataset.get(dataset_project="p", dataset_name="other").id == other.id
    # the version numbers are free again
    assert Dataset.create(dataset_name="ds", dataset_project="p", dataset_version=v1.version).version == v1.version


def test_several_matches_need_entire_dataset_and_force(finalized: Finalized, tmp_path: Path) -> None:
    versions = [finalized({f"v{i}.txt": b"x" * i}) for i in range(3)]
    draft = Dataset.create(dataset_name="ds", dataset_project="p")
    other = finalized({"o.txt": b"o"}, name="other")
    store = tmp_path / "store"
    before = _snapshot(store)
    with pytest.raises(UsageError, match=r"4 versions match p/ds .*entire_dataset=True and force=True"):
        Dataset.delete(dataset_project="p", dataset_name="ds")
    with pytest.raises(UsageError, match="needs force=True"):
        Dataset.delete(dataset_project="p", dataset_name="ds", entire_dataset=True)
    with pytest.raises(UsageError, match="versions match"):  # force alone is not enough either
        Dataset.delete(dataset_project="p", dataset_name="ds", force=True)
    assert _snapshot(store) == before
    Dataset.delete(dataset_project="p", dataset_name="ds", entire_dataset=True, force=True)
    for v in versions + [draft]:
        assert _objects_of(store, v.id) == []
    assert [d["id"] for d in Dataset.list_datasets(only_completed=False)] == [other.id]


def test_a_parent_needs_force_and_its_child_stays_readable_byte_for_byte(
        finalized: Finalized, tmp_path: Path) -> None:
    files = {"big.bin": bytes(range(256)) * 8000, "dir/a.txt": b"parent's"}
    parent = finalized(files)
    child = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[parent.id])
    child.add_files(write_files(tmp_path / "more", {"b.txt": b"child's"}))
    child.upload(show_progress=False)
    assert child.finalize()
    store = tmp_path / "store"
    before = _snapshot(store)
    with pytest.raises(StateError, match=rf"{parent.id} is a parent of {child.id} .*force=True"):
        Dataset.delete(dataset_id=parent.id)
    assert _snapshot(store) == before
    Dataset.delete(dataset_id=parent.id, force=True)
    assert _objects_of(store, parent.id) == []
    got = Dataset.get(dataset_id=child.id)
    assert sorted(got.list_files()) == ["b.txt", "big.bin", "dir/a.txt"]
    assert got.verify_dataset_hash() == []  # every chunk read back from the store and checked
    # its lineage still names the deleted parent, and so do the entries whose content that parent stored
    assert got.get_dependency_graph() == {child.id: [parent.id]}
    assert {e.relative_path: e.parent_dataset_id for e in got.file_entries} == {
        "b.txt": child.id, "big.bin": parent.id, "dir/a.txt": parent.id}
    assert got.list_files(dataset_id=parent.id) == ["big.bin", "dir/a.txt"]
    copy = Path(Dataset.get(dataset_project="p", dataset_name="ds").get_local_copy() or "")
    for rel, data in {**files, "b.txt": b"child's"}.items():
        assert (copy / rel).read_bytes() == data


def test_a_draft_child_counts_as_a_child(finalized: Finalized) -> None:
    parent = finalized({"a.txt": b"a"})
    draft = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[parent.id])
    with pytest.raises(StateError, match=f"is a parent of {draft.id}"):
        Dataset.delete(dataset_id=parent.id)
    # the whole dataset, child included: nothing stays behind that needs the parent
    Dataset.delete(dataset_project="p", dataset_name="ds", entire_dataset=True, force=True)
    assert Dataset.list_datasets(only_completed=False) == []


def test_drafts_are_deleted_with_their_state_and_metadata(finalized: Finalized, tmp_path: Path) -> None:
    draft = Dataset.create(dataset_name="ds", dataset_project="p")
    draft.add_files(write_files(tmp_path / "src", {"a.txt": b"pending", "b.txt": b"uploaded"}))
    draft.upload(show_progress=False)
    draft.add_files(write_files(tmp_path / "src2", {"c.txt": b"not uploaded"}))
    draft.set_metadata({"k": "v"}, metadata_name="info")
    store = tmp_path / "store"
    assert len(_objects_of(store, draft.id)) >= 3  # record, state, metadata, pointer
    Dataset.delete(dataset_project="p", dataset_name="ds")
    assert _objects_of(store, draft.id) == []
    assert Dataset.create(dataset_name="ds", dataset_project="p").version == draft.version


def test_bad_calls_change_nothing_and_say_what_is_wrong(finalized: Finalized, tmp_path: Path) -> None:
    v = finalized({"a.txt": b"a"})
    store = tmp_path / "store"
    before = _snapshot(store)
    with pytest.raises(UsageError, match="never deletes the sources of external files"):
        Dataset.delete(dataset_id=v.id, delete_external_files=True)
    with pytest.raises(UsageError, match="needs dataset_id"):
        Dataset.delete()
    with pytest.raises(UsageError, match="not both"):
        Dataset.delete(dataset_id=v.id, dataset_name="ds")
    with pytest.raises(NotFound, match="no dataset with id"):
        Dataset.delete(dataset_id="0123456789ab01234567")
    with pytest.raises(NotFound, match="no dataset matches p/ds/9.9.9"):
        Dataset.delete(dataset_project="p", dataset_name="ds", dataset_version="9.9.9")
    with pytest.raises(UsageError):
        Dataset.delete(dataset_project="a//b", dataset_name="ds")
    assert _snapshot(store) == before


def _check_whole_or_gone(sess: Session, ids: dict[str, Dataset], files: dict[str, dict[str, bytes]]) -> set[str]:
    """Each version is either listed, found by name and readable with its metadata, or listed nowhere; the gone ones."""
    catalog = Catalog(FileBackend(sess.catalog_url))  # a fresh reader: nothing cached or warned about yet
    listed = {r.id for r in catalog.all()}
    by_name = {r.id for r in catalog.find("p", "ds")}
    assert listed == by_name
    for dataset_id in listed:
        ds = Dataset.get(dataset_id=dataset_id)
        assert ds.get_metadata("info") == {"id": dataset_id}
        want = files[dataset_id]
        assert sorted(ds.list_files()) == sorted(want)
        if ds.is_final():
            copy = Path(ds.get_local_copy() or "")
            assert {rel: (copy / rel).read_bytes() for rel in want} == want
    return set(ids) - listed


@pytest.mark.allow_warnings  # a record left without its pointer is skipped with a warning
def test_a_crash_after_any_write_leaves_each_version_whole_or_gone_and_a_rerun_completes(
        finalized: Finalized, tmp_path: Path, sess: Session) -> None:
    files = {"v0": {"a.txt": b"zero", "d/b.bin": b"\0" * 70_000}, "v1": {"a.txt": b"one"}}
    final = finalized(files["v0"])
    child = finalized(files["v1"], parent_datasets=[final.id])
    draft = Dataset.create(dataset_name="ds", dataset_project="p")
    draft.add_files(write_files(tmp_path / "d", {"draft.txt": b"pending"}))
    versions = {final.id: final, child.id: child, draft.id: draft}
    want = {final.id: files["v0"], child.id: {**files["v0"], **files["v1"]}, draft.id: {"draft.txt": b"pending"}}
    for v in versions.values():
        v.set_metadata({"id": v.id}, metadata_name="info")
    store, pristine = tmp_path / "store", tmp_path / "pristine"
    shutil.copytree(store, pristine)
    for dataset_id in versions:
        rec = sess.catalog.get(dataset_id)
        writes = 0
        while True:
            shutil.rmtree(store)
            shutil.copytree(pristine, store)
            try:
                Catalog(CrashingBackend(sess.catalog_url, writes)).delete_version(rec)
                done = True
            except Crash:
                done = False
            gone = _check_whole_or_gone(sess, versions, want)
            assert gone <= {dataset_id}
            assert gone == {dataset_id} or writes == 0  # the pointer is the first write: gone at once
            if done:
                assert _objects_of(store, dataset_id) == []
                break
            lifecycle.delete(sess, dataset_id=dataset_id, force=True)  # the same delete by id again completes it
            assert _objects_of(store, dataset_id) == []
            assert _check_whole_or_gone(sess, versions, want) == {dataset_id}
            writes += 1
        # pointer, state, metadata, record (and a finalized version's manifest and preview); deleting a missing state still writes
        assert writes == (4 if dataset_id == draft.id else 6)
