"""Manifest encoding (mountfs/store/manifest.py): round trips, origins, format 1 manifests and corruption
detection (packs: test_packs.py; hostile fields on a real store: tests/security/test_hostile_manifests.py)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
import xxhash
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from mountfs.errors import IntegrityError
from mountfs.store import manifest
from mountfs.store.manifest import ChunkRef, FileEntry

# valid stored paths (decoding refuses any other): folders without '.', so no file is also a folder
paths = st.builds(lambda dirs, name: "/".join([*dirs, name + ".f"]),
                  st.lists(st.text(alphabet="abcxyz_0123", min_size=1, max_size=6), max_size=3),
                  st.text(alphabet="abc.xyz_0123", min_size=1, max_size=8))


ORIGINS = ["", "0190a1b2c3d4deadbeef", "0190a1b2c3d5feedface", "x"]


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(paths, st.tuples(st.integers(0, 2**40), st.integers(0, 0o7777), st.binary(min_size=16, max_size=16),
                                        st.lists(st.tuples(st.binary(min_size=16, max_size=16), st.sampled_from(["a" * 32, "b" * 32])), max_size=4),
                                        st.sampled_from(ORIGINS)),
                       max_size=30))
def test_round_trip_sorted(files) -> None:
    entries = [
        FileEntry(p, 10 * len(chunks), mode, size * 7, dig, [ChunkRef(d, 10, pack, 1, 2, 0) for d, pack in chunks],
                  origin=origin)
        for p, (size, mode, dig, chunks, origin) in files.items()
    ]
    header, out = manifest.decode(manifest.encode(entries), "test")
    assert header["count"] == len(entries)
    # each origin once in the header, whatever the number of entries holding it; "" (not recorded) is not one
    assert sorted(header["origins"]) == sorted({e.origin for e in entries} - {""})
    assert [e.path for e in out] == sorted(files)
    assert sorted(out, key=lambda e: e.path) == sorted(entries, key=lambda e: e.path)


def test_every_flipped_byte_is_detected() -> None:
    data = manifest.encode([FileEntry("a", 1, digest=b"\0" * 16, chunks=[ChunkRef(b"\1" * 16, 1, "p", 0, 1, 0)])])
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x40
        with pytest.raises(IntegrityError, match="manifest where"):
            manifest.decode(bytes(bad), "where")


# --- origins and format 1 -----------------------------------------------------------------------

PACK = "0123456789abcdef" * 2
DIGEST = b"\x07" * 16


def _entries() -> list[FileEntry]:
    chunk = ChunkRef(DIGEST, 10, PACK, 0, 10, 0)
    return [FileEntry("a", 10, digest=DIGEST, chunks=[chunk], origin="v1"),
            FileEntry("b", 10, digest=DIGEST, chunks=[chunk], origin="v2"),
            FileEntry("c", 10, digest=DIGEST, chunks=[chunk], origin="v1"),
            FileEntry("d", 10, digest=DIGEST, chunks=[chunk])]


def _framed(values: list[Any], fmt: int) -> bytes:
    payload = zstandard.ZstdCompressor().compress(b"".join(msgpack.packb(v) for v in values))
    body = manifest.MAGIC + bytes([fmt]) + payload
    return body + xxhash.xxh3_128_digest(body)


def _rows(header: dict[str, Any], entries: list[FileEntry]) -> list[list[Any]]:
    """Format 2 rows as ``encode`` writes them (what a crafter starts from)."""
    return [[e.path, e.size, e.mode, e.mtime_ns, e.digest, [[c.digest, c.size, 0, c.offset, c.length, c.codec]
             for c in e.chunks], e.url, e.etag, e.src, header["origins"].index(e.origin) if e.origin else -1]
            for e in entries]


def test_origins_are_a_table_in_the_header_and_an_index_per_entry() -> None:
    data = manifest.encode(_entries(), meta={"id": "v3"})
    assert data[len(manifest.MAGIC)] == manifest.MANIFEST_FORMAT == 2
    header, out = manifest.decode(data, "m")
    assert header["origins"] == ["v1", "v2"]
    assert [(e.path, e.origin) for e in out] == [("a", "v1"), ("b", "v2"), ("c", "v1"), ("d", "")]
    assert _framed([header, *_rows(header, _entries())], 2) == _framed([header, *_rows(header, out)], 2)
    # a draft's state carries them too
    assert [e.origin for e in manifest.decode(manifest.encode(_entries(), kind="draft"), "s")[1]] == ["v1", "v2", "v1", ""]


def test_a_manifest_of_format_1_is_read_without_origins() -> None:
    """What mountfs wrote before format 2: no origins in the header, rows of 9 fields."""
    header = {"format": 1, "kind": "manifest", "count": 2, "packs": [PACK], "meta": {"id": "v1"}}
    rows = [[p, 10, 0o644, 5, DIGEST, [[DIGEST, 10, 0, 0, 10, 0]], "", "", ""] for p in ("a", "b/c")]
    got_header, entries = manifest.decode(_framed([header, *rows], 1), "old")
    assert got_header["origins"] == [] and got_header["meta"] == {"id": "v1"}
    assert [(e.path, e.size, e.mtime_ns, e.origin) for e in entries] == [("a", 10, 5, ""), ("b/c", 10, 5, "")]
    assert [e.chunks for e in entries] == [[ChunkRef(DIGEST, 10, PACK, 0, 10, 0)]] * 2
    # a 10th field is no part of format 1; from format 2 a row of 9 fields is one without an origin
    with pytest.raises(IntegrityError, match="entry 'a' is not a 9-field row"):
        manifest.decode(_framed([header, [*rows[0], 0], rows[1]], 1), "old")
    assert [e.origin for e in manifest.decode(_framed([{**header, "origins": ["v1"]}, rows[0], [*rows[1], 0]], 2),
                                              "new")[1]] == ["", "v1"]


def _bad_origins(header: dict[str, Any], rows: list[list[Any]], what: str) -> tuple[dict[str, Any], list[list[Any]]]:
    if what.startswith("header:"):
        return {**header, "origins": BAD_TABLES[what]}, rows
    return header, [rows[0][:9] + [BAD_INDEXES[what]], *rows[1:]]


BAD_TABLES: dict[str, Any] = {
    "header: not a list": "v1",
    "header: an int": [5],
    "header: a path": ["../x"],
    "header: with a slash": ["a/b"],
    "header: empty": [""],
    "header: a dot name": [".hidden"],
    "header: a control character": ["v\n1"],
    "header: bytes": [b"v1"],
}
BAD_INDEXES: dict[str, Any] = {
    "row: out of range": 2,
    "row: below -1": -2,
    "row: a string": "v1",
    "row: None": None,
    "row: a float": 0.0,
    "row: a bool": True,
}


@pytest.mark.parametrize("what", [*BAD_TABLES, *BAD_INDEXES])
def test_a_hostile_origin_is_refused(what: str) -> None:
    header, _ = manifest.decode(manifest.encode(_entries()), "m")
    header, rows = _bad_origins(header, _rows(header, _entries()), what)
    data = _framed([header, *rows], 2)
    for decode in (lambda: manifest.decode(data, "where"), lambda: list(manifest.iter_decode(data, "where")[1])):
        with pytest.raises(IntegrityError, match="manifest where is damaged or crafted: "
                                                 + ("its header" if what.startswith("header") else "entry 'a'")):
            decode()
