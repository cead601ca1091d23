"""The ClearML-compatible SDK on the local default store."""

from __future__ import annotations

import filecmp
import os
from pathlib import Path

import pytest

from mountfs import Dataset
from mountfs.errors import NotFound, StateError


def _finalized(src: Path, **kw) -> Dataset:
    ds = Dataset.create(dataset_name=kw.pop("name", "ds"), dataset_project=kw.pop("project", "p"), **kw)
    ds.add_files(src)
    ds.upload(show_progress=False)
    assert ds.finalize()
    return ds


def _same_tree(a: Path, b: Path) -> None:
    cmp = filecmp.dircmp(a, b)
    assert not cmp.left_only and not cmp.right_only and not cmp.diff_files, (cmp.left_only, cmp.right_only, cmp.diff_files)
    for sub in cmp.common_dirs:
        _same_tree(a / sub, b / sub)
    for name in cmp.common_files:
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_round_trip_and_local_copy(tree: Path) -> None:
    ds = _finalized(tree)
    assert ds.is_final() and not ds.is_dirty() and ds.status == "completed"
    assert ds.version == "1.0.0"
    assert len(ds.list_files()) == 30
    copy = ds.get_local_copy()
    _same_tree(tree, Path(copy))
    assert not os.access(Path(copy) / "d0" / "f000.bin", os.W_OK) or os.geteuid() == 0
    assert oct(os.stat(Path(copy) / "d0" / "f000.bin").st_mode & 0o222) == "0o0"
    # reused when complete: same folder, untouched
    mtime = os.stat(copy).st_mtime_ns
    assert ds.get_local_copy() == copy and os.stat(copy).st_mtime_ns == mtime
    # rebuilt when damaged
    victim = Path(copy) / "d1" / "f001.bin"
    os.chmod(victim, 0o644)
    victim.write_bytes(b"damaged")
    again = Dataset.get(dataset_id=ds.id).get_local_copy()
    _same_tree(tree, Path(again))


def test_versions_auto_increment_and_get_most_recent(tree: Path) -> None:
    a = _finalized(tree)
    b = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[a.id])
    assert b.version == "1.0.1"
    c = Dataset.create(dataset_name="ds", dataset_project="p", dataset_version="1.2")
    d = Dataset.create(dataset_name="ds", dataset_project="p")
    assert (c.version, d.version) == ("1.2", "1.3")
    assert Dataset.get(dataset_project="p", dataset_name="ds").id == d.id
    assert Dataset.get(dataset_project="p", dataset_name="ds", only_completed=True).id == a.id
    assert Dataset.get(dataset_project="p", dataset_name="ds", dataset_version="1.0.1").id == b.id
    with pytest.raises(NotFound):
        Dataset.get(dataset_project="p", dataset_name="ds", only_published=True)
    assert a.publish() and Dataset.get(dataset_project="p", dataset_name="ds", only_published=True).id == a.id


def test_parents_merge_in_order_later_overrides(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for root, text in ((one, "from one"), (two, "from two")):
        (root / "x").mkdir(parents=True)
        (root / "x" / "same.txt").write_text(text)
    (one / "only1.txt").write_text("1")
    (two / "only2.txt").write_text("2")
    p1 = _finalized(one, name="a")
    p2 = _finalized(two, name="b")
    child = Dataset.create(dataset_name="merged", dataset_project="p", parent_datasets=[p1.id, p2])
    child.finalize()
    copy = Path(child.get_local_copy())
    assert (copy / "x" / "same.txt").read_text() == "from two"
    assert sorted(child.list_files()) == ["only1.txt", "only2.txt", "x/same.txt"]
    assert child.get_dependency_graph() == {child.id: [p1.id, p2.id], p1.id: [], p2.id: []}


def test_child_changes_added_modified_removed_and_dedup(tree: Path) -> None:
    parent = _finalized(tree)
    store_dir = Path(os.environ["MOUNTFS_STORE"])
    before = sum(f.stat().st_size for f in (store_dir / "packs").rglob("*") if f.is_file())
    (tree / "d0" / "f000.bin").write_bytes(b"new content")
    (tree / "new.txt").write_text("brand new")
    child = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[parent.id])
    assert child.add_files(tree) == 2  # unchanged files are not counted
    assert child.remove_files("d3/*") == 7
    assert child.is_dirty()
    child.upload(show_progress=False)
    child.finalize()
    after = sum(f.stat().st_size for f in (store_dir / "packs").rglob("*") if f.is_file())
    assert after - before < 1000  # only the two small new files were stored
    assert child.list_added_files() == ["new.txt"]
    assert child.list_modified_files() == ["d0/f000.bin"]
    assert len(child.list_removed_files()) == 7
    assert child.record.changes == {"added": 1, "modified": 1, "removed": 7}
    assert parent.list_files() == Dataset.get(dataset_id=parent.id).list_files()


def test_add_files_options(tmp_path: Path, tree: Path) -> None:
    (tree / "d0" / "keep.jpg").write_bytes(b"jpg")
    (tree / "d1" / "also.png").write_bytes(b"png")
    ds = Dataset.create(dataset_name="opts", dataset_project="p")
    assert ds.add_files(tree, wildcard="*.jpg") == 1
    assert ds.add_files(tree, wildcard=["*.png", "nothing*"], dataset_path="imgs") == 1
    assert ds.add_files(tree / "d2", local_base_folder=tree, recursive=False) == 7
    assert ds.add_files(tree / "d0" / "f000.bin", dataset_path="single") == 1
    assert ds.list_files() == sorted(
        ["d0/keep.jpg", "imgs/d1/also.png", "single/f000.bin"] + [f"d2/f{i:03d}.bin" for i in range(2, 30, 4)]
    )
    assert ds.list_files("d2/*") == [f"d2/f{i:03d}.bin" for i in range(2, 30, 4)]
    assert ds.list_files("imgs", recursive=False) == []
    assert ds.remove_files("imgs") == 1


