"""``mountfs ui``: serve the read-only web view of the store's catalog on this machine."""

from __future__ import annotations

import socket

import click

from ..errors import UsageError
from ..session import current


@click.command("ui")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, metavar="N",
              help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; the page has no login, so keep it on this machine unless you mean it.")
def ui(port: int, host: str) -> None:
    """Serve a read-only web page of the catalog: datasets, versions, files, lineage, reports, diffs."""
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise UsageError(f"the web view needs {exc.name}: pip install 'mountfs[ui]'") from None
    from ..ui.app import create_app

    sess = current()
    sess.catalog.check_store()  # a typo in the store URL is an error, not an empty page
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)  # connections wait in the backlog from now on: the URL printed below answers
    except (OSError, OverflowError) as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port} ({getattr(exc, 'strerror', None) or exc}); "
                         "pick another --port") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    url = f"http://{shown}:{bound}/"
    hosts = sorted({host, shown, "127.0.0.1", "localhost", "[::1]"})
    app = create_app(sess, allowed_hosts=hosts)
    click.echo(url, nl=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
