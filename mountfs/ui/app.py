"""``mountfs ui``: a read-only web view of a store's catalog (Starlette routes, Jinja2 pages, SVG charts).

Safety rules, each enforced here and tested (tests/ui):

- every name and value is escaped (Jinja2 autoescape; ``charts`` escapes what
  it draws); a Content-Security-Policy allows nothing but this server's own
  files and no inline script, so even a missed escape would not run;
- a request never names a key or a local path: a version is an id looked up
  in the catalog's listing, a file a path looked up in that version's file
  table, a report's media an id ``reports.read_media`` checks; anything else
  is 404 (static files are served by Starlette's ``StaticFiles``);
- GET (and HEAD) only: nothing here writes to the store;
- the Host header must be the address served (DNS rebinding: another site's
  page must not read the catalog through the user's browser).
"""

from __future__ import annotations

import logging
import posixpath
import threading
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, urlencode

import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..catalog import DatasetRecord, reports
from ..errors import MountfsError, NotFound
from ..session import Session
from ..store import FileEntry
from ..store.external import check_unchanged, read_range
from ..sdk.version import Version, diff_tables
from ..units import human_size
from . import charts

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
#: what a page may load: this server's own files only, no inline script, no plugins, no framing
CSP = ("default-src 'none'; img-src 'self' data:; style-src 'self'; script-src 'self'; media-src 'self'; "
       "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
#: bytes of chunks read (cache or store) before they are sent: memory per download stays this small
STREAM_BYTES = 8 << 20
#: a listing shows at most this many entries of one folder
MAX_LISTED = 5000
#: the catalog's listing is read again after this many seconds (a page is many requests)
CATALOG_TTL = 2.0


class _Headers:
    """Security headers on every response (pure ASGI: streamed downloads stay streamed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                for k, v in ((b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                             (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
                             (b"cross-origin-resource-policy", b"same-origin")):
                    if k not in names:
                        headers.append((k, v))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, sending)


class _Catalog:
    """The catalog as the pages see it: its usable records, re-listed at most every ``CATALOG_TTL`` s,
    and the file tables of finalized versions (immutable: kept, a few at a time)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._lock = threading.Lock()
        self._records: list[DatasetRecord] = []
        self._at = 0.0
        self._tables: dict[str, dict[str, FileEntry]] = {}

    def records(self) -> list[DatasetRecord]:
        with self._lock:
            if time.monotonic() - self._at < CATALOG_TTL:
                return self._records
        records = self.session.catalog.all()
        with self._lock:
            self._records, self._at = records, time.monotonic()
        return records

    def by_id(self) -> dict[str, DatasetRecord]:
        return {r.id: r for r in self.records()}

    def record(self, dataset_id: str) -> DatasetRecord:
        """The listed record of ``dataset_id``; 404 for anything else (a crafted record the listing skips too)."""
        rec = self.by_id().get(dataset_id)
        if rec is None:
            raise HTTPException(404, f"no dataset version with id {dataset_id!r}")
        return rec

    def table(self, rec: DatasetRecord) -> dict[str, FileEntry]:
        with self._lock:
            hit = self._tables.get(rec.id)
        if hit is not None:
            return hit
        try:
            table = Version(self.session, rec).table()
        except MountfsError as exc:
            raise HTTPException(503, f"cannot read the files of {rec.id}: {exc}") from None
        if rec.is_final:
            with self._lock:
                if len(self._tables) >= 16:
                    self._tables.pop(next(iter(self._tables)))
                self._tables[rec.id] = table
        return table


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True)
    env.filters["size"] = lambda n: human_size(int(n)) if isinstance(n, int) else "-"
    env.filters["q"] = lambda v: quote(str(v), safe="")
    env.globals["urlencode"] = urlencode
    return env


