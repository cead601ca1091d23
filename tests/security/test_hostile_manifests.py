"""Crafted manifests and hostile copy targets (issue 13, items 1, 3 and 11).

Anyone who can write a shared store can write ``datasets/<id>/manifest`` (and
the record's ``manifest_digest`` beside it).  Manifests here are written with
the project's own encoder (``manifest.encode`` through ``Store.put_manifest``,
or ``manifest.frame`` for rows the encoder would never produce).  A bad path
or field is refused once, where the manifest is decoded (``IntegrityError``
naming the manifest and the entry), so no copy, listing, file-table import or
CLI command ever sees it; copies never follow a link out of their folder,
never keep setuid bits, and a failed copy leaves nothing that looks like data.
"""

from __future__ import annotations

import glob
import os
import stat
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from click.testing import CliRunner

# the real-mount harness lives with the daemon tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from mfs import Harness, harness, short_run_dir, wait_for  # noqa: E402

from mountfs import Dataset, localcopy  # noqa: E402
from mountfs.cache.filetable import FileTables, version_key  # noqa: E402
from mountfs.cli import cli  # noqa: E402
from mountfs.errors import IntegrityError, LocalDiskError, UsageError  # noqa: E402
from mountfs.session import current  # noqa: E402
from mountfs.store import manifest  # noqa: E402
from mountfs.store.manifest import MAX_DEPTH, FileEntry  # noqa: E402
from mountfs.store.layout import Manifest, Pack  # noqa: E402

VICTIM_TEXT = b"alice's own file\n"


def _final(tmp_path: Path, files: dict[str, bytes], name: str = "ds") -> Dataset:
    src = tmp_path / f"src-{name}"
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    ds = Dataset.create(dataset_name=name, dataset_project="p")
    ds.add_files(str(src))
    ds.finalize(auto_upload=True)
    return ds


def _replace_manifest(ds: Dataset, data: bytes) -> Dataset:
    """``data`` as the version's manifest, its digest in the record: what anyone who can write the store can do."""
    sess = current()
    ds.storage.backend.put(Manifest(ds.id).key, data)
    rec = sess.catalog.get(ds.id)
    rec.manifest_digest = data[-16:].hex()
    sess.catalog.put(rec)
    return Dataset.get(dataset_id=ds.id)


def _entries(ds: Dataset) -> list[FileEntry]:
    return sorted(ds.file_entries_dict.values(), key=lambda e: e.path)


def _with_paths(e: FileEntry, *paths: str) -> list[FileEntry]:
    """Copies of a real entry (real chunks in real packs) under other paths."""
    return [FileEntry(p, e.size, e.mode, e.mtime_ns, e.digest, list(e.chunks)) for p in paths]


@pytest.fixture
def victim(tmp_path: Path) -> Iterator[Path]:
    """A file of someone else's, outside every copy: it must end the test as it began."""
    home = tmp_path / "home" / "alice"
    home.mkdir(parents=True)
    bashrc = home / ".bashrc"
    bashrc.write_bytes(VICTIM_TEXT)
    bashrc.chmod(0o640)
    yield bashrc
    assert bashrc.read_bytes() == VICTIM_TEXT and stat.S_IMODE(bashrc.stat().st_mode) == 0o640
    assert sorted(os.listdir(home)) == [".bashrc"]


def _import(ds: Dataset, folder: Path) -> None:
    """What the mount does first with a version: import its manifest into the LMDB file table."""
    tables = FileTables(str(folder))
    try:
        tables.import_version(version_key(ds.id), ds.storage.iter_manifest(ds.id, ds.record.manifest_digest), 0)
    finally:
        tables.close()


