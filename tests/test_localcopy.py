"""localcopy: writing a version's files into a folder (cached read-only copies, mutable copies) and removing trees.

The refusals against hostile manifests and planted links are in tests/security/test_hostile_manifests.py.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from mountfs import Dataset, localcopy
from mountfs.errors import IntegrityError, LocalDiskError, UsageError
from mountfs.session import current
from mountfs.store import FileEntry
from mountfs.store.layout import Pack

def _final(src: Path) -> Dataset:
    ds = Dataset.create(dataset_name="ds", dataset_project="p")
    ds.add_files(src)
    ds.finalize(auto_upload=True)
    return ds


def _entries(ds: Dataset) -> list[FileEntry]:
    return sorted(ds.file_entries_dict.values(), key=lambda e: e.path)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def big(tmp_path: Path) -> Path:
    src = tmp_path / "big"
    src.mkdir()
    (src / "a.bin").write_bytes(os.urandom(9 << 20))
    (src / "b.bin").write_bytes(os.urandom(3000))
    (src / "empty").write_bytes(b"")
    return src


# --------------------------------------------------------------------- write_tree


def test_large_files_are_copied_in_bounded_pieces(big: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = _final(big)
    monkeypatch.setattr(localcopy, "BATCH_BYTES", 1 << 20)
    pieces = [p for batch in localcopy.batches(_entries(ds)) for p in batch]
    assert sum(p.entry.path == "a.bin" for p in pieces) >= 3
    assert _files(Path(ds.get_local_copy() or "")) == _files(big)
    assert ds.verify_dataset_hash() == []


@pytest.mark.parametrize("read_only", [True, False])
def test_pieces_of_one_file_written_in_parallel_make_the_file_and_then_its_mode_and_time(
    big: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_only: bool,
) -> None:
    ds = _final(big)
    entries = _entries(ds)
    monkeypatch.setattr(localcopy, "BATCH_BYTES", 1 << 20)  # a.bin in several pieces, one per worker
    assert len(localcopy.batches(entries)) >= 4
    root = tmp_path / "out"
    root.mkdir()
    written: list[int] = []
    localcopy.write_tree(entries, ds.storage, current().cache, str(root), read_only=read_only, max_workers=4,
                         progress=written.append)
    assert _files(root) == _files(big)
    assert sum(written) == sum(e.size for e in entries)
    for e in entries:
        st = os.stat(root / e.path)
        # the time is set once every piece is written: a later pwrite would have moved it
        assert st.st_mtime_ns == e.mtime_ns, e.path
        assert stat.S_IMODE(st.st_mode) == localcopy.copy_mode(e.mode, read_only), e.path


def test_chunks_the_cache_holds_are_used_and_fetched_ones_not_cached(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "cached.bin").write_bytes(os.urandom(5000))
    (src / "fetched.bin").write_bytes(os.urandom(5000))
    ds = _final(src)
    entries = _entries(ds)
    cache = current().cache
    first = tmp_path / "first"
    first.mkdir()
    localcopy.write_tree(entries, ds.storage, cache, str(first), read_only=False, max_workers=2)
    assert not any(cache.contains(c.digest) for e in entries for c in e.chunks)  # the folder is the copy
    data, at = (first / "cached.bin").read_bytes(), 0
    for c in ds.file_entries_dict["cached.bin"].chunks:
        cache.put(c.digest, data[at:at + c.size])
        at += c.size
    # without the store's packs only what the cache holds can be written
    for pack in {c.pack for e in entries for c in e.chunks}:
        ds.storage.backend.delete(Pack(pack).key)
    second = tmp_path / "second"
    second.mkdir()
    localcopy.write_tree(entries[:1], ds.storage, cache, str(second), read_only=False, max_workers=2)
    assert _files(second) == {"cached.bin": (src / "cached.bin").read_bytes()}
    third = tmp_path / "third"
    third.mkdir()
    with pytest.raises(IntegrityError, match="is missing"):
        localcopy.write_tree(entries, ds.storage, cache, str(third), read_only=False, max_workers=2)
    assert os.listdir(third) == []  # nothing half-written left


def test_external_entries_need_a_source(tmp_path: Path) -> None:
    entry = FileEntry("ext.csv", 3, url=f"file://{tmp_path}/ext.csv")
    root = tmp_path / "out"
    root.mkdir()
    with pytest.raises(UsageError, match="external files but no way to open their sources"):
        localcopy.write_tree([entry], current().create_store(), current().cache, str(root), read_only=True, max_workers=1)
    assert os.listdir(root) == []


# ------------------------------------------------------------- cached copies


def test_copy_is_complete_checks_marker_count_and_every_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.txt").write_bytes(b"aaaa")
    (src / "b.txt").write_bytes(b"bb")
    ds = _final(src)
    entries = _entries(ds)
    target = str(tmp_path / "copies" / ds.id)
    assert not localcopy.copy_is_complete(target, entries)  # nothing there
    assert localcopy.build_cached_copy(entries, ds.storage, current().cache, target, max_workers=2) == target
    assert localcopy.copy_is_complete(target, entries)
    assert json.loads(Path(target + ".complete").read_text()) == {"count": 2}
    assert not localcopy.copy_is_complete(target, entries[:1])  # another selection of files

    a = Path(target) / "sub" / "a.txt"
    os.utime(a, ns=(0, 0))
    assert not localcopy.copy_is_complete(target, entries)  # a time that is not the entry's
    os.utime(a, ns=(entries[1].mtime_ns, entries[1].mtime_ns))
    assert localcopy.copy_is_complete(target, entries)
    os.chmod(a, 0o644)
    a.write_bytes(b"aaaa-longer")
    os.utime(a, ns=(entries[1].mtime_ns, entries[1].mtime_ns))
    assert not localcopy.copy_is_complete(target, entries)  # another size
    os.chmod(a.parent, 0o755)  # the copy's folders are read-only
    a.unlink()
    a.symlink_to(src / "sub" / "a.txt")  # the right bytes, but not a plain file of the copy
    assert not localcopy.copy_is_complete(target, entries)
    Path(target + ".complete").write_text("not json")
    assert not localcopy.copy_is_complete(target, entries)


def test_build_cached_copy_reuses_a_complete_copy_and_replaces_any_other(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    ds = _final(src)
    entries = _entries(ds)
    cache = current().cache
    target = tmp_path / "copies" / "v"
    target.mkdir(parents=True)
    (target / "left-over").write_bytes(b"from a copy that did not finish")
    localcopy.build_cached_copy(entries, ds.storage, cache, str(target), max_workers=1)
    assert _files(target) == {"a.txt": b"a"}
    inode = os.stat(target / "a.txt").st_ino
    localcopy.build_cached_copy(entries, ds.storage, cache, str(target), max_workers=1)
    assert os.stat(target / "a.txt").st_ino == inode  # reused, not written again
    assert sorted(os.listdir(target.parent)) == ["v", "v.complete"]  # no building folder left


@pytest.mark.allow_warnings
def test_corrupted_pack_is_never_served(tree: Path) -> None:
    ds = _final(tree)
    pack = next(p for p in (Path(os.environ["MOUNTFS_STORE"]) / "packs").rglob("*") if p.is_file())
    raw = bytearray(pack.read_bytes())
    raw[100] ^= 0x01
    pack.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match=f"packs/{pack.parent.name}/{pack.name}"):
        ds.get_local_copy()
    copies = Path(os.environ["MOUNTFS_CACHE_DIR"]) / "copies"
    assert not any(copies.glob("*.complete")) and not any(copies.glob("*.building-*"))
    assert ds.verify_dataset_hash() != []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny tmpfs needs root")
def test_full_disk_while_building_a_local_copy(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / f"f{i}.bin").write_bytes(os.urandom(1 << 20))
    ds = _final(src)
    copies = Path(os.environ["MOUNTFS_CACHE_DIR"]) / "copies"
    copies.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(copies)], check=True)
    try:
        with pytest.raises(LocalDiskError, match="no space left"):
            ds.get_local_copy()
        assert os.listdir(copies) == []  # nothing half-built left, nothing marked complete
    finally:
        subprocess.run(["umount", str(copies)], check=True)
    assert Path(ds.get_local_copy() or "", "f3.bin").read_bytes() == (src / "f3.bin").read_bytes()


# ------------------------------------------------------------- mutable copies


def test_a_mutable_copy_needs_a_folder(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    ds = _final(src)
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"mine")
    with pytest.raises(UsageError, match="exists and is not a folder"):
        localcopy.build_mutable_copy(_entries(ds), ds.storage, current().cache, str(blocker), overwrite=True,
                                     max_workers=1)
    assert blocker.read_bytes() == b"mine"


# ------------------------------------------------------------------ remove_tree


def _read_only_tree(root: Path, outside: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_bytes(b"f")
    (root / "top").write_bytes(b"t")
    (root / "link").symlink_to(outside)  # a link to a read-only folder elsewhere
    for path in (root / "a" / "b" / "f", root / "top"):
        os.chmod(path, 0o444)
    for folder in (root / "a" / "b", root / "a", root):
        os.chmod(folder, 0o555)


def _remove_tree_as_a_user(*paths: Path) -> None:
    """remove_tree as a user whom read-only folders stop (root ignores modes: a forked child runs it as nobody)."""
    if os.geteuid() != 0:
        for p in paths:
            localcopy.remove_tree(str(p))
        return
    pid = os.fork()
    if pid == 0:  # the child: only os calls from here, then out without running pytest's exit handlers
        code = 1
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            for p in paths:
                localcopy.remove_tree(str(p))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A folder the test's user can reach: as root, one under /tmp (pytest's own tmp folders are root-only)."""
    if os.geteuid() != 0:
        yield tmp_path / "home"
        return
    top = Path(tempfile.mkdtemp(prefix="mountfs-remove-tree-", dir="/tmp"))
    os.chmod(top, 0o755)
    try:
        yield top / "home"
    finally:
        for p in [top, *top.rglob("*")]:
            if not p.is_symlink():
                os.chmod(p, 0o755)
        shutil.rmtree(top)


