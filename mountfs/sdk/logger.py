"""``Dataset.get_logger()``: ClearML's ``Logger`` reporting methods, stored beside the version.

ClearML sends reports to its server; mountfs has none, so each report is one
small object in the store (``catalog.reports``), readable by any machine that
reads the store (``Dataset.get_reports()``, ``mountfs show``, ``mountfs ui``).
Method and parameter names are ClearML's.  Reports are bounded: a table keeps
its first ``report_table_rows`` rows, an image past ``report_image_max_pixels``
is downscaled (both in the config), long series and large media are refused or
cut as documented per method (docs/CLEARML.md, "The logger").

A draft's reports are stored under its id, which the finalized version keeps:
they travel with it.  Reports on a finalized version are allowed, as in ClearML
(reports describe a version, they are not its content).
"""

from __future__ import annotations

import importlib
import io
import logging
import math
import mimetypes
import os
from typing import Any, Sequence

from ..catalog import reports
from ..errors import MountfsError, UsageError
from ..session import say
from .version import Version

log = logging.getLogger(__name__)

#: points kept per line, scatter or scalar series in one report; histogram values; matrix rows and columns
MAX_POINTS = 10_000
MAX_MATRIX = 500
#: text reports are cut past this many characters
MAX_TEXT = 1 << 20
#: a CSV (``report_table(csv=..., url=...)``) is read up to this many bytes (its first rows are what is kept)
MAX_CSV_BYTES = 16 << 20
#: media and images larger than this are refused (reports are previews, not content)
MAX_MEDIA_BYTES = 64 << 20
#: a plotly figure whose JSON is larger than this is refused
MAX_FIGURE_BYTES = 8 << 20
#: where a table's cells are cut
MAX_CELL = 1000


def _optional(module: str) -> Any:
    """An optional dependency's module, or None (pandas, numpy, Pillow are imported only when used)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _pil(what: str) -> Any:
    image = _optional("PIL.Image")
    if image is None:
        raise UsageError(f"{what} needs Pillow; install it with `pip install 'mountfs[preview]'` (or pillow)")
    return image


def _one_of(**given: Any) -> str:
    """The name of the one argument given (ClearML's ``mutually_exclusive``)."""
    names = [k for k, v in given.items() if v is not None and not (isinstance(v, str) and not v)]
    if len(names) != 1:
        raise UsageError(f"give exactly one of {', '.join(given)} (got {', '.join(names) or 'none'})")
    return names[0]


def _iteration(iteration: Any) -> int | None:
    if iteration is None:
        return None
    try:
        return int(iteration)
    except (TypeError, ValueError):
        raise UsageError(f"iteration must be a whole number, not {iteration!r}") from None


def _number(value: Any) -> float | int | str | None:
    """A plot value as JSON keeps it: NaN and infinities as ClearML's "NaN", "Inf", "-Inf"."""
    if value is None:
        return None
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{value!r} is not a number") from None
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "Inf" if f > 0 else "-Inf"
    return f


def _cell(value: Any) -> str | int | float | None:
    if value is None:
        return None
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, TypeError):
            pass
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        out = _number(value)
        return out
    text = str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def _tolist(values: Any) -> Any:
    tolist = getattr(values, "tolist", None)
    return tolist() if callable(tolist) else values


def _pairs(data: Any, what: str) -> list[list[Any]]:
    """[[x, y], ...] from a list of pairs or an N x 2 array; at most ``MAX_POINTS``."""
    rows = _tolist(data)
    if rows is None:
        return []
    out = []
    try:
        for row in list(rows)[:MAX_POINTS]:
            x, y = list(_tolist(row))[:2]
            out.append([_number(x), _number(y)])
    except (TypeError, ValueError):
        raise UsageError(f"{what} must be a list of (x, y) pairs or an N x 2 array") from None
    return out


