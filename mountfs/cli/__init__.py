"""The ``mountfs`` command line (click): one group in ``main``, subcommands by topic.

``datasets`` builds versions (create, add, remove, upload, close, publish),
``browse`` reads them (list, search, info, get, verify); ``common``, ``draft``
and ``output`` hold what those share.
"""

from .main import cli, main

__all__ = ["cli", "main"]
