"""The folder backend (mountfs/backends/file.py) beyond the shared contract (test_backend_contract.py):
its URLs, keys that would leave the folder, temp files and empty folders, errors on a real disk,
writers in several processes.  What a restricted process's ``check`` does with symlinks and FIFOs is
tests/security/test_external_policy.py.
"""

from __future__ import annotations

import errno
import io
import multiprocessing
import multiprocessing.synchronize
import os
from pathlib import Path

import pytest

from mountfs.backends import open_backend
from mountfs.backends.file import FileBackend
from mountfs.errors import AlreadyExists, ObjectNotFound, StoreError, TransientStoreError


def _files(root: Path) -> list[str]:
    """Every file and folder under ``root``, relative, sorted: what a write really left on disk."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# --- URLs ---------------------------------------------------------------------------


def test_paths_and_file_urls_open_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "store"
    for url in (str(root), f"file://{root}", f"{root}/", f"file://{root}/"):
        store = open_backend(url)
        assert isinstance(store, FileBackend) and store.url == str(root), url
    monkeypatch.chdir(tmp_path)
    assert open_backend("store").url == str(root), "a relative path is made absolute once, at open"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert open_backend("~/store").url == str(root)
    open_backend(str(root)).put("k", b"v")
    assert open_backend(f"file://{root}").get("k") == b"v"


# --- keys -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["../outside", "a/../../outside", "/etc/passwd", "a/.."])
def test_keys_that_would_leave_the_folder_are_refused(tmp_path: Path, key: str) -> None:
    root = tmp_path / "store"
    root.mkdir()
    store = FileBackend(root)
    for call in (lambda: store.put(key, b"x"), lambda: store.get(key), lambda: store.get_range(key, 0, 1),
                 lambda: store.stat(key), lambda: store.delete(key), lambda: store.put_if_absent(key, b"x")):
        with pytest.raises(StoreError, match="invalid object key"):
            call()
    assert _files(tmp_path) == ["store"], "nothing was written anywhere"


def test_a_folder_is_not_an_object(tmp_path: Path) -> None:
    store = FileBackend(tmp_path)
    store.put("packs/aa/p1", b"x")
    for call in (lambda: store.get("packs/aa"), lambda: store.stat("packs"), lambda: store.get_range("packs", 0, 1)):
        with pytest.raises(ObjectNotFound):
            call()
    assert not store.exists("packs/aa")
    # nor is a path through an object ("a/b" where "a" is one): in a bucket nothing is under that key
    for call in (lambda: store.get("packs/aa/p1/x"), lambda: store.get_range("packs/aa/p1/x", 0, 1),
                 lambda: store.stat("packs/aa/p1/x")):
        with pytest.raises(ObjectNotFound):
            call()
    assert not store.exists("packs/aa/p1/x")
    assert [o.key for o in store.list()] == ["packs/aa/p1"]


# --- temp files and folders -----------------------------------------------------------------


def test_leftover_temp_files_are_never_listed(tmp_path: Path) -> None:
    # a writer that died between writing its temp file and the rename leaves one behind
    store = FileBackend(tmp_path)
    store.put("packs/aa/p1", b"x")
    (tmp_path / "packs" / "aa" / ".tmp-abc123").write_bytes(b"half a pack")
    assert [o.key for o in store.list()] == ["packs/aa/p1"]
    assert [o.key for o in store.list("packs/aa/")] == ["packs/aa/p1"]


class _BrokenFile(io.BytesIO):
    """A source file whose disk fails after the first read."""

    def __init__(self) -> None:
        super().__init__(b"new content " * 1000)
        self.reads = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        if self.reads > 1:
            raise OSError(errno.EIO, "Input/output error")
        return super().read(100)


def test_a_failed_write_leaves_the_old_object_and_no_temp_file(tmp_path: Path) -> None:
    store = FileBackend(tmp_path)
    store.put("packs/p", b"old")
    with pytest.raises(TransientStoreError, match="I/O error"):  # EIO is worth another try
        store.put_file("packs/p", _BrokenFile(), 12000)
    assert store.get("packs/p") == b"old"
    assert _files(tmp_path) == ["packs", "packs/p"]


def test_a_lost_conditional_create_leaves_no_temp_file(tmp_path: Path) -> None:
    store = FileBackend(tmp_path)
    store.put_if_absent("catalog/p/n/1.0", b"first")
    with pytest.raises(AlreadyExists):
        store.put_if_absent("catalog/p/n/1.0", b"second")
    assert store.get("catalog/p/n/1.0") == b"first"
    assert _files(tmp_path) == ["catalog", "catalog/p", "catalog/p/n", "catalog/p/n/1.0"]


def test_delete_drops_empty_folders_but_not_the_root(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = FileBackend(root)
    store.put("a/b/c", b"1")
    store.put("a/x", b"2")
    store.delete("a/b/c")
    assert _files(root) == ["a", "a/x"], "a/b went with its last object; a still holds x"
    store.delete("a/x")
    assert root.is_dir() and _files(root) == []


def test_a_key_under_an_object_is_an_error_naming_it(tmp_path: Path) -> None:
    # S3 could hold both "a" and "a/b"; a folder cannot, and says so rather than raising OSError
    store = FileBackend(tmp_path)
    store.put("a", b"object")
    with pytest.raises(StoreError, match="'a/b'") as info:
        store.put("a/b", b"x")
    assert not isinstance(info.value, (AlreadyExists, ObjectNotFound))
    assert store.get("a") == b"object"


# --- staged writes and several processes --------------------------------------------------------


def test_file_store_stages_without_a_visible_object(tmp_path: Path) -> None:
    # the deferred fsync is only safe if nothing unsynced has its final name
    backend = FileBackend(tmp_path)
    staged = backend.stage_parts("packs/x", [b"abc"])
    assert not backend.exists("packs/x") and list(backend.list()) == []
    staged.commit()
    assert backend.get("packs/x") == b"abc"
    dropped = backend.stage_parts("packs/y", [b"def"])
    dropped.discard()
    assert not backend.exists("packs/y") and os.listdir(tmp_path / "packs") == ["x"]


def _create_in_process(root: str, key: str, payload: bytes, barrier: multiprocessing.synchronize.Barrier,
                       results: "multiprocessing.Queue[tuple[str, bytes]]") -> None:
    barrier.wait()
    try:
        FileBackend(root).put_if_absent(key, payload)
        results.put(("won", payload))
    except AlreadyExists:
        results.put(("lost", payload))


def test_put_if_absent_race_processes(tmp_path: Path) -> None:
    # the thread race of the contract runs on every backend; processes racing on one folder is this one's own
    backend = FileBackend(tmp_path)
    ctx = multiprocessing.get_context("fork")
    for round_ in range(3):
        key, barrier, results = f"catalog/proc/{round_}", ctx.Barrier(2), ctx.Queue()
        payloads = [f"process {i}".encode() * 500 for i in range(2)]
        procs = [ctx.Process(target=_create_in_process, args=(str(tmp_path), key, p, barrier, results))
                 for p in payloads]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        outcome = dict(results.get(timeout=5) for _ in procs)
        assert sorted(outcome) == ["lost", "won"]
        assert backend.get(key) == outcome["won"]
