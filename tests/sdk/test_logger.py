"""sdk.logger: ClearML's Logger methods on a version; every report kind round-trips through a folder store and SeaweedFS."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mountfs import Dataset
from mountfs import config as config_mod
from mountfs.catalog import reports
from mountfs.errors import UsageError
from mountfs.session import current


@pytest.fixture(scope="module")
def seaweed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One SeaweedFS for this module's tests (each takes a bucket of its own)."""
    from servers import started_seaweed

    with started_seaweed(tmp_path_factory.mktemp("seaweed-logger")) as server:
        yield server


@pytest.fixture(params=["folder", "seaweed"])
def store(request: pytest.FixtureRequest, isolated_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """The catalog store: the test's folder, or a bucket of the module's SeaweedFS."""
    if request.param == "folder":
        return isolated_env["MOUNTFS_STORE"]
    server = request.getfixturevalue("seaweed_server")
    (host, settings), = server.s3_host_settings().items()
    Path(isolated_env["MOUNTFS_CONFIG"]).write_text(
        f'[s3.hosts."{host}"]\nkey = "{settings["key"]}"\nsecret = "{settings["secret"]}"\nsecure = false\n'
    )
    url: str = server.store_url(server.new_bucket("logger"), "catalog")
    monkeypatch.setenv("MOUNTFS_STORE", url)
    config_mod.set_process_config(None)
    return url


def _png(width: int, height: int, color: tuple[int, int, int] = (200, 10, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


def test_every_report_kind_round_trips(store: str, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = Dataset.create(dataset_name="ds", dataset_project="p")
    logger = ds.get_logger()
    assert ds.get_logger() is logger
    frame = pd.DataFrame({"num_legs": [2, 4, 8, 0], "num_wings": [2, 0, 0, 0], "seen": [10, 2, 1, float("nan")]},
                         index=["falcon", "dog", "spider", "fish"])
    logger.report_table(title="table example", series="pandas DataFrame", iteration=0, table_plot=frame)
    csv = tmp_path / "t.csv"
    csv.write_text("a,b\n1,x\n2,y\n3,z\n")
    logger.report_table("csv", "file", csv=str(csv))
    logger.report_table("csv", "url", url=csv.as_uri())
    logger.report_table("rows", "list", table_plot=[["k", "v"], ["a", 1], ["b", 2.5]])
    logger.report_histogram("hist", "h", values=[1, 2, 3], xlabels=["a", "b", "c"], xaxis="x", yaxis="y")
    for i in range(3):
        logger.report_scalar("loss", "train", value=1.0 / (i + 1), iteration=i)
    logger.report_line_plot("lines", [{"name": "l1", "data": [[0, 1], [1, 2]]}], xaxis="x", yaxis="y")
    logger.report_scatter2d("scatter", "s", scatter=np.array([[0, 1], [2, 3]]), labels=["p", "q"])
    logger.report_confusion_matrix("cm", "c", matrix=np.eye(2), xlabels=["a", "b"], ylabels=["a", "b"])
    img = tmp_path / "i.png"
    img.write_bytes(_png(4, 3))
    logger.report_image("img", "path", local_path=str(img))
    logger.report_image("img", "array", image=np.zeros((5, 6, 3), dtype=np.uint8))
    logger.report_image("img", "pil", image=Image.new("L", (7, 2)))
    media = tmp_path / "notes.html"
    media.write_text("<b>hi</b>")
    logger.report_media("media", "html", local_path=str(media))
    logger.report_text("some text", print_console=False)
    logger.report_plotly("plotly", "fig", figure={"data": [{"type": "bar", "y": np.array([1, 2])}], "layout": {}})
    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.plot([0, 1], [1, 0])
    logger.report_matplotlib_figure("mpl", "fig", figure=fig)
    plt.close(fig)

    current().catalog  # noqa: B018 - the reports are read back in a "new process": a fresh handle
    got = Dataset.get(dataset_id=ds.id).get_reports()
    kinds = [r["kind"] for r in got]
    assert kinds == ["table", "table", "table", "table", "histogram", "scalar", "line", "scatter2d", "confusion",
                     "image", "image", "image", "media", "text", "plotly", "image"]
    assert [r["id"] for r in got] == sorted(r["id"] for r in got)
    table = got[0]["data"]
    assert table["columns"] == ["", "num_legs", "num_wings", "seen"] and table["total_rows"] == 4
    assert table["rows"][0] == ["falcon", 2, 2, 10.0] and table["rows"][3][3] == "NaN"
    assert got[1]["data"]["rows"] == [[1, "x"], [2, "y"], [3, "z"]] == got[2]["data"]["rows"]
    assert got[3]["data"] == {"columns": ["k", "v"], "rows": [["a", 1], ["b", 2.5]], "total_rows": 2}
    assert got[4]["data"]["values"] == [1, 2, 3] and got[4]["data"]["xlabels"] == ["a", "b", "c"]
    assert got[5]["data"]["points"] == [[0, 1.0], [1, 0.5], [2, 1 / 3]] and got[5]["iteration"] == 2
    assert got[6]["data"]["lines"] == [{"name": "l1", "points": [[0, 1], [1, 2]]}]
    assert got[7]["data"]["points"] == [[0, 1], [2, 3]] and got[7]["data"]["labels"] == ["p", "q"]
    assert got[8]["data"]["matrix"] == [[1.0, 0.0], [0.0, 1.0]]
    for r in got[9:12] + got[15:]:
        data, content_type = reports.read_media(current().catalog, ds.id, r["data"]["media"])
        assert content_type == "image/png" == r["data"]["content_type"]
        assert Image.open(io.BytesIO(data)).size == (r["data"]["width"], r["data"]["height"])
    assert (got[9]["data"]["width"], got[10]["data"]["width"], got[11]["data"]["width"]) == (4, 6, 7)
    html, content_type = reports.read_media(current().catalog, ds.id, got[12]["data"]["media"])
    assert html == b"<b>hi</b>" and content_type == "text/html" and got[12]["data"]["name"] == "notes.html"
    assert got[13]["data"] == {"text": "some text"} and got[13]["series"] == "INFO"
    assert got[14]["data"]["figure"]["data"][0]["y"] == [1, 2]
    json.dumps(got)  # plain dicts


def test_the_seed_example_as_clearml_writes_it(tmp_path: Path) -> None:
    """The "Dataset Preview" example of ClearML's docs: reports on a draft travel to its finalized version."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("x,y\n1,2\n")
    dataset = Dataset.create(dataset_name="preview", dataset_project="examples")
    dataset.add_files(path=str(tmp_path / "data"))
    dataset.get_logger().report_table(title="Raw Dataset", series="Dataset Metadata",
                                      table_plot=pd.DataFrame({"a": [1, 2]}))
    dataset.get_logger().report_histogram(title="Class distribution", series="Class distribution",
                                          values=[10, 20], iteration=0, xlabels=["cat", "dog"],
                                          xaxis="Number of samples", yaxis="Class")
    draft_id = dataset.id
    dataset.upload()
    dataset.finalize()
    assert dataset.id == draft_id
    final = Dataset.get(dataset_project="examples", dataset_name="preview")
    assert final.is_final() and final.id == draft_id
    got = final.get_reports()
    assert [(r["kind"], r["title"]) for r in got] == [("table", "Raw Dataset"), ("histogram", "Class distribution")]
    assert got[1]["data"]["yaxis"] == "Class" and got[1]["iteration"] == 0
    # and a finalized version takes reports too
    final.get_logger().report_text("after finalize", print_console=False)
    assert Dataset.get(dataset_id=draft_id).get_reports()[-1]["data"]["text"] == "after finalize"


def test_reports_are_bounded_by_the_config(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    Path(isolated_env["MOUNTFS_CONFIG"]).write_text("report_table_rows = 3\nreport_image_max_pixels = 100\n")
    config_mod.set_process_config(None)
    ds = Dataset.create(dataset_name="ds", dataset_project="p")
    logger = ds.get_logger()
    logger.report_table("t", "s", table_plot=pd.DataFrame({"n": range(50)}))
    logger.report_image("i", "s", image=np.full((100, 200, 3), 255, dtype=np.uint8))
    table, image = ds.get_reports()
    assert len(table["data"]["rows"]) == 3 and table["data"]["total_rows"] == 50
    assert image["data"]["width"] * image["data"]["height"] <= 100 and image["data"]["width"] == 14


def test_bad_calls_are_refused_in_one_line(tmp_path: Path) -> None:
    logger = Dataset.create(dataset_name="ds", dataset_project="p").get_logger()
    with pytest.raises(UsageError, match="exactly one of table_plot, csv, url"):
        logger.report_table("t", "s")
    with pytest.raises(UsageError, match="exactly one of table_plot, csv, url"):
        logger.report_table("t", "s", table_plot=[["a"]], csv="x.csv")
    with pytest.raises(UsageError, match="cannot read CSV"):
        logger.report_table("t", "s", csv=str(tmp_path / "missing.csv"))
    with pytest.raises(UsageError, match="cannot be read"):
        (tmp_path / "bad.png").write_bytes(b"not an image")
        logger.report_image("i", "s", local_path=str(tmp_path / "bad.png"))
    with pytest.raises(UsageError, match="needs file_extension"):
        logger.report_media("m", "s", stream=io.BytesIO(b"x"))
    with pytest.raises(UsageError, match="not JSON-able"):
        logger.report_plotly("p", "s", figure={"data": [object()]})
    with pytest.raises(UsageError, match="needs an iteration"):
        logger.report_scalar("s", "s", 1.0, None)  # type: ignore[arg-type]
    assert logger.get_reports() == []


def test_report_text_prints_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    logger = Dataset.create(dataset_name="ds", dataset_project="p").get_logger()
    logger.report_text("hello", level=logging.WARNING)
    assert capsys.readouterr().err == "hello\n"
    assert logger.get_reports()[0]["series"] == "WARNING"


@pytest.mark.allow_warnings
def test_damaged_reports_are_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    ds = Dataset.create(dataset_name="ds", dataset_project="p")
    ds.get_logger().report_text("kept", print_console=False)
    catalog = current().catalog
    rid = reports.new_report_id()
    catalog.backend.put(f"datasets/{ds.id}/reports/{rid}.json", b"{not json")
    rid2 = reports.new_report_id()
    catalog.backend.put(f"datasets/{ds.id}/reports/{rid2}.json",
                        json.dumps({"id": rid2, "kind": "table", "title": "t", "series": "s", "iteration": None,
                                    "time": 1.0, "data": {"columns": "<script>"}}).encode())
    assert [r["data"]["text"] for r in ds.get_reports()] == ["kept"]
    assert [r["data"]["text"] for r in Dataset.get(dataset_id=ds.id).get_reports()] == ["kept"]
    warned = [r.getMessage() for r in caplog.get_records("call") if r.levelno == logging.WARNING]
    assert len(warned) == 2 and all("damaged" in m for m in warned), warned  # once each, however often read


def test_deleting_a_version_removes_its_reports(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.png").write_bytes(_png(3, 3))
    ds = Dataset.create(dataset_name="ds", dataset_project="p")
    ds.add_files(str(tmp_path / "d"))
    ds.get_logger().report_image("i", "s", local_path=str(tmp_path / "d" / "a.png"))
    ds.finalize(auto_upload=True)
    folder = Path(os.environ["MOUNTFS_STORE"]) / "datasets" / ds.id / "reports"
    names = sorted(p.suffix for p in folder.iterdir())
    assert names == [".json", ".json", ".png", ".png"]  # the report, the preview, the image, a thumbnail
    Dataset.delete(dataset_id=ds.id)
    assert not folder.exists() or not any(folder.iterdir())
    draft = Dataset.create(dataset_name="draft", dataset_project="p")
    draft.get_logger().report_text("x", print_console=False)
    Dataset.delete(dataset_id=draft.id)
    assert not (Path(os.environ["MOUNTFS_STORE"]) / "datasets" / draft.id / "reports").exists() or \
        not any((Path(os.environ["MOUNTFS_STORE"]) / "datasets" / draft.id / "reports").iterdir())
