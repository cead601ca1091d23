"""sdk.copies: which files a local copy holds, where the cached copy lives, mutable copies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sdkhelp import same_tree

from mountfs import Dataset
from mountfs.errors import NotFound, StateError, UsageError
from mountfs.sdk.copies import MIN_COPY_WORKERS, LocalCopies, copy_workers, select
from mountfs.sdk.lifecycle import by_id
from mountfs.session import Session
from mountfs.store import FileEntry


def _entries(sizes: dict[str, int]) -> list[FileEntry]:
    return [FileEntry(p, n) for p, n in sizes.items()]


def test_parts_are_disjoint_contiguous_and_balanced_by_bytes() -> None:
    entries = _entries({f"f{i:02d}": 1000 if i != 3 else 3000 for i in range(40)})
    parts = [select(entries, k, 4, None) for k in range(4)]
    flat = [e.path for part in parts for e in part]
    assert flat == sorted(e.path for e in entries)  # every file once, in path order
    # a part holds the files starting in its quarter of the bytes: within one file of a quarter
    quarter = sum(e.size for e in entries) / 4
    assert all(abs(sum(e.size for e in part) - quarter) <= 3000 for part in parts)
    assert select(_entries({"a": 0, "b": 0, "c": 0}), 2, 3, None)[0].path == "c"  # empty files spread by count


def test_files_select_paths_folders_and_wildcards() -> None:
    entries = _entries({"a/x.jpg": 1, "a/y.txt": 1, "b/z.jpg": 1, "c": 1})
    assert [e.path for e in select(entries, None, None, ["a", "*.jpg"])] == ["a/x.jpg", "a/y.txt", "b/z.jpg"]
    assert [e.path for e in select(entries, None, None, "c")] == ["c"]
    with pytest.raises(NotFound, match="'nope' is not in dataset id1; see `mountfs list --id id1`"):
        select(entries, None, None, ["c", "nope"], "id1")


@pytest.mark.parametrize("part, num_parts", [(None, 2), (1, None), (2, 2), (-1, 2)])
def test_a_bad_part_is_refused(part: int | None, num_parts: int | None) -> None:
    with pytest.raises(UsageError, match="part must be in 0..num_parts-1"):
        select(_entries({"a": 1}), part, num_parts, None)


def test_copy_workers() -> None:
    assert copy_workers(1) == 1 and copy_workers(7) == 7
    assert copy_workers(None) == max(MIN_COPY_WORKERS, os.cpu_count() or 1)


def test_cached_copies_are_named_by_what_they_hold_and_reused(sess: Session, finalized) -> None:
    ds = finalized({"a/1": b"1", "a/2": b"2", "b/3": b"3"})
    copies = LocalCopies(by_id(sess, ds.id))
    whole = copies.get_local_copy()
    assert whole == os.path.join(sess.config.cache_dir, "copies", ds.id)
    part = copies.get_local_copy(part=1, num_parts=2)
    assert part is not None and part.endswith(f"{ds.id}.part1of2")
    chosen = copies.get_local_copy(files=["a"])
    assert chosen is not None and ".files-" in chosen
    assert sorted(os.listdir(Path(chosen) / "a")) == ["1", "2"] and not (Path(chosen) / "b").exists()
    assert copies.get_local_copy(files="a/*") == chosen  # the same files: the same folder, reused


@pytest.mark.allow_warnings  # raise_on_error=False logs the error
def test_a_draft_has_no_local_copy(sess: Session) -> None:
    draft = Dataset.create(dataset_name="ds", dataset_project="p")
    copies = LocalCopies(by_id(sess, draft.id))
    with pytest.raises(StateError, match="is not finalized; get a local copy of a finalized version"):
        copies.get_local_copy()
    with pytest.raises(StateError, match="is not finalized; copy a finalized version"):
        copies.get_mutable_local_copy("/nowhere")
    assert copies.get_local_copy(raise_on_error=False) is None
    assert copies.get_mutable_local_copy("/nowhere", raise_on_error=False) is None


def test_mutable_copies_are_writable_and_refuse_a_full_folder(sess: Session, finalized, tmp_path: Path) -> None:
    ds = finalized({"a/1": b"one", "b/2": b"two"})
    copies = LocalCopies(by_id(sess, ds.id))
    target = tmp_path / "work"
    assert copies.get_mutable_local_copy(target) == str(target)
    (target / "a" / "1").write_bytes(b"edited")  # plain writable files
    with pytest.raises(UsageError, match="is not empty; choose an empty folder or pass overwrite=True"):
        copies.get_mutable_local_copy(target)
    copies.get_mutable_local_copy(target, overwrite=True, part=0, num_parts=2)
    assert (target / "a" / "1").read_bytes() == b"one" and not (target / "b").exists()


def test_a_cached_copy_is_read_only_reused_when_complete_and_rebuilt_when_damaged(tree: Path) -> None:
    ds = Dataset.create(dataset_name="ds", dataset_project="p")
    ds.add_files(tree)
    ds.finalize(auto_upload=True)
    copy = ds.get_local_copy()
    assert copy is not None
    same_tree(tree, Path(copy))
    assert oct(os.stat(Path(copy) / "d0" / "f000.bin").st_mode & 0o222) == "0o0"
    # reused when complete: same folder, untouched
    mtime = os.stat(copy).st_mtime_ns
    assert ds.get_local_copy() == copy and os.stat(copy).st_mtime_ns == mtime
    # rebuilt when damaged
    victim = Path(copy) / "d1" / "f001.bin"
    os.chmod(victim, 0o644)
    victim.write_bytes(b"damaged")
    again = Dataset.get(dataset_id=ds.id).get_local_copy()
    assert again == copy
    same_tree(tree, Path(copy))


def test_part_copies_together_hold_every_file_once(sess: Session, tree: Path) -> None:
    ds = Dataset.create(dataset_name="ds", dataset_project="p")
    ds.add_files(tree)
    ds.finalize(auto_upload=True)
    copies = LocalCopies(by_id(sess, ds.id))
    seen: list[str] = []
    for k in range(3):
        copy = Path(copies.get_local_copy(part=k, num_parts=3) or "")
        seen += [str(p.relative_to(copy)) for p in copy.rglob("*") if p.is_file()]
    assert sorted(seen) == ds.list_files()
