"""Regenerate the README's screenshots of ``mountfs ui``: ``.venv/bin/python tests/ui/screenshots.py``.

Builds the test catalog (``uihelp.build``) in a temporary folder store, serves
it with ``mountfs ui`` and saves, with Debian's headless Chromium:
docs/img/ui-version.png (a version page: record, a table and a histogram) and
docs/img/ui-lineage.png (the lineage graph of a three-version lineage).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent.parent / "docs" / "img"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="mountfs-shots-") as tmp:
        root = Path(tmp)
        (root / "config.toml").touch()
        os.environ.update(MOUNTFS_STORE=str(root / "store"), MOUNTFS_CACHE_DIR=str(root / "cache"),
                          MOUNTFS_CONFIG=str(root / "config.toml"))
        sys.path.insert(0, str(HERE))
        from playwright.sync_api import sync_playwright

        from uihelp import UiServer, build

        catalog = build(root / "data")
        server = UiServer()
        try:
            with sync_playwright() as pw:
                context = pw.chromium.launch_persistent_context(
                    str(root / "profile"), executable_path="/usr/bin/chromium", args=ARGS, headless=True,
                    viewport={"width": 1000, "height": 800})
                page = context.new_page()
                OUT.mkdir(parents=True, exist_ok=True)
                page.goto(f"{server.url}/v/{catalog.v3}")
                box = page.locator("section.report.histogram").bounding_box()
                assert box is not None
                page.screenshot(path=str(OUT / "ui-version.png"), full_page=True,
                                clip={"x": 0, "y": 0, "width": 1000, "height": box["y"] + box["height"] + 16})
                page.goto(f"{server.url}/v/{catalog.v2}/lineage")
                note = page.locator("p.muted").last.bounding_box()
                assert note is not None
                page.screenshot(path=str(OUT / "ui-lineage.png"),
                                clip={"x": 0, "y": 0, "width": 1000, "height": note["y"] + note["height"] + 16})
                context.close()
        finally:
            server.stop()
    print(f"wrote {OUT / 'ui-version.png'} and {OUT / 'ui-lineage.png'}")


if __name__ == "__main__":
    main()
