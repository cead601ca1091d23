"""The pieces of mountfs/backends/base.py every backend builds on: the parts reader and splitter that
send a pack without joining it, key-ordered listings, bounded server messages and prefixed keys.
The interface's default methods (get_ranges, put_parts, stage_parts, exists) run on real servers through
the backends that keep them: GCS and Azure in test_backend_contract.py, HTTP in test_http.py.
"""

from __future__ import annotations

import io
from typing import Iterator

import pytest

from mountfs.backends.base import ObjectInfo, PartsReader, Prefixed, first_line, in_key_order, split_parts
from mountfs.errors import StoreError


def test_parts_reader_seeks_and_reads_like_a_file() -> None:
    parts: list[bytes | memoryview] = [b"abc", b"", b"defgh", memoryview(b"ij")]
    r = PartsReader(parts)
    assert r.size == 10 and r.read() == b"abcdefghij"
    r.seek(2)
    assert r.read(4) == b"cdef" and r.tell() == 6
    r.seek(-3, 2)
    assert r.read(100) == b"hij" and r.read(1) == b""


def test_parts_reader_clamps_seeks_and_reads_across_parts() -> None:
    r = PartsReader([b"ab", memoryview(bytearray(b"cdef")), b"g"])
    assert r.seek(-5) == 0 and r.seek(100) == 7, "a seek lands inside the data, as on a file of that size"
    r.seek(1)
    buf = bytearray(5)
    assert r.readinto(buf) == 5 and bytes(buf) == b"bcdef"
    r.seek(-2, io.SEEK_CUR)
    assert r.read(10) == b"efg"
    # wrapped the way an HTTP client reads a body: in blocks smaller than a part
    r.seek(0)
    assert io.BufferedReader(r, buffer_size=3).read() == b"abcdefg"
    assert PartsReader([]).read() == b"" and PartsReader([b"", b""]).size == 0


@pytest.mark.parametrize("sizes, piece", [([10, 3, 20], 8), ([8, 8], 8), ([1], 8), ([0, 5, 0], 2), ([], 4)])
def test_split_parts_cuts_the_concatenation_into_pieces(sizes: list[int], piece: int) -> None:
    parts: list[bytes | memoryview] = [bytes([i]) * n for i, n in enumerate(sizes)]
    pieces = split_parts(parts, piece)
    joined = b"".join(parts)
    assert [b"".join(bytes(v) for v in p) for p in pieces] == [joined[i:i + piece] for i in range(0, len(joined), piece)]
    assert all(len(v) for p in pieces for v in p), "no empty views"


def test_split_parts_does_not_copy() -> None:
    # a pack of tens of MiB goes up in parts: the views must share the caller's memory
    data = bytearray(b"x" * 10)
    pieces = split_parts([memoryview(data)], 4)
    data[5] = ord("!")
    assert bytes(pieces[1][0]) == b"x!xx"


def test_listings_come_in_key_order() -> None:
    infos = [ObjectInfo(k, 0) for k in ("a/b", "a-b", "a/a", "A")]
    assert [o.key for o in in_key_order(iter(infos), already_sorted=False)] == ["A", "a-b", "a/a", "a/b"]


def test_a_sorted_service_listing_is_streamed() -> None:
    # a store of a million objects is listed page by page, not gathered first
    def pages() -> Iterator[ObjectInfo]:
        yield ObjectInfo("a", 1)
        raise StoreError("the second page failed")

    listing = in_key_order(pages(), already_sorted=True)
    assert next(listing).key == "a"
    with pytest.raises(StoreError):
        next(listing)


@pytest.mark.parametrize("text, shown", [
    ("", "no message"), ("   \n ", "no message"), ("one line", "one line"),
    ("first\nsecond\nthird", "first"), ("  padded  \n", "padded"), ("x" * 1000, "x" * 300),
])
def test_first_line_bounds_server_messages(text: str, shown: str) -> None:
    assert first_line(text) == shown


class _Folder(Prefixed):
    def __init__(self, base: str, prefix: str) -> None:
        self._root_at(base, prefix)


@pytest.mark.parametrize("prefix, url, key", [
    ("", "s3://b", "k/1"), ("/", "s3://b", "k/1"), ("store", "s3://b/store", "store/k/1"),
    ("/a/b/", "s3://b/a/b", "a/b/k/1"),
])
def test_prefixed_keys(prefix: str, url: str, key: str) -> None:
    folder = _Folder("s3://b", prefix)
    assert folder.url == url and folder._key("k/1") == key


@pytest.mark.parametrize("key", ["", "/k", "//k"])
def test_prefixed_refuses_keys_outside_the_folder(key: str) -> None:
    with pytest.raises(StoreError, match="invalid object key"):
        _Folder("s3://b", "store")._key(key)
