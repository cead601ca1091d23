"""``mountfs delete`` (clearml-data's option names): one line per deleted version, gc after it unless --no-gc,
one line per error and nothing changed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mountfs import Dataset


def _build(env, mountfs, project: str, name: str, files: dict[str, bytes], parent: str | None = None) -> str:
    src = env.work.parent / f"src-{name}-{len(list(env.work.parent.glob('src-*')))}"
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    mountfs("create", "--project", project, "--name", name, *(["--parents", parent] if parent else []))
    mountfs("add", "--files", src)
    mountfs("close")
    return Dataset.get(dataset_project=project, dataset_name=name).id


def _snapshot(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def _age_packs(store: Path, seconds: float) -> None:
    """Make every pack and index object look ``seconds`` old: past gc's grace period."""
    old = time.time() - seconds
    for top in ("packs", "index"):
        for p in (store / top).rglob("*"):
            if p.is_file():
                os.utime(p, (old, old))


def test_delete_one_version_then_gc_frees_its_packs_and_the_child_stays_whole(env, mountfs) -> None:
    parent = _build(env, mountfs, "p", "ds", {"only-parent.bin": os.urandom(50_000), "kept.txt": b"kept"})
    child = _build(env, mountfs, "p", "ds", {"child.txt": b"child"}, parent=parent)
    other = _build(env, mountfs, "p", "gone", {"unique.bin": os.urandom(40_000)})
    _age_packs(env.store, 2 * 3600)
    # the other dataset: its pack is needed by nobody after it goes
    out = mountfs("delete", "--id", other).stdout.splitlines()
    assert out[0] == f"deleted {other} p/gone 1.0.0"
    assert out[1].startswith("gc ") and "freed 1 pack (" in out[1] and len(out) == 2
    # a parent: refused without --force, and its packs stay for the child that uses them
    says = mountfs.fails("delete", "--project", "p", "--name", "ds", "--version", "1.0.0", code=4)
    assert f"{parent} is a parent of {child}" in says and "force" in says
    out = mountfs("delete", "--project", "p", "--name", "ds", "--version", "1.0.0", "--force").stdout.splitlines()
    assert out[0] == f"deleted {parent} p/ds 1.0.0" and "freed 0 packs" in out[1]
    assert [d["id"] for d in mountfs.json("search", "--project", "p")] == [child]
    assert "all match" in mountfs("verify", "--id", child).stderr  # every chunk read from the store and checked
    copy = Path(Dataset.get(dataset_id=child).get_local_copy() or "")
    assert (copy / "kept.txt").read_bytes() == b"kept" and (copy / "child.txt").read_bytes() == b"child"


def test_entire_dataset_needs_force_and_no_gc_leaves_the_packs(env, mountfs) -> None:
    ids = [_build(env, mountfs, "p", "ds", {f"v{i}.txt": b"v" * (i + 1)}) for i in range(3)]
    keep = _build(env, mountfs, "p", "keep", {"k.txt": b"k"})
    before = _snapshot(env.store)
    assert "3 versions match p/ds" in mountfs.fails("delete", "--project", "p", "--name", "ds", code=2)
    assert "needs --force" in mountfs.fails("delete", "--project", "p", "--name", "ds", "--entire-dataset", code=2)
    assert _snapshot(env.store) == before
    _age_packs(env.store, 2 * 3600)
    packs = sorted((env.store / "packs").rglob("*"))
    out = mountfs("delete", "--project", "p", "--name", "ds", "--entire-dataset", "--force", "--no-gc").stdout
    assert sorted(out.splitlines()) == sorted(f"deleted {i} p/ds 1.0.{n}" for n, i in enumerate(ids))
    assert sorted((env.store / "packs").rglob("*")) == packs  # --no-gc: the packs wait for `mountfs gc`
    assert [d["id"] for d in mountfs.json("search", "--project", "p")] == [keep]


@pytest.mark.parametrize("args, code, says", [
    (["delete"], 2, "delete needs --id, or --project and/or --name"),
    (["delete", "--id", "0123456789ab01234567"], 3, "no dataset with id"),
    (["delete", "--id", "0123456789ab01234567", "--name", "ds"], 2, "not both"),
    (["delete", "--project", "p", "--name", "ds", "--version", "7.0.0"], 3, "no dataset matches p/ds/7.0.0"),
    (["delete", "--project", "p", "--name", "nothing"], 3, "no dataset matches p/nothing"),
    (["delete", "--project", "p//q", "--name", "ds"], 2, "project"),
])
def test_bad_input_is_one_line_and_changes_nothing(env, mountfs, args: list[str], code: int, says: str) -> None:
    _build(env, mountfs, "p", "ds", {"a.txt": b"a"})
    before = _snapshot(env.store)
    assert says in mountfs.fails(*args, code=code)
    assert _snapshot(env.store) == before
