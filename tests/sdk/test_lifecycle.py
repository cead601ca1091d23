"""sdk.lifecycle: create, squash, get and list, each on an explicit session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mountfs import Dataset
from mountfs.catalog import COMPLETED, DRAFT
from mountfs.errors import Conflict, IntegrityError, NotFound, StateError, UsageError
from mountfs.sdk import lifecycle
from mountfs.sdk.version import OTHER_STORE
from mountfs.session import Session


def test_create_claims_a_version_and_saves_state_and_record(sess: Session, finalized, tmp_path: Path) -> None:
    v = lifecycle.create(sess, "ds", "p", ["t"], description="first")
    assert (v.record.version, v.record.status, v.record.tags) == ("1.0.0", DRAFT, ["t"])
    assert sess.catalog.get(v.id).description == "first"
    assert sess.catalog.read_draft_state(v.id) is not None
    assert lifecycle.create(sess, "ds", "p").record.version == "1.0.1"
    with pytest.raises(Conflict, match="version 1.0.0 of p/ds already exists"):
        lifecycle.create(sess, "ds", "p", dataset_version="1.0.0")


def test_a_child_inherits_name_project_store_and_files(sess: Session, finalized, tmp_path: Path) -> None:
    other = str(tmp_path / "other-store")
    parent = finalized({"a": b"a"}, name="named", project="proj", output_uri=other)
    child = lifecycle.create(sess, None, None, parent_ids=[parent.id])
    assert (child.record.project, child.record.name, child.record.storage) == ("proj", "named", other)
    assert child.record.parents == [parent.id] and list(child.table()) == ["a"]
    assert child.table()["a"].src == ""  # the same store: nothing to copy
    moved = lifecycle.create(sess, None, None, parent_ids=[parent.id], output_uri=str(sess.catalog_url))
    assert moved.record.storage == "" and moved.table()["a"].src == OTHER_STORE + other


def test_create_refuses_a_draft_or_unknown_parent_and_missing_names(sess: Session) -> None:
    draft = lifecycle.create(sess, "ds", "p")
    with pytest.raises(StateError, match=f"parent dataset {draft.id} .* is not finalized; finalize it first"):
        lifecycle.create(sess, "child", "p", parent_ids=[draft.id])
    with pytest.raises(NotFound, match="no dataset with id '0123456789abcdef0000'"):
        lifecycle.create(sess, "child", "p", parent_ids=["0123456789abcdef0000"])
    with pytest.raises(UsageError, match="a dataset needs dataset_name and dataset_project"):
        lifecycle.create(sess, "ds", None)


def test_bad_names_and_versions_are_refused_before_a_version_is_claimed(sess: Session) -> None:
    # which names and versions are bad is tests/catalog/test_names.py's; here: create checks each one first
    for name, project, version in (("a/b", "p", None), (".hidden", "p", None), ("ok", "p/../q", None),
                                   ("ok", "", None), ("ok", "p", "1.x")):
        with pytest.raises(UsageError):
            lifecycle.create(sess, name, project, dataset_version=version)
    assert lifecycle.list_datasets(sess, only_completed=False) == [] and sess.catalog.versions("p", "ok") == {}


def test_the_next_version_follows_the_latest_even_a_given_one(sess: Session, finalized) -> None:
    first = finalized({"a": b"a"})
    assert lifecycle.create(sess, None, None, parent_ids=[first.id]).record.version == "1.0.1"
    assert lifecycle.create(sess, "ds", "p", dataset_version="1.2").record.version == "1.2"
    assert lifecycle.create(sess, "ds", "p").record.version == "1.3"
    assert sorted(sess.catalog.versions("p", "ds")) == ["1.0.0", "1.0.1", "1.2", "1.3"]


def test_a_child_of_several_parents_starts_from_their_merge(finalized) -> None:
    one = finalized({"x/same.txt": b"from one", "only1.txt": b"1"}, name="a")
    two = finalized({"x/same.txt": b"from two", "only2.txt": b"2"}, name="b")
    child = Dataset.create(dataset_name="merged", dataset_project="p", parent_datasets=[one.id, two.id])
    assert not child.is_dirty() and child.finalize()  # every chunk is in the store already: nothing to upload
    assert child.list_files() == ["only1.txt", "only2.txt", "x/same.txt"]
    assert (Path(child.get_local_copy() or "") / "x" / "same.txt").read_bytes() == b"from two"


def test_squash_builds_one_finalized_version_directly(sess: Session, finalized, tmp_path: Path) -> None:
    a = finalized({"same": b"from a", "a": b"a"}, name="a")
    b = finalized({"same": b"from b", "b": b"b"}, name="b", output_uri=str(tmp_path / "other-store"))
    v = lifecycle.squash(sess, "both", [a.id], [("p", "b")])
    rec = sess.catalog.get(v.id)
    assert (rec.status, rec.project, rec.parents, rec.storage) == (COMPLETED, "p", [], "")
    assert rec.description == f"squashed from {a.id}, {b.id}"
    assert rec.changes == {"added": 3, "modified": 0, "removed": 0} and rec.file_count == 3
    assert sess.catalog.read_draft_state(v.id) is None  # never a draft on the way
    assert v.store.get_manifest(v.id, rec.manifest_digest)[-1].path == "same"
    shutil.rmtree(tmp_path / "other-store")  # b's chunks were copied into the catalog's store
    squashed = Dataset.get(dataset_id=v.id)
    assert squashed.verify_dataset_hash() == []
    assert (Path(squashed.get_local_copy()) / "same").read_bytes() == b"from b"


@pytest.mark.allow_warnings  # the damaged pack is read twice, with a warning
def test_a_failed_squash_leaves_no_version_behind(sess: Session, finalized, tmp_path: Path) -> None:
    other = tmp_path / "other-store"
    a = finalized({"a": b"a"}, name="a", output_uri=str(other))
    b = finalized({"b": b"b"}, name="b", output_uri=str(other))
    shutil.rmtree(other / "packs")
    with pytest.raises(IntegrityError, match="is missing"):
        lifecycle.squash(sess, "both", [a.id, b.id], output_url=str(sess.catalog_url))
    assert sess.catalog.versions("p", "both") == {}  # the claimed version was released
    assert lifecycle.list_datasets(sess, only_completed=False, partial_name="both") == []


def test_squash_refuses_none_and_drafts(sess: Session, finalized) -> None:
    a = finalized({"a": b"a"})
    with pytest.raises(UsageError, match="squash needs at least one dataset"):
        lifecycle.squash(sess, "x", [])
    draft = lifecycle.create(sess, "ds", "p")
    with pytest.raises(StateError, match="only finalized versions can be squashed"):
        lifecycle.squash(sess, "x", [a.id, draft.id])
    assert sess.catalog.versions("p", "x") == {}


def test_get_by_id_by_name_and_status(sess: Session, finalized) -> None:
    done = finalized({"a": b"a"})
    draft = lifecycle.create(sess, "ds", "p")
    assert lifecycle.get(sess, dataset_project="p", dataset_name="ds").id == draft.id  # the most recent
    assert lifecycle.get(sess, dataset_project="p", dataset_name="ds", only_completed=True).id == done.id
    assert lifecycle.get(sess, dataset_version="1.0.0", dataset_project="p", dataset_name="ds").id == done.id
    with pytest.raises(NotFound, match=r"no dataset \(published\) matches p/ds"):
        lifecycle.get(sess, dataset_project="p", dataset_name="ds", only_published=True)
    assert done.publish()
    assert lifecycle.get(sess, dataset_project="p", dataset_name="ds", only_published=True).id == done.id
    with pytest.raises(NotFound, match=r"no dataset \(completed\) matches"):
        lifecycle.get(sess, dataset_id=draft.id, only_completed=True)
    copy = lifecycle.get(sess, dataset_id=done.id, writable_copy=True)
    assert copy.record.parents == [done.id] and copy.record.status == DRAFT
    with pytest.raises(StateError, match="writable_copy needs a finalized version"):
        lifecycle.get(sess, dataset_id=draft.id, writable_copy=True)
    made = lifecycle.get(sess, dataset_project="p", dataset_name="new", auto_create=True)
    assert made.record.name == "new" and made.record.status == DRAFT


def test_list_datasets_filters(sess: Session, finalized) -> None:
    finalized({"a": b"a"}, name="cats", project="vision")
    finalized({"a": b"a"}, name="dogs", project="vision/pets", dataset_tags=["pets"])
    lifecycle.create(sess, "draft", "vision")
    names = lambda **kw: sorted(d["name"] for d in lifecycle.list_datasets(sess, **kw))  # noqa: E731
    assert names(dataset_project="vision") == ["cats", "dogs"]
    assert names(dataset_project="vision", recursive_project_search=False) == ["cats"]
    assert names(dataset_project="vision", only_completed=False) == ["cats", "dogs", "draft"]
    assert names(tags=["pets"]) == ["dogs"] and names(partial_name="OG") == ["dogs"]
    (row,) = lifecycle.list_datasets(sess, partial_name="cats")
    assert set(row) == {"id", "name", "project", "version", "tags", "status", "created", "file_count", "total_size"}
    assert names(ids=[row["id"]]) == ["cats"]
