"""docs/SEMANTICS.md, checked through a real mount: every operation's answer and every errno it names.

One catalog daemon is shared by the tests that only read; the tests that
change the catalog, break the store or fill the disk start their own.
Other errnos of the page have their tests beside the feature: EIO for a store
that stops answering in test_store_hang.py, for damaged packs in
test_daemon_lifecycle.py (``test_corrupted_pack_gives_eio_never_wrong_bytes``).
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest
from mfs import (Daemon, Harness, assert_same_tree, build, delete_version, drop_page_cache, environment, harness,
                 move_version, random_tree, restore_version, short_run_dir, tmpfs, wait_for, write)

from mountfs import Dataset

pytestmark = pytest.mark.fuse
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a tiny tmpfs, allow_other)")
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


@dataclass
class Shared:
    h: Harness
    daemon: Daemon
    mnt: Path
    version: Path  # sem/files/1.0.0 in the mount
    src: Path
    draft_id: str
    allowed: Path  # the folder of external sources the daemon may read


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    root = tmp_path_factory.mktemp("semantics")
    env = dict(os.environ, MOUNTFS_STORE=str(root / "store"), MOUNTFS_CACHE_DIR=str(root / "cache"),
               MOUNTFS_CONFIG=os.devnull, MOUNTFS_RUN_DIR=short_run_dir())
    env.pop("MOUNTFS_CACHE_SIZE", None)
    env.pop("MOUNTFS_EXTERNAL_ALLOW", None)
    src = root / "src"
    write(src / "file.txt", b"hello\n" * 1000)
    write(src / "sub" / "x.bin", os.urandom(70_000))
    allowed, refused = root / "allowed", root / "refused"
    write(allowed / "present.txt", b"from an allowed folder\n")
    write(allowed / "gone.txt", b"deleted after it was added\n")
    write(refused / "secret.txt", b"never served\n")
    with environment(env):
        ds = Dataset.create(dataset_name="files", dataset_project="sem")
        ds.add_files(str(src))
        for name, folder in (("present.txt", allowed), ("gone.txt", allowed), ("secret.txt", refused)):
            ds.add_external_files(f"file://{folder / name}", dataset_path="ext")
        ds.finalize(auto_upload=True)
        draft = build("sem", "files", random_tree(root / "draft", seed=1, files=2), finalize=False)
    (allowed / "gone.txt").unlink()
    env["MOUNTFS_EXTERNAL_ALLOW"] = f"{allowed}/"
    work = root / "work"
    work.mkdir()
    with harness(env, work) as h:
        mnt = h.mountpoint()
        d = h.start(mnt, how="daemon-run")
        yield Shared(h, d, Path(mnt), Path(mnt) / "sem" / "files" / "1.0.0", src, draft.id, allowed)
        problems = d.log_problems()
    # the two expected: one refusal (WARNING, once per URL) and the missing source (ERROR, per read)
    unexpected = [p for p in problems if "secret.txt may not be read" not in p and "gone.txt" not in p]
    assert not unexpected, unexpected


def _errno(fn: Callable[..., object], *args: object) -> int:
    """The errno ``fn(*args)`` fails with (0 if it succeeds)."""
    try:
        fn(*args)
    except OSError as exc:
        return exc.errno or -1
    return 0


def test_lookups_that_find_nothing(shared: Shared) -> None:
    mnt, v = shared.mnt, shared.version
    assert _errno(os.stat, mnt / "absent") == errno.ENOENT  # a catalog level
    assert _errno(os.stat, mnt / "sem" / "absent") == errno.ENOENT
    assert _errno(os.stat, v / "absent") == errno.ENOENT  # inside a version
    assert _errno(os.stat, v / "sub" / "absent") == errno.ENOENT
    assert _errno(os.stat, mnt / "sem" / "files" / "1.0.1") == errno.ENOENT  # a draft is not in the mount
    assert _errno(os.stat, mnt / ".by-id" / shared.draft_id) == errno.ENOENT
    assert _errno(os.stat, os.fsencode(v) + b"/\xff\xfe") == errno.ENOENT  # not UTF-8: simply not there
    assert _errno(os.stat, v / ("a" * 300)) == errno.ENOENT
    # what the kernel answers itself
    assert _errno(os.stat, v / "file.txt" / "x") == errno.ENOTDIR
    assert _errno(os.open, v / "file.txt", os.O_RDONLY | os.O_DIRECTORY) == errno.ENOTDIR
    assert _errno(os.listdir, v / "file.txt") == errno.ENOTDIR
    latest = mnt / "sem" / "files" / "latest"
    assert os.readlink(latest) == "1.0.0"
    assert _errno(os.open, latest, os.O_RDONLY | os.O_NOFOLLOW) == errno.ELOOP
    assert _errno(os.readlink, v / "file.txt") == errno.EINVAL
    assert _errno(os.readlink, mnt / "sem") == errno.EINVAL


def test_a_directory_is_not_read(shared: Shared) -> None:
    for d in (shared.version, shared.version / "sub", shared.mnt / "sem"):
        fd = os.open(d, os.O_RDONLY)
        try:
            assert _errno(os.read, fd, 10) == errno.EISDIR
        finally:
            os.close(fd)
        assert _errno(os.open, d, os.O_WRONLY) == errno.EISDIR


def test_every_write_is_erofs(shared: Shared) -> None:
    v = shared.version
    f = v / "file.txt"
    before = f.read_bytes()
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC, os.O_WRONLY | os.O_APPEND,
                  os.O_WRONLY | os.O_CREAT):
        assert _errno(os.open, f, flags) == errno.EROFS, flags
    assert _errno(os.open, v / "new", os.O_RDONLY | os.O_CREAT, 0o644) == errno.EROFS
    writes: list[tuple[Callable[..., object], tuple[object, ...]]] = [
        (os.mkdir, (v / "d",)), (os.mkdir, (shared.mnt / "newproject",)), (os.rmdir, (v / "sub",)),
        (os.unlink, (f,)), (os.unlink, (shared.mnt / "sem" / "files" / "latest",)),
        (os.rename, (f, v / "moved")), (os.rename, (shared.mnt / "sem", shared.mnt / "renamed")),
        (os.symlink, ("x", v / "link")), (os.link, (f, v / "hard")), (os.mknod, (v / "fifo", stat.S_IFIFO | 0o644)),
        (os.chmod, (f, 0o777)), (os.chown, (f, 1, 1)), (os.utime, (f, (1, 1))), (os.truncate, (f, 0)),
        (os.setxattr, (f, "user.x", b"1")), (os.removexattr, (f, "user.x")),
    ]
    for fn, args in writes:
        assert _errno(fn, *args) == errno.EROFS, (fn.__name__, args)
    assert not os.access(f, os.W_OK) and os.access(f, os.R_OK)
    # O_CREAT of a file that exists opens it for reading (with O_EXCL it is EEXIST), and so does O_APPEND
    os.close(os.open(f, os.O_RDONLY | os.O_APPEND))
    fd = os.open(f, os.O_RDONLY | os.O_CREAT)
    try:
        assert os.read(fd, 6) == b"hello\n"
        assert _errno(os.write, fd, b"x") == errno.EBADF
        assert _errno(lambda: mmap.mmap(fd, 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)) == (
            errno.EACCES)
    finally:
        os.close(fd)
    assert _errno(os.open, f, os.O_RDONLY | os.O_CREAT | os.O_EXCL) == errno.EEXIST
    assert f.read_bytes() == before


def test_reads_and_what_succeeds_without_effect(shared: Shared) -> None:
    f = shared.version / "sub" / "x.bin"
    want = (shared.src / "sub" / "x.bin").read_bytes()
    fd = os.open(f, os.O_RDONLY | os.O_DIRECT | os.O_NOATIME)
    try:
        buf = mmap.mmap(-1, 1 << 17)
        assert os.preadv(fd, [buf], 0) == len(want) and buf[:len(want)] == want
        os.fsync(fd)  # flush/fsync: the kernel is told once they are not needed, then succeeds itself
        os.fdatasync(fd)
        fcntl.flock(fd, fcntl.LOCK_SH)  # locks are the kernel's, local to this machine
        fcntl.lockf(fd, fcntl.LOCK_SH)
        assert os.lseek(fd, 0, os.SEEK_HOLE) == len(want)
    finally:
        os.close(fd)
    with open(f, "rb") as fh, mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ) as m:
        assert m[:] == want
    assert _errno(os.getxattr, f, "user.x") == errno.EOPNOTSUPP
    assert _errno(os.listxattr, f) == errno.EOPNOTSUPP
    st = os.stat(f)
    assert (st.st_nlink, st.st_uid, st.st_gid, st.st_blksize, st.st_size) == (1, os.getuid(), os.getgid(), 1 << 20,
                                                                               len(want))
    assert st.st_atime_ns == st.st_mtime_ns == st.st_ctime_ns
    assert stat.S_IMODE(st.st_mode) == 0o444  # 0o644 in the source: write bits masked
    assert stat.S_IMODE(os.stat(shared.version).st_mode) == stat.S_IMODE(os.stat(shared.mnt).st_mode) == 0o555
    vfs = os.statvfs(shared.mnt)
    assert (vfs.f_bsize, vfs.f_namemax, vfs.f_blocks, vfs.f_files) == (1 << 20, 255, 0, 0)
    assert vfs.f_flag & os.ST_RDONLY and vfs.f_flag & os.ST_NOSUID and vfs.f_flag & os.ST_NODEV


def test_external_sources(shared: Shared) -> None:
    ext = shared.version / "ext"
    assert (ext / "present.txt").read_bytes() == b"from an allowed folder\n"
    # listed (its size and stat are the manifest's), but its source is gone: EIO, like a damaged pack
    assert os.stat(ext / "gone.txt").st_size == len(b"deleted after it was added\n")
    for _ in range(2):
        assert _errno(Path(ext / "gone.txt").read_bytes) == errno.EIO
    # a source the operator's allow-list leaves out: EACCES, whoever reads
    for _ in range(2):
        assert _errno(Path(ext / "secret.txt").read_bytes) == errno.EACCES
    refusals = [line for line in shared.daemon.log_text().splitlines() if "secret.txt may not be read" in line]
    assert len(refusals) == 1, refusals  # logged once per URL


def _mountinfo(mp: Path) -> tuple[set[str], set[str]]:
    """(mount options, superblock options) of ``mp``."""
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            if fields[4] == str(mp):
                sep = fields.index("-")
                return set(fields[5].split(",")), set(fields[sep + 3].split(","))
    raise AssertionError(f"{mp} is not mounted")


def test_mount_options(shared: Shared) -> None:
    opts, sb = _mountinfo(shared.mnt)
    assert {"ro", "nosuid", "nodev"} <= opts, opts
    assert "default_permissions" in sb, sb
    assert ("allow_other" in sb) == (os.geteuid() == 0), sb


# --- the catalog changing under a running daemon ---------------------------------


@pytest.mark.allow_warnings
def test_rename_move_delete_without_restart(h: Harness, tmp_path: Path) -> None:
    src = random_tree(tmp_path / "v", seed=1, files=6, max_size=200_000)
    v = build("p", "n", src)
    keep_src = random_tree(tmp_path / "k", seed=2, files=3)
    kept = build("p", "kept", keep_src)
    mp = Path(h.mountpoint())
    d = h.start(str(mp))
    old = mp / "p" / "n" / "1.0.0"
    assert_same_tree(old, src)
    assert_same_tree(mp / "p" / "kept" / "1.0.0", keep_src)
    rel = sorted(p.relative_to(src) for p in src.rglob("*") if p.is_file() and p.stat().st_size > 8192)[0]
    ino = os.stat(old / rel).st_ino
    fd = os.open(old / rel, os.O_RDONLY)
    root_fd = os.open(old, os.O_RDONLY | os.O_DIRECTORY)
    held = [fd, root_fd]  # closed at the end, whatever happens
    try:
        # renamed: at its new path after a refresh, gone from the old one; same inodes; open files read on
        move_version(v.id, "p", "renamed")
        new = mp / "p" / "renamed" / "1.0.0"
        wait_for(lambda: new.exists() and not old.exists(), 30, "the version at its new path")
        assert os.stat(new / rel).st_ino == ino
        assert_same_tree(new, src)
        drop_page_cache(new / rel)
        assert os.pread(fd, 100, 5000) == (src / rel).read_bytes()[5000:5100]
        # moved to another project
        move_version(v.id, "q/sub", "moved")
        moved = mp / "q" / "sub" / "moved" / "1.0.0"
        wait_for(lambda: moved.exists() and not new.exists(), 30, "the version in its new project")
        assert os.stat(moved / rel).st_ino == ino and os.fstat(root_fd).st_ino == os.stat(moved).st_ino

        # deleted: gone by every path; a held folder is ESTALE, an open file's reads EIO
        drop_page_cache(moved / rel)
        project_fd = os.open(mp / "q", os.O_RDONLY | os.O_DIRECTORY)
        held.append(project_fd)
        place = delete_version(v.id)
        wait_for(lambda: not moved.exists(), 30, "the deleted version to disappear")
        assert v.id not in os.listdir(mp / ".by-id") and "q" not in os.listdir(mp)
        assert _errno(os.listdir, project_fd) == errno.ENOENT  # a catalog folder that went with it
        # a version root's attributes time out after 1 s: then the kernel asks, and hears ESTALE
        wait_for(lambda: _errno(os.fstat, root_fd) == errno.ESTALE, 10, "ESTALE on the held folder")
        assert _errno(os.listdir, root_fd) == errno.ESTALE
        assert _errno(os.pread, fd, 100, 0) == errno.EIO
        # its file table left the cache; the other version's stayed
        wait_for(lambda: d.status()["catalog"]["tables_dropped"] >= 1, 30, "the deleted version's table to go")
        assert_same_tree(mp / "p" / "kept" / "1.0.0", keep_src)
        assert d.log_text().count(f"import version={kept.id}") == 1

        # back (its pointer restored): served again, at the same inode numbers
        restore_version(v.id, place)
        back = mp / "q" / "sub" / "moved" / "1.0.0"
        wait_for(back.exists, 30, "the restored version")
        wait_for(lambda: _errno(os.fstat, root_fd) == 0, 10, "the held folder to work again")
        assert sorted(os.listdir(project_fd)) == ["sub"]
        assert _errno(os.pread, fd, 100, 0) == errno.EIO  # until the version is opened again
        assert os.stat(back / rel).st_ino == ino
        assert_same_tree(back, src)
        assert os.pread(fd, 100, 5000) == (src / rel).read_bytes()[5000:5100]
    finally:
        for held_fd in held:
            os.close(held_fd)
    assert d.alive()


@root_only
def test_modes_are_enforced_for_other_users(h: Harness, tmp_path: Path) -> None:
    """default_permissions: the kernel checks the (masked) modes for every user of a root mount."""
    src = tmp_path / "modes"
    write(src / "private.bin", b"owner only\n", mode=0o600)
    write(src / "public.bin", b"for everyone\n", mode=0o644)
    ds = build("sem", "modes", src)
    mp = tempfile.mkdtemp(prefix="mfs-pub-", dir="/tmp")  # tmp_path's folders are root-only
    os.chmod(mp, 0o755)
    try:
        h.mount(ds.id, mp)
        res = subprocess.run([*NOBODY, "cat", os.path.join(mp, "private.bin")], capture_output=True, timeout=60)
        assert res.returncode != 0 and b"Permission denied" in res.stderr, res
        res = subprocess.run([*NOBODY, "cat", os.path.join(mp, "public.bin")], capture_output=True, timeout=60)
        assert res.stdout == b"for everyone\n", res
        assert Path(mp, "private.bin").read_bytes() == b"owner only\n"  # its owner (the daemon's user) reads it
    finally:
        h.close()
        os.rmdir(mp)


def _loop_in_catalog(store: Path) -> Path:
    """A symlink loop among the version pointers: listing the catalog raises OSError (ELOOP), not a mountfs error."""
    loop = store / "catalog" / "p" / "n" / "loop"
    os.symlink("loop", loop)
    return loop


@pytest.mark.allow_warnings
def test_a_refresh_that_raises_is_logged_once_and_retried(h: Harness, tmp_path: Path) -> None:
    store = Path(h.env["MOUNTFS_STORE"])
    src = random_tree(tmp_path / "v", seed=1, files=3)
    build("p", "n", src)
    mp = h.mountpoint()
    d = h.start(mp)
    assert_same_tree(Path(mp) / "p/n/1.0.0", src)
    loop = _loop_in_catalog(store)
    wait_for(lambda: not d.alive() or d.status().get("catalog", {}).get("failures", 0) >= 2, 30,
             "two refreshes to fail")
    assert d.alive(), d.log_text()[-3000:]
    assert "Too many levels of symbolic links" in d.status()["catalog"]["error"]
    assert_same_tree(Path(mp) / "p/n/1.0.0", src)  # the last good snapshot is served meanwhile
    failed = [line for line in d.log_text().splitlines() if "catalog refresh failed" in line]
    assert len(failed) == 1 and "ERROR" in failed[0], failed
    loop.unlink()
    src2 = random_tree(tmp_path / "v2", seed=2, files=2)
    build("p", "n", src2)
    wait_for(lambda: "1.0.1" in os.listdir(Path(mp) / "p/n"), 40, "the refresh to work again")
    assert d.status()["catalog"]["error"] == "" and "catalog refresh works again" in d.log_text()
    assert_same_tree(Path(mp) / "p/n/1.0.1", src2)


@pytest.mark.allow_warnings
def test_a_first_refresh_that_fails_still_mounts(h: Harness, tmp_path: Path) -> None:
    store = Path(h.env["MOUNTFS_STORE"])
    src = random_tree(tmp_path / "v", seed=1, files=3)
    v = build("p", "n", src)
    loop = _loop_in_catalog(store)
    mp = h.mountpoint()
    d = h.start(mp)  # comes up: an empty catalog and the error in `mountfs status`
    assert os.listdir(mp) == [".by-id"] and os.listdir(Path(mp) / ".by-id") == []
    status = d.status()["catalog"]
    assert status["refreshes"] == 0 and status["failures"] >= 1 and status["error"]
    loop.unlink()
    wait_for(lambda: "p" in os.listdir(mp), 40, "the catalog to appear")
    assert_same_tree(Path(mp) / "p/n/1.0.0", src)
    assert_same_tree(Path(mp) / ".by-id" / v.id, src)


# --- the local disk filling up ---------------------------------------------------------


@pytest.fixture
def small_disk(h: Harness, tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs for the cache."""
    with tmpfs(h, tmp_path / "small-disk", "16m") as disk:
        yield disk


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        block = b"\0" * (64 << 10)
        try:
            while True:
                fh.write(block)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


