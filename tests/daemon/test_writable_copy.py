"""Writable copies (issue 20) through real mounts and the CLI: edit with ordinary tools, `mountfs diff`,
`mountfs close` into a new version; the POSIX answers tools rely on; the refusals; other users of a root mount.

Durability (SIGKILL, remount) and a full upper-layer disk are test_writable_durability.py's.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import mmap
import os
import random
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from mfs import (MOUNTFS, Daemon, Harness, assert_same_tree, build, drop_page_cache, environment, harness,
                 mount_writable, short_run_dir, wait_for, write)

from mountfs import Dataset
from mountfs.daemon import mounts

pytestmark = pytest.mark.fuse
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (allow_other, other users)")
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
T0 = 1_600_000_000_000_000_000  # mtimes of the source files: far from "now"


# --- helpers ---------------------------------------------------------------------------


def close_copy(h: Harness, mp: str, *extra: str, env: dict[str, str] | None = None) -> str:
    """`mountfs close DIR`: the id of the new version (mounted read-only at DIR unless --no-remount)."""
    out = h.cli("close", mp, *extra, env=env).stdout
    m = re.search(r"^closed \S+ \S+ \((\w+)\)", out, re.M)
    assert m, out
    if "--no-remount" not in extra:
        assert "read-only at" in out, out
    return m.group(1)


def fails(h: Harness, *args: str, env: dict[str, str] | None = None) -> str:
    """A CLI command that must fail with one error line (no traceback); returns the line."""
    res = h.cli(*args, code=None, env=env)
    assert res.returncode != 0, res
    lines = res.stderr.strip().splitlines()
    assert "Traceback" not in res.stderr and len(lines) == 1, res.stderr
    assert lines[0].startswith("mountfs: error: "), lines[0]
    return lines[0]


def snap(root: str | os.PathLike[str], mtimes: bool = True, skip_mtime: set[str] = frozenset()) -> dict[str, Any]:
    """relative path -> (permission bits, mtime ns, sha256) of every regular file below ``root``."""
    out: dict[str, Any] = {}
    for d, dirs, files in os.walk(root):
        for f in files:
            full = os.path.join(d, f)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            assert stat.S_ISREG(st.st_mode), rel
            with open(full, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
            mt = st.st_mtime_ns if mtimes and rel not in skip_mtime else None
            out[rel] = (oct(st.st_mode & 0o7777), mt, digest)
    return out


def read_only(snapshot: dict[str, Any]) -> dict[str, Any]:
    """How a read-only mount shows files with those modes: write bits cleared (fs/tree.py)."""
    return {k: (oct((int(m, 8) & 0o555) or 0o444), mt, d) for k, (m, mt, d) in snapshot.items()}


def stored(dataset_id: str) -> dict[str, Any]:
    """relative path -> (permission bits, mtime ns, sha256) as the version holds them (its manifest and bytes)."""
    ds = Dataset.get(dataset_id=dataset_id)
    local = ds.get_local_copy()
    assert local is not None
    data = snap(local, mtimes=False)
    entries = ds.file_entries_dict
    assert sorted(entries) == sorted(data)
    return {p: (oct(e.mode & 0o7777), e.mtime_ns, data[p][2]) for p, e in entries.items()}


def sh(cwd: str | os.PathLike[str], *cmd: str) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, timeout=300)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def renameat2(old: str | os.PathLike[str], new: str | os.PathLike[str], flags: int) -> None:
    AT_FDCWD = -100
    if _libc().renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), str(new))


RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2


def _errno(fn: Callable[..., object], *args: object, **kw: object) -> int:
    try:
        fn(*args, **kw)
    except OSError as exc:
        return exc.errno or -1
    return 0


def store_packs(store: str | os.PathLike[str]) -> tuple[int, int]:
    """(objects, bytes) under a folder store's packs/."""
    n = size = 0
    for d, _, files in os.walk(Path(store) / "packs"):
        for f in files:
            n += 1
            size += os.path.getsize(os.path.join(d, f))
    return n, size


# --- 1. the user flow -------------------------------------------------------------------


def _cats(root: Path) -> Path:
    rng = random.Random(20)
    src = root / "cats"
    write(src / "labels.csv", b"file,label\n" + b"".join(b"img_%03d.jpg,cat\n" % i for i in range(40)),
          mtime_ns=T0 + 1)
    for i in range(3):
        write(src / "train" / "bad" / f"bad_{i}.jpg", rng.randbytes(3000 + i), mtime_ns=T0 + 10 + i)
    for i in range(4):
        write(src / "train" / "cls_a" / f"a_{i}.jpg", rng.randbytes(5000 + i), mtime_ns=T0 + 20 + i)
    for i in range(3):
        write(src / "train" / f"keep_{i:03d}.bin", rng.randbytes(7000 + i), mtime_ns=T0 + 30 + i)
    for i in range(6):
        write(src / "val" / f"v{i}.bin", rng.randbytes(4000 + i), mtime_ns=T0 + 40 + i)
    write(src / "notes" / "readme.txt", b"read me\n", mtime_ns=T0 + 50)
    write(src / "bin" / "run.sh", b"#!/bin/sh\necho hi\n", mode=0o755, mtime_ns=T0 + 51)
    write(src / "big.bin", rng.randbytes(20 << 20), mtime_ns=T0 + 52)
    return src


