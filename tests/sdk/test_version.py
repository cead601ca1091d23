"""sdk.version: the record and file table every part of a Dataset shares, and the one merge of parents."""

from __future__ import annotations

from pathlib import Path

import pytest

from mountfs import Dataset
from mountfs.catalog import DRAFT, UPLOADED
from mountfs.errors import StateError
from mountfs.sdk.lifecycle import by_id
from mountfs.sdk.version import OTHER_STORE, Version, diff_tables, is_pending, merge_versions
from mountfs.session import Session
from mountfs.store import ChunkRef, FileEntry


def test_merge_versions_later_overrides_earlier_and_marks_chunks_of_other_stores(
    sess: Session, finalized, tmp_path: Path
) -> None:
    other = str(tmp_path / "other-store")
    a = finalized({"same.txt": b"from a", "a.txt": b"only a"})
    b = finalized({"same.txt": b"from b", "b.txt": b"only b"}, output_uri=other)
    merged = merge_versions(sess, [a.record, b.record])
    assert sorted(merged) == ["a.txt", "b.txt", "same.txt"]
    assert merged["same.txt"].digest == b.file_entries_dict["same.txt"].digest
    assert all(e.src == "" for e in merged.values())  # as stored: for comparing
    # built into the catalog's store: b's chunks are to be copied from b's store
    into = merge_versions(sess, [a.record, b.record], into="")
    assert into["a.txt"].src == ""
    assert into["same.txt"].src == into["b.txt"].src == OTHER_STORE + b.record.storage
    # built into b's store: a's chunks come from the catalog's store
    assert merge_versions(sess, [a.record], into=b.record.storage)["a.txt"].src == OTHER_STORE + sess.catalog_url


def test_is_pending() -> None:
    chunk = ChunkRef(b"d" * 16, 3)
    packed = ChunkRef(b"d" * 16, 3, pack="p1", offset=0, length=3)
    assert is_pending(FileEntry("new", 3, chunks=[chunk]))
    assert not is_pending(FileEntry("uploaded", 3, chunks=[packed]))
    assert is_pending(FileEntry("elsewhere", 3, chunks=[packed], src=OTHER_STORE + "/x"))
    assert not is_pending(FileEntry("empty", 0))
    assert not is_pending(FileEntry("external", 3, url="s3://b/k"))


def test_diff_tables() -> None:
    def entry(path: str, digest: bytes) -> FileEntry:
        return FileEntry(path, 1, digest=digest)

    table = {"kept": entry("kept", b"1"), "changed": entry("changed", b"new"), "added": entry("added", b"3")}
    parents = {"kept": entry("kept", b"1"), "changed": entry("changed", b"old"), "gone": entry("gone", b"4")}
    assert diff_tables(table, parents) == (["added"], ["changed"], ["gone"])


def test_a_drafts_table_is_its_saved_state(sess: Session, tmp_path: Path, finalized) -> None:
    parent = finalized({"x.txt": b"x"})
    draft = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[parent.id])
    again = by_id(sess, draft.id)  # another handle: reads the state the draft saved
    assert list(again.table()) == ["x.txt"]
    again.table()["x.txt"].mode = 0o600
    again.save_state()
    assert by_id(sess, draft.id).table()["x.txt"].mode == 0o600
    # a final version's table is its manifest
    assert list(by_id(sess, parent.id).table()) == ["x.txt"]


def test_a_draft_without_saved_state_is_a_clear_error(sess: Session) -> None:
    draft = Dataset.create(dataset_name="ds", dataset_project="p")
    sess.catalog.drop_draft_state(draft.id)
    with pytest.raises(StateError, match="has no saved state; it was left half-created"):
        by_id(sess, draft.id).table()


def test_require_draft_and_mark_changed(sess: Session, finalized) -> None:
    final = finalized({"x.txt": b"x"})
    with pytest.raises(StateError, match=r"is finalized and cannot be changed; cannot add files: create a child"):
        by_id(sess, final.id).require_draft("add files")
    draft = Dataset.create(dataset_name="ds", dataset_project="p")
    v = Version(sess, draft.record)
    v.mark_changed()  # a draft stays a draft
    assert sess.catalog.get(draft.id).status == DRAFT
    v.record.status = UPLOADED
    v.save_record()
    v.mark_changed()
    assert v.record.status == sess.catalog.get(draft.id).status == DRAFT