@root_only
@pytest.mark.allow_warnings
def test_a_full_cache_disk_is_enospc(h: Harness, small_disk: Path, tmp_path: Path) -> None:
    src = tmp_path / "many"
    for i in range(3000):
        write(src / f"d{i % 30}" / f"file-with-a-longish-name-{i:05d}.txt", b"%d\n" % i)
    build("p", "many", src)
    mp = h.mountpoint()
    d = h.start(mp, env=dict(h.env, MOUNTFS_CACHE_DIR=str(small_disk / "cache")))
    version = Path(mp) / "p" / "many" / "1.0.0"
    assert set(os.listdir(Path(mp) / "p" / "many")) == {"1.0.0", "latest"}  # the catalog needs no writes
    filler = _fill(small_disk)
    # opening the version imports its file table into the cache: nothing to serve without writing
    assert _errno(os.listdir, version) == errno.ENOSPC
    assert d.alive()
    filler.unlink()
    # the next request tries again
    assert len(os.listdir(version)) == 30
    assert_same_tree(version, src)
    assert any("no space left in the cache" in line for line in d.log_problems())


# --- listings: "." and "..", resumable at every size of buffer ----------------------------


def _getdents(path: Path, bufsize: int) -> list[tuple[str, int]]:
    """(name, d_ino) of every entry of ``path`` through getdents64 with a ``bufsize``-byte buffer: a small
    buffer makes the kernel stop and resume the FUSE listing at every entry's position."""
    import ctypes
    import platform
    import struct

    nr = {"x86_64": 217, "aarch64": 61}.get(platform.machine())
    if nr is None:
        pytest.skip(f"getdents64's number on {platform.machine()} is not known here")
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(bufsize)
    out: list[tuple[str, int]] = []
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        while True:
            n = libc.syscall(nr, fd, buf, bufsize)
            assert n >= 0, os.strerror(ctypes.get_errno())
            if n == 0:
                return out
            raw, off = buf.raw[:n], 0
            while off < n:
                ino, _, reclen = struct.unpack_from("QqH", raw, off)
                name = raw[off + 19:off + reclen].split(b"\0", 1)[0]
                out.append((os.fsdecode(name), ino))
                off += reclen
    finally:
        os.close(fd)


