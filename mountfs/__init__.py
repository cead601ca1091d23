"""mountfs: dataset versioning where every version is also a plain directory.

``from mountfs import Dataset`` gives ClearML Data's ``Dataset`` API.
"""

__version__ = "0.1.0"

from .sdk import Dataset  # noqa: E402

__all__ = ["Dataset", "__version__"]