def _strings(values: Any, what: str) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        raise UsageError(f"{what} must be a list of strings, not one string")
    return [str(v) for v in _tolist(values)][:MAX_POINTS]


class Logger:
    """Reports of one version (ClearML's ``Logger``); get it with ``Dataset.get_logger()``."""

    def __init__(self, version: Version) -> None:
        self._v = version

    # --- storing -------------------------------------------------------------------

    def _report(self, kind: str, title: Any, series: Any, iteration: Any, data: dict[str, Any],
                media: bytes | None = None, media_type: str | None = None) -> str:
        if not isinstance(title, str) or not isinstance(series, str):
            raise UsageError("title and series must be strings")
        v = self._v
        report = {"kind": kind, "title": title, "series": series, "iteration": _iteration(iteration), "data": data}
        report_id = reports.write_report(v.session.catalog, v.id, report, media, media_type)
        log.debug("reported %s %r/%r on %s", kind, title, series, v.id)
        return report_id

    def _config(self, name: str) -> int:
        return int(getattr(self._v.session.config, name))

    def _read_source(self, location: str, limit: int, what: str) -> tuple[bytes, bool]:
        """(first bytes, whether it was cut) of a local path or a URL (file://, s3://, http(s)://, ... as the
        source policy allows, through the store's backends)."""
        if "://" not in location:
            path = os.path.expanduser(location)
            try:
                with open(path, "rb") as f:
                    data = f.read(limit + 1)
            except OSError as exc:
                raise UsageError(f"cannot read {what} {location!r}: {exc.strerror or exc}") from None
        else:
            try:
                backend, key = self._v.session.source(location)
                data = backend.get_range(key, 0, limit + 1)
            except MountfsError as exc:
                raise UsageError(f"cannot read {what} {location!r}: {exc}") from None
        return data[:limit], len(data) > limit

    # --- ClearML's methods -------------------------------------------------------------

    def report_text(self, msg: str, level: int = logging.INFO, print_console: bool = True,
                    *args: Any, **_: Any) -> None:
        """Store a line of text (and print it on stderr with ``print_console``)."""
        text = str(msg)
        if print_console:
            say(text)
        if len(text) > MAX_TEXT:
            text = text[:MAX_TEXT] + "..."
        self._report("text", "text", logging.getLevelName(level) if isinstance(level, int) else str(level),
                     None, {"text": text})

    def report_scalar(self, title: str, series: str, value: float, iteration: int) -> None:
        """One point of a scalar series; the points of one (title, series) are read back as one report."""
        it = _iteration(iteration)
        if it is None:
            raise UsageError("report_scalar needs an iteration")
        self._report("scalar", title, series, it, {"points": [[it, _number(value)]]})

    def report_single_value(self, name: str, value: float) -> None:
        """A single value metric (ClearML: scalar "Summary" at iteration -2**31)."""
        self.report_scalar(title="Summary", series=name, value=value, iteration=-(2**31))

    def report_histogram(self, title: str, series: str, values: Sequence[float] | Any, iteration: int | None = None,
                         labels: list[str] | None = None, xlabels: list[str] | None = None,
                         xaxis: str | None = None, yaxis: str | None = None, mode: str | None = None,
                         data_args: dict[str, Any] | None = None, extra_layout: dict[str, Any] | None = None) -> None:
        """A histogram already computed: one bar per value (an N x M array: N groups of M bars, ``labels`` one
        per group).  ``data_args`` and ``extra_layout`` are plotly styling, not kept."""
        raw = _tolist(values)
        if not isinstance(raw, (list, tuple)):
            raw = [raw]
        groups = [list(r) for r in raw] if raw and isinstance(raw[0], (list, tuple)) else [list(raw)]
        try:
            groups = [[_number(x) for x in g[:MAX_POINTS]] for g in groups[:MAX_MATRIX]]
        except UsageError:
            raise UsageError("report_histogram values must be numbers (a list or an array)") from None
        data: dict[str, Any] = {"values": groups[0], "labels": _strings(labels, "labels"),
                                "xlabels": _strings(xlabels, "xlabels"), "xaxis": xaxis or "", "yaxis": yaxis or "",
                                "mode": mode or "group"}
        if len(groups) > 1:
            data["groups"] = groups
        self._report("histogram", title, series, iteration, data)

    def report_vector(self, title: str, series: str, values: Sequence[float] | Any, iteration: int | None = None,
                      labels: list[str] | None = None, xlabels: list[str] | None = None, xaxis: str | None = None,
                      yaxis: str | None = None, mode: str | None = None,
                      extra_layout: dict[str, Any] | None = None) -> None:
        """ClearML's older name of ``report_histogram``."""
        self.report_histogram(title, series, values, iteration, labels, xlabels, xaxis, yaxis, mode)

    def report_table(self, title: str, series: str, iteration: int | None = None, table_plot: Any = None,
                     csv: str | None = None, url: str | None = None, extra_layout: dict[str, Any] | None = None,
                     extra_data: dict[str, Any] | None = None) -> None:
        """A table: a pandas DataFrame (its index as the first column), a list of rows (the first one the
        header), a CSV file (``csv``: a path) or a CSV at ``url`` (file://, s3://, http(s)://, ...).
        Its first ``report_table_rows`` rows are kept, with the total row count."""
        source = _one_of(table_plot=table_plot, csv=csv, url=url)
        limit = self._config("report_table_rows")
        if source == "table_plot":
            columns, rows, total = _table_of(table_plot, limit)
        else:
            location = str(csv if source == "csv" else url)
            data, cut = self._read_source(location, MAX_CSV_BYTES, "CSV")
            columns, rows, total = csv_rows(data, limit, cut)
        self._report("table", title, series, iteration, {"columns": columns, "rows": rows, "total_rows": total})

    def report_line_plot(self, title: str, series: Sequence[Any], xaxis: str, yaxis: str, mode: str = "lines",
                         iteration: int | None = None, reverse_xaxis: bool = False, comment: str | None = None,
                         extra_layout: dict[str, Any] | None = None) -> None:
        """Lines: ``series`` is a list of objects with ``.name`` and ``.data`` (ClearML's ``SeriesInfo``)
        or of dicts with those keys; ``data`` a list of (x, y) pairs or an N x 2 array."""
        lines = []
        for s in series:
            name = s.get("name") if isinstance(s, dict) else getattr(s, "name", None)
            data = s.get("data") if isinstance(s, dict) else getattr(s, "data", None)
            lines.append({"name": str(name or ""), "points": _pairs(data, "a line's data")})
        series_name = lines[0]["name"] if lines else ""
        out: dict[str, Any] = {"lines": lines, "xaxis": xaxis or "", "yaxis": yaxis or "", "mode": mode or "lines"}
        if comment:
            out["comment"] = str(comment)
        if reverse_xaxis:
            out["reverse_xaxis"] = True
        self._report("line", title, series_name, iteration, out)

    def report_scatter2d(self, title: str, series: str, scatter: Any, iteration: int | None = None,
                         xaxis: str | None = None, yaxis: str | None = None, labels: list[str] | None = None,
                         mode: str = "lines", comment: str | None = None,
                         extra_layout: dict[str, Any] | None = None) -> None:
        """A 2-D scatter: ``scatter`` a list of (x, y) pairs or an N x 2 array; ``labels`` one per point."""
        out: dict[str, Any] = {"points": _pairs(scatter, "scatter"), "labels": _strings(labels, "labels"),
                               "xaxis": xaxis or "", "yaxis": yaxis or "", "mode": mode or "lines"}
        if comment:
            out["comment"] = str(comment)
        self._report("scatter2d", title, series, iteration, out)

    def report_confusion_matrix(self, title: str, series: str, matrix: Any, iteration: int | None = None,
                                xaxis: str | None = None, yaxis: str | None = None,
                                xlabels: list[str] | None = None, ylabels: list[str] | None = None,
                                yaxis_reversed: bool = False, comment: str | None = None,
                                extra_layout: dict[str, Any] | None = None) -> None:
        """A heat-map matrix (a list of rows or a 2-D array), at most ``MAX_MATRIX`` rows and columns."""
        rows = _tolist(matrix)
        try:
            cells = [[_number(x) for x in list(_tolist(r))[:MAX_MATRIX]] for r in list(rows)[:MAX_MATRIX]]
        except (TypeError, UsageError):
            raise UsageError("report_confusion_matrix matrix must be a 2-D array or a list of rows of numbers") from None
        out: dict[str, Any] = {"matrix": cells, "xlabels": _strings(xlabels, "xlabels"),
                               "ylabels": _strings(ylabels, "ylabels"), "xaxis": xaxis or "", "yaxis": yaxis or ""}
        if yaxis_reversed:
            out["yaxis_reversed"] = True
        if comment:
            out["comment"] = str(comment)
        self._report("confusion", title, series, iteration, out)

    def report_matrix(self, title: str, series: str, matrix: Any, iteration: int | None = None,
                      xaxis: str | None = None, yaxis: str | None = None, xlabels: list[str] | None = None,
                      ylabels: list[str] | None = None, yaxis_reversed: bool = False,
                      extra_layout: dict[str, Any] | None = None) -> None:
        """ClearML's older name of ``report_confusion_matrix``."""
        self.report_confusion_matrix(title, series, matrix, iteration, xaxis, yaxis, xlabels, ylabels, yaxis_reversed)

    def report_image(self, title: str, series: str, iteration: int | None = None, local_path: str | None = None,
                     image: Any = None, matrix: Any = None, max_image_history: int | None = None,
                     delete_after_upload: bool = False, url: str | None = None) -> None:
        """An image: a file (``local_path``, or ``url`` read through the store's backends), a PIL image or a
        numpy array (``image``; ``matrix`` is ClearML's older name).  Stored as PNG (a JPEG file stays JPEG),
        downscaled to at most ``report_image_max_pixels`` pixels.  Needs Pillow."""
        source = _one_of(local_path=local_path, image=image, matrix=matrix, url=url)
        pil = _pil("report_image")
        if source in ("local_path", "url"):
            location = str(local_path if source == "local_path" else url)
            data, cut = self._read_source(location, MAX_MEDIA_BYTES, "image")
            if cut:
                raise UsageError(f"image {location!r} is larger than {MAX_MEDIA_BYTES >> 20} MiB; report a smaller one")
            try:
                img = pil.open(io.BytesIO(data))
                img.load()
            except Exception as exc:  # Pillow raises many kinds for a file it cannot decode
                raise UsageError(f"image {location!r} cannot be read ({exc})") from None
        else:
            img = image_of(image if image is not None else matrix, pil)
        png, content_type, width, height = encode_image(img, self._config("report_image_max_pixels"), pil)
        self._report("image", title, series, iteration, {"width": width, "height": height}, png, content_type)
        if delete_after_upload and source == "local_path" and local_path:
            try:
                os.unlink(local_path)
            except OSError as exc:
                log.warning("report_image: could not delete %s: %s", local_path, exc)

    def report_media(self, title: str, series: str, iteration: int | None = None, local_path: str | None = None,
                     stream: Any = None, file_extension: str | None = None, max_history: int | None = None,
                     delete_after_upload: bool = False, url: str | None = None) -> None:
        """Any file (audio, video, HTML, ...): ``local_path``, a ``stream`` (with ``file_extension``) or a ``url``;
        at most ``MAX_MEDIA_BYTES``."""
        source = _one_of(local_path=local_path, stream=stream, url=url)
        if source == "stream":
            if not file_extension:
                raise UsageError("report_media(stream=...) needs file_extension, e.g. file_extension='.wav'")
            raw = stream.read(MAX_MEDIA_BYTES + 1)
            data = raw.encode() if isinstance(raw, str) else bytes(raw)
            if len(data) > MAX_MEDIA_BYTES:
                raise UsageError(f"the stream holds more than {MAX_MEDIA_BYTES >> 20} MiB; report a smaller one")
            ext = file_extension if file_extension.startswith(".") else f".{file_extension}"
            name = f"{series}{ext}"
        else:
            location = str(local_path if source == "local_path" else url)
            data, cut = self._read_source(location, MAX_MEDIA_BYTES, "media")
            if cut:
                raise UsageError(f"media {location!r} is larger than {MAX_MEDIA_BYTES >> 20} MiB; report a smaller one")
            name = location.rstrip("/").rsplit("/", 1)[-1]
            ext = os.path.splitext(name)[1] or (file_extension or "")
        content_type = mimetypes.types_map.get(ext.lower(), "application/octet-stream")
        self._report("media", title, series, iteration, {"name": name}, data, content_type)
        if delete_after_upload and source == "local_path" and local_path:
            try:
                os.unlink(local_path)
            except OSError as exc:
                log.warning("report_media: could not delete %s: %s", local_path, exc)

    def report_plotly(self, title: str, series: str, figure: Any, iteration: int | None = None) -> None:
        """A plotly figure (a ``plotly`` Figure or its dict ``{"data": [...], "layout": {...}}``)."""
        plot = figure if isinstance(figure, dict) else getattr(figure, "to_plotly_json", lambda: None)()
        if not isinstance(plot, dict):
            raise UsageError("report_plotly figure must be a plotly Figure or a dict with 'data' and 'layout'")
        import json

        try:
            doc = json.loads(json.dumps(plot, default=_tolist_or_fail))
        except (TypeError, ValueError) as exc:
            raise UsageError(f"report_plotly figure is not JSON-able ({exc})") from None
        if not isinstance(doc.get("layout"), dict):
            doc["layout"] = {}
        doc.setdefault("data", [])
        doc["layout"]["title"] = series  # as ClearML: the series names the plot
        if len(json.dumps(doc)) > MAX_FIGURE_BYTES:
            raise UsageError(f"report_plotly figure is larger than {MAX_FIGURE_BYTES >> 20} MiB of JSON")
        self._report("plotly", title, series, iteration, {"figure": doc})

    def report_matplotlib_figure(self, title: str, series: str, figure: Any, iteration: int | None = None,
                                 report_image: bool = False, report_interactive: bool = True) -> None:
        """A matplotlib figure (or ``pyplot``: its current figure), stored as a PNG image (mountfs keeps no
        interactive plot: ``report_interactive`` has no effect)."""
        savefig = getattr(figure, "savefig", None)
        if not callable(savefig):
            raise UsageError("report_matplotlib_figure figure must be a matplotlib Figure or pyplot")
        buf = io.BytesIO()
        savefig(buf, format="png", bbox_inches="tight")
        pil = _pil("report_matplotlib_figure")
        img = pil.open(io.BytesIO(buf.getvalue()))
        png, content_type, width, height = encode_image(img, self._config("report_image_max_pixels"), pil)
        self._report("image", title, series, iteration, {"width": width, "height": height}, png, content_type)

    def flush(self, wait: bool = False) -> bool:
        """Every report is stored when it is made: nothing to flush."""
        return True

    def get_reports(self) -> list[dict[str, Any]]:
        """Every report of this version as plain dicts (``catalog.reports.read_reports``)."""
        return reports.read_reports(self._v.session.catalog, self._v.id)


