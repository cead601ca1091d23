"""One "latest" of a project/name (issue 15): the highest semantic version, ties by the newest, alike for
``Dataset.get``, the next automatic version, the mount's ``latest`` link and ``search``'s order."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from mountfs import Dataset
from mountfs.catalog import DatasetRecord
from mountfs.catalog import catalog as rule  # latest_key, latest_first: the one rule
from mountfs.fs.namespace import LATEST, Link, Namespace
from mountfs.session import Session

Finalized = Callable[..., Any]  # tests/sdk/conftest.py's fixture


def test_a_higher_version_created_first_is_the_latest_everywhere(finalized: Finalized, sess: Session) -> None:
    high = finalized({"a.txt": b"two"}, dataset_version="2.0.0")
    low = finalized({"a.txt": b"one and a half"}, dataset_version="1.5.0")  # created after 2.0.0
    assert Dataset.get(dataset_project="p", dataset_name="ds").id == high.id
    assert Dataset.get(dataset_project="p", dataset_name="ds", only_completed=True).id == high.id
    assert [d["version"] for d in Dataset.list_datasets(dataset_project="p")] == ["2.0.0", "1.5.0"]
    ns = Namespace(sess.catalog)
    assert ns.refresh()
    assert ns.resolve(("p", "ds", LATEST)) == Link("2.0.0")
    # the next automatic number follows the latest, not the newest (1.5.1)
    nxt = Dataset.create(dataset_name="ds", dataset_project="p", parent_datasets=[low.id])
    assert nxt.version == "2.0.1"
    assert Dataset.get(dataset_project="p", dataset_name="ds").id == nxt.id  # a draft is the latest now
    assert Dataset.get(dataset_project="p", dataset_name="ds", only_completed=True).id == high.id


def test_search_keeps_datasets_newest_first_and_each_one_latest_first(finalized: Finalized) -> None:
    a2 = finalized({"x": b"1"}, name="a", dataset_version="2.0")
    b1 = finalized({"x": b"2"}, name="b", dataset_version="1.0")
    a1 = finalized({"x": b"3"}, name="a", dataset_version="1.5")
    found = Dataset.list_datasets(dataset_project="p")
    # a's places (1st and 3rd, newest first) are filled by a's versions, latest first
    assert [d["id"] for d in found] == [a2.id, b1.id, a1.id]
    assert Dataset.get(dataset_project="p", dataset_name="a").id == a2.id
    assert Dataset.get(dataset_project="p").id == a2.id  # the newest dataset's latest


def _record(dataset_id: str, version: str, name: str = "ds") -> DatasetRecord:
    return DatasetRecord(id=dataset_id, project="p", name=name, version=version)


def test_the_same_semantic_version_is_decided_by_the_newest() -> None:
    older, newer = "0190a1b2c3d40000000a", "0190a1b2c3d50000000b"
    for first, second in (("1.0", "1.0.0"), ("1.0.0", "1.0")):
        recs = [_record(older, first), _record(newer, second)]
        assert [r.id for r in rule.latest_first(recs)] == [newer, older]
        assert [r.id for r in rule.latest_first(reversed(recs))] == [newer, older]
    # numbers, not text: 1.10 after 1.9; a higher version wins over any newer one
    assert max(["1.9", "1.10", "1.2.3"], key=lambda v: rule.latest_key(v, older)) == "1.10"
    assert rule.latest_key("2.0", older) > rule.latest_key("1.99.99", newer)
    # within one millisecond: the longer spelling, then the id (never the random tail alone)
    same_ms = "0190a1b2c3d4ffffffff", "0190a1b2c3d400000000"
    assert rule.latest_key("1.0.0", same_ms[1]) > rule.latest_key("1.0", same_ms[0])


def test_the_mount_link_and_get_agree_on_a_tie(finalized: Finalized, sess: Session,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    first = finalized({"a": b"1"}, dataset_version="1.0.0")
    # a second spelling of one number is refused now (issue 16); a store written before may hold both
    with monkeypatch.context() as m:
        m.setattr(rule.Catalog, "_check_spelling", lambda *args: None)
        second = finalized({"a": b"2"}, dataset_version="1.0")
    want = max((first, second), key=lambda d: rule.latest_key(d.version, d.id))
    assert Dataset.get(dataset_project="p", dataset_name="ds").id == want.id
    ns = Namespace(sess.catalog)
    assert ns.refresh()
    assert ns.resolve(("p", "ds", LATEST)) == Link(want.version)
    # and the next number follows that one
    assert Dataset.create(dataset_name="ds", dataset_project="p").version == (
        "1.1" if want.version == "1.0" else "1.0.1")