def test_remove_tree_removes_read_only_trees_and_links_not_their_targets(home: Path) -> None:
    home.mkdir()
    outside = home / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"not the tree's")
    os.chmod(outside, 0o555)
    tree, single, file_link = home / "tree", home / "single", home / "file-link"
    tree.mkdir()
    _read_only_tree(tree, outside)
    single.write_bytes(b"s")
    os.chmod(single, 0o444)
    file_link.symlink_to(outside / "keep")
    if os.geteuid() == 0:
        for p in [home, *home.rglob("*")]:
            os.lchown(p, 65534, 65534)
    _remove_tree_as_a_user(tree, single, file_link, home / "missing")
    assert sorted(os.listdir(home)) == ["outside"]
    assert (outside / "keep").read_bytes() == b"not the tree's"
    assert stat.S_IMODE(os.stat(outside).st_mode) == 0o555  # never chmod-ed through the link
    os.chmod(outside, 0o755)


# ------------------------------------------------- a cached copy is read-only throughout


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")]}


def test_a_cached_copy_has_read_only_folders_and_is_still_replaced_and_removed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "sub" / "deeper" / "a.txt").write_bytes(b"a")
    (src / "b.sh").write_bytes(b"b")
    os.chmod(src / "b.sh", 0o775)
    ds = _final(src)
    entries = _entries(ds)
    cache = current().cache
    target = tmp_path / "copies" / ds.id
    localcopy.build_cached_copy(entries, ds.storage, cache, str(target), max_workers=2)
    modes = _modes(target)
    assert {k: v for k, v in modes.items() if (target / k).is_dir()} == {
        ".": localcopy.READ_ONLY_DIR, "sub": 0o555, "sub/deeper": 0o555}
    assert modes["b.sh"] == 0o555 and modes["sub/deeper/a.txt"] == 0o444  # no write bit anywhere
    if os.geteuid() != 0:  # root ignores modes
        for where in (target / "x", target / "sub" / "x"):
            with pytest.raises(PermissionError):
                where.touch()
    # an incomplete copy (its marker gone) is built again and replaces the read-only one
    inode = os.stat(target / "b.sh").st_ino
    Path(str(target) + ".complete").unlink()
    localcopy.build_cached_copy(entries, ds.storage, cache, str(target), max_workers=2)
    assert os.stat(target / "b.sh").st_ino != inode and _files(target) == {"b.sh": b"b", "sub/deeper/a.txt": b"a"}
    assert sorted(os.listdir(target.parent)) == [ds.id, ds.id + ".complete"]
    # a complete copy made before folders were sealed is sealed when it is reused
    os.chmod(target / "sub", 0o755)
    inode = os.stat(target / "b.sh").st_ino
    localcopy.build_cached_copy(entries, ds.storage, cache, str(target), max_workers=2)
    assert os.stat(target / "b.sh").st_ino == inode and _modes(target)["sub"] == 0o555
    localcopy.remove_tree(str(target))
    assert not target.exists()