def _edit(target: Path, root: Path) -> None:
    """The same user edits on a writable mount and on a plain copy of the version."""
    new, fresh, patch = root / "new", root / "fresh", root / "patch.bin"
    sh(target, "sed", "-i", "s/cat/dog/", "labels.csv")
    sh(target, "rm", "-r", "train/bad")
    sh(target, "sh", "-c", f"cp -p {new}/*.jpg train/")
    sh(target, "mkdir", "extra")
    sh(target, "cp", "-p", str(new / "n0.jpg"), "extra/")
    sh(target, "mv", "train/cls_a", "train/cls_b")
    sh(target, "rsync", "-a", "--delete", f"{fresh}/", "val/")
    sh(target, "dd", f"if={patch}", "of=big.bin", "bs=4096", "seek=1234", "conv=notrunc", "status=none")
    sh(target, "chmod", "600", "notes/readme.txt")
    sh(target, "touch", "-m", "-d", "@1500000000", "train/keep_001.bin")


def _edits(root: Path, src: Path) -> None:
    rng = random.Random(21)
    for i in range(3):
        write(root / "new" / f"n{i}.jpg", rng.randbytes(6000 + i), mode=0o640, mtime_ns=T0 + 60 + i)
    fresh = root / "fresh"
    shutil.copytree(src / "val", fresh)  # copy2: same bytes and mtimes, so rsync keeps v0, v3, v5 as they are
    write(fresh / "v1.bin", rng.randbytes(4100), mtime_ns=T0 + 70)  # changed
    (fresh / "v2.bin").unlink()  # --delete removes it
    os.chmod(fresh / "v4.bin", 0o600)  # same size and mtime: rsync only changes the mode
    write(fresh / "v6.bin", rng.randbytes(100), mtime_ns=T0 + 71)
    write(fresh / "sub" / "v7.bin", rng.randbytes(200), mtime_ns=T0 + 72)
    write(root / "patch.bin", rng.randbytes(3 * 4096))


@pytest.mark.slow
def test_edit_with_ordinary_tools_diff_and_close(h: Harness, tmp_path: Path) -> None:
    src = _cats(tmp_path)
    v1 = build("vision", "cats", src)
    _edits(tmp_path, src)
    ref = tmp_path / "ref"
    shutil.copytree(src, ref)
    _edit(ref, tmp_path)

    mp = h.mountpoint()
    d, draft = mount_writable(h, mp, "vision/cats/1.0.0")
    assert draft != v1.id
    assert snap(mp) == snap(src)  # nothing changed yet: lazily read, all there
    assert h.cli_json("diff", mp) == {"added": [], "modified": [], "removed": [], "skipped": []}
    _edit(Path(mp), tmp_path)

    # content and modes as on a plain folder; mtimes too, but for the two files edited "now"
    now_edited = {"labels.csv", "big.bin"}
    before = snap(mp)
    assert snap(mp, skip_mtime=now_edited) == snap(ref, skip_mtime=now_edited)

    lower, after = snap(src), snap(ref)
    added = sorted(set(after) - set(lower))
    removed = sorted(set(lower) - set(after))
    assert added == sorted(["train/n0.jpg", "train/n1.jpg", "train/n2.jpg", "extra/n0.jpg", "val/v6.bin",
                            "val/sub/v7.bin"] + [f"train/cls_b/a_{i}.jpg" for i in range(4)])
    content = sorted(p for p in set(lower) & set(after) if lower[p][2] != after[p][2])
    assert content == ["big.bin", "labels.csv", "val/v1.bin"]
    got = h.cli_json("diff", mp)
    assert got["added"] == added
    assert got["removed"] == removed
    assert got["skipped"] == []
    # content changes for sure; mode- or mtime-only changes (chmod, touch, rsync's chmod) are
    # test_diff_lists_a_mode_only_change's (touch opens the file for writing: a copy-up, listed)
    meta_only = sorted(p for p in set(lower) & set(after) if lower[p] != after[p] and p not in content)
    assert meta_only == ["notes/readme.txt", "train/keep_001.bin", "val/v4.bin"]
    assert set(content) <= set(got["modified"]) <= set(content + meta_only), got["modified"]
    assert got["modified"] == sorted(got["modified"])
    text = h.cli("diff", mp).stdout.splitlines()
    assert "M labels.csv" in text and "D train/bad/bad_0.jpg" in text and "A val/sub/v7.bin" in text

    new_id = close_copy(h, mp)
    assert new_id == draft
    # the version holds exactly what the copy showed: bytes, modes, mtimes
    assert stored(new_id) == before
    ds = Dataset.get(dataset_id=new_id)
    assert ds.is_final() and ds.version == "1.0.1" and list(ds.record.parents) == [v1.id]
    # and mounted read-only at the same place; the upper layer is gone, the version holds it all
    assert snap(mp) == read_only(before)
    assert not os.path.exists(Path(h.env["MOUNTFS_CACHE_DIR"]) / "upper" / draft)
    assert _errno(os.open, Path(mp) / "labels.csv", os.O_WRONLY) == errno.EROFS
    # the parent is as it was
    assert Dataset.get(dataset_id=v1.id).is_final()
    assert_same_tree(Dataset.get(dataset_id=v1.id).get_local_copy(), src)
    assert d.log_problems() == []


