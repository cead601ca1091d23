"""The read-only HTTP(S) backend (mountfs/backends/http.py) against a real web server on 127.0.0.1:
whole and ranged GETs (from servers that honour Range and from ones that ignore it), HEAD for size and
tag, redirects one checked hop at a time, and each status mapped onto the store errors.  How a
restricted process's policy uses the redirect check is tests/security/test_external_policy.py.
"""

from __future__ import annotations

import http.server
import random
import threading
from typing import Iterator

import pytest
from servers import pick_free_port

from mountfs.backends import open_backend, open_source
from mountfs.backends.http import HttpBackend
from mountfs.errors import ObjectNotFound, PermissionDenied, StoreError, TransientStoreError, UsageError

DATA = random.Random(7).randbytes(100_000)
STATUS_ONLY = {"/gone": 410, "/denied": 403, "/who": 401, "/busy": 503, "/slow-down": 429, "/teapot": 418}


class _Handler(http.server.BaseHTTPRequestHandler):
    """``/r/f`` honours Range, ``/plain/f`` ignores it, ``/lm/f`` has only Last-Modified; ``/go/<path>`` and
    ``/abs/<path>`` redirect (relative, absolute), ``/hops/<n>/<path>`` takes n redirects, ``/folder`` is a
    folder page's redirect; ``STATUS_ONLY`` paths answer their status."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _redirect(self, location: str, status: int = 302) -> None:
        self._send(status, headers={"Location": location})

    def _route(self) -> None:
        seen: list[tuple[str, str, str]] = self.server.seen  # type: ignore[attr-defined]
        seen.append((self.command, self.path, self.headers.get("Range", "")))
        path = self.path
        host = f"http://127.0.0.1:{self.server.server_port}"  # type: ignore[attr-defined]
        if path in STATUS_ONLY:
            return self._send(STATUS_ONLY[path], b"<html>nope</html>")
        if path.startswith("/go/"):
            return self._redirect(path[len("/go"):])
        if path.startswith("/abs/"):
            return self._redirect(host + path[len("/abs"):], 301)
        if path.startswith("/hops/"):
            _, _, n, rest = path.split("/", 3)
            return self._redirect(f"/hops/{int(n) - 1}/{rest}" if int(n) > 1 else f"/{rest}", 307)
        if path == "/to-ftp":
            return self._redirect("ftp://127.0.0.1/f")
        if path == "/nowhere":
            return self._send(302)  # a redirect without a Location
        if path == "/folder":
            return self._redirect("/folder/", 301)
        if path == "/folder/":
            return self._send(200, b"<html>index</html>")
        if path == "/r/f":
            tag = {"ETag": '"v1-abc"'}
            ranged = self.headers.get("Range", "")
            if ranged:
                first, _, last = ranged.removeprefix("bytes=").partition("-")
                start, end = int(first), min(int(last), len(DATA) - 1)
                if start >= len(DATA):
                    return self._send(416, headers={"Content-Range": f"bytes */{len(DATA)}"})
                return self._send(206, DATA[start:end + 1],
                                  {**tag, "Content-Range": f"bytes {start}-{end}/{len(DATA)}"})
            return self._send(200, DATA, tag)
        if path == "/plain/f":
            return self._send(200, DATA, {"ETag": '"v1-abc"'})
        if path == "/lm/f":
            return self._send(200, DATA, {"Last-Modified": "Wed, 02 Dec 2026 10:00:00 GMT"})
        return self._send(404, b"<html>not here</html>")

    do_GET = do_HEAD = _route


@pytest.fixture(scope="module")
def web() -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    """A web server on 127.0.0.1 for this file: its base URL and the requests it saw (method, path, Range)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.seen  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def site(web: tuple[str, list[tuple[str, str, str]]]) -> Iterator[HttpBackend]:
    base, seen = web
    seen.clear()
    store = HttpBackend(base)
    try:
        yield store
    finally:
        store.close()


def _seen(web: tuple[str, list[tuple[str, str, str]]]) -> list[tuple[str, str, str]]:
    return web[1]


# --- reads ------------------------------------------------------------------------------


def test_whole_and_ranged_reads(site: HttpBackend, web: tuple[str, list[tuple[str, str, str]]]) -> None:
    assert site.get("r/f") == DATA
    assert site.get_range("r/f", 1000, 5000) == DATA[1000:6000]
    assert site.get_range("r/f", len(DATA) - 3, 100) == DATA[-3:], "fewer bytes only at the end"
    assert site.get_range("r/f", 5, 0) == b""
    assert _seen(web) == [("GET", "/r/f", ""), ("GET", "/r/f", "bytes=1000-5999"),
                          ("GET", "/r/f", f"bytes={len(DATA) - 3}-{len(DATA) + 96}")], "one request each"


def test_a_server_that_ignores_range_still_gives_the_range(site: HttpBackend) -> None:
    assert site.get_range("plain/f", 1000, 5000) == DATA[1000:6000]
    assert site.get_range("plain/f", len(DATA) - 3, 100) == DATA[-3:]


