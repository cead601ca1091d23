"""Dataset.squash (issue 15): one version flattened into a root version, several merged in order without a
new chunk, and ``close_squashed_dataset=False`` leaving the result a draft."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from sdkhelp import write_files

from mountfs import Dataset
from mountfs.catalog import COMPLETED, DRAFT
from mountfs.session import Session
from mountfs.store.layout import PACKS

Finalized = Callable[..., Any]  # tests/sdk/conftest.py's fixture


def _packs(sess: Session) -> set[str]:
    return {o.key for o in sess.store().backend.list(PACKS)}


def _read_all(ds: Dataset) -> dict[str, bytes]:
    root = Path(ds.get_local_copy() or "")
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _child(parent: Dataset, tmp_path: Path, files: dict[str, bytes], remove: str | None = None) -> Dataset:
    ds = Dataset.create(parent_datasets=[parent.id])
    if files:
        ds.add_files(write_files(tmp_path / f"child-{ds.id}", files))
    if remove:
        ds.remove_files(remove)
    ds.upload(show_progress=False)
    assert ds.finalize()
    return ds


def test_one_version_is_flattened_into_a_root_version(sess: Session, finalized: Finalized, tmp_path: Path) -> None:
    root = finalized({"a": b"a1", "b": b"b1", "gone": b"g"})
    leaf = _child(_child(root, tmp_path, {"a": b"a2", "c": b"c1"}), tmp_path, {"d": b"d1"}, remove="gone")
    before = _packs(sess)
    flat = Dataset.squash("flat", dataset_ids=[leaf])
    assert _packs(sess) == before  # every chunk is stored already
    assert (flat.status, flat.record.parents, flat.project) == (COMPLETED, [], "p")
    assert flat.list_files() == leaf.list_files() == ["a", "b", "c", "d"]
    assert flat.list_added_files() == ["a", "b", "c", "d"] and flat.list_removed_files() == []
    assert _read_all(flat) == _read_all(leaf) == {"a": b"a2", "b": b"b1", "c": b"c1", "d": b"d1"}
    assert flat.get_dependency_graph() == {flat.id: []}
    assert flat.verify_dataset_hash() == []
    # by (project, name): the latest completed version of it
    by_name = Dataset.squash("flat2", dataset_project_name_pairs=[("p", "ds")])
    assert by_name.list_files() == ["a", "b", "c", "d"] and by_name.record.parents == []


def test_three_overlapping_versions_merge_in_order_without_a_new_chunk(sess: Session, finalized: Finalized) -> None:
    one = finalized({"x": b"one", "only1": b"1"}, name="one")
    two = finalized({"x": b"two", "y": b"two"}, name="two")
    three = finalized({"y": b"three", "only3": b"3"}, name="three")
    before = _packs(sess)
    merged = Dataset.squash("merged", dataset_ids=[one, two.id, three])
    assert _packs(sess) == before
    assert _read_all(merged) == {"x": b"two", "y": b"three", "only1": b"1", "only3": b"3"}


def test_close_squashed_dataset_false_leaves_a_draft(sess: Session, finalized: Finalized, tmp_path: Path) -> None:
    a = finalized({"a": b"a", "same": b"from a"}, name="a")
    b = finalized({"b": b"b", "same": b"from b"}, name="b", output_uri=str(tmp_path / "other-store"))
    draft = Dataset.squash("both", dataset_ids=[a, b], close_squashed_dataset=False)
    assert draft.status == DRAFT and not draft.is_final()
    assert draft.record.parents == [] and draft.list_files() == ["a", "b", "same"]
    assert Dataset.get(dataset_id=draft.id).status == DRAFT  # saved, not only in this object
    # still open: change it, then upload and finalize as any draft
    draft.add_files(write_files(tmp_path / "more", {"c": b"c"}))
    draft.upload(show_progress=False)
    assert draft.finalize()
    assert _read_all(Dataset.get(dataset_id=draft.id)) == {"a": b"a", "b": b"b", "c": b"c", "same": b"from b"}
    # one dataset, left a draft too
    flat = Dataset.squash("flat", dataset_ids=[a.id], close_squashed_dataset=False)
    assert flat.status == DRAFT and flat.list_files() == ["a", "same"]