def create_app(session: Session, allowed_hosts: list[str] | None = None) -> Starlette:
    """The web view of ``session``'s catalog; ``allowed_hosts``: Host header values accepted (None: any)."""
    cat = _Catalog(session)
    env = _env()

    def page(template: str, status: int = 200, **values: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(template).render(**values), status_code=status)

    def version_label(rec: DatasetRecord) -> str:
        return f"{rec.project}/{rec.name} {rec.version}"

    def index(request: Request) -> Response:
        projects: dict[str, dict[str, list[DatasetRecord]]] = {}
        for rec in cat.records():
            projects.setdefault(rec.project, {}).setdefault(rec.name, []).append(rec)
        listing = [(p, sorted(ds.items())) for p, ds in sorted(projects.items())]
        return page("index.html", projects=listing, store=session.catalog_url)

    def dataset(request: Request) -> Response:
        project, name = request.query_params.get("project", ""), request.query_params.get("name", "")
        versions = [r for r in cat.records() if (r.project, r.name) == (project, name)]
        if not versions:
            raise HTTPException(404, f"no dataset {project}/{name}")
        return page("dataset.html", project=project, name=name, versions=versions)

    def version(request: Request) -> Response:
        rec = cat.record(request.path_params["id"])
        try:
            found = reports.read_reports(session.catalog, rec.id)
            preview = reports.read_preview(session.catalog, rec.id)
        except MountfsError as exc:
            raise HTTPException(503, f"cannot read the reports of {rec.id}: {exc}") from None
        shown = [_shown_report(r) for r in found]
        return page("version.html", rec=rec, label=version_label(rec), reports=shown, preview=_shown_preview(preview),
                    by_id=cat.by_id())

    def lineage_graph(rec: DatasetRecord) -> Markup:
        known = cat.by_id()
        children: dict[str, list[str]] = {}
        for r in known.values():
            for p in r.parents:
                children.setdefault(p, []).append(r.id)
        seen: set[str] = set()
        edges: set[tuple[str, str]] = set()
        todo = [rec.id]
        while todo:  # ancestors
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            for p in known[n].parents if n in known else []:
                edges.add((p, n))
                todo.append(p)
        todo = [rec.id]
        down: set[str] = set()
        while todo:  # descendants
            n = todo.pop()
            if n in down:
                continue
            down.add(n)
            for c in children.get(n, []):
                edges.add((n, c))
                todo.append(c)
        nodes = {}
        for n in seen | down:
            got = known.get(n)
            nodes[n] = ({"label": version_label(got), "status": got.status, "href": f"/v/{got.id}"} if got is not None
                        else {"label": "(deleted)", "status": "deleted", "href": ""})
        return charts.lineage(nodes, sorted(edges), rec.id)

    def lineage(request: Request) -> Response:
        rec = cat.record(request.path_params["id"])
        return page("lineage.html", rec=rec, label=version_label(rec), graph=lineage_graph(rec))

    def lineage_svg(request: Request) -> Response:
        rec = cat.record(request.path_params["id"])
        return Response(str(lineage_graph(rec)), media_type="image/svg+xml")

    def files(request: Request) -> Response:
        rec = cat.record(request.path_params["id"])
        folder = request.query_params.get("path", "").strip("/")
        table = cat.table(rec)
        prefix = f"{folder}/" if folder else ""
        subdirs: dict[str, list[int]] = {}
        here: list[FileEntry] = []
        for path, e in table.items():
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):]
            head, sep, _ = rest.partition("/")
            if sep:
                agg = subdirs.setdefault(head, [0, 0])
                agg[0] += 1
                agg[1] += e.size
            else:
                here.append(e)
        if folder and not subdirs and not here:
            raise HTTPException(404, f"no folder {folder!r} in {rec.id}")
        here.sort(key=lambda e: e.path)
        crumbs = []
        if folder:
            parts = folder.split("/")
            crumbs = [(p, "/".join(parts[:i + 1])) for i, p in enumerate(parts)]
        dirs = sorted(subdirs.items())
        cut = len(dirs) + len(here) > MAX_LISTED
        return page("files.html", rec=rec, label=version_label(rec), folder=folder, prefix=prefix, crumbs=crumbs,
                    dirs=dirs[:MAX_LISTED], files=here[:max(0, MAX_LISTED - len(dirs))], cut=cut,
                    count=len(table), total=sum(e.size for e in table.values()))

    def download(request: Request) -> Response:
        rec = cat.record(request.path_params["id"])
        path = request.query_params.get("path", "")
        e = cat.table(rec).get(path)
        if e is None:
            raise HTTPException(404, f"no file {path!r} in {rec.id}")
        name = posixpath.basename(e.path)
        headers = {"content-length": str(e.size),
                   "content-disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}"}
        # never the file's own type: a stored .html or .svg must not become a page of this origin
        return StreamingResponse(_stream(session, rec, e), media_type="application/octet-stream", headers=headers)

    def media(request: Request) -> Response:
        rec = cat.record(request.path_params["id"])
        try:
            data, content_type = reports.read_media(session.catalog, rec.id, request.path_params["report"])
        except NotFound:
            raise HTTPException(404, "no such media") from None
        except MountfsError as exc:
            raise HTTPException(503, str(exc)) from None
        headers = {}
        if content_type.split(";")[0].strip() not in _INLINE_MEDIA:
            # html, svg, anything scriptable or unknown: a download, never rendered here
            headers["content-disposition"] = "attachment"
            content_type = "application/octet-stream"
        return Response(data, media_type=content_type, headers=headers)

    def diff(request: Request) -> Response:
        a_id, b_id = request.query_params.get("a", ""), request.query_params.get("b", "")
        records = cat.records()
        result = None
        a = b = None
        if a_id or b_id:
            a, b = cat.record(a_id), cat.record(b_id)
            ta, tb = cat.table(a), cat.table(b)
            added, modified, removed = diff_tables(tb, ta)
            result = {"added": [(p, tb[p].size) for p in added], "modified": [(p, ta[p].size, tb[p].size) for p in modified],
                      "removed": [(p, ta[p].size) for p in removed]}
        return page("diff.html", records=records, a=a, b=b, result=result, label=version_label)

    async def not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return page("error.html", status=exc.status_code, status_code=exc.status_code, message=exc.detail)

    async def store_error(request: Request, exc: Exception) -> Response:
        # a store that stopped answering, a damaged object: one line, as the CLI says it
        return page("error.html", status=503, status_code=503, message=" ".join(str(exc).split()))

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/dataset", dataset, methods=["GET"]),
        Route("/diff", diff, methods=["GET"]),
        Route("/v/{id}", version, methods=["GET"]),
        Route("/v/{id}/files", files, methods=["GET"]),
        Route("/v/{id}/download", download, methods=["GET"]),
        Route("/v/{id}/lineage", lineage, methods=["GET"]),
        Route("/v/{id}/lineage.svg", lineage_svg, methods=["GET"]),
        Route("/v/{id}/media/{report}", media, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [Middleware(_Headers)]
    if allowed_hosts is not None:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    return Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: not_found, MountfsError: store_error})