def test_diff_lists_a_mode_only_change(h: Harness, tmp_path: Path) -> None:
    src = tmp_path / "s"
    write(src / "a.txt", b"a\n", mtime_ns=T0)
    write(src / "b.txt", b"b\n", mtime_ns=T0)
    build("p", "mode", src)
    mp = h.mountpoint()
    mount_writable(h, mp, "p/mode/1.0.0")
    os.chmod(Path(mp, "a.txt"), 0o600)
    os.utime(Path(mp, "b.txt"), ns=(T0 + 9, T0 + 9))
    assert h.cli_json("diff", mp)["modified"] == ["a.txt", "b.txt"]


# --- 2. rsync a tree in: the store grows by the new chunks only -----------------------------


@pytest.mark.slow
def test_rsync_a_tree_in_uploads_only_new_chunks(h: Harness, tmp_path: Path) -> None:
    rng = random.Random(2)
    src = tmp_path / "base"
    for i in range(8):
        write(src / "data" / f"d{i}.bin", rng.randbytes(1 << 20), mtime_ns=T0 + i)
    v1 = build("p", "rs", src)
    store = h.env["MOUNTFS_STORE"]
    objects0, bytes0 = store_packs(store)

    tree = tmp_path / "tree"
    new_bytes = 0
    for i in range(5):
        size = rng.randint(200_000, 900_000)
        write(tree / "new" / f"n{i}.bin", rng.randbytes(size), mode=0o640, mtime_ns=T0 + 100 + i)
        new_bytes += size
    write(tree / "new" / "deep" / "x" / "small.txt", b"small\n", mtime_ns=T0 + 200)
    new_bytes += 6
    # copies of files the store holds already: new paths, no new chunks
    (tree / "copies").mkdir()
    for i in range(4):
        shutil.copy2(src / "data" / f"d{i}.bin", tree / "copies" / f"c{i}.bin")

    mp = h.mountpoint()
    d, draft = mount_writable(h, mp, v1.id)
    sh(mp, "rsync", "-a", f"{tree}/", "./")
    want = snap(src)
    want.update(snap(tree))
    assert snap(mp) == want
    status = d.status()["writable"]
    assert status["changed_nodes"] >= 10 and status["upper_bytes"] >= new_bytes

    close_copy(h, mp)
    assert stored(draft) == want  # byte for byte, modes and mtimes
    assert snap(mp) == read_only(want)
    objects1, bytes1 = store_packs(store)
    grown = bytes1 - bytes0
    # the new files' bytes (random: nothing to compress) and pack footers; never the copies (4 MiB) or the rest
    assert new_bytes <= grown <= new_bytes + 64 * 1024, (grown, new_bytes)
    assert 1 <= objects1 - objects0 <= 3


# --- 3. POSIX semantics on one shared copy ------------------------------------------------


@dataclass
class Copy:
    h: Harness
    daemon: Daemon
    mnt: Path
    src: Path


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Copy]:
    root = tmp_path_factory.mktemp("wsem")
    env = dict(os.environ, MOUNTFS_STORE=str(root / "store"), MOUNTFS_CACHE_DIR=str(root / "cache"),
               MOUNTFS_CONFIG=os.devnull, MOUNTFS_RUN_DIR=short_run_dir())
    env.pop("MOUNTFS_CACHE_SIZE", None)
    src = root / "src"
    write(src / "file.txt", b"hello\n" * 1000, mtime_ns=T0)
    write(src / "sub" / "x.bin", os.urandom(70_000), mtime_ns=T0)
    write(src / "sub" / "y.bin", b"y" * 100, mtime_ns=T0)
    write(src / "full" / "inside.txt", b"inside\n", mtime_ns=T0)
    write(src / "mapme.bin", os.urandom(100_000), mtime_ns=T0)
    with environment(env):
        from mountfs import config

        config.set_process_config(None)
        build("sem", "w", src)
        config.set_process_config(None)
    work = root / "work"
    work.mkdir()
    with harness(env, work) as h:
        mnt = h.mountpoint()
        d, _ = mount_writable(h, mnt, "sem/w/1.0.0")
        yield Copy(h, d, Path(mnt), src)
        problems = d.log_problems()
    assert not [p for p in problems if "mkfifo" not in p], problems


def _fresh_read(path: Path) -> bytes:
    """The file's bytes as the daemon holds them, not as the kernel cached them."""
    drop_page_cache(path)
    return path.read_bytes()


