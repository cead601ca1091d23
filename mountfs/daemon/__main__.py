"""``python -m mountfs.daemon``: what `mountfs mount` starts in the background."""

from ..cli.mounts import mountfsd_main

mountfsd_main()