def test_listings_have_dot_and_dotdot_first(shared: Shared) -> None:
    mnt, v = shared.mnt, shared.version
    for d in (mnt, mnt / "sem", mnt / "sem" / "files", mnt / ".by-id", v, v / "sub"):
        names = [n for n, _ in _getdents(d, 1 << 16)]
        assert names[:2] == [".", ".."] and sorted(names[2:]) == sorted(os.listdir(d)), (d, names)
        got = dict(_getdents(d, 1 << 16))
        assert got["."] == os.stat(d).st_ino, d
        if d not in (mnt, v, v / "sub"):  # catalog folders know their parent
            assert got[".."] == os.stat(d / "..").st_ino, d
    ls = subprocess.run(["ls", "-1a", v], capture_output=True, text=True, check=True).stdout.split()
    assert ls[:2] == [".", ".."] and sorted(ls[2:]) == sorted(os.listdir(v))


def test_a_large_listing_resumes_at_every_entry(h: Harness, tmp_path: Path) -> None:
    src = tmp_path / "many"
    for i in range(600):  # a few pages of the tree's own listing (READDIR_PAGE)
        write(src / f"file-{i:04d}-{'x' * 40}.txt", b"x")
    write(src / "sub" / "one", b"1")
    build("big", "dir", src)
    mnt = Path(h.mountpoint())
    h.start(str(mnt))
    v = mnt / "big" / "dir" / "1.0.0"
    want = [".", ".."] + sorted(os.listdir(v))
    for bufsize in (1 << 16, 4096, 96):  # 96 bytes: about one entry per call
        names = [n for n, _ in _getdents(v, bufsize)]
        assert len(names) == len(set(names)) == 603 and sorted(names) == sorted(want), bufsize
        assert names[:2] == [".", ".."]
    for bufsize in (4096, 64):
        names = [n for n, _ in _getdents(mnt / "big", bufsize)]
        assert names == [".", "..", "dir"], names


