"""Reports (``Dataset.get_logger()``) and the automatic preview, stored beside a version.

Objects (``store.layout.Report``; docs/FORMAT.md, "Reports")::

    datasets/<id>/reports/<report-id>.json    one report: {"id", "kind", "title", "series", "iteration", "time", "data"}
    datasets/<id>/reports/<report-id>.<ext>   a report's media (an image's PNG, a file given to report_media)
    datasets/<id>/reports/preview.json        the automatic preview written at finalize
    datasets/<id>/reports/preview-<n>.<ext>   the preview's thumbnails

Report ids are time-ordered (microseconds, then a random tail; strictly
increasing within one process), so listing them sorted is the order they were
reported in.  Everything here is read back from a store anybody with write access
may have edited: each report is shape-checked and a damaged one is skipped with
a warning, never shown half-decoded (the UI renders what this returns).
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..errors import NotFound, ObjectNotFound, UsageError
from ..store import layout

if TYPE_CHECKING:
    from .catalog import Catalog

log = logging.getLogger(__name__)

#: the kinds a report may have, and the keys its "data" must hold
KINDS: dict[str, tuple[str, ...]] = {
    "table": ("columns", "rows", "total_rows"),
    "histogram": ("values",),
    "scalar": ("points",),
    "line": ("lines",),
    "scatter2d": ("points",),
    "confusion": ("matrix",),
    "image": ("media", "content_type"),
    "media": ("media", "content_type"),
    "text": ("text",),
    "plotly": ("figure",),
}
#: content type -> extension of a media object (others are stored as ``.bin``)
_EXTENSIONS = {
    "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp", "image/svg+xml": "svg",
    "text/plain": "txt", "text/html": "html", "text/csv": "csv", "application/json": "jsn",
    "application/pdf": "pdf", "audio/wav": "wav", "audio/x-wav": "wav", "audio/mpeg": "mp3", "video/mp4": "mp4",
    "application/octet-stream": "bin",
}
_TYPES = {ext: content_type for content_type, ext in _EXTENSIONS.items()}
_TYPES["wav"] = "audio/wav"
#: media ids of the preview's thumbnails: ``preview-0``, ``preview-1``, ...
PREVIEW_MEDIA = f"{layout.PREVIEW_ID}-"
#: a report object larger than this is not read back (a crafted one must not exhaust memory)
MAX_REPORT_BYTES = 64 << 20



class MediaNotFound(NotFound, UsageError, KeyError):
    """No such report media: a ``NotFound`` (exit 3) that ``except UsageError`` and ``except KeyError`` catch too."""

    def __str__(self) -> str:  # KeyError's would quote the message
        return str(self.args[0]) if self.args else ""


_id_lock = threading.Lock()
_last_micros = 0


def new_report_id() -> str:
    """A time-ordered report id: 14 hex digits of microseconds, then 6 random ones."""
    global _last_micros
    with _id_lock:
        micros = max(time.time_ns() // 1000, _last_micros + 1)
        _last_micros = micros
    return f"{micros:014x}{os.urandom(3).hex()}"


def media_extension(content_type: str) -> str:
    """The extension a media object of ``content_type`` is stored with."""
    ext = _EXTENSIONS.get(content_type.split(";")[0].strip().lower())
    if ext is None:
        guessed = mimetypes.guess_extension(content_type.split(";")[0].strip()) or ".bin"
        ext = guessed.lstrip(".").lower()
        if ext == "json" or not ext.isalnum():  # "json" is the report itself
            ext = "bin"
    return ext


def _content_type(ext: str) -> str:
    return _TYPES.get(ext) or mimetypes.types_map.get(f".{ext}") or "application/octet-stream"


def write_report(catalog: Catalog, dataset_id: str, report: dict[str, Any], media: bytes | None = None,
                 media_type: str | None = None) -> str:
    """Store one report of dataset ``dataset_id`` (and its media); its id.

    Fills ``"id"`` and ``"time"`` (and ``data["media"]``/``data["content_type"]``
    when ``media`` is given).  The media goes first: a report never names a
    media object that is not there.
    """
    kind = report.get("kind")
    if kind not in KINDS:
        raise UsageError(f"report kind {layout.shown(kind)} is not one of {', '.join(KINDS)}")
    report_id = new_report_id()
    out = dict(report)
    out["id"] = report_id
    out["time"] = time.time()
    out.setdefault("iteration", None)
    out["title"], out["series"] = str(out.get("title", "")), str(out.get("series", ""))
    data = dict(out.get("data") or {})
    if media is not None:
        content_type = media_type or "application/octet-stream"
        catalog.backend.put(layout.Report(dataset_id, report_id, media_extension(content_type)).key, bytes(media))
        data["media"], data["content_type"] = report_id, content_type
    out["data"] = data
    try:
        body = json.dumps(out, allow_nan=False, default=_jsonable).encode()
    except (TypeError, ValueError) as exc:
        raise UsageError(f"report {out['title']!r}/{out['series']!r} is not JSON-able ({exc})") from None
    catalog.backend.put(layout.Report(dataset_id, report_id).key, body)
    return report_id


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays as plain numbers and lists (``json.dumps`` ``default``)."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


def _listed(catalog: Catalog, dataset_id: str) -> list[layout.Report]:
    out = []
    for o in catalog.backend.list(layout.reports_prefix(dataset_id)):
        try:
            handle = layout.parse_dataset_key(o.key)
        except UsageError:
            continue
        if isinstance(handle, layout.Report) and handle.dataset_id == dataset_id:
            out.append(handle)
    return out


def _get(catalog: Catalog, key: str) -> bytes | None:
    try:
        info = catalog.backend.stat(key)
        if info.size > MAX_REPORT_BYTES:
            log.warning("reports: %s/%s is %d bytes, larger than %d; skipped", catalog.backend.url, key,
                        info.size, MAX_REPORT_BYTES)
            return None
        return catalog.backend.get(key)
    except ObjectNotFound:
        return None


def _warn(catalog: Catalog, key: str, data: bytes, message: str) -> None:
    """Warn once per object and content: a page or a daemon re-reads the reports often."""
    catalog._report(key, data, message)


def _decode(catalog: Catalog, handle: layout.Report) -> dict[str, Any] | None:
    data = _get(catalog, handle.key)
    if data is None:
        return None  # deleted since the listing
    where = f"{catalog.backend.url}/{handle.key}"
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        _warn(catalog, handle.key, data, f"reports: {where} is damaged ({exc}); skipped")
        return None
    problem = _problem(doc, handle.report_id)
    if problem:
        _warn(catalog, handle.key, data, f"reports: {where} is damaged ({problem}); skipped")
        return None
    assert isinstance(doc, dict)
    return doc


def _problem(doc: Any, report_id: str) -> str:
    """What makes ``doc`` no usable report ("" if nothing)."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    if doc.get("id") != report_id:
        return "its id is not its name"
    kind = doc.get("kind")
    if kind not in KINDS:
        return f"unknown kind {layout.shown(kind)}"
    if not isinstance(doc.get("title"), str) or not isinstance(doc.get("series"), str):
        return "title and series must be strings"
    iteration = doc.get("iteration")
    if iteration is not None and (not isinstance(iteration, int) or isinstance(iteration, bool)):
        return "iteration must be a whole number or null"
    if not isinstance(doc.get("time"), (int, float)):
        return "no time"
    data = doc.get("data")
    if not isinstance(data, dict):
        return "data must be an object"
    missing = [k for k in KINDS[kind] if k not in data]
    if missing:
        return f"a {kind} report needs data {', '.join(missing)}"
    return _data_problem(kind, data)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _data_problem(kind: str, data: dict[str, Any]) -> str:
    def strings(v: Any) -> bool:
        return v is None or (isinstance(v, list) and all(isinstance(s, str) for s in v))

    def pairs(v: Any) -> bool:
        return isinstance(v, list) and all(isinstance(p, list) and len(p) == 2 for p in v)

    if kind == "table":
        if not strings(data["columns"]) or not isinstance(data["rows"], list) \
                or not all(isinstance(r, list) for r in data["rows"]) or not _is_number(data["total_rows"]):
            return "a table needs columns (strings), rows (lists) and total_rows"
    elif kind == "histogram":
        if not isinstance(data["values"], list) or not strings(data.get("labels")) or not strings(data.get("xlabels")):
            return "a histogram needs values (a list) and labels/xlabels as strings"
    elif kind in ("scalar", "scatter2d"):
        if not pairs(data["points"]):
            return "points must be [x, y] pairs"
    elif kind == "line":
        lines = data["lines"]
        if not isinstance(lines, list) or not all(
                isinstance(line, dict) and isinstance(line.get("name"), str) and pairs(line.get("points"))
                for line in lines):
            return "lines must be {name, points} objects"
    elif kind == "confusion":
        if not isinstance(data["matrix"], list) or not all(isinstance(r, list) for r in data["matrix"]):
            return "matrix must be a list of rows"
    elif kind in ("image", "media"):
        if not isinstance(data["media"], str) or not isinstance(data["content_type"], str):
            return "media and content_type must be strings"
    elif kind == "text":
        if not isinstance(data["text"], str):
            return "text must be a string"
    elif kind == "plotly":
        if not isinstance(data["figure"], dict):
            return "figure must be an object"
    return ""


