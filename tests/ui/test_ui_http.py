"""Every route of ``mountfs ui`` over plain HTTP (Starlette's TestClient): content, escaping, paths, methods."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

pytest.importorskip("starlette")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # "use httpx2" (starlette 1.x): the client works the same
    from starlette.testclient import TestClient

from uihelp import EVIL, EVIL_FILE, EVIL_NAME, Catalog  # noqa: E402

from mountfs.session import current  # noqa: E402
from mountfs.ui import charts  # noqa: E402
from mountfs.ui.app import CSP, create_app  # noqa: E402


@pytest.fixture
def client(catalog: Catalog) -> TestClient:
    return TestClient(create_app(current(), allowed_hosts=["127.0.0.1"]), base_url="http://127.0.0.1")


def _no_markup(text: str) -> None:
    """No tag of the crafted names survives unescaped (they are all in the page, as text)."""
    assert "<script" not in text.lower()
    assert "<img src=x" not in text and "<img src=y" not in text and "<b>" not in text


def test_catalog_lists_projects_datasets_and_latest(client: TestClient, catalog: Catalog) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "demo" in r.text and "images" in r.text and "1.0.2" in r.text
    assert f"/v/{catalog.v3}" in r.text  # the latest version of demo/images
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text and "&lt;img src=x onerror=alert(2)&gt;" in r.text
    _no_markup(r.text)
    assert r.headers["content-security-policy"] == CSP and "'unsafe-inline'" not in CSP
    assert r.headers["x-content-type-options"] == "nosniff"


def test_dataset_page_lists_versions_with_status_and_sizes(client: TestClient, catalog: Catalog) -> None:
    r = client.get("/dataset", params={"project": "demo", "name": "images"})
    assert r.status_code == 200
    for v in ("1.0.0", "1.0.1", "1.0.2"):
        assert v in r.text
    assert "completed" in r.text and "MiB" in r.text  # 1.0.0 holds 3 MiB
    assert client.get("/dataset", params={"project": "demo", "name": "nope"}).status_code == 404
    evil = client.get("/dataset", params={"project": EVIL, "name": EVIL_NAME})
    assert evil.status_code == 200
    _no_markup(evil.text)


def test_version_page_shows_record_reports_and_preview(client: TestClient, catalog: Catalog) -> None:
    r = client.get(f"/v/{catalog.v3}")
    assert r.status_code == 200
    text = r.text
    assert catalog.v3 in text and "demo/images 1.0.2" in text and catalog.v2 in text
    # table as an HTML table, cut rows said
    assert "<th>score</th>" in text and "<td>img_0002.png</td>" in text and "first 3 of 40 rows" in text
    # charts as server-side SVG
    section = {m.group(1): m.group(2) for m in re.finditer(r'<section class="report (\w+)"(.*?)</section>', text, re.S)}
    assert set(section) >= {"table", "histogram", "scalar", "line", "scatter2d", "confusion", "image", "media",
                            "text", "plotly"}
    assert section["histogram"].count('class="bar"') == 5 and ">cat<" in section["histogram"]
    assert section["scalar"].count('class="point"') == 4  # four report_scalar calls merged into one series
    assert section["line"].count('class="line"') == 2 and "precision" in section["line"]
    assert section["scatter2d"].count('class="point"') == 3
    assert section["confusion"].count('class="cell"') == 4 and ">12<" in section["confusion"]
    assert 'class="line"' in section["plotly"] and "step" in section["plotly"]
    assert "collected in 2026" in section["text"]
    assert "/media/" in section["image"] and "<img" in section["image"]
    # the automatic preview of finalize
    assert 'id="preview"' in text
    assert "<script" not in text.lower() and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_evil_names_and_values_are_text(client: TestClient, catalog: Catalog) -> None:
    for url in (f"/v/{catalog.evil}", f"/v/{catalog.evil}/files", f"/v/{catalog.evil}/files?path=%3Cb%3Edir",
                f"/v/{catalog.evil}/lineage", f"/v/{catalog.evil}/lineage.svg", "/diff?a=" + catalog.v1 + "&b=" + catalog.evil,
                "/"):
        r = client.get(url)
        assert r.status_code == 200, url
        _no_markup(r.text)
    page = client.get(f"/v/{catalog.evil}").text
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4  # project, description, tag, table, text
    files = client.get(f"/v/{catalog.evil}/files").text
    assert "&lt;img src=y onerror=alert(3)&gt;.txt" in files and "&lt;b&gt;dir/" in files
    diff = client.get("/diff", params={"a": catalog.v1, "b": catalog.evil}).text
    assert "&lt;img src=y onerror=alert(3)&gt;.txt" in diff


def test_file_browser_folders_sizes_and_links(client: TestClient, catalog: Catalog) -> None:
    root = client.get(f"/v/{catalog.v1}/files").text
    assert "train/" in root and "val/" in root and "labels.csv" in root and "(2 files)" in root
    val = client.get(f"/v/{catalog.v1}/files", params={"path": "val"}).text
    assert "big.bin" in val and "3.0 MiB" in val and "download?path=val%2Fbig.bin" in val
    assert client.get(f"/v/{catalog.v1}/files", params={"path": "nope"}).status_code == 404


def test_download_streams_the_bytes_from_the_store_then_the_cache(client: TestClient, catalog: Catalog,
                                                                   tmp_path: Path) -> None:
    want = (tmp_path / "data" / "src" / "val" / "big.bin").read_bytes()
    cache = current().cache
    cache.clear()
    for _ in range(2):  # a miss (from the store, into the cache), then a hit
        r = client.get(f"/v/{catalog.v1}/download", params={"path": "val/big.bin"})
        assert r.status_code == 200 and r.content == want
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.headers["content-length"] == str(len(want))
        assert r.headers["content-disposition"] == "attachment; filename*=UTF-8''big.bin"
    stats = cache.stats()
    assert stats["size"] >= len(want) and stats["hits"] > 0  # the second download read the cache
    evil = client.get(f"/v/{catalog.evil}/download", params={"path": EVIL_FILE})
    assert evil.content == b"evil\n" and evil.headers["content-type"] == "application/octet-stream"
    assert "%3Cimg" in evil.headers["content-disposition"]


@pytest.mark.parametrize("path", ["../info.json", "/etc/passwd", "..%2F..%2Fetc%2Fpasswd", "val/../labels.csv", "val",
                                  "", "val/big.bin/", "./labels.csv", "%2e%2e/x", "labels.csv%00"])
def test_download_of_anything_but_a_listed_file_is_404(client: TestClient, catalog: Catalog, path: str) -> None:
    r = client.get(f"/v/{catalog.v1}/download?path={path}")
    assert r.status_code == 404
    assert "root:" not in r.text


@pytest.mark.parametrize("url", [
    "/v/..%2F..%2Fetc/files", "/v/../../etc/passwd", "/v/%2e%2e/lineage", "/v/0123456789ab01234567",
    "/v/0123456789ab01234567/files", "/v/abc/lineage.svg", "/v/x%2Fy/download?path=a", "/static/../app.py",
    "/static/%2e%2e/app.py", "/static/..%2Fapp.py", "/static/%2Fetc%2Fpasswd", "/nope", "/v/", "/dataset",
])
def test_paths_outside_the_catalog_are_404(client: TestClient, url: str) -> None:
    r = client.get(url)
    assert r.status_code in (400, 404), (url, r.status_code)
    assert "import " not in r.text and "root:" not in r.text


def test_media_route(client: TestClient, catalog: Catalog) -> None:
    page = client.get(f"/v/{catalog.v3}").text
    ids = re.findall(r'/v/\w+/media/(\w+)"', page)
    assert ids
    image = client.get(f"/v/{catalog.v3}/media/{ids[0]}")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    html_media = re.search(r'<section class="report media".*?/media/(\w+)"', page, re.S)
    assert html_media
    r = client.get(f"/v/{catalog.v3}/media/{html_media.group(1)}")
    # stored HTML is never a page of this origin: a download, with no type to sniff
    assert r.headers["content-type"] == "application/octet-stream" and r.headers["content-disposition"] == "attachment"
    for bad in ("nope", "..%2Finfo", "preview", "%2e%2e"):
        assert client.get(f"/v/{catalog.v3}/media/{bad}").status_code == 404
    assert client.get(f"/v/{catalog.v1}/media/{ids[0]}").status_code == 404  # another version's media


def test_lineage_graph_is_svg_with_every_version(client: TestClient, catalog: Catalog) -> None:
    page = client.get(f"/v/{catalog.v2}/lineage").text
    svg = re.search(r"<svg.*</svg>", page, re.S)
    assert svg
    assert svg.group(0).count('class="node"') == 3 and svg.group(0).count('class="edge"') == 2
    for v in (catalog.v1, catalog.v2, catalog.v3):
        assert f'href="/v/{v}"' in svg.group(0)
    r = client.get(f"/v/{catalog.v3}/lineage.svg")
    assert r.headers["content-type"].startswith("image/svg+xml") and r.text.startswith("<svg")


def test_diff_of_two_versions(client: TestClient, catalog: Catalog) -> None:
    form = client.get("/diff")
    assert form.status_code == 200 and "<select" in form.text
    r = client.get("/diff", params={"a": catalog.v1, "b": catalog.v3})
    assert "1 added, 1 modified, 1 removed" in r.text
    rows = re.findall(r'<tr class="(added|modified|removed)"><td>\w+</td><td>([^<]*)</td>', r.text)
    assert sorted(rows) == [("added", "extra.txt"), ("modified", "labels.csv"), ("removed", "val/big.bin")]
    assert client.get("/diff", params={"a": catalog.v1, "b": "nope"}).status_code == 404


def test_read_only_no_other_methods(client: TestClient, catalog: Catalog) -> None:
    for url in ("/", f"/v/{catalog.v1}", f"/v/{catalog.v1}/download?path=labels.csv", "/diff"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert client.request(method, url).status_code == 405, (method, url)
    assert client.head("/").status_code == 200


def test_static_files_and_host_check(client: TestClient, catalog: Catalog) -> None:
    css = client.get("/static/style.css")
    assert css.status_code == 200 and "font-family" in css.text
    # another site's page reaching this server through a rebound name is refused
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400


def test_charts_escape_and_bound_what_they_draw() -> None:
    svg = str(charts.bars([[1, 2, float("nan"), "x"]], [EVIL, "b"], None, EVIL, EVIL))
    assert "<script" not in svg and "&lt;script&gt;" in svg
    assert str(charts.bars([list(range(10_000))])).count('class="bar"') == charts.MAX_BARS
    assert "no data" in str(charts.lines([("a", [["x", None]])]))
    graph = str(charts.lineage({"a": {"label": EVIL, "status": "completed", "href": "/v/a"},
                                "b": {"label": "b", "status": "draft", "href": ""}}, [("a", "b"), ("b", "a")], "a"))
    assert "<script" not in graph and graph.count('class="node"') == 2  # a crafted cycle is drawn, not followed


@pytest.mark.s3
def test_download_from_seaweedfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file browser's download on an object store: ranged reads of the packs, streamed."""
    import os

    from servers import started_seaweed

    from mountfs import Dataset
    from mountfs.config import set_process_config

    with started_seaweed(tmp_path / "seaweed") as server:
        (host, settings), = server.s3_host_settings().items()
        Path(os.environ["MOUNTFS_CONFIG"]).write_text(
            f'[s3.hosts."{host}"]\nkey = "{settings["key"]}"\nsecret = "{settings["secret"]}"\nsecure = false\n')
        monkeypatch.setenv("MOUNTFS_STORE", server.store_url(server.new_bucket("ui"), "catalog"))
        set_process_config(None)
        src = tmp_path / "src"
        (src / "d").mkdir(parents=True)
        want = os.urandom(5 << 20)
        (src / "d" / "blob.bin").write_bytes(want)
        (src / EVIL_FILE).write_text("x")
        ds = Dataset.create(dataset_project="s3", dataset_name="blobs")
        ds.add_files(str(src))
        ds.upload()
        ds.finalize()
        client = TestClient(create_app(current(), allowed_hosts=["127.0.0.1"]), base_url="http://127.0.0.1")
        listing = client.get(f"/v/{ds.id}/files", params={"path": "d"})
        assert "blob.bin" in listing.text and "5.0 MiB" in listing.text
        with client.stream("GET", f"/v/{ds.id}/download", params={"path": "d/blob.bin"}) as r:
            assert r.status_code == 200 and r.headers["content-length"] == str(len(want))
            parts = list(r.iter_bytes())
        assert b"".join(parts) == want
        assert client.get(f"/v/{ds.id}/download", params={"path": "../catalog"}).status_code == 404


