"""The store's format object, ``mountfs.json`` (mountfs/store/format.py), on a real folder: created once
on a fresh store, read back as written, refused when damaged or newer than this mountfs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mountfs.backends.file import FileBackend
from mountfs.errors import IntegrityError, NotFound, StoreError, UsageError
from mountfs.store.format import FORMAT_VERSION, ChunkParams, NoStore, init, read, read_or_init
from mountfs.store.layout import FORMAT_KEY
from mountfs.store.store import Store

ROOT = Path(__file__).resolve().parents[2]


def _doc(**chunker: int) -> dict[str, object]:
    return {"format": FORMAT_VERSION, "hash": "xxh3-128",
            "chunker": {"algorithm": "fastcdc2020", "min_size": 1 << 16, "avg_size": 1 << 18, "max_size": 1 << 20,
                        "seed": 3, **chunker}}


def test_a_fresh_store_gets_the_documented_object(tmp_path: Path) -> None:
    store = FileBackend(tmp_path)
    assert read_or_init(store) == ChunkParams()
    written = json.loads(store.get(FORMAT_KEY))
    # the example in docs/FORMAT.md is what a new store holds
    documented = re.search(r"## `mountfs.json`\s+```json\n(.*?)```", (ROOT / "docs" / "FORMAT.md").read_text(), re.S)
    assert documented and written == json.loads(documented.group(1))
    assert written["format"] == FORMAT_VERSION
    assert read_or_init(store) == ChunkParams() and [o.key for o in store.list()] == [FORMAT_KEY]


def test_an_existing_store_keeps_its_parameters(tmp_path: Path) -> None:
    # fixed for the life of the store, whatever this mountfs's defaults are: identical data cuts identically
    store = FileBackend(tmp_path)
    store.put(FORMAT_KEY, json.dumps(_doc()).encode())
    before = store.get(FORMAT_KEY)
    assert read_or_init(store) == ChunkParams(1 << 16, 1 << 18, 1 << 20, 3)
    assert store.get(FORMAT_KEY) == before, "reading never rewrites it"
    assert Store(store).params == ChunkParams(1 << 16, 1 << 18, 1 << 20, 3)


def test_an_older_store_without_a_seed_reads_as_seed_0(tmp_path: Path) -> None:
    store = FileBackend(tmp_path)
    doc = _doc()
    del doc["chunker"]["seed"]  # type: ignore[attr-defined]
    store.put(FORMAT_KEY, json.dumps(doc).encode())
    assert read_or_init(store).seed == 0


def test_opening_without_create_refuses_a_folder_that_is_no_store(tmp_path: Path) -> None:
    store = FileBackend(tmp_path)
    with pytest.raises(StoreError, match=f"no mountfs store at {re.escape(str(tmp_path))} .*set MOUNTFS_STORE or "
                                         "--storage to your store, or create a dataset") as info:
        read_or_init(store, create=False)
    assert isinstance(info.value, NotFound) and info.value.exit_code == 3
    assert list(store.list()) == [], "nothing was written"
    missing = FileBackend(tmp_path / "typo")
    with pytest.raises(NoStore):
        read(missing)
    assert not (tmp_path / "typo").exists()


def test_a_store_is_started_only_where_nothing_else_is(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "photo.jpg").write_bytes(b"mine")
    with pytest.raises(UsageError, match=f"{re.escape(str(data))} holds files but is not a mountfs store"):
        init(FileBackend(data))
    assert sorted(p.name for p in data.rglob("*")) == ["photo.jpg", "sub"], "nothing written into someone's data"
    # a new folder, or an empty one, is started; the second open finds the store
    assert init(FileBackend(tmp_path / "new" / "deep")) == (ChunkParams(), True)
    (tmp_path / "empty").mkdir()
    assert init(FileBackend(tmp_path / "empty")) == (ChunkParams(), True)
    assert init(FileBackend(tmp_path / "empty")) == (ChunkParams(), False)


def test_a_newer_format_is_refused_with_the_fix(tmp_path: Path) -> None:
    store = FileBackend(tmp_path)
    store.put(FORMAT_KEY, json.dumps({**_doc(), "format": FORMAT_VERSION + 1, "new_field": [1]}).encode())
    with pytest.raises(StoreError, match=f"uses format {FORMAT_VERSION + 1}, newer .*upgrade mountfs") as info:
        read_or_init(store)
    assert not isinstance(info.value, IntegrityError)


@pytest.mark.parametrize("raw", [
    b"", b"not json", b"[1, 2]", b'{"format": 1}', b'{"format": "one", "chunker": {}}',
    json.dumps({"format": 1, "chunker": {"min_size": 1}}).encode(),
])
def test_a_damaged_format_object_is_an_integrity_error(tmp_path: Path, raw: bytes) -> None:
    store = FileBackend(tmp_path)
    store.put(FORMAT_KEY, raw)
    with pytest.raises(IntegrityError, match=f"{FORMAT_KEY} is damaged .*restore it from a backup") as info:
        read_or_init(store)
    assert "\n" not in str(info.value)
    assert store.get(FORMAT_KEY) == raw, "a damaged object is never overwritten with defaults"


class _AnotherWriterFirst(FileBackend):
    """A folder where another process creates the format object between our read and our create
    (so our conditional create meets AlreadyExists, as the loser of a real race does)."""

    def put_if_absent(self, key: str, data: bytes) -> None:
        if key == FORMAT_KEY and not self.exists(key):
            FileBackend(self.root).put_if_absent(key, json.dumps(_doc(seed=7)).encode())
        super().put_if_absent(key, data)


def test_two_first_users_agree_on_the_winners_parameters(tmp_path: Path) -> None:
    store = _AnotherWriterFirst(tmp_path)
    assert read_or_init(store) == ChunkParams(1 << 16, 1 << 18, 1 << 20, 7), "the loser reads the winner's object"
    assert json.loads(store.get(FORMAT_KEY))["chunker"]["seed"] == 7
