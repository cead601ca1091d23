"""Damaged and crafted dataset records and version pointers (issue 13, items 4 and 7).

Anyone who can write a shared store can write ``datasets/<id>/info.json`` and
``catalog/<project>/<name>/<version>``.  One bad record used to kill ``mountfsd``
at every start (``version_key("abc")`` in the namespace) and make ``search`` and
``list_datasets`` fail for every dataset.  Now every record field is checked on
decode; a bad record or pointer is skipped with one warning naming it, however
often the catalog is read; asking for that very record by id is a clear
``IntegrityError``; and a record shows only where its own version pointer puts it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator

import pytest

# the real-mount harness lives with the daemon tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from mfs import MOUNTFS, Daemon, Harness, harness, short_run_dir, wait_for, write  # noqa: E402

from mountfs import Dataset  # noqa: E402
from mountfs.catalog import DatasetRecord  # noqa: E402
from mountfs.catalog.names import version_key  # noqa: E402
from mountfs.catalog.records import new_id  # noqa: E402
from mountfs.errors import IntegrityError  # noqa: E402
from mountfs.fs.namespace import BY_ID, LATEST, Dir, Link, Namespace, Version  # noqa: E402
from mountfs.session import current  # noqa: E402

ID = "0190a1b2c3d4deadbeef"
WHERE = f"/srv/store/datasets/{ID}/info.json"
_DROP = object()


def _doc(**changes: Any) -> dict[str, Any]:
    doc = json.loads(DatasetRecord(id=ID, project="vision", name="cats", version="2.0", status="completed").to_json())
    for key, value in changes.items():
        if value is _DROP:
            del doc[key]
        else:
            doc[key] = value
    return doc


def _raw(**changes: Any) -> bytes:
    return json.dumps(_doc(**changes)).encode()


GOOD = _raw()

#: label -> (the bytes of info.json, what the error must say)
BAD_RECORDS: dict[str, tuple[bytes, str]] = {
    "null": (b"null", "NoneType instead of a JSON object"),
    "a list": (b"[1, 2, 3]", "list instead of a JSON object"),
    "a string": (b'"completed"', "str instead of a JSON object"),
    "truncated": (GOOD[: len(GOOD) // 2], "not JSON"),
    "empty": (b"", "not JSON"),
    "not UTF-8": (GOOD.replace(b'"cats"', b'"c\xffts"'), "not JSON"),
    "absurdly deep": (b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not JSON"),
    "version abc": (_raw(version="abc"), r"field 'version': malformed version 'abc'"),
    "version empty": (_raw(version=""), "field 'version'"),
    "version with a newline": (_raw(version="1.0\n"), "field 'version'"),
    "version in Arabic digits": (_raw(version="١.٠"), "field 'version'"),
    "version of 5000 digits": (_raw(version="9" * 5000), "field 'version'"),
    "version a number": (_raw(version=2.0), "field 'version'"),
    "project 5": (_raw(project=5), "field 'project'"),
    "project with ..": (_raw(project="a/../b"), "field 'project'"),
    "name null": (_raw(name=None), "field 'name'"),
    "name with a slash": (_raw(name="a/b"), "field 'name'"),
    "name a lone surrogate": (GOOD.replace(b'"cats"', b'"\\ud800"'), "field 'name'.*not valid Unicode"),
    "status a list": (_raw(status=["completed"]), "field 'status'"),
    "status unknown": (_raw(status="done"), "field 'status'"),
    "id of another folder": (_raw(id="0190a1b2c3d4cafebabe"), "field 'id'.*not the id of its folder"),
    "no id": (_raw(id=_DROP), "no id"),
    "no version": (_raw(version=_DROP), "no version"),
    "tags a string": (_raw(tags="x"), "field 'tags'"),
    "a tag that is a lone surrogate": (_raw(tags=["\ud800"]), "field 'tags'.*not valid Unicode"),
    "parents not ids": (_raw(parents=[5]), "field 'parents'"),
    "file_count -1": (_raw(file_count=-1), "field 'file_count'"),
    "file_count '3'": (_raw(file_count="3"), "field 'file_count'"),
    "file_count true": (_raw(file_count=True), "field 'file_count'"),
    "total_size 1.5": (_raw(total_size=1.5), "field 'total_size'"),
    "total_size 2**64": (_raw(total_size=2**64), "field 'total_size'"),
    "changes not counts": (_raw(changes={"added": "x"}), "field 'changes'"),
    "metadata name escaping": (_raw(metadata={"../../x": {"type": "json"}}), "field 'metadata'"),
    "metadata entry a string": (_raw(metadata={"m": "json"}), "field 'metadata'"),
    "finalized not a time": (_raw(finalized="yesterday"), "field 'finalized'"),
    "format a string": (_raw(format="1"), "field 'format'"),
    "format newer": (_raw(format=2), "format 2, newer than this mountfs reads"),
}


# --- decoding one record ----------------------------------------------------------------------


@pytest.mark.parametrize("label", BAD_RECORDS)
def test_a_bad_record_is_an_integrity_error_naming_it(label: str) -> None:
    data, says = BAD_RECORDS[label]
    with pytest.raises(IntegrityError) as err:
        DatasetRecord.from_json(data, WHERE, ID)
    message = str(err.value)
    assert WHERE in message and re.search(says, message), message
    assert "\n" not in message and len(message) < 400, message  # one readable line, whatever the record holds


def test_every_field_is_checked() -> None:
    """A field added to the record without a check would take anything: each one refuses a stray object."""
    for f in fields(DatasetRecord):
        with pytest.raises(IntegrityError, match=f"field '{f.name}'"):
            DatasetRecord.from_json(_raw(**{f.name: {"bogus": [1]}}), WHERE, ID)


def test_good_records_decode_unknown_fields_are_ignored() -> None:
    rec = DatasetRecord.from_json(GOOD, WHERE, ID)
    assert (rec.project, rec.name, rec.version, rec.status) == ("vision", "cats", "2.0", "completed")
    assert DatasetRecord.from_json(rec.to_json(), WHERE, ID) == rec
    # a newer mountfs of the same format may add fields: they are ignored
    doc = _doc(lineage={"deep": [{"x": 1}]}, version="1.0.10")
    assert DatasetRecord.from_json(json.dumps(doc).encode(), WHERE, ID).version == "1.0.10"
    # older records lack the optional fields: defaults
    minimal = {"id": ID, "project": "a/b", "name": "n", "version": "3"}
    rec = DatasetRecord.from_json(json.dumps(minimal).encode(), WHERE, ID)
    assert (rec.status, rec.tags, rec.file_count) == ("draft", [], 0)
    assert version_key(rec.version) == (3,)


# --- a store holding good datasets and crafted objects -------------------------------------------


@dataclass
class Crafted:
    """A store with two good versions of vision/cats and every kind of bad object beside them."""

    store: Path
    good: dict[str, str]  # version -> id, newest last
    src: dict[str, Path]
    #: id -> label: records that must be skipped (all newer than the good ones, so "the most recent" would pick them)
    bad: dict[str, str]
    #: keys of pointers that must be skipped
    bad_pointers: list[str]

    def pointers_under(self, prefix: str) -> list[str]:
        return [k for k in self.bad_pointers if k.startswith(prefix) and "/" not in k[len(prefix):]]


def names_each(messages: list[str], things: list[str]) -> None:
    """Every one of ``things`` (ids, keys) is named by a warning, and no warning is repeated."""
    repeated = [m for m, n in Counter(messages).items() if n > 1]
    assert not repeated, repeated
    for thing in things:
        # keys that hold control characters are quoted, so they cannot forge log lines
        assert any(thing in m or repr(thing) in m for m in messages), (thing, messages)
    assert all("\n" not in m for m in messages), messages


def _put(store: Path, key: str, data: bytes) -> None:
    write(store / key, data)


def _record(store: Path, data: bytes, pointer: str | None) -> str:
    """A record in a folder of its own, and a pointer to it at ``pointer`` (project/name/version)."""
    dataset_id = new_id()
    _put(store, f"datasets/{dataset_id}/info.json", data.replace(ID.encode(), dataset_id.encode()))
    if pointer is not None:
        _put(store, f"catalog/{pointer}", json.dumps({"id": dataset_id}).encode())
    return dataset_id


def _valid(dataset_id: str, project: str, name: str, version: str) -> bytes:
    return DatasetRecord(id=dataset_id, project=project, name=name, version=version, status="completed").to_json()


def craft(store: Path, good: dict[str, str], labels: list[str] | None = None) -> tuple[dict[str, str], list[str]]:
    """Write bad records (each with a well-formed pointer under vision/cats), impostors and bad pointers."""
    bad: dict[str, str] = {}
    for i, label in enumerate(labels if labels is not None else BAD_RECORDS):
        bad[_record(store, BAD_RECORDS[label][0], f"vision/cats/9.{i}")] = label
    if labels is not None:
        return bad, []
    # valid records that would take the place of a good version, or become `latest`
    bad[_record(store, _valid(ID, "vision", "cats", "1.0.1"), "vision/cats/5.0")] = "claims 1.0.1 from a 5.0 pointer"
    bad[_record(store, _valid(ID, "vision", "cats", "1.0.0"), None)] = "claims 1.0.0 with no pointer"
    bad[_record(store, _valid(ID, "vision", "cats", "99.0"), "attack/x/1.0")] = "would be latest, pointer elsewhere"
    bad[_record(store, _valid(ID, "vision", "cats", "98.0"), None)] = "claims a version nobody created"
    pointers = {
        "catalog/vision/cats/abc": json.dumps({"id": good["1.0.0"]}).encode(),
        "catalog/vision/cats/1.0\n": json.dumps({"id": good["1.0.0"]}).encode(),
        "catalog/vision/.hidden/1.0": json.dumps({"id": good["1.0.0"]}).encode(),
        "catalog/vision/cats/7.0": b"{truncated",
        "catalog/vision/cats/7.1": b"null",
        "catalog/vision/cats/7.2": json.dumps({"id": "../../etc"}).encode(),
        "catalog/vision/cats/7.3": json.dumps({"id": 5}).encode(),
        "catalog/stray": b"{}",
    }
    for key, data in pointers.items():
        _put(store, key, data)
    return bad, list(pointers)


def _good_catalog(tmp_path: Path) -> tuple[dict[str, str], dict[str, Path]]:
    good, src = {}, {}
    for version, seed in (("1.0.0", 1), ("1.0.1", 2)):
        folder = tmp_path / f"src-{version}"
        write(folder / "train" / "a.bin", os.urandom(5000 + seed))
        write(folder / "labels.csv", f"a.bin,{seed}\n".encode())
        ds = Dataset.create(dataset_name="cats", dataset_project="vision", dataset_version=version)
        ds.add_files(str(folder))
        ds.finalize(auto_upload=True)
        good[version], src[version] = ds.id, folder
    return good, src


@pytest.fixture
def crafted(tmp_path: Path) -> Crafted:
    store = Path(os.environ["MOUNTFS_STORE"])
    good, src = _good_catalog(tmp_path)
    bad, bad_pointers = craft(store, good)
    return Crafted(store, good, src, bad, bad_pointers)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.get_records("call")
            if r.levelno >= logging.WARNING and r.name.startswith("mountfs")]


@pytest.mark.allow_warnings
def test_search_and_get_go_on_with_the_good_datasets(crafted: Crafted, caplog: pytest.LogCaptureFixture) -> None:
    good = crafted.good
    for _ in range(2):  # the second round warns about nothing new
        listed = Dataset.list_datasets()
        assert [d["id"] for d in listed] == [good["1.0.1"], good["1.0.0"]]
        assert [d["id"] for d in Dataset.list_datasets(only_completed=False)] == [good["1.0.1"], good["1.0.0"]]
        assert Dataset.get(dataset_project="vision", dataset_name="cats").id == good["1.0.1"]
        assert Dataset.get(dataset_project="vision", dataset_name="cats", only_completed=True).id == good["1.0.1"]
        assert Dataset.get(dataset_project="vision").id == good["1.0.1"]
        assert Dataset.get(dataset_project="vision", dataset_name="cats", dataset_version="1.0.0").id == good["1.0.0"]
    messages = _warnings(caplog)
    # search reads records; get by project and name also reads the pointers of vision/cats
    names_each(messages, [*crafted.bad, *crafted.pointers_under("catalog/vision/cats/")])
    for dataset_id, label in crafted.bad.items():
        if label in BAD_RECORDS:
            assert sum(dataset_id in m for m in messages) == 1, (label, messages)


@pytest.mark.allow_warnings
def test_asking_for_a_bad_record_by_id_is_an_error(crafted: Crafted) -> None:
    for dataset_id, label in crafted.bad.items():
        if label in BAD_RECORDS:
            with pytest.raises(IntegrityError, match=f"datasets/{dataset_id}/info.json"):
                Dataset.get(dataset_id=dataset_id)
    assert Dataset.get(dataset_id=crafted.good["1.0.0"]).version == "1.0.0"


@pytest.mark.allow_warnings
def test_a_new_version_is_numbered_past_the_bad_pointers(crafted: Crafted) -> None:
    """``catalog/vision/cats/abc`` used to make the next-version pick raise ``ValueError``."""
    ds = Dataset.create(dataset_name="cats", dataset_project="vision")
    assert version_key(ds.version) > (9, len(BAD_RECORDS) - 1)


@pytest.mark.allow_warnings
def test_the_namespace_shows_only_the_good_versions(crafted: Crafted, caplog: pytest.LogCaptureFixture) -> None:
    ns = Namespace(current().catalog)
    assert ns.refresh() is True
    assert ns.refresh() is False
    good = crafted.good
    cats = ns.resolve(("vision", "cats"))
    assert isinstance(cats, Dir) and set(cats.children) == {"1.0.0", "1.0.1", LATEST}
    assert ns.resolve(("vision", "cats", "1.0.1")) == Version(good["1.0.1"])
    assert ns.resolve(("vision", "cats", LATEST)) == Link("1.0.1")
    assert set(ns.resolve(()).children) == {BY_ID, "vision"}  # type: ignore[union-attr]
    assert set(ns.resolve((BY_ID,)).children) == set(good.values())  # type: ignore[union-attr]
    # records that no pointer reaches are never read by the namespace
    reached = [i for i, label in crafted.bad.items() if "no pointer" not in label and "nobody" not in label]
    names_each(_warnings(caplog), [*reached, *crafted.bad_pointers])


def test_latest_and_collisions_in_the_tree(tmp_path: Path) -> None:
    """Versions win over a project level of the same name, and `latest` over a level named latest."""
    records = {
        "a": DatasetRecord(id="a", project="p", name="n", version="1.0", status="completed"),
        "b": DatasetRecord(id="b", project="p/n", name="1.0", version="2.0", status="completed"),
        "c": DatasetRecord(id="c", project="p/n", name="latest", version="3.0", status="completed"),
        "d": DatasetRecord(id="d", project="/".join(["deep"] * 3000), name="n", version="1", status="completed"),
    }
    for order in (list(records), list(reversed(records))):
        root = Namespace._build({k: records[k] for k in order})
        n = root.children["p"].children["n"]  # type: ignore[union-attr]
        assert n.children["1.0"] == Version("a")
        assert n.children[LATEST] == Link("1.0")
        assert set(root.children[BY_ID].children) == set(records)  # type: ignore[union-attr]


# --- the CLI ---------------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MOUNTFS, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_the_cli_lists_the_good_ones_and_refuses_a_bad_one(tmp_path: Path) -> None:
    store = Path(os.environ["MOUNTFS_STORE"])
    good, _ = _good_catalog(tmp_path)
    bad, _ = craft(store, good, ["version abc", "truncated"])
    res = _cli("search")
    assert res.returncode == 0, res.stderr
    assert good["1.0.0"] in res.stdout and good["1.0.1"] in res.stdout
    lines = res.stderr.splitlines()
    assert len(lines) == len(bad) and all(line.startswith("mountfs: warning: ") for line in lines), lines
    for dataset_id in bad:
        assert sum(dataset_id in line for line in lines) == 1, lines
    found = json.loads(_cli("search", "--json").stdout)
    assert [d["id"] for d in found] == [good["1.0.1"], good["1.0.0"]]
    for dataset_id in bad:
        for command in ("info", "list"):
            res = _cli(command, "--id", dataset_id)
            assert res.returncode == IntegrityError.exit_code, res
            assert res.stderr.count("\n") == 1 and res.stderr.startswith("mountfs: error: dataset record "), res.stderr
            assert f"datasets/{dataset_id}/info.json" in res.stderr and "Traceback" not in res.stderr
    assert _cli("info", "--project", "vision", "--name", "cats").returncode == 0


# --- a real daemon ------------------------------------------------------------------------------


@pytest.fixture
def h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.setenv("MOUNTFS_RUN_DIR", short_run_dir())
    work = tmp_path / "work"
    work.mkdir()
    with harness(dict(os.environ), work) as hh:
        yield hh


def _daemon_warnings(d: Daemon) -> list[str]:
    return [line.split(" WARNING ", 1)[1] for line in d.log_text().splitlines() if " WARNING " in line]


def _version_appears(mnt: Path, version: str) -> bool:
    return version in os.listdir(mnt / "vision" / "cats")


@pytest.mark.fuse
@pytest.mark.slow
@pytest.mark.allow_warnings
def test_the_daemon_stays_up_and_serves_the_good_versions(h: Harness, crafted: Crafted, tmp_path: Path) -> None:
    mnt = Path(h.mountpoint())
    d = h.start(str(mnt), how="mountfsd")  # the old namespace died here: version_key("abc")
    cats = mnt / "vision" / "cats"
    assert set(os.listdir(cats)) == {"1.0.0", "1.0.1", LATEST}
    assert os.readlink(cats / LATEST) == "1.0.1"
    assert set(os.listdir(mnt)) == {".by-id", "vision"}
    assert set(os.listdir(mnt / ".by-id")) == set(crafted.good.values())
    for version, src in crafted.src.items():
        for rel in ("train/a.bin", "labels.csv"):
            assert (cats / version / rel).read_bytes() == (src / rel).read_bytes()

    # a bad record arriving while the daemon runs: reported once, the daemon goes on
    late = _record(crafted.store, _raw(version="x.y"), "vision/cats/9.99")
    wait_for(lambda: any(late in w for w in _daemon_warnings(d)), 30, "the late bad record's warning")
    # two more refreshes, each proven by a new good version appearing in the mount
    for version in ("1.0.2", "1.0.3"):
        folder = tmp_path / f"src-{version}"
        write(folder / "train" / "a.bin", version.encode() * 1000)
        ds = Dataset.create(dataset_name="cats", dataset_project="vision", dataset_version=version)
        ds.add_files(str(folder))
        ds.finalize(auto_upload=True)
        wait_for(lambda v=version: _version_appears(mnt, v), 30, f"{version} to appear in the mount")
    assert os.readlink(cats / LATEST) == "1.0.3"
    assert (cats / "1.0.3" / "train" / "a.bin").read_bytes() == b"1.0.3" * 1000
    assert d.alive() and d.status()["ok"]

    warnings = _daemon_warnings(d)
    reached = [i for i, label in crafted.bad.items() if "no pointer" not in label and "nobody" not in label]
    names_each(warnings, [*reached, late, *crafted.bad_pointers])
    for dataset_id in [*reached, late]:
        assert sum(dataset_id in w for w in warnings) == 1, (dataset_id, warnings)
    assert not [line for line in d.log_text().splitlines() if " ERROR " in line or "Traceback" in line]
