"""A small catalog for the web view's tests and screenshots, and a ``mountfs ui`` process to drive.

The catalog (in the process's configured store): ``demo/images`` 1.0.0 -> 1.0.1
-> 1.0.2 (a three-version lineage; 1.0.2 carries one report of every kind), and
a dataset whose project, name, description, tags, file names and report titles
are markup (``EVIL``): pages must show them as text, never run them.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

EVIL = "<script>alert(1)</script>"
EVIL_NAME = "<img src=x onerror=alert(2)>"
EVIL_FILE = "<img src=y onerror=alert(3)>.txt"


@dataclass
class Catalog:
    v1: str
    v2: str
    v3: str
    evil: str


def png(width: int = 64, height: int = 48) -> bytes:
    from PIL import Image

    img = Image.new("RGB", (width, height))
    for x in range(width):
        for y in range(height):
            img.putpixel((x, y), (x * 4 % 256, y * 5 % 256, 128))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def build(root: Path) -> Catalog:
    """The catalog above, from files under ``root`` (the store is the configured one)."""
    from mountfs import Dataset
    from mountfs.catalog import reports
    from mountfs.session import current

    src = root / "src"
    (src / "train").mkdir(parents=True)
    (src / "val").mkdir()
    (src / "labels.csv").write_text("file,label\nimg_0001.png,cat\nimg_0002.png,dog\n")
    (src / "train" / "img_0001.png").write_bytes(png())
    (src / "train" / "img_0002.png").write_bytes(png(32, 32))
    (src / "val" / "big.bin").write_bytes(os.urandom(3 << 20) + b"tail")

    v1 = Dataset.create(dataset_project="demo", dataset_name="images", dataset_version="1.0.0",
                        description="first cut")
    v1.add_files(str(src))
    v1.upload()
    v1.finalize()
    v2 = Dataset.create(dataset_project="demo", dataset_name="images", parent_datasets=[v1.id])
    (root / "more").mkdir()
    (root / "more" / "extra.txt").write_text("more data\n")
    v2.add_files(str(root / "more"))
    v2.remove_files("val/big.bin")
    v2.upload()
    v2.finalize()
    v3 = Dataset.create(dataset_project="demo", dataset_name="images", parent_datasets=[v2.id])
    (root / "edit").mkdir()
    (root / "edit" / "labels.csv").write_text("file,label\nimg_0001.png,cat\nimg_0002.png,dog\nextra.txt,none\n")
    v3.add_files(str(root / "edit"))
    v3.upload()
    v3.finalize()

    cat = current().catalog
    w = reports.write_report
    w(cat, v3.id, {"kind": "table", "title": "labels", "series": "head",
                   "data": {"columns": ["file", "label", "score"],
                            "rows": [["img_0001.png", "cat", 0.91], ["img_0002.png", "dog", 0.87],
                                     ["img_0003.png", "bird", None]], "total_rows": 40}})
    w(cat, v3.id, {"kind": "histogram", "title": "class balance", "series": "train",
                   "data": {"values": [120, 80, 45, 30, 12], "labels": None,
                            "xlabels": ["cat", "dog", "bird", "fish", "frog"], "xaxis": "class", "yaxis": "images",
                            "mode": "group"}})
    for i, loss in enumerate([1.0, 0.7, 0.5, 0.42]):
        w(cat, v3.id, {"kind": "scalar", "title": "loss", "series": "train", "iteration": i,
                       "data": {"points": [[i, loss]]}})
    w(cat, v3.id, {"kind": "line", "title": "curves", "series": "pr",
                   "data": {"lines": [{"name": "precision", "points": [[0, 1.0], [1, 0.8], [2, 0.6]]},
                                      {"name": "recall", "points": [[0, 0.2], [1, 0.5], [2, 0.9]]}],
                            "xaxis": "threshold", "yaxis": "value", "mode": "lines"}})
    w(cat, v3.id, {"kind": "scatter2d", "title": "embedding", "series": "2d",
                   "data": {"points": [[0.1, 0.2], [0.4, 0.3], [0.8, 0.9]], "labels": None, "xaxis": "x",
                            "yaxis": "y", "mode": "markers"}})
    w(cat, v3.id, {"kind": "confusion", "title": "confusion", "series": "val",
                   "data": {"matrix": [[10, 2], [3, 12]], "xlabels": ["cat", "dog"], "ylabels": ["cat", "dog"],
                            "xaxis": "predicted", "yaxis": "actual"}})
    w(cat, v3.id, {"kind": "image", "title": "sample", "series": "img", "data": {"width": 64, "height": 48}},
      media=png(), media_type="image/png")
    w(cat, v3.id, {"kind": "media", "title": "page", "series": "html", "data": {"name": "page.html"}},
      media=b"<script>alert(4)</script>", media_type="text/html")
    w(cat, v3.id, {"kind": "text", "title": "notes", "series": "", "data": {"text": "collected in 2026\nline two"}})
    w(cat, v3.id, {"kind": "plotly", "title": "plotly", "series": "fig",
                   "data": {"figure": {"data": [{"type": "scatter", "x": [1, 2, 3], "y": [3, 1, 2], "mode": "lines",
                                                 "name": "trace"}],
                                       "layout": {"xaxis": {"title": {"text": "step"}}}}}})

    evil = Dataset.create(dataset_project=EVIL, dataset_name=EVIL_NAME, description=EVIL, dataset_tags=[EVIL])
    (root / "evil" / "<b>dir").mkdir(parents=True)
    (root / "evil" / EVIL_FILE).write_text("evil\n")
    (root / "evil" / "<b>dir" / "x.txt").write_text("x\n")
    evil.add_files(str(root / "evil"))
    evil.set_metadata({"a": 1}, metadata_name=EVIL_NAME.replace("<", "").replace(">", "").replace(" ", "_").replace("=", "_"))
    evil.upload()
    evil.finalize()
    w(cat, evil.id, {"kind": "table", "title": EVIL, "series": EVIL,
                     "data": {"columns": [EVIL], "rows": [[EVIL_NAME]], "total_rows": 1}})
    w(cat, evil.id, {"kind": "histogram", "title": "h", "series": "s",
                     "data": {"values": [1, 2], "xlabels": [EVIL, EVIL_NAME], "labels": [EVIL], "xaxis": EVIL,
                              "yaxis": EVIL_NAME, "mode": "group"}})
    w(cat, evil.id, {"kind": "text", "title": "t", "series": "", "data": {"text": EVIL}})
    return Catalog(v1.id, v2.id, v3.id, evil.id)


def wait_listening(host: str, port: int, proc: subprocess.Popen[str] | None = None, timeout: float = 20.0) -> None:
    """Return once something accepts connections at host:port (polling the socket); fail if ``proc`` ends."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens at {host}:{port}")
            if proc is not None:
                try:  # waits on the process's exit, which also paces the polling
                    proc.wait(0.05)
                    raise RuntimeError(f"mountfs ui exited with {proc.returncode}")
                except subprocess.TimeoutExpired:
                    pass


class UiServer:
    """``mountfs ui --port 0`` as a process; its URL is the first line it prints."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        code = "import sys; from mountfs.cli import main; main(sys.argv[1:])"
        self.proc = subprocess.Popen([sys.executable, "-c", code, "ui", "--port", "0"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env or dict(os.environ))
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"mountfs ui printed {line!r}; stderr: {self.proc.stderr.read() if self.proc.stderr else ''}")
        self.url = line.rstrip("/")
        host, port = line.split("//", 1)[1].rstrip("/").rsplit(":", 1)
        wait_listening(host, int(port), self.proc)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # by its own handle (PID), never by name
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def served(env: dict[str, str] | None = None) -> Iterator[UiServer]:
    server = UiServer(env)
    try:
        yield server
    finally:
        server.stop()
