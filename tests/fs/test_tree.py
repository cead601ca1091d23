"""Inodes, lookups, attributes and listings (mountfs/fs/tree.py) over imported file tables, without a kernel."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import trio
from fshelp import build, move_version, tiny, write

from mountfs.cache.filetable import KIND_DIR, KIND_FILE, FileTables
from mountfs.errors import IsADirectory, NotFound, ObjectNotFound, UsageError, VersionGone
from mountfs.fs.namespace import BY_ID, LATEST, Namespace
from mountfs.fs.tree import CATALOG_TIMEOUT, KIND_LINK, ROOT, VERSION_TIMEOUT, Attr, Tree

MANY = 3000
MTIME = 1_700_000_000_123_456_789


def _source(root: Path) -> Path:
    write(root / "top.txt", b"top\n", mtime_ns=MTIME)
    write(root / "empty", b"", mtime_ns=MTIME + 1)
    write(root / "bin" / "run.sh", b"#!/bin/sh\necho hi\n", mode=0o755, mtime_ns=MTIME + 2)
    write(root / "secret" / "key", b"private\n", mode=0o600, mtime_ns=MTIME + 3)
    write(root / "a" / "b" / "c" / "d" / "deep.bin", os.urandom(5000), mtime_ns=MTIME + 4)
    write(root / "a" / "b" / "sibling.txt", b"sibling", mtime_ns=MTIME + 5)
    write(root / "a" / "z.txt", b"z" * 10, mtime_ns=MTIME + 6)
    write(root / "names" / "with space.txt", b"1")
    write(root / "names" / "ünïcödé.txt", b"22")
    for i in range(MANY):
        write(root / "many" / f"f{i:05d}", str(i).encode())
    return root


def _expected_mode(src_mode: int) -> int:
    return (src_mode & 0o7777 & ~0o222) or 0o444


async def _walk(tree: Tree, ino: int) -> list[tuple[str, Attr, int]]:
    out: list[tuple[str, Attr, int]] = []
    pos = 0
    while True:
        batch = await tree.readdir(ino, pos)
        if not batch:
            return out
        out.extend(batch)
        pos = batch[-1][2]


async def _lookup_path(tree: Tree, rel: str) -> Attr:
    attr = await tree.getattr(ROOT)
    for part in rel.split("/"):
        attr = await tree.lookup(attr.ino, part)
    return attr


@pytest.fixture
def single(tmp_path: Path, session):
    src = _source(tmp_path / "src")
    ds = build("p", "n", src)
    tables = FileTables(session.config.cache_dir)
    tree = Tree(tables, lambda rec: session.store(rec.storage), single=session.catalog.get(ds.id))
    trio.run(tree.start)
    yield tree, src
    tables.close()


def test_single_version_attributes(single) -> None:
    tree, src = single

    async def main() -> None:
        root = await tree.getattr(ROOT)
        assert (root.ino, root.kind, root.mode) == (ROOT, KIND_DIR, 0o555)
        assert root.timeout == VERSION_TIMEOUT
        seen_inos: set[int] = set()
        for dirpath, dirnames, filenames in os.walk(src):
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, src)
                attr = await _lookup_path(tree, rel)
                st = os.stat(full)
                assert attr.ino not in seen_inos
                seen_inos.add(attr.ino)
                assert await tree.getattr(attr.ino) == attr
                if stat.S_ISDIR(st.st_mode):
                    assert (attr.kind, attr.mode, attr.size) == (KIND_DIR, 0o555, 0), rel
                else:
                    assert attr.kind == KIND_FILE, rel
                    assert attr.size == st.st_size, rel
                    assert attr.mode == _expected_mode(st.st_mode), rel
                    assert attr.mode & 0o222 == 0, rel
                    assert attr.mtime_ns == st.st_mtime_ns, rel
                    m, node = tree.file(attr.ino)
                    assert sum(c.size for c in node.chunks) == st.st_size
        assert (await _lookup_path(tree, "bin/run.sh")).mode == 0o555
        assert (await _lookup_path(tree, "secret/key")).mode == 0o400
        assert (await _lookup_path(tree, "top.txt")).mtime_ns == MTIME
        with pytest.raises(NotFound):
            await tree.lookup(ROOT, "absent")
        with pytest.raises(NotFound):
            await _lookup_path(tree, "a/b/c/nope")
        deep = await _lookup_path(tree, "a/b/c/d/deep.bin")
        with pytest.raises(NotFound):  # a file has no children
            await tree.lookup(deep.ino, "x")
        with pytest.raises(UsageError):
            tree.file((await _lookup_path(tree, "a/b")).ino)
        with pytest.raises(UsageError):
            tree.readlink(ROOT)

    trio.run(main)


def test_single_version_listings(single) -> None:
    tree, src = single

    async def main() -> None:
        for dirpath, dirnames, filenames in os.walk(src):
            rel = os.path.relpath(dirpath, src)
            ino = ROOT if rel == "." else (await _lookup_path(tree, rel)).ino
            listing = await _walk(tree, ino)
            names = [n for n, _, _ in listing]
            assert sorted(names) == sorted(dirnames + filenames), rel
            assert len(set(names)) == len(names)
            for name, attr, _ in listing:
                assert attr == await tree.lookup(ino, name)
            # resuming after any entry gives exactly the rest, in the same order
            if len(listing) < 100:
                for i, (_, _, pos) in enumerate(listing):
                    assert [n for n, _, _ in await _walk_from(tree, ino, pos)] == names[i + 1:]

    trio.run(main)


async def _walk_from(tree: Tree, ino: int, pos: int) -> list[tuple[str, Attr, int]]:
    out: list[tuple[str, Attr, int]] = []
    while True:
        batch = await tree.readdir(ino, pos)
        if not batch:
            return out
        out.extend(batch)
        pos = batch[-1][2]


def test_large_directory(single, rng) -> None:
    tree, _ = single

    async def main() -> None:
        many = await tree.lookup(ROOT, "many")
        listing = await _walk(tree, many.ino)
        names = [n for n, _, _ in listing]
        assert sorted(names) == [f"f{i:05d}" for i in range(MANY)]
        positions = [p for _, _, p in listing]
        assert positions == sorted(positions) and len(set(positions)) == MANY
        for name, attr, _ in listing[:: MANY // 20]:
            assert attr.size == len(str(int(name[1:])))
        # a page is bounded; resume at random positions (and at the very end)
        first = await tree.readdir(many.ino, 0)
        assert 0 < len(first) < MANY
        for i in rng.sample(range(MANY), 25) + [MANY - 1]:
            rest = await _walk_from(tree, many.ino, positions[i])
            assert [n for n, _, _ in rest] == names[i + 1:]
        assert await tree.readdir(many.ino, positions[-1]) == []

    trio.run(main)


def test_catalog_tree(tmp_path: Path, session) -> None:
    src1 = tiny(tmp_path, "v1")
    write(src1 / "sub" / "x.bin", b"x" * 100, mtime_ns=MTIME)
    v1 = build("vision/det", "boxes", src1, version="1.0")
    src2 = tiny(tmp_path, "v2")
    write(src2 / "only2.txt", b"two")
    v2 = build("vision/det", "boxes", src2, version="1.1")
    draft = build("vision/det", "boxes", tiny(tmp_path, "draft"), version="1.2", finalize=False)
    ns = Namespace(session.catalog)
    ns.refresh()
    tables = FileTables(session.config.cache_dir)
    tree = Tree(tables, lambda rec: session.store(rec.storage), namespace=ns)

    async def main() -> None:
        root = await tree.getattr(ROOT)
        assert (root.kind, root.mode, root.timeout) == (KIND_DIR, 0o555, CATALOG_TIMEOUT)
        assert {n for n, _, _ in await _walk(tree, ROOT)} == {BY_ID, "vision"}
        vision = await tree.lookup(ROOT, "vision")
        det = await tree.lookup(vision.ino, "det")
        boxes = await tree.lookup(det.ino, "boxes")
        assert boxes.kind == KIND_DIR and boxes.timeout == CATALOG_TIMEOUT
        # catalog inodes are stable
        assert (await tree.lookup(ROOT, "vision")).ino == vision.ino
        assert await tree.getattr(boxes.ino) == boxes
        listing = await _walk(tree, boxes.ino)
        assert [n for n, _, _ in listing] == sorted(["1.0", "1.1", LATEST])
        # resume at every position of a catalog listing
        for i, (_, _, pos) in enumerate(listing):
            assert [n for n, _, _ in await _walk_from(tree, boxes.ino, pos)] == [n for n, _, _ in listing[i + 1:]]
        latest = await tree.lookup(boxes.ino, LATEST)
        assert latest.kind == KIND_LINK and latest.mode == 0o777 and latest.size == len("1.1")
        assert tree.readlink(latest.ino) == "1.1"
        with pytest.raises(NotFound):
            await tree.lookup(boxes.ino, "1.2")  # the draft
        with pytest.raises(NotFound):
            await tree.lookup(latest.ino, "file.txt")

        r1 = await tree.lookup(boxes.ino, "1.0")
        r2 = await tree.lookup(boxes.ino, "1.1")
        assert r1.kind == r2.kind == KIND_DIR and r1.ino != r2.ino
        assert r1.mtime_ns > 0
        f1 = await tree.lookup(r1.ino, "file.txt")
        f2 = await tree.lookup(r2.ino, "file.txt")
        assert f1.ino != f2.ino and f1.timeout == VERSION_TIMEOUT
        assert (await tree.lookup(r2.ino, "only2.txt")).size == 3
        with pytest.raises(NotFound):
            await tree.lookup(r1.ino, "only2.txt")
        x = await tree.lookup((await tree.lookup(r1.ino, "sub")).ino, "x.bin")
        assert (x.size, x.mtime_ns, x.mode) == (100, MTIME, 0o444)
        assert {m.record.id for m in tree.mounted()} == {v1.id, v2.id}

        # .by-id reaches the same versions (same inodes), never the draft
        by_id = await tree.lookup(ROOT, BY_ID)
        assert {n for n, _, _ in await _walk(tree, by_id.ino)} == {v1.id, v2.id}
        assert (await tree.lookup(by_id.ino, v1.id)).ino == r1.ino
        with pytest.raises(NotFound):
            await tree.lookup(by_id.ino, draft.id)

        # listings of a version root through the catalog
        assert {n for n, _, _ in await _walk(tree, r1.ino)} == {"file.txt", "sub"}
        with pytest.raises(NotFound):
            await tree.getattr(12345 << 40 | 1)  # a slot never handed out
        with pytest.raises(UsageError):
            tree.file(boxes.ino)

    trio.run(main)
    tables.close()


def test_concurrent_first_lookups_import_once(tmp_path: Path, session) -> None:
    """Many lookups racing on a version not yet imported share one import."""
    src = tiny(tmp_path, "v")
    for i in range(200):
        write(src / "d" / f"{i}.txt", str(i).encode())
    v = build("p", "n", src, version="1.0")
    ns = Namespace(session.catalog)
    ns.refresh()
    tables = FileTables(session.config.cache_dir)
    imports: list[str] = []
    real_import = tables.import_version

    def counting_import(vk, entries, mtime_ns):
        imports.append(vk.hex())
        return real_import(vk, entries, mtime_ns)

    tables.import_version = counting_import  # type: ignore[method-assign]
    tree = Tree(tables, lambda rec: session.store(rec.storage), namespace=ns)

    async def main() -> None:
        p = await tree.lookup(ROOT, "p")
        n = await tree.lookup(p.ino, "n")
        # listing a dataset's versions (and looking one up) imports nothing
        assert [name for name, _, _ in await tree.readdir(n.ino, 0)] == ["1.0", "latest"]
        root = await tree.lookup(n.ino, "1.0")
        assert (await tree.getattr(root.ino)).kind == root.kind and imports == []
        got: list[Attr] = []

        async def one() -> None:
            version = await tree.lookup(n.ino, "1.0")
            got.append(version)
            await tree.lookup(version.ino, "d")  # the first look inside imports, once

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(one)
        assert len({a.ino for a in got}) == 1
        by_id = await tree.lookup(ROOT, BY_ID)
        assert (await tree.lookup(by_id.ino, v.id)).ino == got[0].ino

    trio.run(main)
    assert len(imports) == 1
    # a second tree on the same tables (a restarted daemon) reuses the imported table
    tree2 = Tree(tables, lambda rec: session.store(rec.storage), namespace=ns)

    async def again() -> None:
        p = await tree2.lookup(ROOT, "p")
        n = await tree2.lookup(p.ino, "n")
        r = await tree2.lookup(n.ino, "1.0")
        assert {name for name, _, _ in await _walk(tree2, r.ino)} == {"file.txt", "d"}

    trio.run(again)
    assert len(imports) == 1
    tables.close()


@pytest.mark.allow_warnings  # a rename is two writes: a refresh between them sees record and pointer disagree
def test_versions_that_leave_and_move(tmp_path: Path, session) -> None:
    """One view per version: a rename keeps its inodes, a deletion retires them (ESTALE/EIO), a return revives them."""
    src = tiny(tmp_path, "v")
    write(src / "sub" / "x.bin", b"x" * 100)
    v = build("p", "n", src, version="1.0")
    other = build("p", "n", tiny(tmp_path, "o"), version="1.1")
    cat = session.catalog
    ns = Namespace(cat)
    tables = FileTables(session.config.cache_dir)
    tree = Tree(tables, lambda rec: session.store(rec.storage), namespace=ns)
    assert tree.publish(ns.build()) == {v.id, other.id}

    async def path(*parts: str) -> Attr:
        attr = await tree.getattr(ROOT)
        for part in parts:
            attr = await tree.lookup(attr.ino, part)
        return attr

    async def main() -> None:
        root = await path("p", "n", "1.0")
        f = await path("p", "n", "1.0", "sub", "x.bin")
        sub = await path("p", "n", "1.0", "sub")
        assert tree.file(f.ino)[1].size == 100
        with pytest.raises(IsADirectory):
            tree.file(sub.ino)
        with pytest.raises(IsADirectory):
            tree.file((await path("p")).ino)

        # renamed: same id, same slot, same inode numbers at the new path
        move_version(cat, v.id, "p", "renamed")
        tree.publish(ns.build())
        assert (await path("p", "renamed", "1.0")).ino == root.ino
        assert (await path("p", "renamed", "1.0", "sub", "x.bin")) == f
        with pytest.raises(NotFound):
            await path("p", "n", "1.0")
        assert tree.file(f.ino)[1].size == 100  # open files go on reading

        # deleted: the inodes the kernel may hold answer ESTALE, reads EIO; nothing is served by path
        cat.release("p", "renamed", "1.0")
        keep = tree.publish(ns.build())
        assert keep == {other.id}
        for call in (tree.getattr(root.ino), tree.getattr(f.ino), tree.readdir(root.ino, 0),
                     tree.lookup(sub.ino, "x.bin")):
            with pytest.raises(VersionGone):
                await call
        with pytest.raises(ObjectNotFound):
            tree.file(f.ino)
        with pytest.raises(NotFound):
            await tree.lookup((await path(BY_ID)).ino, v.id)
        assert {m.record.id for m in tree.mounted()} == set()  # `other` was never opened
        assert (await path("p", "n", "1.1", "file.txt")).kind == KIND_FILE

        # back in the catalog: the same inode numbers work again
        cat.claim("p", "renamed", "1.0", v.id)
        tree.publish(ns.build())
        assert (await path("p", "renamed", "1.0")).ino == root.ino
        assert await tree.getattr(f.ino) == f
        assert tree.file(f.ino)[1].size == 100

    trio.run(main)
    tables.close()
