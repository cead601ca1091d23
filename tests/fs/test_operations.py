"""mountfs/fs/operations.py: the pyfuse3 adapter converts attributes and errors, called without a kernel.

The same answers through a real mount are in tests/daemon/test_semantics.py.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Awaitable, Callable, Iterator

import pyfuse3
import pytest
import trio
from fshelp import build, write

from mountfs.cache.filetable import FileTables
from mountfs.fs.operations import Operations
from mountfs.fs.reader import Reader
from mountfs.fs.tree import ROOT, Tree

Run = Callable[[Callable[[Operations], Awaitable[object]]], object]


@pytest.fixture
def run(tmp_path: Path, session) -> Iterator[Run]:
    """Runs ``fn(ops)`` in trio against Operations over a single-version tree (a.txt, sub/b.bin, run.sh)."""
    src = tmp_path / "src"
    write(src / "a.txt", b"hello operations\n")
    write(src / "sub" / "b.bin", os.urandom(3000))
    write(src / "run.sh", b"#!/bin/sh\n", mode=0o755)
    ds = build("p", "n", src)
    tables = FileTables(session.config.cache_dir)
    tree = Tree(tables, lambda rec: session.store(rec.storage), single=session.catalog.get(ds.id))
    trio.run(tree.start)

    def go(fn: Callable[[Operations], Awaitable[object]], no_open: bool = False) -> object:
        async def main() -> object:
            async with trio.open_nursery() as nursery:
                ops = Operations(tree, Reader(tree, session.cache, nursery), no_open=no_open)
                out = await fn(ops)
                nursery.cancel_scope.cancel()
                return out
        return trio.run(main)

    try:
        yield go
    finally:
        tables.close()


def _errno(run: Run, fn: Callable[[Operations], Awaitable[object]], **kw: object) -> int:
    async def call(ops: Operations) -> int:
        try:
            await fn(ops)
        except pyfuse3.FUSEError as exc:
            return exc.errno
        raise AssertionError("no FUSEError raised")
    return run(call, **kw)  # type: ignore[call-arg, return-value]


def test_entry_attributes_are_converted(run: Run) -> None:
    async def main(ops: Operations) -> None:
        a = await ops.lookup(ROOT, b"a.txt")
        assert stat.S_ISREG(a.st_mode) and stat.S_IMODE(a.st_mode) == 0o444  # read-only: write bits dropped
        assert (a.st_size, a.st_nlink, a.st_blocks) == (17, 1, 1)
        assert (a.st_uid, a.st_gid) == (os.getuid(), os.getgid())  # the daemon's user owns everything
        assert a.st_blksize == 1 << 20
        assert a.st_mtime_ns == a.st_ctime_ns == a.st_atime_ns > 0
        assert a.entry_timeout == a.attr_timeout > 0
        x = await ops.lookup(ROOT, b"run.sh")
        assert stat.S_IMODE(x.st_mode) == 0o555
        d = await ops.getattr(ROOT)
        assert stat.S_ISDIR(d.st_mode) and d.st_ino == ROOT
    run(main)


def test_tree_errors_become_their_errno(run: Run) -> None:
    assert _errno(run, lambda ops: ops.lookup(ROOT, b"missing")) == errno.ENOENT
    assert _errno(run, lambda ops: ops.getattr(pyfuse3.InodeT(10**9))) == errno.ENOENT
    assert _errno(run, lambda ops: ops.readlink(ROOT, None)) == errno.EINVAL  # type: ignore[arg-type]


def test_read_gives_bytes_and_a_folder_is_eisdir(run: Run) -> None:
    async def main(ops: Operations) -> tuple[bytes, int]:
        ino = (await ops.lookup(ROOT, b"a.txt")).st_ino
        data = bytes(await ops.read(pyfuse3.FileHandleT(ino), 6, 100))
        sub = (await ops.lookup(ROOT, b"sub")).st_ino
        try:
            await ops.read(pyfuse3.FileHandleT(sub), 0, 10)
        except pyfuse3.FUSEError as exc:
            return data, exc.errno
        raise AssertionError("read of a folder succeeded")
    assert run(main) == (b"operations\n", errno.EISDIR)


@pytest.mark.parametrize("no_open", [True, False])
def test_open_is_enosys_in_no_open_mode_else_the_inode(run: Run, no_open: bool) -> None:
    async def main(ops: Operations) -> object:
        ino = (await ops.lookup(ROOT, b"a.txt")).st_ino
        try:
            fi = await ops.open(ino, pyfuse3.FlagT(os.O_RDONLY), None)  # type: ignore[arg-type]
        except pyfuse3.FUSEError as exc:
            return exc.errno
        return (fi.fh == ino, fi.keep_cache)
    assert run(main, no_open=no_open) == (errno.ENOSYS if no_open else (True, True))  # type: ignore[call-arg]


@pytest.mark.parametrize("flags", [os.O_WRONLY, os.O_RDWR, os.O_RDWR | os.O_APPEND])
def test_a_writable_open_or_access_is_erofs(run: Run, flags: int) -> None:
    async def ino(ops: Operations) -> int:
        return (await ops.lookup(ROOT, b"a.txt")).st_ino
    a = run(ino)
    assert _errno(run, lambda ops: ops.open(a, flags, None)) == errno.EROFS  # type: ignore[arg-type]
    assert _errno(run, lambda ops: ops.access(a, os.W_OK, None)) == errno.EROFS  # type: ignore[arg-type]
    assert run(lambda ops: ops.access(a, os.R_OK | os.X_OK, None)) is True  # type: ignore[arg-type]


def test_statfs_names_up_to_255_bytes(run: Run) -> None:
    async def main(ops: Operations) -> tuple[int, int]:
        s = await ops.statfs(None)  # type: ignore[arg-type]
        return s.f_namemax, s.f_bsize
    assert run(main) == (255, 1 << 20)


def _listing(run: Run, ino: int, monkeypatch: pytest.MonkeyPatch, room: int | None) -> list[tuple[str, int, int]]:
    """Every entry readdir gives for ``ino``, taking at most ``room`` per call (a full buffer) and resuming
    at the position of the last one taken, as the kernel does."""
    got: list[tuple[str, int, int]] = []

    async def lst(ops: Operations) -> None:
        start = 0
        while True:
            taken: list[tuple[str, int, int]] = []

            def reply(token: object, name: bytes, attr: pyfuse3.EntryAttributes, pos: int) -> bool:
                if room is not None and len(taken) >= room:
                    return False
                taken.append((os.fsdecode(name), attr.st_ino, pos))
                return True

            monkeypatch.setattr(pyfuse3, "readdir_reply", reply)
            await ops.readdir(pyfuse3.FileHandleT(ino), start, pyfuse3.ReaddirToken())  # type: ignore[call-arg]
            if not taken:
                return
            got.extend(taken)
            start = taken[-1][2]

    run(lst)
    return got


@pytest.mark.parametrize("room", [None, 1, 2, 3])
def test_listings_start_with_dot_and_dotdot_and_resume_at_every_position(
        run: Run, monkeypatch: pytest.MonkeyPatch, room: int | None) -> None:
    root = _listing(run, ROOT, monkeypatch, room)
    names = [n for n, _, _ in root]
    assert names[:2] == [".", ".."] and sorted(names[2:]) == ["a.txt", "run.sh", "sub"]
    assert [i for _, i, _ in root[:2]] == [ROOT, ROOT]  # the root of the mount is its own parent
    positions = [p for _, _, p in root]
    assert positions == sorted(set(positions)) and positions[:2] == [1, 2]  # increasing, each resumable
    sub = next(i for n, i, _ in root if n == "sub")
    listed = _listing(run, sub, monkeypatch, room)
    assert [(n, i) for n, i, _ in listed[:1]] == [(".", sub)] and [n for n, _, _ in listed] == [".", "..", "b.bin"]
