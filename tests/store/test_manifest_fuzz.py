"""Fuzzing manifest decoding: whatever the bytes, decoding succeeds with valid entries or raises a mountfs error.

A store's writers are not trusted (issue 13), so ``decode`` and ``iter_decode``
must never let a ``TypeError``, ``KeyError``, ``IndexError`` or a msgpack or zstd
exception out.  Beyond random bytes, valid frames (``manifest.frame``, the
codec's own framing with a correct checksum) carry arbitrary msgpack values and
rows that are valid but for a field or two, which is where a decoder's checks
are actually reached.
"""

from __future__ import annotations

from typing import Any

import xxhash
import zstandard
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from mountfs.errors import MountfsError
from mountfs.store import manifest
from mountfs.store.manifest import MAGIC, MANIFEST_FORMAT

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PACK = "0123456789abcdef" * 2
ORIGINS = ["0190a1b2c3d4deadbeef", "0190a1b2c3d5feedface"]
DIGEST = b"\x07" * 16

scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=True)
           | st.text(max_size=12) | st.binary(max_size=20))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                      | st.dictionaries(st.text(max_size=6) | st.binary(max_size=4), inner, max_size=4), max_leaves=12)
#: paths with every separator trick in reach
paths = st.lists(st.sampled_from(["a", "b", ".", "..", "", "x\\y", "n\x00", "\u00e9", "c" * 256, "a.b"]),
                 min_size=1, max_size=4).map("/".join) | st.text(max_size=10)


good_paths = st.lists(st.sampled_from(["a", "b", "c.d", "\u00e9", "x y", "a-b"]), min_size=1, max_size=3).map("/".join)


def _valid_row(path: str, origin: int = -1) -> list:
    return [path, 10, 0o644, 0, DIGEST, [[DIGEST, 10, 0, 0, 10, 0]], "", "", "", origin]


@st.composite
def nearly_valid(draw: st.DrawFn) -> list:
    """A valid header and rows, then none, one or two things damaged: a field, a chunk field, a path, the order."""
    body = [_valid_row(p, draw(st.integers(-1, len(ORIGINS) - 1)))
            for p in sorted(set(draw(st.lists(good_paths, max_size=4))))]
    header: Any = {"format": MANIFEST_FORMAT, "kind": "manifest", "count": len(body), "packs": [PACK],
                   "origins": list(ORIGINS), "meta": {}}
    for _ in range(draw(st.integers(0, 2))):
        what = draw(st.sampled_from(["header", "field", "chunk", "path", "order"] if body else ["header"]))
        if what == "header":
            header = {**header, draw(st.sampled_from(sorted(header))): draw(values)}
        elif what == "order":
            body = draw(st.permutations(body))
        else:
            row = draw(st.sampled_from(body))
            if what == "path":
                row[0] = draw(paths)
            elif what == "field":
                row[draw(st.integers(0, 9))] = draw(values)
            elif isinstance(row[5], list) and row[5] and isinstance(row[5][0], list):
                row[5][0][draw(st.integers(0, 5))] = draw(values)
    return [header, *body]


def _decodes_or_refuses(data: bytes) -> None:
    """Both decoders either refuse ``data`` with a mountfs error or give entries that meet the format."""
    for decoded in (lambda: manifest.decode(data, "fuzz")[1], lambda: list(manifest.iter_decode(data, "fuzz")[1])):
        try:
            entries = decoded()
        except MountfsError:
            continue
        ordered = [e.path for e in entries]
        assert ordered == sorted(set(ordered))
        assert manifest.tree_conflict(ordered) is None
        for e in entries:
            assert manifest.path_problem(e.path) is None, e.path
            assert isinstance(e.size, int) and e.size >= 0 and isinstance(e.digest, bytes)
            assert e.url or sum(c.size for c in e.chunks) == e.size
            assert all(isinstance(c.digest, bytes) and len(c.digest) == 16 and c.pack in ("", PACK) for c in e.chunks)
            # an origin is "" (not recorded) or a usable dataset id the header listed
            assert e.origin == "" or isinstance(e.origin, str) and e.origin.strip() == e.origin and "/" not in e.origin


def _framed(payload: bytes, fmt: int = MANIFEST_FORMAT) -> bytes:
    body = MAGIC + bytes([fmt]) + payload
    return body + xxhash.xxh3_128_digest(body)


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data: bytes) -> None:
    _decodes_or_refuses(data)
    _decodes_or_refuses(MAGIC + data)


@FUZZ
@given(st.binary(max_size=400), st.integers(0, 255), st.booleans())
def test_arbitrary_payloads_with_a_valid_checksum(payload: bytes, fmt: int, compress: bool) -> None:
    _decodes_or_refuses(_framed(zstandard.ZstdCompressor().compress(payload) if compress else payload, fmt))


@FUZZ
@given(values, st.lists(values, max_size=4))
def test_arbitrary_msgpack_values_in_a_valid_frame(header: Any, body: list) -> None:
    _decodes_or_refuses(manifest.frame([header, *body]))


@FUZZ
@given(nearly_valid())
def test_nearly_valid_headers_and_rows(frame_values: list) -> None:
    _decodes_or_refuses(manifest.frame(frame_values))


def test_the_nearly_valid_frames_do_reach_decoded_entries() -> None:
    """Not every example is refused: some decode to entries, so the checks on accepted rows are exercised too."""
    def decodes(frame_values: list) -> bool:
        try:
            return bool(manifest.decode(manifest.frame(frame_values), "fuzz")[1])
        except MountfsError:
            return False

    found = find(nearly_valid(), decodes, settings=settings(max_examples=200, deadline=None, database=None))
    assert found[1][0] in ("a", "b", "c.d", "\u00e9", "x y", "a-b")