def _refused_everywhere(ds: Dataset, shown: str, tmp_path: Path) -> None:
    """Every reader of the version gets the same IntegrityError naming the manifest and the entry."""
    where = f"datasets/{ds.id}/manifest"
    readers: list[Callable[[], Any]] = [
        ds.list_files,
        lambda: Dataset.get(dataset_id=ds.id).get_local_copy(),
        lambda: Dataset.get(dataset_id=ds.id).get_mutable_local_copy(tmp_path / "mutable"),
        lambda: Dataset.get(dataset_id=ds.id).verify_dataset_hash(),
        lambda: _import(ds, tmp_path / "tables"),
    ]
    for read in readers:
        with pytest.raises(IntegrityError) as err:
            read()
        assert where in str(err.value) and shown in str(err.value), str(err.value)
    res = CliRunner().invoke(cli, ["list", "--id", ds.id], catch_exceptions=False)
    assert res.exit_code == IntegrityError.exit_code, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and where in lines[0] and "Traceback" not in res.output, res.output
    assert not os.listdir(tmp_path / "mutable")
    assert not glob.glob(os.path.join(current().config.cache_dir, "copies", "*"))


# --- paths --------------------------------------------------------------------------------------


BAD_PATHS = {
    "parent": "../../x",
    "absolute": "/etc/x",
    "parent inside": "a/../../b",
    "double slash": "a//b",
    "dot first": "./a",
    "dot inside": "a/./b",
    "dot": ".",
    "dotdot": "..",
    "NUL": "a\x00b",
    "empty": "",
    "trailing slash": "a/",
    "backslash": "a\\b",
    "long name": "d/" + "x" * 256,
    "too deep": "/".join(["d"] * (MAX_DEPTH + 1)),
    "1199 levels": "/".join(["d"] * 1199),
}


@pytest.mark.parametrize("label", list(BAD_PATHS))
def test_a_bad_path_is_refused_where_the_manifest_is_decoded(label: str, tmp_path: Path) -> None:
    ds = _final(tmp_path, {"ok.txt": b"good bytes"})
    bad = BAD_PATHS[label]
    ds.storage.put_manifest(ds.id, _with_paths(_entries(ds)[0], bad))
    ds = _replace_manifest(ds, ds.storage.backend.get(Manifest(ds.id).key))
    (tmp_path / "mutable").mkdir()
    _refused_everywhere(ds, manifest.quoted(bad), tmp_path)


@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_traversal_to_a_file_outside_never_touches_it(kind: str, tmp_path: Path, victim: Path) -> None:
    ds = _final(tmp_path, {"ok.txt": b"payload!"})
    bad = "../" * 40 + str(victim).lstrip("/") if kind == "relative" else str(victim)
    ds = _replace_manifest(ds, manifest.encode(_with_paths(_entries(ds)[0], "ok.txt", bad)))
    (tmp_path / "mutable").mkdir()
    _refused_everywhere(ds, manifest.quoted(bad), tmp_path)


@pytest.mark.parametrize("paths,problem", [
    (["a", "a/b"], "'a/b' is inside 'a', which is a file"),
    (["a", "a-x", "a.y", "a/b"], "'a/b' is inside 'a', which is a file"),
    (["a/b", "a/b/c"], "'a/b/c' is inside 'a/b', which is a file"),
    (["a", "a"], "'a' is listed twice"),
])
def test_entries_that_are_not_one_tree_are_refused(paths: list[str], problem: str, tmp_path: Path) -> None:
    ds = _final(tmp_path, {"ok.txt": b"good bytes"})
    ds = _replace_manifest(ds, manifest.encode(_with_paths(_entries(ds)[0], *paths)))
    (tmp_path / "mutable").mkdir()
    _refused_everywhere(ds, problem, tmp_path)


def test_entries_out_of_order_are_refused(tmp_path: Path) -> None:
    ds = _final(tmp_path, {"a.txt": b"a" * 10, "b.txt": b"b" * 10})
    header, rows = _header_and_rows(ds)
    assert [row[0] for row in rows] == ["a.txt", "b.txt"]
    ds = _replace_manifest(ds, manifest.frame([header, rows[1], rows[0]]))
    with pytest.raises(IntegrityError, match="'a.txt' is out of path order"):
        ds.list_files()