def test_reports_of_the_logger_render(tmp_path: Path) -> None:
    """What ``Dataset.get_logger()`` stores is what the page draws (the logger's own shapes, not the test's)."""
    from mountfs import Dataset

    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "a.txt").write_text("a\n")
    ds = Dataset.create(dataset_project="log", dataset_name="ged")
    ds.add_files(str(tmp_path / "f"))
    lg = ds.get_logger()
    lg.report_table("t", "s", table_plot=[["col1", "col2"], [1, EVIL], [2, "b"]])
    lg.report_histogram("h", "s", values=[3, 1, 2], xlabels=["x", "y", "z"], xaxis="k", yaxis="n")
    lg.report_scalar("loss", "train", 0.5, iteration=1)
    lg.report_scalar("loss", "train", 0.25, iteration=2)
    lg.report_confusion_matrix("cm", "s", matrix=[[1, 0], [0, 1]])
    lg.report_scatter2d("sc", "s", scatter=[[0, 1], [1, 2]], mode="markers")
    lg.report_text(EVIL, print_console=False)
    ds.upload()
    ds.finalize()
    client = TestClient(create_app(current(), allowed_hosts=["127.0.0.1"]), base_url="http://127.0.0.1")
    text = client.get(f"/v/{ds.id}").text
    assert "<th>col1</th>" in text and "&lt;script&gt;" in text and "<script" not in text.lower()
    sections = {m.group(1): m.group(2) for m in re.finditer(r'<section class="report (\w+)"(.*?)</section>', text, re.S)}
    assert sections["histogram"].count('class="bar"') == 3
    assert sections["scalar"].count('class="point"') == 2
    assert sections["confusion"].count('class="cell"') == 4
    assert sections["scatter2d"].count('class="point"') == 2


def test_a_store_that_is_gone_is_a_503_page(client: TestClient, catalog: Catalog, tmp_path: Path) -> None:
    import shutil

    from mountfs.ui import app as app_mod

    shutil.rmtree(tmp_path / "store")
    app_mod.CATALOG_TTL, was = 0.0, app_mod.CATALOG_TTL
    try:
        r = client.get(f"/v/{catalog.v1}/files")
    finally:
        app_mod.CATALOG_TTL = was
    assert r.status_code in (404, 503) and "Traceback" not in r.text
