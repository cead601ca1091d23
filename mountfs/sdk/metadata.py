"""A version's metadata: JSON-able objects and pandas DataFrames stored beside its record.

The bytes go through the catalog (``Catalog.write_metadata``); the record lists
each name with its type, so reading back knows how to decode it.
"""

from __future__ import annotations

import importlib
import io
import json
from typing import Any

from ..catalog import names
from ..errors import UsageError
from .version import Version


def _pandas() -> Any:
    """The pandas module, or None: it is optional, and imported only when a DataFrame may be involved."""
    try:
        return importlib.import_module("pandas")
    except ImportError:
        return None


class Metadata:
    """Stores and reads back one version's named metadata objects."""

    def __init__(self, version: Version) -> None:
        self._v = version

    def set_metadata(self, metadata: Any, metadata_name: str = "metadata", ui_visible: bool = True) -> None:
        """Store ``metadata`` (JSON-able, or a DataFrame) under ``metadata_name``."""
        names.check_component(metadata_name, "metadata_name")
        pd = _pandas()
        if pd is not None and isinstance(metadata, pd.DataFrame):
            kind, data = "pandas", metadata.to_json(orient="table").encode()
        else:
            try:
                kind, data = "json", json.dumps(metadata).encode()
            except (TypeError, ValueError) as exc:
                raise UsageError(
                    f"metadata {metadata_name!r} is not JSON-able ({exc}); "
                    "pass dicts, lists, numbers, strings or a DataFrame"
                ) from None
        v = self._v
        v.session.catalog.write_metadata(v.id, metadata_name, data, "json")
        v.record.metadata[metadata_name] = {"type": kind}
        v.save_record()

    def get_metadata(self, metadata_name: str = "metadata") -> Any:
        """The object stored under ``metadata_name``, or None when there is none."""
        info = self._v.record.metadata.get(metadata_name)
        if info is None:
            return None
        data = self._v.session.catalog.read_metadata(self._v.id, metadata_name, "json")
        if info.get("type") == "pandas":
            pd = _pandas()
            if pd is None:
                raise UsageError(f"metadata {metadata_name!r} is a pandas DataFrame; install pandas to read it")
            return pd.read_json(io.StringIO(data.decode()), orient="table")
        return json.loads(data)