def test_several_pieces_are_one_request(site: HttpBackend, web: tuple[str, list[tuple[str, str, str]]]) -> None:
    pieces = site.get_ranges("r/f", 100, [(0, 10), (50, 5), (20_000, 7)])
    assert [bytes(p) for p in pieces] == [DATA[100:110], DATA[150:155], DATA[20_100:20_107]]
    assert _seen(web) == [("GET", "/r/f", "bytes=100-20106")]


def test_stat_gives_size_and_a_tag(site: HttpBackend) -> None:
    info = site.stat("r/f")
    assert (info.key, info.size, info.etag) == ("r/f", len(DATA), "v1-abc")
    # no ETag: Last-Modified is the tag that changes with the file
    assert site.stat("lm/f").etag == "Wed, 02 Dec 2026 10:00:00 GMT"


def test_open_source_splits_a_file_url(web: tuple[str, list[tuple[str, str, str]]]) -> None:
    base, _ = web
    store, key = open_source(f"{base}/r/f")
    assert isinstance(store, HttpBackend) and (store.url, key) == (f"{base}/r", "f")
    assert store.get(key) == DATA
    assert open_backend(f"{base}/r/").url == f"{base}/r"


# --- redirects ------------------------------------------------------------------------------


def test_redirects_are_followed(site: HttpBackend, web: tuple[str, list[tuple[str, str, str]]]) -> None:
    assert site.get("go/r/f") == DATA  # relative Location
    assert site.get_range("abs/r/f", 10, 10) == DATA[10:20]  # absolute Location; the Range goes along
    assert site.stat("go/r/f").size == len(DATA)
    assert site.get("hops/3/r/f") == DATA, "three hops are allowed"
    assert ("GET", "/r/f", "bytes=10-19") in _seen(web)


def test_each_redirect_target_is_checked_before_it_is_asked(web: tuple[str, list[tuple[str, str, str]]]) -> None:
    base, seen = web
    judged: list[str] = []

    def check(url: str) -> None:
        judged.append(url)
        if url.endswith("/2/r/f"):
            raise PermissionDenied(f"{url} may not be read")

    store = HttpBackend(base, check=check)
    seen.clear()
    with pytest.raises(PermissionDenied, match="/hops/2/r/f may not be read"):
        store.get("hops/3/r/f")
    assert judged == [f"{base}/hops/2/r/f"]
    assert [path for _, path, _ in seen] == ["/hops/3/r/f"], "the refused target was never requested"
    judged.clear()
    assert store.get("hops/1/r/f") == DATA and judged == [f"{base}/r/f"]


@pytest.mark.parametrize("key, says, asked", [
    ("hops/4/r/f", "more than 3 redirects", ["/hops/4/r/f", "/hops/3/r/f", "/hops/2/r/f", "/hops/1/r/f"]),
    ("to-ftp", r"ftp://127.0.0.1/f, which is not an HTTP\(S\) URL", ["/to-ftp"]),
    ("nowhere", "without a Location", ["/nowhere"]),
])
def test_redirects_that_cannot_be_followed(site: HttpBackend, web: tuple[str, list[tuple[str, str, str]]], key: str,
                                           says: str, asked: list[str]) -> None:
    with pytest.raises(StoreError, match=says) as info:
        site.get(key)
    assert not isinstance(info.value, (ObjectNotFound, TransientStoreError))
    assert [path for _, path, _ in _seen(web)] == asked, "nothing past the refused hop was requested"


def test_a_folder_page_is_not_a_file(site: HttpBackend) -> None:
    with pytest.raises(ObjectNotFound, match="folder page"):
        site.get("folder")


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key, error", [
    ("missing", ObjectNotFound), ("gone", ObjectNotFound), ("denied", PermissionDenied), ("who", PermissionDenied),
    ("busy", TransientStoreError), ("slow-down", TransientStoreError), ("teapot", StoreError),
])
def test_statuses_map_onto_the_store_errors(site: HttpBackend, key: str, error: type[StoreError]) -> None:
    for call in (lambda: site.get(key), lambda: site.get_range(key, 0, 10), lambda: site.stat(key)):
        with pytest.raises(error) as info:
            call()
        assert type(info.value) is error and f"/{key}" in str(info.value) and "\n" not in str(info.value)


def test_a_server_that_is_not_there_is_transient() -> None:
    store = HttpBackend(f"http://127.0.0.1:{pick_free_port()}")
    with pytest.raises(TransientStoreError, match="failed"):
        store.get("f")


def test_the_web_is_read_only_and_has_no_listing(site: HttpBackend) -> None:
    for write in (lambda: site.put("f", b"x"), lambda: site.put_if_absent("f", b"x"), lambda: site.delete("f")):
        with pytest.raises(PermissionDenied, match="read-only"):
            write()
    with pytest.raises(UsageError, match="cannot be listed"):
        list(site.list("r/"))