def _tolist_or_fail(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


# --- tables and images (also used by sdk.previews) --------------------------------------------------

def _table_of(table: Any, limit: int) -> tuple[list[str], list[list[Any]], int]:
    """(columns, first ``limit`` rows, row count) of a DataFrame or a list of rows (the first the header)."""
    pd = _optional("pandas")
    if pd is not None and isinstance(table, pd.DataFrame):
        head = table.head(limit)
        index_name = "" if head.index.name is None else str(head.index.name)
        columns = [index_name] + [str(c) for c in head.columns]
        rows = [[_cell(i), *(_cell(x) for x in row)] for i, row in zip(head.index, head.itertuples(index=False))]
        return columns, rows, int(len(table))
    if pd is None and type(table).__name__ == "DataFrame":
        raise UsageError("report_table got a DataFrame but pandas cannot be imported")
    if isinstance(table, (list, tuple)):
        if not table:
            return [], [], 0
        try:
            header = [str(c) for c in table[0]]
            rows = [[_cell(x) for x in row] for row in list(table[1:])[:limit]]
        except TypeError:
            raise UsageError("report_table table_plot must be a DataFrame or a list of rows (lists)") from None
        return header, rows, len(table) - 1
    tolist = getattr(table, "tolist", None)  # a 2-D numpy array: rows of values, no header
    if callable(tolist):
        rows = [list(r) if isinstance(r, list) else [r] for r in tolist()]
        width = max((len(r) for r in rows), default=0)
        return [str(i) for i in range(width)], [[_cell(x) for x in r] for r in rows[:limit]], len(rows)
    raise UsageError("report_table table_plot must be a pandas DataFrame or a list of rows")


def csv_rows(data: bytes, limit: int, cut: bool = False, delimiter: str | None = None) -> tuple[list[str], list[list[Any]], int]:
    """(header, first ``limit`` rows, rows counted) of CSV bytes; ``cut``: the bytes are a file's beginning,
    so its last line may be partial (dropped) and the count is a lower bound."""
    import csv

    text = data.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.splitlines()
    if cut and lines:
        lines.pop()
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff("\n".join(lines[:20]), delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return [], [], 0
    rows: list[list[Any]] = []
    total = 0
    for row in reader:
        total += 1
        if len(rows) < limit:
            rows.append([_csv_value(x) for x in row])
    return [str(h) for h in header], rows, total


def _csv_value(text: str) -> str | int | float | None:
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        f = float(text)
        return text if math.isnan(f) or math.isinf(f) else f
    except ValueError:
        return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def image_of(array: Any, pil: Any) -> Any:
    """A PIL image from a PIL image or a numpy array (H x W, H x W x 3 or 4; floats in [0, 1] scaled)."""
    if isinstance(array, pil.Image):
        return array
    np = _optional("numpy")
    if np is None or not hasattr(array, "shape"):
        raise UsageError("report_image image must be a PIL image or a numpy array")
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise UsageError(f"report_image image array must be H x W, H x W x 3 or H x W x 4, not {arr.shape}")
    if arr.dtype != np.uint8:
        arr = arr.astype("float64")
        if arr.size and np.nanmax(arr) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
    return pil.fromarray(arr)


def encode_image(img: Any, max_pixels: int, pil: Any, fmt: str | None = None) -> tuple[bytes, str, int, int]:
    """(bytes, content type, width, height) of ``img`` downscaled to at most ``max_pixels`` pixels; PNG,
    or JPEG for an image read from a JPEG (or ``fmt="JPEG"``)."""
    fmt = fmt or ("JPEG" if getattr(img, "format", None) == "JPEG" else "PNG")
    width, height = img.size
    if width * height > max_pixels:
        scale = math.sqrt(max_pixels / (width * height))
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        img = img.resize(size, pil.Resampling.LANCZOS)
        width, height = img.size
    if fmt == "JPEG" and img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    elif fmt == "PNG" and img.mode not in ("RGB", "RGBA", "L", "LA", "P", "1", "I", "I;16"):
        img = img.convert("RGBA")
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 85} if fmt == "JPEG" else {"optimize": False}))
    return buf.getvalue(), "image/jpeg" if fmt == "JPEG" else "image/png", width, height
