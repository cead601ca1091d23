"""The automatic preview of a version, written at finalize (``datasets/<id>/reports/preview.json``).

Without any code each version gets: counts and bytes by extension and by top
folder, the size distribution, what changed against its parents, the first rows
of the first few tables (CSV, TSV, JSONL; Parquet with pyarrow) and thumbnails
of a few images (Pillow).  It is bounded so that finalize stays fast on any
dataset: the statistics are one pass over the file table (no file is opened for
them), at most ``READ_BUDGET`` bytes are fetched for tables and thumbnails
together (a table's first ``TABLE_HEAD_BYTES`` only, a Parquet file's footer and
first row group), and reading stops after ``TIME_BUDGET`` seconds.  A file that
fails to parse is skipped with a debug line; nothing here ever fails a
finalize (previews describe a version, they are not its content).
"""

from __future__ import annotations

import bisect
import importlib
import io
import json
import logging
import posixpath
import time
from collections import defaultdict
from typing import Any, Callable

from ..catalog import reports
from ..store import FileEntry
from .logger import MAX_CELL, csv_rows, encode_image
from .version import Version, diff_tables

log = logging.getLogger(__name__)

#: bytes fetched from the store for all tables and thumbnails of one preview
READ_BUDGET = 32 << 20
#: seconds spent reading files for one preview (the statistics are not counted: they read nothing)
TIME_BUDGET = 3.0
#: how many tables, how many of their first rows and columns
MAX_TABLES = 3
TABLE_ROWS = 10
TABLE_COLUMNS = 40
#: bytes read from the start of a CSV, TSV or JSONL file for its first rows
TABLE_HEAD_BYTES = 64 << 10
#: Parquet files up to this size are read (footer, then the first row group's columns)
MAX_PARQUET_BYTES = 256 << 20
#: how many thumbnails, of images up to which size, fitted in which box
MAX_THUMBNAILS = 6
MAX_IMAGE_BYTES = 8 << 20
THUMBNAIL_BOX = (256, 256)
#: rows of by_extension and by_folder (the rest summed as one "(other)" row)
MAX_GROUPS = 30

TABLE_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")
#: size histogram edges in bytes: 0, then powers of 4 from 1 KiB
_EDGES = [0] + [1 << (10 + 2 * i) for i in range(20)]


class _OverBudget(Exception):
    """The read budget or the time budget is spent."""


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


class _Budget:
    def __init__(self, read_bytes: int, seconds: float) -> None:
        self.left = read_bytes
        self.deadline = time.monotonic() + seconds

    def spend(self, n: int) -> None:
        if n > self.left or time.monotonic() > self.deadline:
            raise _OverBudget()
        self.left -= n

    @property
    def spent(self) -> bool:
        return self.left <= 0 or time.monotonic() > self.deadline


class _EntryFile(io.RawIOBase):
    """A seekable read-only file over one entry's chunks, fetching only the chunks a read covers."""

    def __init__(self, read: Callable[[list[Any]], dict[bytes, bytes | memoryview]], entry: FileEntry,
                 budget: _Budget) -> None:
        super().__init__()
        self._read, self._entry, self._budget = read, entry, budget
        self._starts: list[int] = []
        pos = 0
        for c in entry.chunks:
            self._starts.append(pos)
            pos += c.size
        self._size = pos
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def size(self) -> int:
        return self._size

    def readinto(self, buffer: Any) -> int:
        data = self.pread(self._pos, len(buffer))
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def pread(self, offset: int, length: int) -> bytes:
        end = min(self._size, offset + length)
        if offset >= end:
            return b""
        first = bisect.bisect_right(self._starts, offset) - 1
        last = bisect.bisect_right(self._starts, end - 1) - 1
        refs = self._entry.chunks[first: last + 1]
        self._budget.spend(sum(c.size for c in refs))
        got = self._read(refs)
        joined = b"".join(bytes(got[c.digest]) for c in refs)
        start = offset - self._starts[first]
        return joined[start: start + end - offset]