def test_parts_are_disjoint_and_cover(tree: Path) -> None:
    ds = _finalized(tree)
    seen: list[str] = []
    for k in range(3):
        copy = Path(ds.get_local_copy(part=k, num_parts=3))
        seen += [str(p.relative_to(copy)) for p in copy.rglob("*") if p.is_file()]
    assert sorted(seen) == ds.list_files()
    only = Path(ds.get_local_copy(files=["d1/f005.bin", "d2"]))
    got = sorted(str(p.relative_to(only)) for p in only.rglob("*") if p.is_file())
    assert got == ["d1/f005.bin"] + [f"d2/f{i:03d}.bin" for i in range(2, 30, 4)]


def test_mutable_copy(tree: Path, tmp_path: Path) -> None:
    ds = _finalized(tree)
    target = tmp_path / "work"
    assert ds.get_mutable_local_copy(target) == str(target)
    _same_tree(tree, target)
    (target / "d0" / "f000.bin").write_bytes(b"writable")
    with pytest.raises(Exception, match="not empty"):
        ds.get_mutable_local_copy(target)
    ds.get_mutable_local_copy(target, overwrite=True)
    _same_tree(tree, target)


def test_metadata_round_trip(tree: Path) -> None:
    ds = _finalized(tree)
    ds.set_metadata({"classes": ["cat", "dog"], "n": 2})
    assert Dataset.get(dataset_id=ds.id).get_metadata() == {"classes": ["cat", "dog"], "n": 2}
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    ds.set_metadata(df, metadata_name="table")
    assert Dataset.get(dataset_id=ds.id).get_metadata("table").equals(df)
    assert ds.get_metadata("missing") is None


def test_list_datasets_and_writable_copy(tree: Path) -> None:
    a = _finalized(tree, project="vision/det", dataset_tags=["gold"])
    Dataset.create(dataset_name="draft", dataset_project="vision")
    found = Dataset.list_datasets(dataset_project="vision")
    assert [d["id"] for d in found] == [a.id]
    assert len(Dataset.list_datasets(dataset_project="vision", only_completed=False)) == 2
    assert Dataset.list_datasets(tags=["gold"])[0]["version"] == "1.0.0"
    assert Dataset.list_datasets(partial_name="raf", only_completed=False)[0]["name"] == "draft"
    w = Dataset.get(dataset_id=a.id, writable_copy=True)
    assert not w.is_final() and w.record.parents == [a.id] and w.list_files() == a.list_files()
    auto = Dataset.get(dataset_project="new", dataset_name="thing", auto_create=True)
    assert auto.status == "draft"


def test_verify_dataset_hash(tree: Path) -> None:
    ds = _finalized(tree)
    assert ds.verify_dataset_hash() == []
    copy = Path(ds.get_mutable_local_copy(Path(os.environ["MOUNTFS_CACHE_DIR"]).parent / "v"))
    assert ds.verify_dataset_hash(local_copy_path=str(copy)) == []
    (copy / "d0" / "f004.bin").write_bytes(b"x")
    (copy / "d1" / "f001.bin").unlink()
    assert ds.verify_dataset_hash(local_copy_path=str(copy)) == ["d0/f004.bin", "d1/f001.bin"]


@pytest.mark.allow_warnings
def test_finalize_needs_upload_unless_auto(tree: Path) -> None:
    ds = Dataset.create(dataset_name="x", dataset_project="p")
    ds.add_files(tree)
    with pytest.raises(StateError, match="upload"):
        ds.finalize()
    assert ds.finalize(raise_on_error=False) is False
    assert ds.finalize(auto_upload=True) and ds.is_final()


def test_large_files_are_copied_in_bounded_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mountfs import localcopy

    src = tmp_path / "big"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(9 << 20))
    (src / "b.bin").write_bytes(os.urandom(3000))
    (src / "empty").write_bytes(b"")
    ds = _finalized(src)
    monkeypatch.setattr(localcopy, "BATCH_BYTES", 1 << 20)
    pieces = [p for batch in localcopy.batches(sorted(ds.file_entries_dict.values(), key=lambda e: e.path)) for p in batch]
    assert sum(p.entry.path == "a.bin" for p in pieces) >= 3
    _same_tree(src, Path(ds.get_local_copy()))
    assert ds.verify_dataset_hash() == []


def test_squash_merges_in_order_without_parents(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for root, text in ((one, "first"), (two, "second")):
        root.mkdir()
        (root / "same.txt").write_text(text)
        (root / f"{root.name}.txt").write_text(root.name)
    a, b = _finalized(one, name="a"), _finalized(two, name="b")
    sq = Dataset.squash("both", dataset_ids=[a.id, b])
    assert sq.is_final() and sq.record.parents == [] and sq.project == "p"
    copy = Path(sq.get_local_copy())
    assert (copy / "same.txt").read_text() == "second"
    assert sorted(sq.list_files()) == ["one.txt", "same.txt", "two.txt"]
    again = Dataset.squash("pairs", dataset_project_name_pairs=[("p", "b"), ("p", "a")])
    assert Path(again.get_local_copy(), "same.txt").read_text() == "first"
    with pytest.raises(Exception, match="at least two"):
        Dataset.squash("x", dataset_ids=[a.id])