def test_a_copy_that_fails_after_sealing_removes_what_it_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.txt").write_bytes(b"a")
    ds = _final(src)
    real_seal = localcopy._Folder.seal

    def seal_then_fail(self: localcopy._Folder) -> None:
        real_seal(self)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(localcopy._Folder, "seal", seal_then_fail)
    target = tmp_path / "copies" / "v"
    with pytest.raises(LocalDiskError, match="no space left"):
        localcopy.build_cached_copy(_entries(ds), ds.storage, current().cache, str(target), max_workers=1)
    assert os.listdir(target.parent) == []  # no building folder left, read-only or not


def test_a_cached_copy_seen_by_another_user_cannot_be_changed(home: Path) -> None:
    """As the copy's owner would be refused by its modes (root ignores them): a user for whom the copy's
    folders are as they are for the owner (0555 all round), one under /tmp it can reach."""
    home.mkdir()
    src = home / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.txt").write_bytes(b"a")
    ds = _final(src)
    target = home / "copy"
    localcopy.build_cached_copy(_entries(ds), ds.storage, current().cache, str(target), max_workers=1)
    if os.geteuid() == 0:
        for p in [target, *target.rglob("*")]:
            os.lchown(p, 65534, 65534)  # the owner is nobody now, for whom modes count
    cmd = ["touch", str(target / "x"), str(target / "sub" / "x")]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", *cmd]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode != 0 and res.stderr.count("Permission denied") == 2, res.stderr
    assert sorted(os.listdir(target)) == ["sub"]
