"""``mountfs ui`` in a real browser: Debian's headless Chromium driven by Playwright.

The server is the real command (a process, stopped by its PID); the pages are
checked as rendered, a crafted ``<script>`` name must not run (no dialog, no
injected element), no request leaves 127.0.0.1, and each screenshot has content.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (make test-packages installs it)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("uvicorn")

from uihelp import EVIL, EVIL_NAME, Catalog, UiServer  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def server(catalog: Catalog) -> Iterator[UiServer]:
    ui = UiServer()
    try:
        yield ui
    finally:
        ui.stop()


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[tuple[object, list[str], list[str]]]:
    """A page of a fresh Chromium profile; the dialogs it opened and the URLs it requested."""
    dialogs: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=ARGS, headless=True,
            viewport={"width": 1100, "height": 900})
        try:
            page = context.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("request", lambda r: requests.append(r.url))
            yield page, dialogs, requests
        finally:
            context.close()


def not_blank(png: bytes) -> None:
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    colors = img.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 20, "the screenshot is blank"


def test_pages_in_chromium(server: UiServer, browser_page, catalog: Catalog, tmp_path: Path) -> None:
    page, dialogs, requests = browser_page
    page.goto(server.url + "/")
    assert page.title() == "catalog · mountfs"
    assert page.locator("section.project h2", has_text="demo").count() == 1
    # the crafted project and dataset names are shown as text
    assert page.get_by_text(EVIL).count() >= 1 and page.get_by_text(EVIL_NAME).count() >= 1
    page.get_by_role("link", name="images").click()
    page.wait_for_url("**/dataset?**")
    assert page.locator("#versions tbody tr").count() == 3
    page.get_by_role("link", name="1.0.2").click()
    page.wait_for_url(f"**/v/{catalog.v3}")
    assert page.locator("section.report.table td", has_text="img_0002.png").count() == 1
    assert page.locator("section.report.histogram svg rect.bar").count() == 5
    assert page.locator("section.report.image img").evaluate("img => img.naturalWidth") == 64
    shot = page.screenshot(full_page=True)
    not_blank(shot)
    (tmp_path / "version.png").write_bytes(shot)

    page.get_by_role("link", name="lineage").first.click()
    page.wait_for_url("**/lineage")
    assert page.locator("#lineage svg a.node").count() == 3
    not_blank(page.screenshot())
    page.locator("#lineage a.node").first.click()  # the root: 1.0.0
    page.wait_for_url(f"**/v/{catalog.v1}")

    page.goto(f"{server.url}/v/{catalog.v1}/files")
    page.get_by_role("link", name="val/").click()
    assert page.locator("#files tr.file td", has_text="big.bin").count() == 1
    with page.expect_download() as info:
        page.get_by_role("link", name="download").click()
    got = Path(info.value.path()).read_bytes()
    assert got == (tmp_path / "data" / "src" / "val" / "big.bin").read_bytes()

    page.goto(f"{server.url}/diff")
    page.select_option("select[name=a]", catalog.v1)
    page.select_option("select[name=b]", catalog.v3)
    page.get_by_role("button", name="compare").click()
    assert page.locator("#summary").inner_text() == "1 added, 1 modified, 1 removed"

    # the crafted names: nothing ran, nothing was injected
    for url in (f"/v/{catalog.evil}", f"/v/{catalog.evil}/files", f"/v/{catalog.evil}/lineage", "/"):
        page.goto(server.url + url)
        assert page.evaluate("document.querySelectorAll('script').length") == 0
        assert page.evaluate("document.querySelectorAll('img[src=x], img[src=y], b').length") == 0
    page.goto(f"{server.url}/v/{catalog.evil}")
    assert page.locator("#record").get_by_text(EVIL).count() >= 2  # project and description
    not_blank(page.screenshot())
    assert dialogs == []
    outside = [u for u in requests if not u.startswith(server.url)]
    assert outside == [], outside
