"""``python -m mountfs.daemon``: what `mountfs mount` starts in the background."""

from .main import main

main()
