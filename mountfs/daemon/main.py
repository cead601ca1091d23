"""``mountfsd``: the daemon's own entry point (also ``python -m mountfs.daemon``, what `mountfs mount` starts).

The CLI's ``mountfs daemon run`` and ``mountfs mount --foreground`` reach the
same ``serve``; only this console script turns a failure into an exit code
itself, since it runs outside the ``mountfs`` command group.
"""

from __future__ import annotations

import logging
import sys

import click

from ..errors import MountfsError
from ..session import Session, current

log = logging.getLogger("mountfs.daemon")


def configure_logging(debug: bool) -> None:
    """A daemon logs everything from INFO on (DEBUG with ``debug``), once, to stderr with timestamps."""
    # the CLI group may have left the mountfs logger at WARNING with its own stderr handler
    pkg = logging.getLogger("mountfs")
    for handler in list(pkg.handlers):
        pkg.removeHandler(handler)
    pkg.setLevel(logging.NOTSET)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def serve(sess: Session, mountpoint: str | None, dataset_id: str | None, debug: bool, writable: bool = False,
          nonempty: bool = False) -> None:
    """Mount the catalog (or one version, or a draft's writable copy) in the foreground until unmounted or
    signalled; ``nonempty`` mounts over a folder that has files in it."""
    from .server import run  # pyfuse3 is loaded only by the commands that mount

    # a missing store is an error, not an empty catalog: a typo in its URL must not mount nothing
    sess.require_store()
    configure_logging(debug)
    run(sess, mountpoint or sess.config.mountpoint, dataset_id, debug=debug, writable=writable, nonempty=nonempty)


@click.command("mountfsd", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--mountpoint", metavar="DIR", help="Where to mount (default: config, /datasets).")
@click.option("--dataset", "dataset_id", metavar="ID", help="Serve only this version at DIR instead of the catalog.")
@click.option("--storage", metavar="URL", help="Store holding the catalog (default: $MOUNTFS_STORE).")
@click.option("--writable", is_flag=True, help="Serve the draft --dataset names as a writable copy.")
@click.option("--nonempty", is_flag=True,
              help="Mount even if DIR has files in it (hidden while mounted); refused otherwise.")
@click.option("--debug", is_flag=True, help="Log at DEBUG level.")
def mountfsd(mountpoint: str | None, dataset_id: str | None, storage: str | None, writable: bool, nonempty: bool,
             debug: bool) -> None:
    """The mountfs daemon: serves the catalog (or one version) through FUSE, in the foreground.

    A missing DIR is created (its parent must exist) and removed again at unmount."""
    try:
        serve(current(store=storage), mountpoint, dataset_id, debug, writable, nonempty)
    except MountfsError as exc:
        # said once: a log line as well would print it twice on a terminal and in a mount's log file
        click.echo(f"mountfsd: error: {' '.join(str(exc).split())}", err=True)
        sys.exit(exc.exit_code)


def main() -> None:
    """Console-script entry point (``mountfsd``)."""
    mountfsd.main(prog_name="mountfsd")