def _ext(path: str) -> str:
    return posixpath.splitext(path)[1].lower()


def _grouped(groups: dict[str, list[int]], key: str) -> list[dict[str, Any]]:
    rows = sorted(groups.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))
    out = [{key: k, "count": c, "bytes": b} for k, (c, b) in rows[:MAX_GROUPS]]
    rest = rows[MAX_GROUPS:]
    if rest:
        out.append({key: "(other)", "count": sum(c for _, (c, _) in rest), "bytes": sum(b for _, (_, b) in rest)})
    return out


def statistics(table: dict[str, FileEntry], parents: dict[str, FileEntry]) -> dict[str, Any]:
    """The preview's counts: files and bytes, by extension, by top folder, the size histogram and the changes."""
    by_ext: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_folder: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    counts = [0] * len(_EDGES)
    total = 0
    for path, e in table.items():
        total += e.size
        g = by_ext[_ext(path) or "(none)"]
        g[0] += 1
        g[1] += e.size
        top = path.split("/", 1)[0] if "/" in path else "."
        g = by_folder[top]
        g[0] += 1
        g[1] += e.size
        counts[bisect.bisect_right(_EDGES, e.size) - 1] += 1
    used = max((i for i, c in enumerate(counts) if c), default=0) + 1
    edges = _EDGES[: used + 1]
    added, modified, removed = diff_tables(table, parents)
    return {
        "files": len(table),
        "bytes": total,
        "by_extension": _grouped(by_ext, "ext"),
        "by_folder": _grouped(by_folder, "folder"),
        "sizes": {"edges": edges, "counts": counts[:used]},
        "changes": {"added": len(added), "modified": len(modified), "removed": len(removed),
                    "added_bytes": sum(table[p].size for p in added),
                    "removed_bytes": sum(parents[p].size for p in removed)},
    }


