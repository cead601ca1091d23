"""Writable copies (issue 20) that outlive their daemon: fsync'ed changes survive a SIGKILL, a clean unmount keeps
everything, and a full disk under the upper layer is ENOSPC to the writer and damages nothing.

The editing itself, `diff`, `close` and the refusals are test_writable_copy.py's.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import random
import re
import signal
import stat
from pathlib import Path
from typing import Any, Iterator

import pytest
from mfs import Daemon, Harness, build, drop_page_cache, mount_writable, tmpfs, wait_for, write

from mountfs import Dataset
from mountfs.daemon import mounts

pytestmark = pytest.mark.fuse
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a tiny tmpfs)")
T0 = 1_600_000_000_000_000_000


def close_copy(h: Harness, mp: str, env: dict[str, str] | None = None) -> str:
    out = h.cli("close", mp, env=env).stdout
    m = re.search(r"^closed \S+ \S+ \((\w+)\)", out, re.M)
    assert m and "read-only at" in out, out
    return m.group(1)


def snap(root: str | os.PathLike[str]) -> dict[str, Any]:
    """relative path -> (kind and permission bits, mtime ns, sha256 or link target) below ``root``."""
    out: dict[str, Any] = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(d, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISDIR(st.st_mode):
                out[rel] = (oct(st.st_mode), None, None)
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = (oct(st.st_mode), None, os.readlink(full))
            else:
                with open(full, "rb") as fh:
                    out[rel] = (oct(st.st_mode), st.st_mtime_ns, hashlib.sha256(fh.read()).hexdigest())
    return out


def files_only(s: dict[str, Any]) -> dict[str, Any]:
    """The regular files of a ``snap``, with permission bits only: what a version holds."""
    return {k: (oct(int(m, 8) & 0o7777), mt, h) for k, (m, mt, h) in s.items() if stat.S_ISREG(int(m, 8))}


def stored(dataset_id: str) -> dict[str, Any]:
    """What the version holds, in ``files_only``'s form."""
    ds = Dataset.get(dataset_id=dataset_id)
    assert ds.is_final()
    local = ds.get_local_copy()
    assert local is not None
    out = {}
    for p, e in ds.file_entries_dict.items():
        with open(os.path.join(local, p), "rb") as fh:
            out[p] = (oct(e.mode & 0o7777), e.mtime_ns, hashlib.sha256(fh.read()).hexdigest())
    return out