# --- field types --------------------------------------------------------------------------------


def _header_and_rows(ds: Dataset) -> tuple[dict, list[list]]:
    """The version's manifest as the msgpack values it is framed from (what a crafter starts with)."""
    header, entries = manifest.decode(ds.storage.backend.get(Manifest(ds.id).key), "x")
    packs = header["packs"]
    rows = [[e.path, e.size, e.mode, e.mtime_ns, e.digest,
             [[c.digest, c.size, packs.index(c.pack), c.offset, c.length, c.codec] for c in e.chunks],
             e.url, e.etag, e.src] for e in entries]
    return header, rows


def _field(index: int, value: Any) -> Callable[[list], list]:
    return lambda row: row[:index] + [value] + row[index + 1:]


def _chunk_field(index: int, value: Any) -> Callable[[list], list]:
    return lambda row: row[:5] + [[c[:index] + [value] + c[index + 1:] for c in row[5]]] + row[6:]


BAD_ROWS: dict[str, Callable[[list], list]] = {
    "row not a list": lambda row: {"path": row[0]},
    "row too short": lambda row: row[:8],
    "path not a string": _field(0, b"ok.txt"),
    "size a string": _field(1, "10"),
    "size negative": _field(1, -1),
    "size a float": _field(1, 10.0),
    "mode too big": _field(2, 1 << 40),
    "mtime a float": _field(3, 1.5),
    "mtime past 64 bits": _field(3, 1 << 63),
    "digest a string": _field(4, "d" * 16),
    "digest short": _field(4, b"d" * 5),
    "chunks a string": _field(5, "chunks"),
    "chunk not a list": lambda row: row[:5] + [[7]] + row[6:],
    "chunk too short": lambda row: row[:5] + [[c[:4] for c in row[5]]] + row[6:],
    "chunk digest short": _chunk_field(0, b"x"),
    "chunk size zero": _chunk_field(1, 0),
    "chunk size a string": _chunk_field(1, "10"),
    "pack index out of range": _chunk_field(2, 99),
    "pack index -1 in a manifest": _chunk_field(2, -1),
    "pack index None": _chunk_field(2, None),
    "offset negative": _chunk_field(3, -5),
    "codec unknown": _chunk_field(5, 7),
    "chunks not adding up": _field(1, 11),
    "url not a string": _field(6, 5),
    "etag None": _field(7, None),
    "src a list": _field(8, ["x"]),
    "external with chunks": _field(6, "s3://bucket/key"),
}


@pytest.mark.parametrize("label", list(BAD_ROWS))
def test_a_bad_field_is_refused_where_the_manifest_is_decoded(label: str, tmp_path: Path) -> None:
    ds = _final(tmp_path, {"ok.txt": b"ten bytes!"})
    header, rows = _header_and_rows(ds)
    ds = _replace_manifest(ds, manifest.frame([header, BAD_ROWS[label](rows[0])]))
    (tmp_path / "mutable").mkdir()
    _refused_everywhere(ds, "is damaged or crafted: entry", tmp_path)


BAD_HEADERS: dict[str, Callable[[dict], Any]] = {
    "not a map": lambda h: [h],
    "no packs": lambda h: {k: v for k, v in h.items() if k != "packs"},
    "pack id a path": lambda h: {**h, "packs": ["../../../etc"]},
    "pack id not a string": lambda h: {**h, "packs": [5]},
    "kind unknown": lambda h: {**h, "kind": "evil"},
    "count a string": lambda h: {**h, "count": "1"},
    "meta a list": lambda h: {**h, "meta": []},
}


@pytest.mark.parametrize("label", list(BAD_HEADERS))
def test_a_bad_header_is_refused(label: str, tmp_path: Path) -> None:
    ds = _final(tmp_path, {"ok.txt": b"ten bytes!"})
    header, rows = _header_and_rows(ds)
    ds = _replace_manifest(ds, manifest.frame([BAD_HEADERS[label](header), *rows]))
    (tmp_path / "mutable").mkdir()
    _refused_everywhere(ds, "is damaged or crafted: its header", tmp_path)


