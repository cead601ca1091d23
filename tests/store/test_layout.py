"""The store layout (mountfs/store/layout.py): every key shape, key <-> handle, refused components,
the keys docs/FORMAT.md promises, and no key built anywhere else in the package."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mountfs.errors import UsageError
from mountfs.store import layout
from mountfs.store.layout import (
    DraftState, FormatFile, Handle, Lock, Manifest, Metadata, Pack, PackIndex, Pointer, Record, parse, pointer_prefix,
)

ROOT = Path(__file__).resolve().parents[2]
PID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
ID = "0190a1b2c3d4deadbeef"

#: each handle with the key it must have, byte for byte: stores written before must read the same
KEYS: list[tuple[Handle, str]] = [
    (FormatFile(), "mountfs.json"),
    (Pack(PID), f"packs/0a/{PID}"),
    (PackIndex(PID), f"index/{PID}"),
    (Record(ID), f"datasets/{ID}/info.json"),
    (DraftState(ID), f"datasets/{ID}/state"),
    (Manifest(ID), f"datasets/{ID}/manifest"),
    (Metadata(ID, "stats"), f"datasets/{ID}/metadata/stats.json"),
    (Pointer("vision/det", "cats", "1.0.2"), "catalog/vision/det/cats/1.0.2"),
    (Lock(PID), f"locks/{PID}"),
]


@pytest.mark.parametrize(("handle", "key"), KEYS, ids=[type(h).__name__ for h, _ in KEYS])
def test_key_shapes_and_round_trip(handle: Handle, key: str) -> None:
    assert handle.key == key
    assert parse(key) == handle


def test_more_shapes() -> None:
    assert Metadata(ID, "table.v2", "csv").key == f"datasets/{ID}/metadata/table.v2.csv"
    assert parse(f"datasets/{ID}/metadata/table.v2.csv") == Metadata(ID, "table.v2", "csv")
    assert Pointer("p", "n", "1").key == "catalog/p/n/1"
    assert parse("catalog/a/b/c/n/2.0") == Pointer("a/b/c", "n", "2.0")
    assert pointer_prefix("vision/det", "cats") == "catalog/vision/det/cats/"
    assert Pointer("vision/det", "cats", "1.0").key.startswith(pointer_prefix("vision/det", "cats"))
    assert (layout.PACKS, layout.INDEX, layout.DATASETS, layout.POINTERS) == ("packs/", "index/", "datasets/", "catalog/")


def _format_block() -> list[str]:
    """The key templates of the first code block of docs/FORMAT.md, e.g. ``packs/<aa>/<pack-id>``."""
    text = (ROOT / "docs" / "FORMAT.md").read_text()
    block = text.split("```\n", 2)[1]
    return [line.split()[0] for line in block.splitlines() if line.strip()]


def test_keys_are_those_of_docs_format_md() -> None:
    """A change to a key shape must change docs/FORMAT.md too (and bump the format)."""
    values = {"aa": PID[:2], "pack-id": PID, "lock-id": PID, "id": ID, "project...": "vision/det", "version": "1.0.2"}
    templates = _format_block()
    assert len(templates) == len(KEYS), templates
    for template, (handle, key) in zip(templates, KEYS):
        name = "stats" if isinstance(handle, Metadata) else "cats"
        filled = re.sub(r"<([^>]+)>", lambda m: values.get(m[1], name if m[1] == "name" else m[0]), template)
        assert filled == key, (template, type(handle).__name__)


@pytest.mark.parametrize("make", [
    lambda: Pack("xyz"), lambda: Pack(PID.upper()), lambda: Pack(PID + "0"), lambda: Pack(""),
    lambda: PackIndex("../x"),
    lambda: Record(""), lambda: Record(".."), lambda: Record("a/b"), lambda: Record(" x"), lambda: Record("a\0b"),
    lambda: DraftState("../../etc"), lambda: Manifest("a\\b"),
    lambda: Metadata(ID, ""), lambda: Metadata(ID, "a/b"), lambda: Metadata(ID, ".."), lambda: Metadata("..", "m"),
    lambda: Metadata(ID, "m", ""), lambda: Metadata(ID, "m", "tar.gz"), lambda: Metadata(ID, "m", "a/b"),
    lambda: Pointer("", "n", "1"), lambda: Pointer("a//b", "n", "1"), lambda: Pointer("/a", "n", "1"),
    lambda: Pointer("a/..", "n", "1"), lambda: Pointer("p", "", "1"), lambda: Pointer("p", "a/b", "1"),
    lambda: Pointer("p", "n", ""), lambda: Pointer("p", "n", ".."), lambda: Pointer("p", "n", "1/2"),
    lambda: pointer_prefix("p", ".."), lambda: pointer_prefix("", "n"),
])
def test_bad_components_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(UsageError):
        make()


def test_refusals_name_the_problem() -> None:
    with pytest.raises(UsageError, match=r"metadata name 'a/b' contains '/'"):
        Metadata(ID, "a/b")
    with pytest.raises(UsageError, match=r"metadata extension 'tar.gz' contains '.'"):
        Metadata(ID, "m", "tar.gz")
    with pytest.raises(UsageError, match=r"dataset id '\.\.' cannot start with '\.'"):
        Record("..")
    with pytest.raises(UsageError, match="pack id 'xyz' is not 32 hex digits"):
        Pack("xyz")


@pytest.mark.parametrize("key", [
    "", "other", "mountfs.json.bak", "packs/", f"packs/{PID}", f"packs/ff/{PID}", f"packs/0a/{PID}/x",
    "index/", f"index/{PID}/x", "datasets/", f"datasets/{ID}", f"datasets/{ID}/", f"datasets/{ID}/previews/a.png",
    f"datasets/{ID}/metadata/noext", f"datasets/{ID}/metadata/a/b.json", f"datasets/a/{ID}/info.json",
    "catalog/", "catalog/p/n/",
])
def test_keys_of_no_known_shape_parse_to_none(key: str) -> None:
    assert parse(key) is None


@pytest.mark.parametrize("key", [
    "index/xyz", "datasets/.bad/info.json", "datasets/ x/state", f"datasets/{ID}/metadata/.json",
    "catalog/x", "catalog/x/1", "catalog/.p/n/1", "catalog/p//n/1",
])
def test_keys_of_a_known_shape_with_bad_parts_are_refused(key: str) -> None:
    with pytest.raises(UsageError):
        parse(key)


def test_parse_pointer_and_record() -> None:
    assert layout.parse_pointer("catalog/p/n/") is None
    with pytest.raises(UsageError, match="it is not catalog/<project>/<name>/<version>"):
        layout.parse_pointer("datasets/x/y/z")
    assert layout.parse_record(f"datasets/{ID}/info.json") == Record(ID)
    assert layout.parse_record(f"datasets/{ID}/manifest") is None
    assert layout.parse_dataset_key(f"datasets/{ID}/manifest") == Manifest(ID)
    assert layout.parse_pack_key(f"packs/0a/{PID}") == Pack(PID)


def _usable(text: str) -> bool:
    try:
        layout.check_component(text, "x")
    except UsageError:
        return False
    return True


components = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20).filter(_usable)


@settings(max_examples=200, deadline=None)
@given(components, st.lists(components, min_size=1, max_size=3), components, components,
       components.filter(lambda e: "." not in e), st.text("0123456789abcdef", min_size=32, max_size=32))
def test_every_valid_handle_round_trips(dataset_id: str, levels: list[str], name: str, version: str,
                                        ext: str, pack_id: str) -> None:
    handles: list[Handle] = [Pack(pack_id), PackIndex(pack_id), Record(dataset_id), DraftState(dataset_id),
                             Manifest(dataset_id), Metadata(dataset_id, name, ext), Pointer("/".join(levels), name, version)]
    for handle in handles:
        assert parse(handle.key) == handle


# --- no key is built outside the layout ---------------------------------------------------------------

_PREFIXES = ("datasets/", "catalog/", "packs/", "index/", "mountfs.json")


def _key_literals(root: Path) -> list[str]:
    """Places in the package at ``root`` (outside store/layout.py) that build an object key themselves:
    an f-string, ``+`` or ``%`` starting with a key prefix, or a bare prefix (listing by hand).

    Docstrings and messages are not keys: they are plain strings that hold more than a prefix, or
    f-strings that start with other words ("catalog: skipping ...")."""
    found: dict[tuple[str, int], str] = {}  # one report a line: an f-string's parts are constants too
    for path in sorted(root.rglob("*.py")):
        where = path.relative_to(root).as_posix()
        if where == "store/layout.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.expr):
                continue
            head: object = None
            if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
                head = node.values[0].value
            elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)) \
                    and isinstance(node.left, ast.Constant):
                head = node.left.value
            elif isinstance(node, ast.Constant) and node.value in _PREFIXES:
                head = node.value
            if isinstance(head, str) and head.startswith(_PREFIXES):
                found.setdefault((where, node.lineno), ast.unparse(node))
    return [f"{where}:{line}: {code}" for (where, line), code in sorted(found.items())]


def test_no_module_but_the_layout_builds_keys() -> None:
    found = _key_literals(ROOT / "mountfs")
    assert not found, "object keys belong in mountfs/store/layout.py (use its handles):\n" + "\n".join(found)


def test_the_key_scan_finds_keys(tmp_path: Path) -> None:
    """The scan itself catches the ways a key gets built (and lets messages be)."""
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "layout.py").write_text('X = f"datasets/{i}/state"\n')
    (tmp_path / "mod.py").write_text(
        '"""Writes datasets/<id>/state."""\n'
        'a = f"datasets/{i}/state"\n'
        'b = "catalog/" + p\n'
        'c = "packs/%s" % p\n'
        'd = backend.list("index/")\n'
        'log.info(f"catalog: skipping {k}")\n'
        'e = f"{url}/datasets/{i}"\n'
        'raise E("it is not catalog/<project>/<name>/<version>")\n'
    )
    assert [f.split(":")[1] for f in _key_literals(tmp_path)] == ["2", "3", "4", "5"]
