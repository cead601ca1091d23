"""DESIGN.md invariants 1-3 on the local store, with real processes."""

from __future__ import annotations

import multiprocessing as mp
import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mountfs import Dataset
from mountfs.errors import Conflict, NotFound, StateError


def _pack_files(store: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in (store / "packs").rglob("*") if p.is_file() and not p.name.startswith(".tmp")}


def test_crash_mid_upload_leaves_no_version_and_retry_sends_only_the_rest(tmp_path: Path) -> None:
    src = tmp_path / "big"
    src.mkdir()
    for i in range(12):
        (src / f"part{i:02d}.bin").write_bytes(os.urandom(3 << 20))
    ds = Dataset.create(dataset_name="crash", dataset_project="p")
    ds.add_files(src)
    store = Path(os.environ["MOUNTFS_STORE"])
    ready_r, ready_w = os.pipe()
    # the child tells us when its third pack is indexed (pack and index object durable), then
    # waits to be killed: the crash lands at that point, not wherever a polling loop caught it
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import os, threading
            from mountfs import Dataset
            from mountfs.store.store import Store

            real, indexed = Store.add_to_index, []

            def add_to_index(self, pack_id, entries):
                real(self, pack_id, entries)
                indexed.append(pack_id)
                if len(indexed) == 3:
                    os.write({ready_w}, b"3")
                    threading.Event().wait()

            Store.add_to_index = add_to_index
            ds = Dataset.get(dataset_id={ds.id!r})
            ds.upload(show_progress=False, chunk_size=1, max_workers=1)
            ds.finalize()
        """)],
        env=os.environ.copy(), pass_fds=(ready_w,),
    )
    os.close(ready_w)
    try:
        readable, _, _ = select.select([ready_r], [], [], 60)
        # EOF (b"") instead: the child ended (the upload finished or failed) before three packs
        assert readable and os.read(ready_r, 1) == b"3", "the upload never indexed three packs"
        assert len(list((store / "index").glob("*"))) >= 3
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        os.close(ready_r)
    landed = _pack_files(store)
    assert 0 < len(landed)
    # no half version: nothing completed is visible, the record is still a draft
    with pytest.raises(NotFound):
        Dataset.get(dataset_project="p", dataset_name="crash", only_completed=True)
    again = Dataset.get(dataset_id=ds.id)
    assert again.status == "draft" and not (store / "datasets" / ds.id / "manifest").exists()
    again.upload(show_progress=False, chunk_size=1)
    again.finalize()
    after = _pack_files(store)
    sent = sum(size for name, size in after.items() if name not in landed)
    total = sum(after.values())
    assert set(landed) <= set(after)
    assert sent <= total - sum(landed.values()) and sent < total
    copy = Path(again.get_local_copy())
    for f in src.iterdir():
        assert (copy / f.name).read_bytes() == f.read_bytes()


def test_finalized_version_is_immutable(tree: Path) -> None:
    ds = Dataset.create(dataset_name="imm", dataset_project="p")
    ds.add_files(tree)
    ds.finalize(auto_upload=True)
    manifest = Path(os.environ["MOUNTFS_STORE"]) / "datasets" / ds.id / "manifest"
    before = manifest.read_bytes()
    for d in (ds, Dataset.get(dataset_id=ds.id)):
        with pytest.raises(StateError, match="finalized"):
            d.add_files(tree)
        with pytest.raises(StateError, match="finalized"):
            d.remove_files("*")
        with pytest.raises(StateError, match="finalized"):
            d.upload()
        assert d.finalize()  # idempotent, rewrites nothing
    assert manifest.read_bytes() == before
    assert len(Dataset.get(dataset_id=ds.id).list_files()) == 30


def _racer(env: dict, version: str | None, barrier, results) -> None:
    os.environ.update(env)
    barrier.wait()
    try:
        ds = Dataset.create(dataset_name="race", dataset_project="p", dataset_version=version)
        results.put(("won", ds.version))
    except Conflict as exc:
        results.put(("lost", str(exc)))


@pytest.mark.parametrize("version", ["2.0", None])
def test_racing_creators_exactly_one_owns_a_version(version: str | None, isolated_env: dict) -> None:
    ctx = mp.get_context("spawn")
    n = 4
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(isolated_env, version, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    got = [results.get(timeout=5) for _ in range(n)]
    won = [v for k, v in got if k == "won"]
    if version:
        assert won == ["2.0"] and sum(k == "lost" for k, _ in got) == n - 1
        assert all("already exists" in v for k, v in got if k == "lost")
    else:
        assert len(won) == n and len(set(won)) == n  # everyone got their own version