def test_a_count_that_does_not_match_is_refused(tmp_path: Path) -> None:
    ds = _final(tmp_path, {"a.txt": b"a" * 10, "b.txt": b"b" * 10})
    header, rows = _header_and_rows(ds)
    ds = _replace_manifest(ds, manifest.frame([header, rows[0]]))
    with pytest.raises(IntegrityError, match="holds 1 entries, its header says 2"):
        ds.list_files()


def test_a_draft_state_is_not_a_manifest(tmp_path: Path) -> None:
    """Kind "draft" allows chunks without a pack; a version's manifest claiming it is refused."""
    ds = _final(tmp_path, {"ok.txt": b"ten bytes!"})
    header, rows = _header_and_rows(ds)
    ds = _replace_manifest(ds, manifest.frame([{**header, "kind": "draft"}, _chunk_field(2, -1)(rows[0])]))
    with pytest.raises(IntegrityError, match="is a draft's state, not a version's manifest"):
        ds.list_files()


# --- the manifest belongs to its record ---------------------------------------------------------


def test_a_manifest_copied_from_another_version_is_refused(tmp_path: Path) -> None:
    a = _final(tmp_path, {"a.txt": b"version a"}, name="a")
    b = _final(tmp_path, {"b.txt": b"version b"}, name="b")
    store = a.storage.backend
    store.put(Manifest(a.id).key, store.get(Manifest(b.id).key))  # a valid manifest, of another version
    fresh = Dataset.get(dataset_id=a.id)
    for read in (fresh.list_files, fresh.get_local_copy):
        with pytest.raises(IntegrityError, match=f"manifest of dataset {a.id} .* is not the one its record was finalized with"):
            read()
    with pytest.raises(IntegrityError, match=a.id):
        _import(fresh, tmp_path / "tables")
    assert Dataset.get(dataset_id=b.id).list_files() == ["b.txt"]


# --- modes --------------------------------------------------------------------------------------


MODES = [0o6755, 0o4777, 0o2755, 0o1777, 0o666, 0o777, 0o644, 0o600, 0o000]


def test_store_modes_are_masked_in_both_copies(tmp_path: Path) -> None:
    ds = _final(tmp_path, {f"f{i}": f"file {i}".encode() for i in range(len(MODES))})
    entries = _entries(ds)
    for e, mode in zip(entries, MODES):
        e.mode = mode
    ds = _replace_manifest(ds, manifest.encode(entries))
    ro = Path(ds.get_local_copy())
    mutable = Path(ds.get_mutable_local_copy(tmp_path / "mutable"))
    for e, mode in zip(entries, MODES):
        assert stat.S_IMODE((ro / e.path).stat().st_mode) == (mode & 0o555) | 0o400, (oct(mode), e.path)
        assert stat.S_IMODE((mutable / e.path).stat().st_mode) == (mode & 0o755) | 0o600, (oct(mode), e.path)
        assert (ro / e.path).read_bytes() == (mutable / e.path).read_bytes() == f"file {e.path[1:]}".encode()


# --- symlinks in the target ---------------------------------------------------------------------


def _swap_for_link(folder: Callable[[], Path], name: str, to: Path) -> Callable[[int], None]:
    """A progress callback that, after the first file is written, replaces file ``name`` by a link to ``to``."""
    done: list[bool] = []

    def progress(_: int) -> None:
        if not done:
            done.append(True)
            path = folder() / name
            path.unlink()
            path.symlink_to(to)

    return progress