def _fsynced(path: Path, data: bytes, offset: int | None = None) -> None:
    """Write ``data`` (whole file, or at ``offset`` of an existing one) and fsync it."""
    flags = os.O_WRONLY | (os.O_CREAT | os.O_TRUNC if offset is None else 0)
    fd = os.open(path, flags, 0o644)
    try:
        os.pwrite(fd, data, offset or 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def _kill(d: Daemon, sig: int = signal.SIGKILL) -> None:
    os.kill(d.pid, sig)
    wait_for(lambda: not d.alive(), 15, f"daemon {d.pid} to die")


# --- 4. fsync, SIGKILL, remount ---------------------------------------------------------------


@pytest.mark.allow_warnings
def test_fsynced_changes_survive_a_sigkill_and_a_clean_umount_keeps_everything(h: Harness, tmp_path: Path) -> None:
    rng = random.Random(4)
    src = tmp_path / "src"
    write(src / "small.txt", b"small\n", mtime_ns=T0)
    write(src / "gone.txt", b"to be deleted\n", mtime_ns=T0)
    write(src / "dir" / "moved.txt", b"moved\n", mtime_ns=T0)
    write(src / "big.bin", rng.randbytes(12 << 20), mtime_ns=T0)  # larger than a whole copy-up
    build("p", "dur", src)
    mp = h.mountpoint()
    d, draft = mount_writable(h, mp, "p/dur/1.0.0")
    m = Path(mp)

    _fsynced(m / "new.bin", rng.randbytes(300_000))
    _fsynced(m / "small.txt", b"SMALL", 0)
    _fsynced(m / "big.bin", b"\x5a" * 8192, 5 << 20)
    os.truncate(m / "big.bin", (12 << 20) - 1000)
    (m / "made").mkdir()
    os.rename(m / "dir" / "moved.txt", m / "made" / "moved.txt")
    (m / "gone.txt").unlink()
    os.symlink("small.txt", m / "link")
    os.chmod(m / "small.txt", 0o600)
    os.utime(m / "new.bin", ns=(T0 + 3, T0 + 3))
    held = os.open(m / "new.bin", os.O_RDONLY)  # open at the kill
    _fsynced(m / "last.txt", b"the fsync that makes all before it durable\n")
    want = snap(mp)
    assert d.status()["writable"]["changed_nodes"] > 0

    # an unlinked-but-open file at the kill: nobody can reach it afterwards
    _fsynced(m / "orphan.txt", b"orphan\n")
    orphan = os.open(m / "orphan.txt", os.O_RDONLY)
    os.unlink(m / "orphan.txt")
    _kill(d)
    for fd in (held, orphan):
        with contextlib.suppress(OSError):  # ECONNABORTED: its mount is gone
            os.close(fd)
    assert mounts.mounted_fuse(mp) and mounts.is_stale(mp)
    assert os.path.exists(d.runtime.info)

    h.cli("umount", mp)  # the stale mount and the runtime files are cleaned
    assert not mounts.mounted_fuse(mp) and not os.path.exists(d.runtime.info)
    d2, again = mount_writable(h, mp, draft=draft)
    assert again == draft and d2.pid != d.pid
    assert snap(mp) == want

    # not fsync'ed, then a clean unmount: kept too
    Path(mp, "unsynced.txt").write_bytes(b"never fsync'ed\n")
    os.rename(m / "made", m / "made2")
    with open(m / "big.bin", "r+b") as fh:
        fh.seek(1 << 20)
        fh.write(b"\x11" * 100)
    want = snap(mp)
    h.cli("umount", mp)
    wait_for(lambda: not d2.alive(), 15, "the daemon to exit")
    d3, _ = mount_writable(h, mp, draft=draft)
    assert snap(mp) == want

    # SIGTERM stops it cleanly too
    _kill(d3, signal.SIGTERM)
    h.cli("umount", mp, code=None)
    mount_writable(h, mp, draft=draft)
    drop_page_cache(mp)
    assert snap(mp) == want
    new_id = close_copy(h, mp)
    assert stored(new_id) == {k: v for k, v in files_only(want).items()}


def _fails(h: Harness, *args: str) -> str:
    res = h.cli(*args, code=None)
    lines = res.stderr.strip().splitlines()
    assert res.returncode != 0 and len(lines) == 1 and lines[0].startswith("mountfs: error: "), res
    return lines[0]


def test_a_draft_changed_while_unmounted_is_refused_until_the_copy_is_discarded(h: Harness, tmp_path: Path) -> None:
    build("p", "moved", write(tmp_path / "src" / "a.txt", b"a\n", mtime_ns=T0).parent)
    mp = h.mountpoint()
    d, draft = mount_writable(h, mp, "p/moved/1.0.0")
    Path(mp, "b.txt").write_bytes(b"b\n")
    status = h.cli("status").stdout
    assert "writable: " in status and "changed" in status, status
    assert d.status()["writable"]["changed_nodes"] >= 1
    assert "mounted" in _fails(h, "close", "--discard-copy", "--id", draft)  # not while it is served
    h.cli("umount", mp)
    # the draft's own files change under the unmounted copy
    ds = Dataset.get(dataset_id=draft)
    ds.add_files(str(write(tmp_path / "more" / "c.txt", b"c\n").parent))
    ds.upload(show_progress=False)
    line = _fails(h, "mount", "--writable", "--id", draft, mp)
    assert "--discard-copy" in line and draft in line, line
    assert not mounts.mounted_fuse(mp)
    h.cli("close", "--discard-copy", "--id", draft)
    mount_writable(h, mp, draft=draft)
    assert sorted(os.listdir(mp)) == ["a.txt", "c.txt"]  # the draft's files; the copy's b.txt dropped
    new_id = close_copy(h, mp)
    assert sorted(stored(new_id)) == ["a.txt", "c.txt"]


@pytest.fixture
def small_disk(h: Harness, tmp_path: Path) -> Iterator[Path]:
    """A 8 MiB tmpfs for the cache and upper layer."""
    with tmpfs(h, tmp_path / "small-disk", "8m") as disk:
        yield disk


def _write_until_full(path: Path, limit: int, seed: int) -> tuple[int, int, bytes]:
    """Write random blocks of odd sizes until ENOSPC or ``limit`` bytes: (errno or 0, bytes acknowledged, them)."""
    rng = random.Random(seed)
    acked: list[bytes] = []
    done, code = 0, 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while done < limit:
            block = rng.randbytes(rng.randint(50_000, 300_000))
            n = os.write(fd, block)
            acked.append(block[:n])
            done += n
        os.fsync(fd)
    except OSError as exc:
        code = exc.errno or -1
    finally:
        try:
            os.close(fd)
        except OSError as exc:  # a late write-back error is reported at close
            code = code or exc.errno or -1
    return code, done, b"".join(acked)


@root_only
@pytest.mark.allow_warnings
def test_a_full_upper_disk_is_enospc_and_the_copy_still_closes(h: Harness, small_disk: Path, tmp_path: Path) -> None:
    rng = random.Random(6)
    src = tmp_path / "src"
    for i in range(4):
        write(src / f"f{i}.bin", rng.randbytes(100_000), mtime_ns=T0 + i)
    build("p", "full", src)
    env = dict(h.env, MOUNTFS_CACHE_DIR=str(small_disk / "cache"))
    mp = h.mountpoint()
    d, draft = mount_writable(h, mp, "p/full/1.0.0", env=env)
    m = Path(mp)
    (m / "before.txt").write_bytes(b"written before the disk filled\n")
    os.chmod(m / "f0.bin", 0o640)

    code, acked, _ = _write_until_full(m / "huge.bin", 64 << 20, seed=7)
    assert code == errno.ENOSPC and acked > 0
    assert d.alive()
    assert (m / "before.txt").read_bytes() == b"written before the disk filled\n"
    # while full, changes that need room fail cleanly or work; nothing half done stays behind
    (m / "huge.bin").unlink()
    assert "huge.bin" not in os.listdir(mp)
    (m / "after.txt").write_bytes(b"room again\n")
    want = files_only(snap(mp))
    assert sorted(want) == ["after.txt", "before.txt", "f0.bin", "f1.bin", "f2.bin", "f3.bin"]
    assert sorted(h.cli_json("diff", mp)["added"]) == ["after.txt", "before.txt"]
    new_id = close_copy(h, mp, env=env)
    assert new_id == draft
    assert stored(new_id) == want
    assert any("No space left" in line or "ENOSPC" in line for line in d.log_problems()), d.log_text()[-2000:]


@root_only
@pytest.mark.allow_warnings
def test_a_disk_filled_by_others_fails_metadata_changes_and_damages_nothing(
        h: Harness, small_disk: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "a.txt", b"a\n", mtime_ns=T0)
    build("p", "filled", src)
    env = dict(h.env, MOUNTFS_CACHE_DIR=str(small_disk / "cache"))
    mp = h.mountpoint()
    d, draft = mount_writable(h, mp, "p/filled/1.0.0", env=env)
    m = Path(mp)
    (m / "kept.txt").write_bytes(b"kept\n")
    filler = small_disk / "filler"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * (64 << 10))
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    got: dict[str, int] = {}
    for what, fn in (("write", lambda: (m / "new.bin").write_bytes(os.urandom(1 << 20))),
                     ("mkdirs", lambda: [os.mkdir(m / f"d{i}") for i in range(2000)])):
        try:
            fn()
            got[what] = 0
        except OSError as exc:
            got[what] = exc.errno or -1
    assert got["write"] == errno.ENOSPC, got
    assert d.alive()
    filler.unlink()
    for p in list(m.iterdir()):
        if p.name.startswith("d") and p.is_dir():
            p.rmdir()
    if (m / "new.bin").exists():
        (m / "new.bin").unlink()
    assert sorted(os.listdir(mp)) == ["a.txt", "kept.txt"]
    assert (m / "kept.txt").read_bytes() == b"kept\n"
    h.cli("umount", mp)
    mount_writable(h, mp, draft=draft, env=env)
    assert sorted(os.listdir(mp)) == ["a.txt", "kept.txt"]
    new_id = close_copy(h, mp, env=env)
    assert sorted(stored(new_id)) == ["a.txt", "kept.txt"]