# --- the catalog's folders carry the newest version's time ---------------------------------


def test_catalog_folders_are_dated_by_their_newest_version(shared: Shared) -> None:
    mnt = shared.mnt
    version_time = os.stat(shared.version).st_mtime_ns
    assert version_time > 0
    for d in (mnt, mnt / "sem", mnt / "sem" / "files", mnt / ".by-id"):
        assert os.stat(d).st_mtime_ns == version_time, d
    assert os.lstat(mnt / "sem" / "files" / "latest").st_mtime_ns == version_time
    ls = subprocess.run(["ls", "-ld", "--time-style=+%Y", mnt / "sem"], capture_output=True, text=True,
                        check=True).stdout
    assert " 1970 " not in ls, ls


def test_a_writable_copys_listings_have_dot_and_dotdot_and_resume(h: Harness, tmp_path: Path) -> None:
    src = tmp_path / "w"
    for i in range(150):
        write(src / f"f{i:03d}-{'y' * 30}", b"y")
    draft = build("w", "copy", src, finalize=False)
    mp = Path(h.mountpoint("wcopy"))
    h.mount(draft.id, str(mp), "--writable")
    (mp / "added").write_bytes(b"new")
    os.unlink(mp / f"f000-{'y' * 30}")
    want = sorted([".", ".."] + os.listdir(mp))
    for bufsize in (1 << 16, 80):
        got = _getdents(mp, bufsize)
        names = [n for n, _ in got]
        assert names[:2] == [".", ".."] and sorted(names) == want and len(names) == len(set(names)), bufsize
        assert dict(got)["."] == os.stat(mp).st_ino
    h.cli("umount", str(mp))