@pytest.mark.parametrize("kind", ["cached", "mutable"])
def test_a_link_planted_while_the_copy_is_written_is_not_followed(kind: str, tmp_path: Path, victim: Path) -> None:
    ds = _final(tmp_path, {"a.txt": b"first", "b.txt": b"second"})
    sess = current()
    entries = _entries(ds)
    kw: dict[str, Any] = dict(max_workers=1, source=sess.source)
    with pytest.raises(LocalDiskError, match="'b.txt' was replaced while the copy was written"):
        if kind == "cached":
            target = os.path.join(sess.config.cache_dir, "copies", ds.id)
            building = lambda: Path(glob.glob(target + ".building-*")[0])  # noqa: E731
            localcopy.build_cached_copy(entries, ds.storage, sess.cache, target,
                                        progress=_swap_for_link(building, "b.txt", victim), **kw)
        else:
            target = str(tmp_path / "mutable")
            localcopy.build_mutable_copy(entries, ds.storage, sess.cache, target, overwrite=False,
                                         progress=_swap_for_link(lambda: Path(target), "b.txt", victim), **kw)
    assert not glob.glob(target + "*")  # what the copy made is gone; the planted link is not the copy's


@pytest.mark.parametrize("planted", ["folder link", "file link"])
def test_links_already_in_the_folder_are_not_followed(planted: str, tmp_path: Path, victim: Path) -> None:
    ds = _final(tmp_path, {"sub/x.txt": b"data", "y.txt": b"more"})
    sess = current()
    root = tmp_path / "root"
    root.mkdir()
    if planted == "folder link":
        (root / "sub").symlink_to(victim.parent)
        name, problem = "sub", "is a symbolic link or a file where the copy needs a folder"
    else:
        (root / "y.txt").symlink_to(victim)
        name, problem = "y.txt", "is already there, a file or link the copy did not make"
    for read_only in (True, False):
        with pytest.raises(LocalDiskError, match=f"'{name}' {problem}"):
            localcopy.write_tree(_entries(ds), ds.storage, sess.cache, str(root), read_only=read_only, max_workers=2)
        assert sorted(os.listdir(root)) == [name] and (root / name).is_symlink()


# --- deep trees ---------------------------------------------------------------------------------


def _chain(top: Path, depth: int) -> Path:
    """``top/d/d/.../d`` (``depth`` folders) made through fds: full paths that deep pass PATH_MAX."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            sub = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = sub
        with open(os.open("f.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as fh:
            fh.write(b"deep")
    except BaseException:
        os.close(fd)
        raise
    return top


def _unchain(top: Path) -> None:
    """Remove a ``_chain``: lift ``d/d`` up a level at a time (rmtree recurses once a level and gives up)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        while os.path.lexists(f"/proc/self/fd/{fd}/d/d"):
            os.rename("d/d", "up", src_dir_fd=fd, dst_dir_fd=fd)
            os.rmdir("d", dir_fd=fd)
            os.rename("up", "d", src_dir_fd=fd, dst_dir_fd=fd)
        os.unlink("d/f.txt", dir_fd=fd)
        os.rmdir("d", dir_fd=fd)
    finally:
        os.close(fd)


def test_a_1199_level_tree_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    src = _chain(tmp_path / "deep", 1199)
    ds = Dataset.create(dataset_name="deep", dataset_project="p")
    try:
        with pytest.raises(UsageError, match=f"nested deeper than the {MAX_DEPTH} levels a dataset path may have"):
            ds.add_files(str(src))
    finally:
        _unchain(src)
    assert ds.list_files() == []
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "f").write_bytes(b"fine")
    assert ds.add_files(str(tmp_path / "ok")) == 1  # the same object goes on working
    assert ds.finalize(auto_upload=True)


def test_the_deepest_allowed_tree_round_trips(tmp_path: Path) -> None:
    src = _chain(tmp_path / "deep", MAX_DEPTH - 1)  # 254 folders and a file: 255 components
    ds = Dataset.create(dataset_name="deep", dataset_project="p")
    assert ds.add_files(str(src)) == 1
    ds.finalize(auto_upload=True)
    path = "d/" * (MAX_DEPTH - 1) + "f.txt"
    fresh = Dataset.get(dataset_id=ds.id)
    assert fresh.list_files() == [path]
    for copy in (fresh.get_local_copy(), fresh.get_mutable_local_copy(tmp_path / "m"),
                 fresh.get_mutable_local_copy(tmp_path / "m", overwrite=True)):
        assert (Path(copy) / path).read_bytes() == b"deep"
    assert fresh.verify_dataset_hash() == []