def test_write_at_offsets_and_truncate(copy: Copy) -> None:
    p = copy.mnt / "offsets.bin"
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        assert os.pwrite(fd, b"abc", 0) == 3
        assert os.pwrite(fd, b"XYZ", 10_000) == 3  # a hole between
        os.ftruncate(fd, 20_000)  # grow: zeros
        assert os.fstat(fd).st_size == 20_000
        os.ftruncate(fd, 10_001)  # shrink into the last write
        os.ftruncate(fd, 12_000)  # grow again: what was cut is zeros, not the old bytes
    finally:
        os.close(fd)
    want = b"abc" + bytes(10_000 - 3) + b"X" + bytes(12_000 - 10_001)
    assert _fresh_read(p) == want
    # a lower file: shrink then grow reads zeros past the cut; sizes through stat
    f = copy.mnt / "sub" / "y.bin"
    os.truncate(f, 10)
    os.truncate(f, 50)
    assert os.stat(f).st_size == 50
    assert _fresh_read(f) == b"y" * 10 + bytes(40)


def test_append_excl_and_trunc(copy: Copy) -> None:
    p = copy.mnt / "append.txt"
    p.write_bytes(b"one\n")
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, b"two\n")  # at the end whatever the offset
        os.lseek(fd, 1, os.SEEK_SET)
        os.write(fd, b"three\n")
    finally:
        os.close(fd)
    assert _fresh_read(p) == b"one\ntwo\nthree\n"
    assert _errno(os.open, p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644) == errno.EEXIST
    fd = os.open(copy.mnt / "excl.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    assert stat.S_IMODE(os.stat(copy.mnt / "excl.txt").st_mode) == 0o600
    # O_TRUNC on a lower file and on a new one
    fd = os.open(copy.mnt / "file.txt", os.O_WRONLY | os.O_TRUNC)
    try:
        assert os.fstat(fd).st_size == 0
        os.write(fd, b"short\n")
    finally:
        os.close(fd)
    assert _fresh_read(copy.mnt / "file.txt") == b"short\n"
    fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
    os.close(fd)
    assert _fresh_read(p) == b""


def test_unlink_of_an_open_file(copy: Copy) -> None:
    p = copy.mnt / "open-unlinked.txt"
    p.write_bytes(b"still here\n")
    fd = os.open(p, os.O_RDWR)
    try:
        os.unlink(p)
        assert not p.exists()
        assert os.fstat(fd).st_nlink == 0
        assert os.pread(fd, 100, 0) == b"still here\n"
        os.pwrite(fd, b"STILL", 0)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        assert os.pread(fd, 100, 0) == b"STILL here\n"
        p.write_bytes(b"a new file of that name\n")  # the name is free
    finally:
        os.close(fd)
    assert _fresh_read(p) == b"a new file of that name\n"
    # a lower file, unlinked while open
    low = copy.mnt / "sub" / "x.bin"
    want = (copy.src / "sub" / "x.bin").read_bytes()
    fd = os.open(low, os.O_RDONLY)
    try:
        os.unlink(low)
        assert os.fstat(fd).st_nlink == 0
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        assert os.pread(fd, len(want) + 10, 0) == want
    finally:
        os.close(fd)
    assert "x.bin" not in os.listdir(copy.mnt / "sub")


def test_renames(copy: Copy) -> None:
    m = copy.mnt / "ren"
    m.mkdir()
    (m / "a").write_bytes(b"A")
    (m / "b").write_bytes(b"B")
    os.rename(m / "a", m / "b")  # over an existing file
    assert sorted(os.listdir(m)) == ["b"] and (m / "b").read_bytes() == b"A"
    (m / "c").write_bytes(b"C")
    assert _errno(renameat2, m / "c", m / "b", RENAME_NOREPLACE) == errno.EEXIST
    assert (m / "b").read_bytes() == b"A" and (m / "c").read_bytes() == b"C"
    renameat2(m / "c", m / "d", RENAME_NOREPLACE)
    assert sorted(os.listdir(m)) == ["b", "d"]
    renameat2(m / "b", m / "d", RENAME_EXCHANGE)
    assert _fresh_read(m / "b") == b"C" and _fresh_read(m / "d") == b"A"
    assert _errno(renameat2, m / "b", m / "absent", RENAME_EXCHANGE) == errno.ENOENT
    # a file and a folder swap; a folder renamed with what is in it; over an empty folder
    (m / "dir").mkdir()
    (m / "dir" / "in").write_bytes(b"in")
    renameat2(m / "d", m / "dir", RENAME_EXCHANGE)
    assert (m / "d" / "in").read_bytes() == b"in" and (m / "dir").read_bytes() == b"A"
    (m / "empty").mkdir()
    os.rename(m / "d", m / "empty")
    assert sorted(os.listdir(m)) == ["b", "dir", "empty"] and os.listdir(m / "empty") == ["in"]
    # a lower folder, whole
    os.rename(copy.mnt / "full", m / "moved-full")
    assert (m / "moved-full" / "inside.txt").read_bytes() == b"inside\n"
    assert not (copy.mnt / "full").exists()
    assert _errno(os.rename, m / "b", m / "dir" / "x") == errno.ENOTDIR
    assert _errno(os.rename, m / "moved-full", m / "empty") == errno.ENOTEMPTY


def test_rmdir_and_mkdir(copy: Copy) -> None:
    d = copy.mnt / "dirs"
    d.mkdir()
    assert _errno(os.mkdir, d) == errno.EEXIST
    (d / "kid").write_bytes(b"")
    assert _errno(os.rmdir, d) == errno.ENOTEMPTY
    assert _errno(os.rmdir, copy.mnt / "sub") == errno.ENOTEMPTY  # a lower one
    assert _errno(os.rmdir, d / "kid") == errno.ENOTDIR
    assert _errno(os.unlink, d) == errno.EISDIR
    os.unlink(d / "kid")
    os.rmdir(d)
    assert not d.exists()
    assert _errno(os.mkdir, copy.mnt / ("n" * 256)) == errno.ENAMETOOLONG


def test_chmod_utime_symlink_link_fifo(copy: Copy) -> None:
    m = copy.mnt / "attrs"
    m.mkdir()
    f = m / "f"
    f.write_bytes(b"f")
    os.chmod(f, 0o751)
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o751
    os.utime(f, ns=(T0 + 5, T0 + 7))
    assert os.stat(f).st_mtime_ns == T0 + 7
    os.chown(f, 1234, 5678)  # root may
    assert (os.stat(f).st_uid, os.stat(f).st_gid) == (1234, 5678)
    os.symlink("f", m / "ln")
    assert os.readlink(m / "ln") == "f" and (m / "ln").read_bytes() == b"f"
    assert stat.S_ISLNK(os.lstat(m / "ln").st_mode)
    os.link(f, m / "hard")
    assert os.stat(f).st_nlink == 2 and os.stat(m / "hard").st_ino == os.stat(f).st_ino
    with open(m / "hard", "ab") as fh:
        fh.write(b"+")
    assert _fresh_read(f) == b"f+"
    os.unlink(f)
    assert os.stat(m / "hard").st_nlink == 1 and _fresh_read(m / "hard") == b"f+"
    os.mkfifo(m / "fifo", 0o644)
    assert stat.S_ISFIFO(os.stat(m / "fifo").st_mode)
    assert _errno(os.link, m, m / "dirlink") == errno.EPERM
    low = copy.mnt / "sub" / "y.bin"
    os.chmod(low, 0o600)
    assert stat.S_IMODE(os.stat(low).st_mode) == 0o600
    assert "attrs/fifo" in copy.h.cli_json("diff", str(copy.mnt))["skipped"]


def test_mmap_read_and_shared_write(copy: Copy) -> None:
    p = copy.mnt / "mapped.bin"
    data = bytes(range(256)) * 64  # 16 KiB
    p.write_bytes(data)
    with open(p, "r+b") as fh:
        with mmap.mmap(fh.fileno(), 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE) as mm:
            assert mm[:256] == bytes(range(256))
            mm[4096:4101] = b"HELLO"
            mm.flush()  # msync(MS_SYNC)
    want = data[:4096] + b"HELLO" + data[4101:]
    assert _fresh_read(p) == want
    # a lower file mapped for reading (one no other test changes)
    with open(copy.mnt / "mapme.bin", "rb") as fh, mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ) as mm:
        assert mm[:] == (copy.src / "mapme.bin").read_bytes()