def read_reports(catalog: Catalog, dataset_id: str) -> list[dict[str, Any]]:
    """Every usable report of ``dataset_id``, oldest first; the ``"scalar"`` reports of one
    (title, series) merged into one (the first's id and place) holding all points by iteration."""
    handles = sorted((h for h in _listed(catalog, dataset_id) if h.ext == "json" and h.report_id != layout.PREVIEW_ID),
                     key=lambda h: h.report_id)
    if not handles:
        return []
    with ThreadPoolExecutor(8) as pool:
        docs = [d for d in pool.map(lambda h: _decode(catalog, h), handles) if d is not None]
    out: list[dict[str, Any]] = []
    scalars: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in docs:
        if doc["kind"] != "scalar":
            out.append(doc)
            continue
        key = (doc["title"], doc["series"])
        merged = scalars.get(key)
        if merged is None:
            merged = scalars[key] = {**doc, "data": {**doc["data"], "points": list(doc["data"]["points"])}}
            out.append(merged)
        else:
            merged["data"]["points"].extend(doc["data"]["points"])
            merged["time"] = doc["time"]
            merged["iteration"] = doc["iteration"]
    for merged in scalars.values():
        merged["data"]["points"].sort(key=lambda p: (p[0] is None, p[0] if _is_number(p[0]) else 0))
    return out


