"""session: one Session per configuration, the process's configuration for a block (use/current), and what a
session opens for the SDK (stores, catalog, cache, external sources and folders), each once and on first use."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import select
import struct
import sys
import termios
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mountfs import config, session
from mountfs.store.format import NoStore
from mountfs.backends.retry import RetryingBackend
from mountfs.errors import PermissionDenied


def _files(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


# ------------------------------------------------------------- one session per config


def test_sessions_are_keyed_by_the_whole_config(tmp_path: Path) -> None:
    a, b = session.current(run_dir=str(tmp_path / "a")), session.current(run_dir=str(tmp_path / "b"))
    assert (a.config.run_dir, b.config.run_dir) == (str(tmp_path / "a"), str(tmp_path / "b"))
    assert a is not b
    assert session.current(run_dir=str(tmp_path / "a")) is a
    cfg = config.process_config()
    assert session.open(cfg) is session.current()
    assert session.open(dataclasses.replace(cfg, realtime=not cfg.realtime)) is not session.current()
    # ./store and its absolute path are one store, one session
    relative = dataclasses.replace(cfg, store=os.path.relpath(cfg.store))
    assert session.open(relative) is session.open(cfg)


def test_threads_opening_one_config_share_one_session(tmp_path: Path) -> None:
    cfg = config.Config.load(overrides={"store": str(tmp_path / "threaded")})
    start = threading.Barrier(8)

    def opened(_: int) -> session.Session:
        start.wait()
        return session.open(cfg)

    with ThreadPoolExecutor(8) as pool:
        sessions = list(pool.map(opened, range(8)))
    assert len({id(s) for s in sessions}) == 1
    with ThreadPoolExecutor(8) as pool:
        stores = list(pool.map(lambda _: sessions[0].create_store(str(tmp_path / "other")), range(8)))
    assert len({id(s) for s in stores}) == 1


# ---------------------------------------------------------- the process's configuration


def test_use_sets_the_process_config_for_a_block(tmp_path: Path) -> None:
    mine = config.Config.load(overrides={"store": str(tmp_path / "mine")})
    before = session.current()
    with session.use(mine):
        assert config.process_config() is mine and session.current().config.store == str(tmp_path / "mine")
    assert session.current() is before


def test_use_nests_and_gives_the_previous_config_back_after_an_error(tmp_path: Path) -> None:
    outer = config.Config.load(overrides={"store": str(tmp_path / "outer")})
    inner = config.Config.load(overrides={"store": str(tmp_path / "inner")})
    before = config.process_config()
    with session.use(outer) as given:
        assert given is outer
        with pytest.raises(RuntimeError):
            with session.use(inner):
                assert session.current().config.store == str(tmp_path / "inner")
                raise RuntimeError("the command failed")
        assert session.current().config.store == str(tmp_path / "outer")
    assert config.process_config() is before


def test_current_applies_overrides_to_the_process_config(tmp_path: Path) -> None:
    sess = session.current(cache_dir=str(tmp_path / "other-cache"))
    assert sess.config.cache_dir == str(tmp_path / "other-cache")
    assert sess.config.store == session.current().config.store  # the rest is the process's
    assert sess is not session.current()


# ------------------------------------------------------------------ what a session opens


def test_the_store_the_catalog_and_the_cache_are_opened_on_first_use(tmp_path: Path) -> None:
    cfg = config.Config.load(overrides={"store": str(tmp_path / "lazy-store"), "cache_dir": str(tmp_path / "c")})
    sess = session.open(cfg)
    assert not (tmp_path / "lazy-store").exists()  # opening a session touches no store
    assert sess.cache is sess.cache
    assert not (tmp_path / "lazy-store").exists()  # cache commands need no store
    assert sess.catalog is sess.catalog
    assert list(sess.catalog.find()) == []  # a missing store reads as empty in the SDK...
    assert not (tmp_path / "lazy-store").exists()  # ...and reading never creates it
    with pytest.raises(NoStore, match="no mountfs store at .*lazy-store"):
        sess.store()
    assert sess.create_store() is sess.store()  # a write that makes a dataset starts it
    assert (tmp_path / "lazy-store" / "mountfs.json").is_file()
    assert sess.store() is sess.store("") is sess.store(str(tmp_path / "lazy-store"))
    with pytest.raises(NoStore):  # nor is a data store started by reading it
        sess.store(str(tmp_path / "elsewhere"))
    assert sess.create_store(str(tmp_path / "elsewhere")) is not sess.store()
    assert sess.catalog_url == str(tmp_path / "lazy-store")


def test_sources_in_one_folder_share_a_backend(tmp_path: Path) -> None:
    ext = _files(tmp_path / "ext", {"a.csv": b"1", "b.csv": b"2", "sub/c.csv": b"3"})
    sess = session.current()
    backend_a, key_a = sess.source(f"file://{ext}/a.csv")
    backend_b, key_b = sess.source(f"file://{ext}/b.csv")
    assert (key_a, key_b) == ("a.csv", "b.csv") and backend_a is backend_b
    assert backend_a.get(key_b) == b"2"
    backend_c, key_c = sess.source(f"file://{ext}/sub/c.csv")
    assert backend_c is not backend_a and backend_c.get(key_c) == b"3"


def test_sources_and_folders_outside_the_allowed_ones_are_refused(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    allowed = _files(tmp_path / "allowed", {"ok": b"ok", "deep/er": b"er"})
    other = _files(tmp_path / "other", {"secret": b"no"})
    monkeypatch.setenv("MOUNTFS_EXTERNAL_ALLOW", str(allowed))
    sess = session.current()
    folder = sess.folder(str(allowed))
    assert isinstance(folder, RetryingBackend)  # the one retry layer, as for every store
    assert [o.key for o in folder.list("")] == ["deep/er", "ok"]
    assert sess.source(str(allowed / "ok"))[0].get("ok") == b"ok"
    with pytest.raises(PermissionDenied, match=f"external folder {other} may not be read"):
        sess.folder(str(other))
    with pytest.raises(PermissionDenied, match=str(other / "secret")):
        sess.source(str(other / "secret"))


@pytest.mark.parametrize("given, expected", [(None, os.cpu_count() or 1), (0, os.cpu_count() or 1), (3, 3), (-2, 1)])
def test_default_workers(given: int | None, expected: int) -> None:
    assert session.default_workers(given) == expected


def test_progress_bar_only_when_enabled_and_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with session.progress_bar(100, "copying", enabled=False) as advance:
        advance(100)
    assert capsys.readouterr().err == ""
    # stderr is no terminal here (captured): no frames, even when asked for
    with session.progress_bar(100, "copying", enabled=True) as advance:
        advance(100)
    assert capsys.readouterr().err == ""
    master, slave = os.openpty()
    # a terminal of 0 rows (a new pty's) hides tqdm's bar: give it a size as a real one has
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    with os.fdopen(slave, "w") as tty:
        monkeypatch.setattr(sys, "stderr", tty)
        with session.progress_bar(3 << 20, "copying", enabled=True) as advance:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(advance, [1 << 20] * 3))
        tty.flush()
        monkeypatch.undo()
    try:
        assert select.select([master], [], [], 5)[0], "no bar on the terminal"
        shown = os.read(master, 65536).decode()
    finally:
        os.close(master)
    assert "copying" in shown and "3.00M" in shown