def test_statfs(copy: Copy) -> None:
    v = os.statvfs(copy.mnt)
    assert v.f_bsize > 0 and v.f_blocks > 0 and v.f_namemax == 255
    assert v.f_bavail <= v.f_blocks


def test_a_small_overwrite_in_a_large_file_fetches_little(h: Harness, tmp_path: Path) -> None:
    big = 40 << 20
    src = tmp_path / "src"
    write(src / "huge.bin", os.urandom(big), mtime_ns=T0)
    build("p", "huge", src)
    env = dict(h.env, MOUNTFS_CACHE_DIR=str(tmp_path / "fresh-cache"))  # nothing cached by the build
    mp = h.mountpoint()
    d, _ = mount_writable(h, mp, "p/huge/1.0.0", env=env)
    f = Path(mp) / "huge.bin"
    off = 20 << 20
    fd = os.open(f, os.O_WRONLY)
    try:
        assert os.pwrite(fd, b"\xab" * 4096, off) == 4096
        os.fsync(fd)
    finally:
        os.close(fd)
    assert os.stat(f).st_size == big
    fd = os.open(f, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        got = os.pread(fd, 3 * 4096, off - 4096)
    finally:
        os.close(fd)
    with open(src / "huge.bin", "rb") as fh:
        fh.seek(off - 4096)
        orig = fh.read(3 * 4096)
    assert got == orig[:4096] + b"\xab" * 4096 + orig[8192:]
    st = d.status()
    assert st["bytes_fetched"] < 12 << 20, st["bytes_fetched"]  # a few chunks around it, not 40 MiB
    assert st["writable"]["upper_bytes"] < 1 << 20  # the data file is sparse: the 4 KiB written
    new_id = close_copy(h, mp, env=env)
    drop_page_cache(f)
    with open(f, "rb") as fh:
        fh.seek(off - 4096)
        assert fh.read(3 * 4096) == got
    assert Dataset.get(dataset_id=new_id).is_final()


def test_a_large_lower_file_edited_in_place_reads_and_closes_right(h: Harness, tmp_path: Path) -> None:
    """Writes, truncates and a shared mmap on a file past the whole-copy-up size: against a bytearray."""
    size = 12 << 20
    model = bytearray(os.urandom(size))
    src = tmp_path / "src"
    write(src / "big.bin", bytes(model), mtime_ns=T0)
    write(src / "other.txt", b"other\n", mtime_ns=T0)
    build("p", "inplace", src)
    mp = h.mountpoint()
    d, draft = mount_writable(h, mp, "p/inplace/1.0.0")
    f = Path(mp) / "big.bin"

    def pwrite(off: int, data: bytes) -> None:
        fd = os.open(f, os.O_WRONLY)
        try:
            assert os.pwrite(fd, data, off) == len(data)
        finally:
            os.close(fd)
        end = off + len(data)
        if end > len(model):
            model.extend(bytes(end - len(model)))
        model[off:end] = data

    def truncate(n: int) -> None:
        os.truncate(f, n)
        del model[n:]
        model.extend(bytes(n - len(model)))

    pwrite(5 << 20, b"\x01" * 10_000)
    pwrite((5 << 20) + 5_000, b"\x02" * 10_000)  # overlaps the last
    truncate(3 << 20)  # cuts the written range away
    truncate(10 << 20)  # zeros from 3 MiB, not the old bytes
    pwrite(9 << 20, b"\x03" * 4096)
    pwrite((3 << 20) - 100, b"\x04" * 200)  # across the cut
    with open(f, "ab") as fh:
        fh.write(b"\x05" * 777)
    model.extend(b"\x05" * 777)
    with open(f, "r+b") as fh, mmap.mmap(fh.fileno(), 0, flags=mmap.MAP_SHARED) as mm:
        mm[1 << 20:(1 << 20) + 6] = b"MAPPED"
        mm.flush()
    model[1 << 20:(1 << 20) + 6] = b"MAPPED"
    assert os.stat(f).st_size == len(model)
    assert _fresh_read(f) == bytes(model)
    assert d.status()["writable"]["upper_bytes"] < 2 << 20  # the ranges written, not the file
    h.cli("umount", mp)  # the extents and the cut survive a remount
    mount_writable(h, mp, draft=draft)
    assert _fresh_read(f) == bytes(model)
    close_copy(h, mp)
    assert _fresh_read(f) == bytes(model)
    assert hashlib.sha256(bytes(model)).hexdigest() == stored(draft)["big.bin"][2]


def test_a_large_lower_folder_lists_whole(h: Harness, tmp_path: Path) -> None:
    """More names than one page of the lower table (4096), before and after the first change in it."""
    src = tmp_path / "src"
    for i in range(5000):
        write(src / "many" / f"f{i:05d}", b"%d\n" % i)
    build("p", "many", src)
    mp = h.mountpoint()
    mount_writable(h, mp, "p/many/1.0.0")
    many = Path(mp) / "many"
    assert len(os.listdir(many)) == 5000
    (many / "f04999").unlink()
    (many / "new").write_bytes(b"new\n")
    os.rename(many / "f00000", many / "g00000")
    names = os.listdir(many)
    assert len(names) == 5000 and "new" in names and "f04999" not in names and "g00000" in names
    assert (many / "f04500").read_bytes() == b"4500\n"
    close_copy(h, mp)
    assert sorted(os.listdir(many)) == sorted(names)


def test_links_fifos_and_symlinks_at_close(h: Harness, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "a.txt", b"a\n", mtime_ns=T0)
    build("p", "kinds", src)
    mp = h.mountpoint()
    _, draft = mount_writable(h, mp, "p/kinds/1.0.0")
    m = Path(mp)
    os.link(m / "a.txt", m / "hard-a.txt")  # a second name of a lower file
    assert os.stat(m / "a.txt").st_nlink == 2
    (m / "b.txt").write_bytes(b"b\n")
    os.link(m / "b.txt", m / "hard-b.txt")
    os.mkfifo(m / "fifo")
    os.symlink("a.txt", m / "sym")
    assert h.cli_json("diff", mp)["skipped"] == ["fifo", "sym"]
    res = h.cli("close", mp)
    assert "left out" in res.stderr and "fifo" in res.stderr and "sym" in res.stderr, res.stderr
    got = stored(draft)
    assert sorted(got) == ["a.txt", "b.txt", "hard-a.txt", "hard-b.txt"]
    assert got["hard-a.txt"][2] == got["a.txt"][2] and got["hard-b.txt"][2] == got["b.txt"][2]


def test_odd_but_valid_names_close_into_the_version(h: Harness, tmp_path: Path) -> None:
    build("p", "names", write(tmp_path / "src" / "a.txt", b"a\n", mtime_ns=T0).parent)
    mp = h.mountpoint()
    _, draft = mount_writable(h, mp, "p/names/1.0.0")
    names = ["new\nline.txt", "with space.txt", "ünï.txt", "x" * 255, "-dash", "#hash%20"]
    for n in names:
        Path(mp, n).write_bytes(n.encode())
    assert sorted(h.cli_json("diff", mp)["added"]) == sorted(names)
    close_copy(h, mp)
    got = stored(draft)
    assert sorted(got) == sorted(["a.txt", *names])
    for n in names:
        assert Path(mp, n).read_bytes() == n.encode()


def test_a_name_that_is_not_utf8_is_refused_or_left_out(h: Harness, tmp_path: Path) -> None:
    build("p", "bytes", write(tmp_path / "src" / "a.txt", b"a\n", mtime_ns=T0).parent)
    mp = h.mountpoint()
    _, draft = mount_writable(h, mp, "p/bytes/1.0.0")
    bad = os.fsencode(mp) + b"/bad\xff.txt"
    try:
        with open(bad, "wb") as fh:
            fh.write(b"x")
        made = True
    except OSError as exc:
        assert exc.errno in (errno.EINVAL, errno.EILSEQ), exc
        made = False
    res = subprocess.run([MOUNTFS, "diff", mp, "--json"],
                         capture_output=True, env=h.env, timeout=60)
    assert res.returncode == 0, res
    json.loads(res.stdout.decode("utf-8"))  # valid UTF-8 and JSON whatever the names
    res = subprocess.run([MOUNTFS, "close", mp], capture_output=True,
                         env=h.env, timeout=120)
    assert res.returncode == 0 and b"internal error" not in res.stderr, res
    assert sorted(stored(draft)) == ["a.txt"]
    if made:
        assert b"left out" in res.stderr, res.stderr


def test_no_data_file_stays_open_after_a_truncate_by_path(h: Harness, tmp_path: Path) -> None:
    build("p", "trunc", write(tmp_path / "src" / "a.txt", b"aaaa\n", mtime_ns=T0).parent)
    mp = h.mountpoint()
    d, _ = mount_writable(h, mp, "p/trunc/1.0.0")
    m = Path(mp)
    (m / "t.bin").write_bytes(os.urandom(1 << 20))
    os.truncate(m / "t.bin", 1000)  # truncate(2): no file handle
    os.truncate(m / "a.txt", 1)
    (m / "t.bin").unlink()
    assert (m / "a.txt").read_bytes() == b"a"

    def held() -> list[str]:
        out = []
        for fd in os.listdir(f"/proc/{d.pid}/fd"):
            try:
                target = os.readlink(f"/proc/{d.pid}/fd/{fd}")
            except FileNotFoundError:
                continue
            if "/upper/" in target and "/data/" in target:
                out.append(target)
        return out

    # the kernel sends RELEASE after close() returns: the read's handle goes a moment later
    wait_for(lambda: held() == [], 10, "the daemon to close every data file")


def test_the_sdk_mounts_a_writable_copy_and_finalize_closes_it(h: Harness, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "a.txt", b"a\n", mtime_ns=T0)
    write(src / "keep.txt", b"keep\n", mtime_ns=T0)
    v1 = build("p", "sdk", src)
    ds = Dataset.get(dataset_project="p", dataset_name="sdk", writable_copy=True)
    assert not ds.is_final() and ds.id != v1.id
    mp = h.mountpoint()
    with ds.mount(mp) as path:
        assert os.path.realpath(path) == mp
        Path(path, "b.txt").write_bytes(b"b\n")
        Path(path, "a.txt").unlink()
        assert h.cli_json("diff", mp) == {"added": ["b.txt"], "modified": [], "removed": ["a.txt"], "skipped": []}
        ds.finalize(auto_upload=True)
        assert ds.is_final()
        assert sorted(os.listdir(path)) == ["b.txt", "keep.txt"]  # the new version, read-only
        assert _errno(os.open, Path(path, "c.txt"), os.O_WRONLY | os.O_CREAT, 0o644) == errno.EROFS
    assert not mounts.mounted_fuse(mp)
    assert sorted(stored(ds.id)) == ["b.txt", "keep.txt"]


# --- 5. refusals ----------------------------------------------------------------------------


def test_two_writable_mounts_of_one_draft_are_refused(h: Harness, tmp_path: Path) -> None:
    v1 = build("p", "two", write(tmp_path / "s" / "a.txt", b"a\n").parent)
    one, two = h.mountpoint("one"), h.mountpoint("two")
    _, draft = mount_writable(h, one, "p/two/1.0.0")
    line = fails(h, "mount", "--writable", "--id", draft, two)
    assert draft in line and "already mounted writable" in line
    assert not os.path.ismount(two)
    # by its project/name/version too
    ver = Dataset.get(dataset_id=draft).version
    line = fails(h, "mount", "--writable", f"p/two/{ver}", two)
    assert "already mounted writable" in line
    assert Path(one, "a.txt").read_bytes() == b"a\n"
    assert v1.is_final()


def test_writable_on_a_finalized_version_is_always_a_new_child(h: Harness, tmp_path: Path) -> None:
    src = write(tmp_path / "s" / "a.txt", b"a\n").parent
    v1 = build("p", "kid", src)
    one, two = h.mountpoint("one"), h.mountpoint("two")
    _, d1 = mount_writable(h, one, "p/kid/1.0.0")
    Path(one, "a.txt").write_bytes(b"changed\n")
    _, d2 = mount_writable(h, two, "p/kid/1.0.0")  # not refused: another child
    assert len({v1.id, d1, d2}) == 3
    assert Path(two, "a.txt").read_bytes() == b"a\n"
    for draft in (d1, d2):
        ds = Dataset.get(dataset_id=draft)
        assert not ds.is_final()
        assert list(ds.record.parents) == [v1.id]
    h.cli("umount", one)
    # a finalized version by id, again a new child; the version itself never changed
    three = h.mountpoint("three")
    _, d3 = mount_writable(h, three, draft=v1.id)
    assert d3 not in (v1.id, d1, d2)
    assert_same_tree(Dataset.get(dataset_id=v1.id).get_local_copy(), src)
    # the first copy's change is kept in its draft
    h.cli("umount", two)
    h.cli("umount", three)
    _, again = mount_writable(h, one, draft=d1)
    assert again == d1 and Path(one, "a.txt").read_bytes() == b"changed\n"


def test_close_with_a_file_open_for_writing_is_refused(h: Harness, tmp_path: Path) -> None:
    src = write(tmp_path / "s" / "a.txt", b"a\n").parent
    build("p", "busy", src)
    mp = h.mountpoint()
    d, draft = mount_writable(h, mp, "p/busy/1.0.0")
    os.mkdir(Path(mp) / "sub")
    fh = open(Path(mp) / "sub" / "busy.txt", "wb")
    try:
        fh.write(b"being written\n")
        fh.flush()
        reader = open(Path(mp) / "a.txt", "rb")  # open for reading: no obstacle
        line = fails(h, "close", mp)
        assert "sub/busy.txt" in line and "open for writing" in line, line
        assert d.alive() and os.path.ismount(mp)
        assert Path(mp, "sub", "busy.txt").read_bytes() == b"being written\n"
        Path(mp, "after.txt").write_bytes(b"the copy still takes writes\n")  # not frozen by the refusal
    finally:
        fh.close()
        reader.close()
    new_id = close_copy(h, mp)
    assert new_id == draft
    assert Path(mp, "sub", "busy.txt").read_bytes() == b"being written\n"
    assert Path(mp, "after.txt").read_bytes() == b"the copy still takes writes\n"


def test_diff_and_close_of_a_read_only_mount_are_one_clear_error(h: Harness, tmp_path: Path) -> None:
    v1 = build("p", "ro", write(tmp_path / "s" / "a.txt", b"a\n").parent)
    mp = h.mountpoint()
    h.mount(v1.id, mp)
    assert "read-only mount" in fails(h, "diff", mp)
    assert "read-only mount" in fails(h, "close", mp)
    assert "no mountfs daemon" in fails(h, "diff", str(tmp_path))


def test_a_drafts_added_files_show_in_its_writable_mount(h: Harness, tmp_path: Path) -> None:
    src = write(tmp_path / "s" / "a.txt", b"a\n").parent
    draft = build("p", "draft", src, finalize=False, upload=False)
    mp = h.mountpoint()
    _, got = mount_writable(h, mp, draft=draft.id)  # uploaded first
    assert got == draft.id
    assert Path(mp, "a.txt").read_bytes() == b"a\n"
    Path(mp, "b.txt").write_bytes(b"b\n")
    close_copy(h, mp)
    assert sorted(os.listdir(mp)) == ["a.txt", "b.txt"]


# --- 7. other users of a root mount -------------------------------------------------------------


def _as_nobody(code: str) -> str:
    res = subprocess.run([*NOBODY, sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res
    return res.stdout.strip()


@root_only
def test_modes_hold_for_other_users_of_a_root_mount(h: Harness, tmp_path: Path) -> None:
    v1 = build("p", "perm", write(tmp_path / "s" / "public.txt", b"for all\n").parent)
    mp = tempfile.mkdtemp(prefix="mfs-wpub-", dir="/tmp")  # tmp_path's folders are root-only
    os.chmod(mp, 0o755)
    try:
        mount_writable(h, mp, v1.id)
        private = Path(mp, "private.txt")
        private.write_bytes(b"root only\n")
        os.chmod(private, 0o600)
        probe = (
            "import os, sys\n"
            "def e(f, *a):\n"
            "    try:\n"
            "        f(*a)\n"
            "    except OSError as x:\n"
            "        return x.errno\n"
            "    return 0\n"
            f"p = {str(private)!r}; q = {os.path.join(mp, 'public.txt')!r}\n"
            "print(e(open, p, 'rb'), e(os.chmod, p, 0o666), e(os.chown, p, 65534, 65534),"
            f" e(os.chmod, q, 0o666), e(open, q, 'ab'), e(os.mkdir, {os.path.join(mp, 'theirs')!r}),"
            " open(q, 'rb').read() == b'for all\\n')\n"
        )
        got = _as_nobody(probe).split()
        want = [errno.EACCES, errno.EPERM, errno.EPERM, errno.EPERM, errno.EACCES, errno.EACCES]
        assert got == [*map(str, want), "True"], got
        assert private.read_bytes() == b"root only\n"  # its owner reads it
        assert stat.S_IMODE(os.stat(private).st_mode) == 0o600 and os.stat(private).st_uid == 0
    finally:
        h.close()
        os.rmdir(mp)
