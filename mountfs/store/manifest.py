"""Manifests: the complete, sorted file table of one version.

Layout (see docs/FORMAT.md)::

    b"MFSMAN" | u8 format | zstd( msgpack header, msgpack entry, msgpack entry, ... ) | xxh3-128 of all before

The header lists the packs referenced, so each chunk names its pack by a
small integer, and (format 2) the versions the entries' content came from, so
each entry names its origin by a small integer too.  Entries are sorted by
path.  Format 1 manifests (no origins) are still read: their entries' origin
is "" (not recorded).  The same encoding, with
``kind="draft"`` and the local source path filled in, holds a draft's
pending file table.

Anyone who can write to a store can write a manifest, so decoding trusts
nothing: every path is checked against the one path rule (``path_problem``),
the entries must come strictly in path order with no file inside another
file, and every field must have its type and range.  A manifest that breaks
any of this is damage or an attack, reported as ``IntegrityError`` naming the
manifest and the entry; nothing downstream ever sees it.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, NamedTuple

import msgpack
import xxhash
import zstandard

from ..errors import IntegrityError, UsageError
from .layout import check_component, is_pack_id
from .layout import shown as quoted  # a crafted path of kilobytes still gives a one-line message
from .packs import CODEC_NONE, CODEC_ZSTD

MAGIC = b"MFSMAN"
#: 2: entries record their origin (the version whose content they hold); 1: they do not (still read)
MANIFEST_FORMAT = 2
_HASH_LEN = 16

#: longest name of one path component, in UTF-8 bytes (NAME_MAX of Linux, macOS and Windows filesystems)
MAX_NAME_BYTES = 255
#: most components of a path: deeper trees are refused rather than half-supported (Python's own
#: os.walk, shutil.rmtree and os.makedirs recurse once per level, and full paths soon pass PATH_MAX)
MAX_DEPTH = 255

_INT64 = 1 << 63
_CODECS = (CODEC_NONE, CODEC_ZSTD)
_KINDS = ("manifest", "draft")
#: ``path_problem``'s answer for a path holding a lone surrogate (a file name that was not UTF-8)
NOT_UTF8 = "is not valid UTF-8"
#: per-object limits of the msgpack reader: a crafted length never makes it allocate gigabytes
_LIMITS = {"max_str_len": 1 << 20, "max_bin_len": 1 << 20, "max_array_len": 1 << 22, "max_map_len": 1 << 10,
           "max_ext_len": 1 << 10}


class ChunkRef(NamedTuple):
    """One chunk of a file and where it is stored (``pack`` is "" until uploaded)."""

    digest: bytes
    size: int
    pack: str = ""
    offset: int = 0
    length: int = 0
    codec: int = 0


@dataclass(slots=True)
class FileEntry:
    """One file of a version."""

    path: str
    size: int
    mode: int = 0o644
    mtime_ns: int = 0
    #: xxh3-128 of the whole content (b"" for external files not read yet)
    digest: bytes = b""
    chunks: list[ChunkRef] = field(default_factory=list)
    #: external files (``add_external_files``): source URL and its ETag/generation
    url: str = ""
    etag: str = ""
    #: drafts only: the local path the content is read from at upload
    src: str = ""
    #: id of the version whose content this entry holds (ClearML's ``parent_dataset_id``): this version, or
    #: the ancestor it was inherited from unchanged; "" = not recorded (a draft's new entry, a format 1 manifest)
    origin: str = ""

    @property
    def is_external(self) -> bool:
        return bool(self.url)


# --- the path rule -------------------------------------------------------------


def path_problem(path: str) -> str | None:
    """What makes ``path`` unusable as a stored dataset path, or None when it is one.

    The one rule for every path a version holds: relative, '/'-separated,
    already normalised (no empty, '.' or '..' component, so no '//', no
    leading './', no trailing '/'), no NUL and no '\\' (a separator on
    Windows, so never part of a name), valid UTF-8, components of at most
    ``MAX_NAME_BYTES`` bytes and at most ``MAX_DEPTH`` of them.  The text
    completes a sentence that starts with the path.
    """
    # this runs for every entry of million-file manifests: cheap whole-string scans first,
    # splitting into components only when a scan says one may be wrong
    if not path:
        return "is empty"
    if path[0] == "/":
        return "is absolute"
    if "\x00" in path:
        return "contains a NUL byte"
    if "\\" in path:
        return "contains '\\'"
    if "//" in path or path[-1] == "/":
        return "has an empty component (a '//' or a trailing '/')"
    if (path[0] == "." or "/." in path) and not {".", ".."}.isdisjoint(path.split("/")):
        return "has a '.' or '..' component"
    if path.count("/") >= MAX_DEPTH:
        return f"is nested {path.count('/') + 1} levels deep, more than the {MAX_DEPTH} a dataset path may have"
    size = len(path)
    if not path.isascii():
        try:
            size = len(path.encode())
        except UnicodeEncodeError:  # a lone surrogate: a name that was not UTF-8 on disk
            return NOT_UTF8
    if size > MAX_NAME_BYTES and max(len(p.encode()) for p in path.split("/")) > MAX_NAME_BYTES:
        return f"has a component longer than {MAX_NAME_BYTES} bytes"
    return None


class PathOrder:
    """Checks a table's paths in stored order: strictly increasing, and no file inside another file.

    Paths sharing a prefix are contiguous in sorted order, so the files that
    are string prefixes of the last path form a stack, and only its top can
    be a folder of the next path: O(1) a path, whatever the table's size.
    """

    __slots__ = ("_last", "_files")

    def __init__(self) -> None:
        self._last = ""
        #: files that are string prefixes of ``_last`` (``a`` while at ``a-b``), shortest first
        self._files: list[str] = []

    def problem(self, path: str) -> str | None:
        """What is wrong with ``path`` coming next (None if nothing); it is then the last path."""
        last = self._last
        if path <= last:
            return "is listed twice" if path == last else "is out of path order"
        files = self._files
        if last and path.startswith(last):
            if path[len(last)] == "/":
                return f"is inside {quoted(last)}, which is a file"
            files.append(last)
        else:
            while files and not path.startswith(files[-1]):
                files.pop()
            if files and path[len(files[-1])] == "/":
                return f"is inside {quoted(files[-1])}, which is a file"
        self._last = path
        return None


def tree_conflict(paths: Iterable[str]) -> str | None:
    """The first way sorted ``paths`` cannot be one tree ("'a/b' is inside 'a', which is a file"), or None."""
    order = PathOrder()
    for p in paths:
        problem = order.problem(p)
        if problem:
            return f"{quoted(p)} {problem}"
    return None


# --- encoding ------------------------------------------------------------------


def frame(values: Iterable[object]) -> bytes:
    """Manifest bytes holding ``values`` (the header, then entry rows) as a msgpack stream: the framing of every manifest."""
    buf = io.BytesIO()
    with zstandard.ZstdCompressor(level=6).stream_writer(buf, closefd=False) as zw:
        pk = msgpack.Packer()
        for value in values:
            zw.write(pk.pack(value))
    body = MAGIC + bytes([MANIFEST_FORMAT]) + buf.getvalue()
    return body + xxhash.xxh3_128_digest(body)


def encode(entries: Iterable[FileEntry], kind: str = "manifest", meta: dict[str, Any] | None = None) -> bytes:
    """Encode entries (sorted here) into manifest bytes; paths are not checked here (decoding does)."""
    ordered = sorted(entries, key=lambda e: e.path)
    packs: dict[str, int] = {}
    # a few distinct ids (one a version in the lineage) for millions of entries: a table, and an index per entry
    origins: dict[str, int] = {"": -1}
    for e in ordered:
        if e.origin not in origins:
            origins[e.origin] = len(origins) - 1
        for c in e.chunks:
            if c.pack and c.pack not in packs:
                packs[c.pack] = len(packs)
    del origins[""]
    header = {"format": MANIFEST_FORMAT, "kind": kind, "count": len(ordered), "packs": list(packs),
              "origins": list(origins), "meta": meta or {}}
    rows = (
        [e.path, e.size, e.mode, e.mtime_ns, e.digest,
         [[c.digest, c.size, packs[c.pack] if c.pack else -1, c.offset, c.length, c.codec] for c in e.chunks],
         e.url, e.etag, e.src, origins[e.origin] if e.origin else -1]
        for e in ordered
    )
    return frame(itertools.chain([header], rows))


# --- decoding ------------------------------------------------------------------


class _Bad(Exception):
    """One entry breaks the format; the message completes "entry <path> ..."."""


def _body(data: bytes, where: str) -> tuple[int, bytes]:
    """(format, the bytes after the format byte) of verified manifest ``data``."""
    if not isinstance(data, (bytes, bytearray)) or len(data) < len(MAGIC) + 1 + _HASH_LEN or not data.startswith(MAGIC):
        raise IntegrityError(f"manifest {where} is not a mountfs manifest (damaged or truncated)")
    body, check = data[:-_HASH_LEN], data[-_HASH_LEN:]
    if xxhash.xxh3_128_digest(body) != check:
        raise IntegrityError(f"manifest {where} fails its checksum: it is corrupted; restore it or delete the version")
    fmt = body[len(MAGIC)]
    if fmt > MANIFEST_FORMAT:
        raise IntegrityError(f"manifest {where} has format {fmt}, newer than this mountfs; upgrade mountfs")
    if fmt < 1:
        raise IntegrityError(f"manifest {where} has format {fmt}, which no mountfs writes: it is damaged or crafted")
    return fmt, body[len(MAGIC) + 1:]


def _header(value: Any, where: str) -> dict[str, Any]:
    def bad(what: str) -> IntegrityError:
        return IntegrityError(f"manifest {where} is damaged or crafted: its header {what}; restore it or delete the version")

    if type(value) is not dict:
        raise bad("is not a map")
    packs, count = value.get("packs"), value.get("count")
    if value.get("kind") not in _KINDS:
        raise bad(f"has kind {quoted(value.get('kind'))}, not one of {_KINDS}")
    if type(count) is not int or count < 0:
        raise bad("has no entry count")
    if type(value.get("meta", {})) is not dict:
        raise bad("has meta that is not a map")
    if type(packs) is not list or not all(is_pack_id(p) for p in packs):
        raise bad("lists a pack id that is not 32 hex digits")
    origins = value.setdefault("origins", [])  # format 1 has none
    if type(origins) is not list:
        raise bad("has origins that are not a list")
    for o in origins:
        try:
            check_component(o, "origin")
        except UsageError:
            raise bad(f"lists an origin {quoted(o)} that is not a dataset id") from None
    return value


def _entry(row: Any, packs: list[str], origins: list[str] | None, pack_min: int, order: PathOrder) -> FileEntry:
    """One validated entry; the checks are inlined because they run for every file of a manifest.

    ``origins`` is None in a format 1 manifest: its rows have 9 fields.  From
    format 2 a row has a tenth, its origin's index (-1: not recorded); a row of
    9 fields is still read, as not recording it.
    """
    if type(row) is not list or not (len(row) == 10 and origins is not None or len(row) == 9):
        raise _Bad("is not a 9-field row" if origins is None else "is not a 10-field row")
    path, size, mode, mtime_ns, digest, chunks, url, etag, src = row[:9]
    if type(path) is not str:
        raise _Bad("has a path that is not a string")
    problem = path_problem(path) or order.problem(path)
    if problem:
        raise _Bad(problem)
    if not (type(size) is type(mode) is type(mtime_ns) is int and 0 <= size < _INT64 and 0 <= mode <= 0o7777
            and -_INT64 <= mtime_ns < _INT64):
        raise _Bad("has a size, mode or mtime that is not an integer in range")
    if not type(url) is type(etag) is type(src) is str:
        raise _Bad("has a url, etag or src that is not a string")
    if type(digest) is not bytes or len(digest) != _HASH_LEN and (digest or not url):
        raise _Bad("has a digest that is not 16 bytes")
    if type(chunks) is not list or url and chunks:
        raise _Bad("has a chunk list that is not a list, or is external and has chunks")
    refs = []
    total = 0
    npacks = len(packs)
    for c in chunks:
        if type(c) is not list or len(c) != 6:
            raise _Bad("has a chunk that is not a 6-field row")
        cdigest, csize, pack, offset, length, codec = c
        if type(cdigest) is not bytes or len(cdigest) != _HASH_LEN:
            raise _Bad("has a chunk digest that is not 16 bytes")
        if not (type(csize) is type(offset) is type(length) is type(pack) is type(codec) is int
                and 0 < csize < _INT64 and 0 <= offset < _INT64 and 0 <= length < _INT64):
            raise _Bad("has a chunk size, offset or length that is not a positive integer")
        if not pack_min <= pack < npacks:
            raise _Bad(f"names pack {pack}, which the header does not list")
        if codec not in _CODECS:
            raise _Bad(f"has a chunk with unknown codec {codec}")
        refs.append(ChunkRef(cdigest, csize, packs[pack] if pack >= 0 else "", offset, length, codec))
        total += csize
    if total != size and not url:
        raise _Bad("has chunks that do not add up to its size")
    origin = ""
    if origins is not None and len(row) == 10:
        at = row[9]
        if type(at) is not int or not -1 <= at < len(origins):
            raise _Bad(f"names origin {quoted(at)}, which the header does not list")
        if at >= 0:
            origin = origins[at]
    return FileEntry(path, size, mode, mtime_ns, digest, refs, url, etag, src, origin)


def iter_decode(data: bytes, where: str) -> tuple[dict[str, Any], Iterator[FileEntry]]:
    """Verify and decode lazily: (header, entries in path order); any fault is ``IntegrityError``.

    The checksum covers the whole manifest; each entry is validated as it is
    decoded (see the module docstring), so a fault may surface mid-iteration.
    """
    fmt, body = _body(data, where)
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body))
    unpacker = msgpack.Unpacker(reader, raw=False, max_buffer_size=256 << 20, max_str_len=_LIMITS["max_str_len"],
                                max_bin_len=_LIMITS["max_bin_len"], max_array_len=_LIMITS["max_array_len"],
                                max_map_len=_LIMITS["max_map_len"], max_ext_len=_LIMITS["max_ext_len"])
    try:
        header = _header(next(unpacker), where)
    except StopIteration:
        raise IntegrityError(f"manifest {where} is damaged (no header)") from None
    except (ValueError, msgpack.UnpackException, zstandard.ZstdError) as exc:
        raise IntegrityError(f"manifest {where} is damaged ({exc})") from None
    packs = header["packs"]
    origins = header["origins"] if fmt >= 2 else None
    # a finalized manifest's chunks are all uploaded; only a draft's may still lack a pack
    pack_min = -1 if header["kind"] == "draft" else 0

    def entries() -> Iterator[FileEntry]:
        order = PathOrder()
        count = 0
        row: Any = None
        try:
            for row in unpacker:
                yield _entry(row, packs, origins, pack_min, order)
                count += 1
        except _Bad as exc:
            path = quoted(row[0]) if type(row) is list and row and type(row[0]) is str else f"#{count}"
            raise IntegrityError(
                f"manifest {where} is damaged or crafted: entry {path} {exc}; restore it or delete the version"
            ) from None
        except (ValueError, msgpack.UnpackException, zstandard.ZstdError) as exc:
            raise IntegrityError(f"manifest {where} is damaged ({exc})") from None
        if count != header["count"]:
            raise IntegrityError(f"manifest {where} is damaged: it holds {count} entries, its header says {header['count']}")

    return header, entries()


def decode(data: bytes, where: str) -> tuple[dict[str, Any], list[FileEntry]]:
    """Verify and decode a whole manifest: (header, entries in path order)."""
    header, it = iter_decode(data, where)
    return header, list(it)
