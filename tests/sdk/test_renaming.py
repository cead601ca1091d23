"""Dataset.rename and Dataset.move_to_project: every version moves, targets are refused, a crash is completed by a re-run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable
import pytest
from sdkhelp import Crash, CrashingBackend, write_files

from mountfs import Dataset
from mountfs.backends.file import FileBackend
from mountfs.catalog import Catalog
from mountfs.errors import Conflict, NotFound, UsageError
from mountfs.sdk import lifecycle
from mountfs.session import Session

#: the ``finalized`` fixture of conftest.py: ``finalized({rel: bytes}, name=..., project=...)``
Finalized = Callable[..., Dataset]


def _versions(finalized: Finalized, tmp_path: Path, count: int, project: str = "p", name: str = "ds",
              draft: bool = True) -> list[Dataset]:
    out = [finalized({f"v{i}.txt": b"x" * i, "common.txt": b"shared"}, name=name, project=project)
           for i in range(count)]
    if draft:
        d = Dataset.create(dataset_name=name, dataset_project=project)
        d.add_files(write_files(tmp_path / "draft-src", {"draft.txt": b"not uploaded"}))
        out.append(d)
    return out


def _store_snapshot(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def _places(catalog: Catalog, *places: tuple[str, str]) -> dict[str, tuple[str, str]]:
    """id -> (project, name) of every version found under one of ``places`` (each found once)."""
    out: dict[str, tuple[str, str]] = {}
    for project, name in places:
        for rec in catalog.find(project, name):
            assert rec.id not in out, f"{rec.id} is under two names"
            out[rec.id] = (rec.project, rec.name)
    return out


def _no_marks(store: Path) -> None:
    for p in (store / "catalog").rglob("*"):
        if p.is_file():
            assert "moved_from" not in json.loads(p.read_bytes()), p


def test_rename_moves_every_version_drafts_included(finalized: Finalized, tmp_path: Path, sess: Session) -> None:
    versions = _versions(finalized, tmp_path, 20)
    other = finalized({"o.txt": b"other"}, name="other")
    Dataset.rename("renamed", dataset_project="p", dataset_name="ds")
    moved = Dataset.list_datasets(dataset_project="p", partial_name="renamed", only_completed=False)
    assert sorted(d["id"] for d in moved) == sorted(v.id for v in versions)
    assert {d["version"] for d in moved} == {v.version for v in versions}
    with pytest.raises(NotFound):
        Dataset.get(dataset_project="p", dataset_name="ds")
    latest = Dataset.get(dataset_project="p", dataset_name="renamed", only_completed=True)
    assert latest.id == versions[-2].id and latest.name == "renamed"
    assert Path(latest.get_local_copy() or "", "v19.txt").read_bytes() == b"x" * 19
    assert Dataset.get(dataset_project="p", dataset_name="other").id == other.id  # a neighbour stays
    assert [r.id for r in sess.catalog.all()].count(versions[0].id) == 1
    _no_marks(tmp_path / "store")


def test_a_draft_opened_before_the_rename_finalizes_under_the_new_name(finalized: Finalized, tmp_path: Path) -> None:
    parent = finalized({"a.txt": b"a"})
    draft = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[parent.id])
    draft.add_files(write_files(tmp_path / "more", {"b.txt": b"b"}))
    Dataset.move_to_project("q", dataset_project="p", dataset_name="ds")
    draft.upload(show_progress=False)
    assert draft.finalize()
    got = Dataset.get(dataset_project="q", dataset_name="ds", only_completed=True)
    assert got.id == draft.id and sorted(got.list_files()) == ["a.txt", "b.txt"]
    assert draft.project == "q"
    with pytest.raises(NotFound):
        Dataset.get(dataset_project="p", dataset_name="ds")


def test_move_to_nested_projects_and_back(finalized: Finalized, tmp_path: Path) -> None:
    versions = _versions(finalized, tmp_path, 3, project="vision/det")
    Dataset.move_to_project("archive/2024/vision", dataset_project="vision/det", dataset_name="ds")
    found = Dataset.list_datasets(dataset_project="archive", only_completed=False)  # recursive project search
    assert sorted(d["id"] for d in found) == sorted(v.id for v in versions)
    assert {d["project"] for d in found} == {"archive/2024/vision"}
    assert Dataset.list_datasets(dataset_project="vision", only_completed=False) == []
    # a dataset named like a project level above it is another place
    Dataset.rename("2024", dataset_project="archive/2024/vision", dataset_name="ds")
    Dataset.move_to_project("vision/det", dataset_project="archive/2024/vision", dataset_name="2024")
    Dataset.rename("ds", dataset_project="vision/det", dataset_name="2024")
    back = Dataset.list_datasets(dataset_project="vision/det", only_completed=False)
    assert sorted(d["id"] for d in back if d["name"] == "ds") == sorted(v.id for v in versions)
    _no_marks(tmp_path / "store")


def test_an_existing_target_is_refused_before_anything_changes(finalized: Finalized, tmp_path: Path) -> None:
    _versions(finalized, tmp_path, 2)
    finalized({"t.txt": b"t"}, name="taken")
    Dataset.create(dataset_name="drafted", dataset_project="p")
    finalized({"n.txt": b"n"}, name="ds", project="q/sub")
    store = tmp_path / "store"
    before = _store_snapshot(store)
    with pytest.raises(Conflict, match=r"p/taken already exists \(version 1.0.0\); pick another name"):
        Dataset.rename("taken", dataset_project="p", dataset_name="ds")
    with pytest.raises(Conflict, match=r"p/drafted already exists"):  # a draft is a version too
        Dataset.rename("drafted", dataset_project="p", dataset_name="ds")
    with pytest.raises(Conflict, match=r"q/sub/ds already exists"):
        Dataset.move_to_project("q/sub", dataset_project="p", dataset_name="ds")
    assert _store_snapshot(store) == before


def test_bad_calls_say_what_is_wrong(finalized: Finalized) -> None:
    finalized({"a.txt": b"a"})
    with pytest.raises(NotFound, match="no dataset p/missing"):
        Dataset.rename("x", dataset_project="p", dataset_name="missing")
    with pytest.raises(UsageError, match="already there"):
        Dataset.rename("ds", dataset_project="p", dataset_name="ds")
    with pytest.raises(UsageError, match="'/'"):
        Dataset.rename("a/b", dataset_project="p", dataset_name="ds")
    with pytest.raises(UsageError, match="project level"):
        Dataset.move_to_project("q//r", dataset_project="p", dataset_name="ds")
    assert Dataset.get(dataset_project="p", dataset_name="ds").name == "ds"


def _crash_after(sess: Session, writes: int, rename: bool = True) -> bool:
    """Run the move through a backend that dies after ``writes`` writes; True when it completed."""
    catalog = Catalog(CrashingBackend(sess.catalog_url, writes))
    try:
        if rename:
            catalog.move_dataset("p", "ds", "p", "new")
        else:
            catalog.move_dataset("p", "ds", "q/deep/er", "ds")
    except Crash:
        return False
    return True


def _check_reachable(sess: Session, ids: set[str], new: tuple[str, str]) -> None:
    catalog = Catalog(FileBackend(sess.catalog_url))  # a fresh reader: nothing cached or warned about yet
    places = _places(catalog, ("p", "ds"), new)
    assert set(places) == ids
    assert {r.id for r in catalog.all()} == ids
    for dataset_id in ids:
        assert catalog.get(dataset_id).project in ("p", new[0])


@pytest.mark.parametrize("rename", [True, False], ids=["rename", "move"])
def test_a_crash_after_any_write_leaves_every_version_reachable_and_a_rerun_completes(
        finalized: Finalized, tmp_path: Path, sess: Session, rename: bool) -> None:
    ids = {v.id for v in _versions(finalized, tmp_path, 3)}
    new = ("p", "new") if rename else ("q/deep/er", "ds")
    pristine = tmp_path / "pristine"
    store = tmp_path / "store"
    shutil.copytree(store, pristine)
    writes = 0
    while True:
        shutil.rmtree(store)
        shutil.copytree(pristine, store)
        done = _crash_after(sess, writes, rename)
        _check_reachable(sess, ids, new)
        if done:
            break
        # the same call again (this one may crash too: a second crash, then a third run)
        if not _crash_after(sess, 1, rename):
            _check_reachable(sess, ids, new)
            assert _crash_after(sess, 10_000, rename)
        assert set(_places(Catalog(FileBackend(sess.catalog_url)), new)) == ids
        assert _places(Catalog(FileBackend(sess.catalog_url)), ("p", "ds")) == {}
        _no_marks(store)
        writes += 1
    assert writes == 4 * len(ids)  # per version: new pointer, record, old pointer; then the mark cleared
    _no_marks(store)


def test_twenty_versions_crash_halfway_and_the_same_call_completes(
        finalized: Finalized, tmp_path: Path, sess: Session) -> None:
    ids = {v.id for v in _versions(finalized, tmp_path, 20)}
    assert not _crash_after(sess, 31)  # ten versions moved, the eleventh has both pointers
    _check_reachable(sess, ids, ("p", "new"))
    # the same call again; it counts the versions moved before the crash too
    assert {r.id for r in lifecycle.rename(sess, "new", "p", "ds")} == ids
    assert set(_places(sess.catalog, ("p", "new"))) == ids
    assert Dataset.get(dataset_project="p", dataset_name="new", dataset_version="1.0.10").name == "new"
    with pytest.raises(NotFound, match="no dataset p/ds"):  # done: the same call again finds nothing to move
        Dataset.rename("new", dataset_project="p", dataset_name="ds")
    _no_marks(tmp_path / "store")


@pytest.mark.allow_warnings
def test_a_second_pointer_never_shows_a_version_at_a_place_its_record_does_not_say(
        finalized: Finalized, tmp_path: Path, sess: Session, caplog: pytest.LogCaptureFixture) -> None:
    v = finalized({"a.txt": b"a"})
    backend = sess.catalog.backend
    # what a move in progress looks like (same version number): passed over quietly
    backend.put_if_absent("catalog/evil/ds/1.0.0", json.dumps({"id": v.id}).encode())
    # any other second pointer: passed over with a warning, as before
    backend.put_if_absent("catalog/p/ds/9.9.9", json.dumps({"id": v.id}).encode())
    catalog = Catalog(FileBackend(sess.catalog_url))
    assert catalog.find("evil", "ds") == [] and catalog.find("p", "ds", "9.9.9") == []
    assert [r.id for r in catalog.find("p", "ds")] == [v.id]
    assert [(r.project, r.version) for r in catalog.all()] == [("p", "1.0.0")]
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("catalog/p/ds/9.9.9" in w for w in warned) and not any("evil" in w for w in warned)