# --- failed copies ------------------------------------------------------------------------------


@pytest.mark.parametrize("target_existed", [True, False])
def test_a_failed_mutable_copy_leaves_no_zero_filled_files(target_existed: bool, tmp_path: Path) -> None:
    ds = _final(tmp_path, {f"d{i % 3}/f{i}.bin": os.urandom(3000) for i in range(12)})
    packs = {c.pack for e in _entries(ds) for c in e.chunks}
    for p in packs:
        ds.storage.backend.delete(Pack(p).key)
    target = tmp_path / "out" / "copy"
    target.parent.mkdir()
    (target.parent / "mine.txt").write_bytes(b"the user's")
    if target_existed:
        target.mkdir()
    with pytest.raises(IntegrityError, match="is missing from store"):
        Dataset.get(dataset_id=ds.id).get_mutable_local_copy(target)
    assert sorted(os.listdir(target.parent)) == (["copy", "mine.txt"] if target_existed else ["mine.txt"])
    assert not target_existed or os.listdir(target) == []
    assert (target.parent / "mine.txt").read_bytes() == b"the user's"
    with pytest.raises(IntegrityError, match="is missing from store"):
        Dataset.get(dataset_id=ds.id).get_local_copy()
    assert not glob.glob(os.path.join(current().config.cache_dir, "copies", "*"))


# --- verify -------------------------------------------------------------------------------------


@pytest.mark.allow_warnings
def test_verify_names_exactly_the_damaged_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ds = _final(tmp_path, {f"f{i:02d}.bin": os.urandom(2000 + i) for i in range(10)})
    entries = _entries(ds)
    assert len({c.pack for e in entries for c in e.chunks}) == 1  # one pack, one batch: all read together
    damaged = [entries[3], entries[7]]
    for e in damaged:
        pack = Path(os.environ["MOUNTFS_STORE"]) / Pack(e.chunks[0].pack).key
        data = bytearray(pack.read_bytes())
        data[e.chunks[0].offset + 5] ^= 0xFF
        pack.write_bytes(bytes(data))
    assert Dataset.get(dataset_id=ds.id).verify_dataset_hash() == [e.path for e in damaged]
    assert any("integrity check failed" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


# --- a real mount -------------------------------------------------------------------------------


@pytest.fixture
def h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.setenv("MOUNTFS_RUN_DIR", short_run_dir())
    work = tmp_path / "work"
    work.mkdir()
    with harness(dict(os.environ), work) as hh:
        yield hh


@pytest.mark.fuse
@pytest.mark.slow
def test_a_crafted_version_is_eio_in_the_mount_and_the_rest_is_served(h: Harness, tmp_path: Path) -> None:
    bad = _final(tmp_path, {"ok.txt": b"good bytes"}, name="bad")
    good = _final(tmp_path, {"ok.txt": b"other bytes"}, name="good")
    _replace_manifest(bad, manifest.encode(_with_paths(_entries(bad)[0], "ok.txt", "../../escape")))
    mnt = Path(h.mountpoint())
    d = h.start(str(mnt), how="mountfsd")
    with pytest.raises(OSError) as err:
        os.listdir(mnt / "p" / "bad" / bad.version)
    assert err.value.errno == 5  # EIO
    assert (mnt / "p" / "good" / good.version / "ok.txt").read_bytes() == b"other bytes"
    wait_for(lambda: "is damaged or crafted: entry '../../escape'" in d.log_text(), 30, "the daemon to log the manifest")
    assert d.alive() and d.status()["ok"]
    assert "Traceback" not in d.log_text()
