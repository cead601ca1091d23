"""The SDK: ClearML Data's ``Dataset`` (``sdk.dataset``), composed of parts with one job each.

``version`` (a version's record and file table, shared by the parts),
``changes`` (a draft's added and removed files), ``closing`` (upload, finalize,
publish), ``reading`` (listings, lineage, verification), ``copies`` (local
copies), ``metadata``, and ``lifecycle`` (create, squash, get, list).
"""

from .dataset import Dataset

__all__ = ["Dataset"]
