"""The store format: chunking, packs, manifests and the objects' integrity.

See ``docs/FORMAT.md`` for the byte-level description.
"""

from .format import FORMAT_VERSION, ChunkParams
from .manifest import ChunkRef, FileEntry
from .store import Store

__all__ = ["FORMAT_VERSION", "ChunkParams", "ChunkRef", "FileEntry", "Store"]