#: media types shown in the page (``<img>``, ``<audio>``, ``<video>``, plain text); others are downloads
_INLINE_MEDIA = {"image/png", "image/jpeg", "image/gif", "image/webp", "audio/wav", "audio/x-wav", "audio/mpeg",
                 "video/mp4", "text/plain", "text/csv", "application/json"}


def _stream(session: Session, rec: DatasetRecord, e: FileEntry) -> Iterator[bytes]:
    """The bytes of ``e``, a bounded run of chunks at a time: from the chunk cache, else from the store
    (verified there, then kept in the cache as a mount's reads keep them); an external file from its source."""
    if e.is_external:
        backend, key = session.source(e.url)
        check_unchanged(backend, key, e)
        for offset in range(0, e.size, STREAM_BYTES):
            yield read_range(backend, key, e, offset, min(STREAM_BYTES, e.size - offset))
        return
    store = session.store(rec.storage)
    cache = session.cache
    run: list[Any] = []
    size = 0
    for i, c in enumerate(e.chunks):
        run.append(c)
        size += c.size
        if size < STREAM_BYTES and i + 1 < len(e.chunks):
            continue
        have: dict[bytes, bytes | memoryview] = {}
        missing = []
        for ref in {r.digest: r for r in run}.values():
            data = cache.get(ref.digest)
            if data is None:
                missing.append(ref)
            else:
                have[ref.digest] = data
        if missing:
            got = store.read_chunks(missing)
            have.update(got)
            try:
                cache.put_many(got.items(), verified=True)
            except (MountfsError, OSError) as exc:  # a full cache disk must not fail a download
                log.debug("ui: not cached (%s)", exc)
        for ref in run:
            yield bytes(have[ref.digest])
        run, size = [], 0


def _shown_report(r: dict[str, Any]) -> dict[str, Any]:
    """A report as the page shows it: its chart drawn, its table cut to strings."""
    data = r.get("data") or {}
    out = {"id": r["id"], "kind": r["kind"], "title": r["title"], "series": r["series"], "iteration": r.get("iteration"),
           "data": data, "chart": charts.report_chart(r["kind"], data)}
    if r["kind"] == "table":
        out["columns"] = [str(c) for c in data.get("columns") or []]
        out["rows"] = [["" if v is None else str(v) for v in row] for row in data.get("rows") or []]
        out["total_rows"] = data.get("total_rows")
    return out


def _shown_preview(p: dict[str, Any] | None) -> dict[str, Any] | None:
    if not p:
        return None
    out = dict(p)
    sizes = p.get("sizes") if isinstance(p.get("sizes"), dict) else {}
    assert isinstance(sizes, dict)
    edges, counts = sizes.get("edges") or [], sizes.get("counts") or []
    if isinstance(counts, list) and counts and isinstance(edges, list):
        def shown(v: Any) -> str:
            return human_size(int(v)) if isinstance(v, int) and not isinstance(v, bool) else str(v)

        if len(edges) > len(counts):  # bin i holds sizes from edges[i] up to edges[i + 1]
            labels = [f"{shown(lo)}–{shown(hi)}" for lo, hi in zip(edges, edges[1:len(counts) + 1])]
        else:
            labels = [f"≥ {shown(v)}" for v in edges[:len(counts)]]
        out["size_chart"] = charts.bars([counts], labels, None, "file size", "files", "size distribution")
    for key in ("by_extension", "by_folder", "tables", "thumbnails"):
        value = p.get(key)
        out[key] = [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
    out["changes"] = p.get("changes") if isinstance(p.get("changes"), dict) else {}
    return out