def read_media(catalog: Catalog, dataset_id: str, report_id: str) -> tuple[bytes, str]:
    """The media of report ``report_id`` (or of a preview thumbnail) and its content type; ``NotFound`` if none."""
    try:
        layout.Report(dataset_id, report_id)
    except UsageError:
        raise MediaNotFound(f"dataset {layout.shown(dataset_id)} has no report media {layout.shown(report_id)}") from None
    for handle in _listed(catalog, dataset_id):
        if handle.report_id == report_id and handle.ext != "json":
            data = _get(catalog, handle.key)
            if data is not None:
                return data, _content_type(handle.ext)
    raise MediaNotFound(f"dataset {dataset_id} has no report media {layout.shown(report_id)}")


def write_preview(catalog: Catalog, dataset_id: str, preview: dict[str, Any],
                  media: dict[str, tuple[bytes, str]]) -> None:
    """Store the automatic preview of ``dataset_id`` and its media (media id -> (bytes, content type));
    the media first, so the preview names nothing missing.  Replaces an earlier preview."""
    for media_id, (data, content_type) in media.items():
        catalog.backend.put(layout.Report(dataset_id, media_id, media_extension(content_type)).key, bytes(data))
    try:
        body = json.dumps(preview, allow_nan=False, default=_jsonable).encode()
    except (TypeError, ValueError) as exc:
        raise UsageError(f"preview of {dataset_id} is not JSON-able ({exc})") from None
    catalog.backend.put(layout.Report(dataset_id, layout.PREVIEW_ID).key, body)


def read_preview(catalog: Catalog, dataset_id: str) -> dict[str, Any] | None:
    """The automatic preview of ``dataset_id``; None when it has none (or it is damaged: warned)."""
    key = layout.Report(dataset_id, layout.PREVIEW_ID).key
    data = _get(catalog, key)
    if data is None:
        return None
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        _warn(catalog, key, data, f"reports: {catalog.backend.url}/{key} is damaged ({exc}); skipped")
        return None
    if not isinstance(doc, dict):
        _warn(catalog, key, data, f"reports: {catalog.backend.url}/{key} is damaged (not a JSON object); skipped")
        return None
    return doc
