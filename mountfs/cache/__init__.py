"""The local chunk cache: the only package that opens LMDB (DESIGN.md §2, §5)."""

from .chunks import ChunkCache
from ..errors import CacheUnusable

__all__ = ["ChunkCache", "CacheUnusable"]
