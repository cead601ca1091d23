"""The catalog as a directory tree (mountfs/fs/namespace.py), without a kernel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fshelp import build, move_version, tiny

from mountfs.errors import StoreError
from mountfs.fs.namespace import BY_ID, LATEST, Dir, Link, Namespace, Version


def _names(ns: Namespace, *parts: str) -> set[str]:
    node = ns.resolve(tuple(parts))
    assert isinstance(node, Dir), (parts, node)
    return set(node.children)


def test_catalog_tree(tmp_path: Path, session) -> None:
    v = {}
    for ver in ("1.0.0", "1.0.1", "1.0.9", "1.0.10"):  # 1.0.10 > 1.0.9: numeric, not text order
        v["cats", ver] = build("vision", "cats", tiny(tmp_path, f"cats{ver}"), version=ver).id
    v["dogs", "2.0"] = build("vision", "dogs", tiny(tmp_path, "dogs"), version="2.0").id
    v["boxes", "1.0.0"] = build("vision/det", "boxes", tiny(tmp_path, "boxes")).id
    v["deep", "3.1"] = build("a/b/c", "deep", tiny(tmp_path, "deep"), version="3.1").id
    speech = build("audio", "speech", tiny(tmp_path, "speech"))
    speech.publish()
    v["speech", "1.0.0"] = speech.id
    # drafts: claimed but never finalized (one uploaded, one not even that, one empty)
    draft_uploaded = build("audio", "speech", tiny(tmp_path, "d1"), finalize=False)
    draft_fresh = build("audio", "speech", tiny(tmp_path, "d2"), finalize=False, upload=False)
    draft_only = build("audio", "noise", None, finalize=False, upload=False)
    drafts = {draft_uploaded.id, draft_fresh.id, draft_only.id}

    ns = Namespace(session.catalog)
    assert ns.refresh() is True
    assert ns.refresh() is False  # nothing changed

    assert _names(ns) == {BY_ID, "vision", "audio", "a"}
    assert _names(ns, "vision") == {"cats", "dogs", "det"}
    assert _names(ns, "vision", "cats") == {"1.0.0", "1.0.1", "1.0.9", "1.0.10", LATEST}
    assert ns.resolve(("vision", "cats", LATEST)) == Link("1.0.10")
    assert ns.resolve(("vision", "dogs", LATEST)) == Link("2.0")
    assert _names(ns, "vision", "det") == {"boxes"}
    assert _names(ns, "vision", "det", "boxes") == {"1.0.0", LATEST}
    assert _names(ns, "a", "b", "c", "deep") == {"3.1", LATEST}
    # drafts are invisible: the only speech version is the published one, no noise at all
    assert _names(ns, "audio") == {"speech"}
    assert _names(ns, "audio", "speech") == {"1.0.0", LATEST}
    assert ns.resolve(("audio", "speech", LATEST)) == Link("1.0.0")
    assert ns.resolve(("audio", "speech", "1.0.1")) is None

    for (name, ver), dataset_id in v.items():
        assert ns.records[dataset_id].name == name
    assert ns.resolve(("vision", "cats", "1.0.10")) == Version(v["cats", "1.0.10"])
    assert ns.resolve(("a", "b", "c", "deep", "3.1")) == Version(v["deep", "3.1"])
    assert _names(ns, BY_ID) == set(v.values())
    for dataset_id in v.values():
        assert ns.resolve((BY_ID, dataset_id)) == Version(dataset_id)
    for dataset_id in drafts:
        assert ns.resolve((BY_ID, dataset_id)) is None
        assert dataset_id not in ns.records

    # lookups that must fail without raising
    assert ns.resolve(("nope",)) is None
    assert ns.resolve(("vision", "cats", "1.0.0", "file.txt")) is None  # below a version: not the namespace's
    assert ns.resolve(("vision", "cats", LATEST, "x")) is None

    # a draft finalized later appears on the next refresh and becomes latest
    draft_uploaded.finalize()
    assert ns.refresh() is True
    assert _names(ns, "audio", "speech") == {"1.0.0", draft_uploaded.version, LATEST}
    assert ns.resolve(("audio", "speech", LATEST)) == Link(draft_uploaded.version)
    assert ns.resolve((BY_ID, draft_uploaded.id)) == Version(draft_uploaded.id)
    assert ns.refresh() is False


def test_empty_catalog(session) -> None:
    ns = Namespace(session.catalog)
    ns.refresh()
    assert _names(ns) == {BY_ID}
    assert _names(ns, BY_ID) == set()


def test_project_level_and_dataset_name_coexist(tmp_path: Path, session, monkeypatch: pytest.MonkeyPatch) -> None:
    """``vision/det`` is both a dataset (project vision, name det) and a project level: refused for new datasets
    since issue 16, and still shown as it is from a store written before."""
    from mountfs.catalog.catalog import Catalog

    det = build("vision", "det", tiny(tmp_path, "det"), version="1.0").id
    with monkeypatch.context() as m:
        m.setattr(Catalog, "check_place", lambda *args, **kw: None)
        boxes = build("vision/det", "boxes", tiny(tmp_path, "boxes"), version="1.0").id
    ns = Namespace(session.catalog)
    ns.refresh()
    assert _names(ns, "vision", "det") == {"1.0", LATEST, "boxes"}
    assert ns.resolve(("vision", "det", "1.0")) == Version(det)
    assert ns.resolve(("vision", "det", "boxes", "1.0")) == Version(boxes)
    assert ns.resolve(("vision", "det", LATEST)) == Link("1.0")


def test_a_vanished_store_keeps_the_versions(tmp_path: Path, session) -> None:
    """A store that lists as empty because it is gone (an unmounted share) is an error, not "no datasets"."""
    cats = build("vision", "cats", tiny(tmp_path, "cats")).id
    ns = Namespace(session.catalog)
    assert ns.refresh() is True
    store = Path(os.environ["MOUNTFS_STORE"])
    away = store.with_name(store.name + ".away")
    store.rename(away)
    try:
        with pytest.raises(StoreError, match="no mountfs store at"):
            ns.refresh()
        assert ns.resolve((BY_ID, cats)) == Version(cats)
    finally:
        away.rename(store)
    assert ns.refresh() is False


def test_build_publishes_nothing_until_assigned(tmp_path: Path, session) -> None:
    """The next snapshot is built aside (off the event loop) and becomes visible in one assignment."""
    ns = Namespace(session.catalog)
    before = ns.current
    v = build("p", "n", tiny(tmp_path, "v")).id
    snapshot = ns.build()
    assert snapshot is not None and v in snapshot.records
    assert ns.current is before and ns.resolve(("p",)) is None  # built, not published
    ns.current = snapshot
    assert ns.resolve(("p", "n", "1.0.0")) == Version(v)
    assert ns.build() is None  # nothing changed since: no new snapshot
    # a snapshot never changes once built: the next one is a new object
    build("p", "n", tiny(tmp_path, "v2"))
    nxt = ns.build()
    assert nxt is not None and nxt is not snapshot and set(snapshot.records) == {v}


@pytest.mark.allow_warnings  # a refresh may land between the steps of a rename (record and pointer disagree)
def test_rename_move_and_delete_follow_the_catalog(tmp_path: Path, session) -> None:
    cat = session.catalog
    a = build("vision", "cats", tiny(tmp_path, "a"), version="1.0").id
    b = build("vision", "cats", tiny(tmp_path, "b"), version="1.1").id
    ns = Namespace(session.catalog)
    assert ns.refresh()
    assert _names(ns, "vision", "cats") == {"1.0", "1.1", LATEST}

    # renamed: the same version (same id) at its new path, gone from the old one
    move_version(cat, a, "vision", "kittens")
    assert ns.refresh()
    assert ns.resolve(("vision", "kittens", "1.0")) == Version(a)
    assert ns.resolve(("vision", "cats", "1.0")) is None
    assert ns.resolve(("vision", "cats", LATEST)) == Link("1.1")
    assert ns.records[a].name == "kittens"
    assert ns.resolve((BY_ID, a)) == Version(a)

    # moved to another project
    move_version(cat, a, "animals/small", "kittens")
    assert ns.refresh()
    assert ns.resolve(("animals", "small", "kittens", "1.0")) == Version(a)
    assert "kittens" not in _names(ns, "vision")
    assert ns.records[a].project == "animals/small"

    # deleted (its pointer removed): gone everywhere, .by-id too
    cat.release("vision", "cats", "1.1")
    assert ns.refresh()
    assert ns.resolve(("vision",)) is None  # its last version went, and the project with it
    assert ns.resolve((BY_ID, b)) is None and b not in ns.records

    # its place taken by another dataset: the new one is shown, not the one the place used to hold
    c = build("vision", "cats", tiny(tmp_path, "c"), version="1.1").id
    assert ns.refresh()
    assert ns.resolve(("vision", "cats", "1.1")) == Version(c)
    assert ns.resolve((BY_ID, b)) is None


def test_folders_and_latest_carry_the_time_of_the_newest_version_below(tmp_path: Path, session) -> None:
    from mountfs.fs.namespace import version_mtime_ns

    old = build("time/a", "n", tiny(tmp_path, "old"), version="1.0")
    new = build("time/a", "n", tiny(tmp_path, "new"), version="0.9")  # finalized last, though not latest
    other = build("time", "m", tiny(tmp_path, "other"), version="1.0")
    ns = Namespace(session.catalog)
    ns.refresh()
    t = {ds.id: version_mtime_ns(ns.records[ds.id]) for ds in (old, new, other)}
    assert all(t.values()) and t[old.id] <= t[new.id] <= t[other.id]

    def mtime(*parts: str) -> int:
        node = ns.resolve(parts)
        assert isinstance(node, (Dir, Link)), parts
        return node.mtime_ns

    assert mtime("time", "a", "n") == mtime("time", "a") == t[new.id]
    assert mtime("time", "a", "n", LATEST) == t[new.id]  # the folder's newest, whichever version it names
    assert mtime("time", "m") == t[other.id]
    assert mtime("time") == mtime() == mtime(BY_ID) == max(t.values())


def test_an_empty_catalog_is_dated_zero(session) -> None:
    ns = Namespace(session.catalog)
    ns.refresh()
    assert isinstance(ns.current.root, Dir) and ns.current.root.mtime_ns == 0