def _cut(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        if isinstance(value, float) and value != value:  # NaN: not JSON
            return "NaN"
        if isinstance(value, float) and value in (float("inf"), float("-inf")):
            return "Inf" if value > 0 else "-Inf"
        return value
    text = value if isinstance(value, str) else json.dumps(value, default=str) if isinstance(value, (list, dict)) else str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def _jsonl_rows(data: bytes, cut: bool) -> tuple[list[str], list[list[Any]]]:
    lines = data.decode("utf-8", errors="replace").splitlines()
    if cut and lines:
        lines.pop()
    docs = []
    for line in lines:
        if not line.strip():
            continue
        doc = json.loads(line)
        docs.append(doc if isinstance(doc, dict) else {"value": doc})
        if len(docs) >= TABLE_ROWS:
            break
    if not docs:
        raise ValueError("no JSON lines")
    columns: list[str] = []
    for doc in docs:
        columns += [k for k in doc if k not in columns]
    columns = columns[:TABLE_COLUMNS]
    return columns, [[_cut(doc.get(c)) for c in columns] for doc in docs]


def _parquet_rows(f: _EntryFile) -> tuple[list[str], list[list[Any]]]:
    pq = _optional("pyarrow.parquet")
    if pq is None:
        raise ValueError("pyarrow is not installed")
    pf = pq.ParquetFile(f)
    names = list(pf.schema_arrow.names)[:TABLE_COLUMNS]
    if pf.metadata.num_row_groups == 0:
        return [str(n) for n in names], []
    batch = next(pf.iter_batches(batch_size=TABLE_ROWS, columns=names), None)
    if batch is None:
        return [str(n) for n in names], []
    cols = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
    rows = [[_cut(col[r]) for col in cols] for r in range(batch.num_rows)][:TABLE_ROWS]
    return [str(n) for n in names], rows


def _table(path: str, f: _EntryFile) -> dict[str, Any]:
    ext = _ext(path)
    if ext == ".parquet":
        if f.size() > MAX_PARQUET_BYTES:
            raise ValueError(f"larger than {MAX_PARQUET_BYTES >> 20} MiB")
        columns, rows = _parquet_rows(f)
    else:
        head = f.pread(0, TABLE_HEAD_BYTES)
        cut = f.size() > TABLE_HEAD_BYTES
        if ext in (".jsonl", ".ndjson"):
            columns, rows = _jsonl_rows(head, cut)
        else:
            columns, rows, _ = csv_rows(head, TABLE_ROWS, cut, "\t" if ext == ".tsv" else ",")
            if not columns:
                raise ValueError("empty")
            columns = columns[:TABLE_COLUMNS]
            rows = [r[:TABLE_COLUMNS] for r in rows]
    return {"path": path, "columns": columns, "rows": rows}


def _thumbnail(f: _EntryFile, pil: Any) -> tuple[bytes, str, int, int]:
    data = f.pread(0, f.size())
    img = pil.open(io.BytesIO(data))
    img.draft("RGB", THUMBNAIL_BOX)  # JPEG: decode at a reduced scale already
    img.thumbnail(THUMBNAIL_BOX)
    fmt = "JPEG" if img.format == "JPEG" else "PNG"
    return encode_image(img, THUMBNAIL_BOX[0] * THUMBNAIL_BOX[1], pil, fmt)


def build(version: Version, parents: dict[str, FileEntry], read_budget: int = READ_BUDGET,
          time_budget: float = TIME_BUDGET) -> tuple[dict[str, Any], dict[str, tuple[bytes, str]]]:
    """(preview, media) of a finalized ``version`` whose parents' merged files are ``parents``."""
    table = version.table()
    preview = statistics(table, parents)
    preview["tables"], preview["thumbnails"] = [], []
    media: dict[str, tuple[bytes, str]] = {}
    budget = _Budget(read_budget, time_budget)
    store = version.store
    pil = _optional("PIL.Image")
    tables = thumbs = 0
    for path in sorted(table):
        if (tables >= MAX_TABLES and (thumbs >= MAX_THUMBNAILS or pil is None)) or budget.spent:
            break
        e = table[path]
        ext = _ext(path)
        wants_table = ext in TABLE_EXTENSIONS and tables < MAX_TABLES
        wants_thumb = ext in IMAGE_EXTENSIONS and thumbs < MAX_THUMBNAILS and pil is not None \
            and e.size <= MAX_IMAGE_BYTES
        if not (wants_table or wants_thumb) or e.is_external or not e.chunks or any(not c.pack for c in e.chunks):
            continue  # an external source is not fetched for a preview
        f = _EntryFile(store.read_chunks, e, budget)
        try:
            if wants_table:
                preview["tables"].append(_table(path, f))
                tables += 1
            else:
                data, content_type, width, height = _thumbnail(f, pil)
                media_id = f"{reports.PREVIEW_MEDIA}{thumbs}"
                media[media_id] = (data, content_type)
                preview["thumbnails"].append({"path": path, "media": media_id, "width": width, "height": height})
                thumbs += 1
        except _OverBudget:
            log.debug("preview of %s: read budget spent at %s", version.id, path)
            break
        except Exception as exc:  # any parser's failure: the file is skipped, the preview goes on
            log.debug("preview of %s: skipping %s: %s: %s", version.id, path, type(exc).__name__, exc)
    return preview, media


def write_version_preview(version: Version, parents: dict[str, FileEntry]) -> bool:
    """Build and store the preview of a just-finalized ``version``; never raises (False when it failed)."""
    try:
        preview, media = build(version, parents)
        reports.write_preview(version.session.catalog, version.id, preview, media)
        return True
    except Exception as exc:  # previews are commentary: a failure here must not fail the finalize
        log.warning("could not write the preview of %s: %s", version.id, exc)
        return False
