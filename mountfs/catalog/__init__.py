"""Versions and names: dataset records, catalog pointers, validation."""

from .catalog import Catalog
from .records import COMPLETED, DRAFT, PUBLISHED, UPLOADED, DatasetRecord

__all__ = ["Catalog", "DatasetRecord", "DRAFT", "UPLOADED", "COMPLETED", "PUBLISHED"]