@root_only
@pytest.mark.allow_warnings
def test_on_a_full_upper_disk_every_acknowledged_byte_is_kept(h: Harness, small_disk: Path, tmp_path: Path) -> None:
    build("p", "acked", write(tmp_path / "src" / "a.txt", b"a\n").parent)
    env = dict(h.env, MOUNTFS_CACHE_DIR=str(small_disk / "cache"))
    mp = h.mountpoint()
    d, _ = mount_writable(h, mp, "p/acked/1.0.0", env=env)
    f = Path(mp) / "huge.bin"
    code, acked, data = _write_until_full(f, 64 << 20, seed=7)
    assert code == errno.ENOSPC
    # what write() acknowledged is there (no more than the 8 MiB disk holds), nothing else
    drop_page_cache(f)
    assert (os.stat(f).st_size, f.read_bytes()) == (acked, data)
    assert acked < 8 << 20


@pytest.fixture
def small_store(h: Harness, tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB tmpfs for the store."""
    with tmpfs(h, tmp_path / "small-store", "48m") as disk:
        yield disk


def _fill_but(disk: Path, spare: int) -> Path:
    """Fill ``disk`` but ``spare`` bytes."""
    v = os.statvfs(disk)
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        fh.truncate(0)
        left = v.f_bavail * v.f_frsize - spare
        block = b"\0" * (1 << 20)
        while left > 0:
            left -= fh.write(block[:min(left, len(block))])
    return filler


@root_only
@pytest.mark.allow_warnings
def test_a_close_that_fails_midway_leaves_the_copy_whole_and_runs_again(
        h: Harness, small_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = str(small_store / "store")
    h.env["MOUNTFS_STORE"] = store
    monkeypatch.setenv("MOUNTFS_STORE", store)  # the in-process SDK too
    from mountfs import config

    config.set_process_config(None)
    src = tmp_path / "src"
    write(src / "a.txt", b"a\n", mtime_ns=T0)
    write(src / "gone.txt", b"gone\n", mtime_ns=T0)
    v1 = build("p", "retry", src)
    mp = h.mountpoint()
    _, draft = mount_writable(h, mp, "p/retry/1.0.0")
    m = Path(mp)
    write(m / "new" / "big.bin", os.urandom(20 << 20), mtime_ns=T0 + 1)
    (m / "gone.txt").unlink()
    (m / "a.txt").write_bytes(b"A\n")
    want = files_only(snap(mp))
    filler = _fill_but(small_store, 4 << 20)  # the 20 MiB upload cannot fit

    line = _fails(h, "close", mp)
    assert "space" in line.lower(), line
    assert files_only(snap(mp)) == want  # still the copy, still writable
    (m / "late.txt").write_bytes(b"after the failed close\n")
    want = files_only(snap(mp))
    assert not Dataset.get(dataset_id=draft).is_final()
    # an unmount (a reboot) between the failed close and the next one; the remount uploads what the failed
    # close left in the draft, so it waits for room too
    h.cli("umount", mp)
    assert "No space left" in _fails(h, "mount", "--writable", "--id", draft, mp)
    assert not mounts.mounted_fuse(mp)
    filler.unlink()
    mount_writable(h, mp, draft=draft)
    assert files_only(snap(mp)) == want
    new_id = close_copy(h, mp)
    assert new_id == draft
    assert stored(new_id) == want
    assert stored(v1.id) == files_only(snap(src))
