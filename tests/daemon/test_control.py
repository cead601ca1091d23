"""mountfs/daemon/control.py: the control socket's line protocol over a real Unix socket, without a mount.

The server runs in trio; the blocking client (``control.request``, what the CLI uses) runs in a
worker thread of the same trio run, so each test ends when its last request is answered.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
from typing import Any, Callable

import pytest
import trio
from mfs import short_run_dir

from mountfs.daemon import control
from mountfs.errors import NotFound

Message = dict[str, Any]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


async def _handler(req: Message, send: control.Send) -> Message:
    """status answers; warmup sends two progress lines first; anything else is a mountfs error."""
    if req.get("op") == "status":
        return {"pid": 42, "echo": req.get("x")}
    if req.get("op") == "warmup":
        await send({"progress": 1})
        await send({"progress": 2})
        return {"done": True}
    raise NotFound(f"no such op {req.get('op')!r}; use status, warmup or stop")


def _with_server(client: Callable[[str], Any]) -> Any:
    """Serve on a fresh socket, run ``client(path)`` in a thread, stop the server, return what it returned."""
    path = os.path.join(short_run_dir(), "c.sock")
    out: list[Any] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(control.serve, path, _handler)
            out.append(await trio.to_thread.run_sync(client, path))
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        os.unlink(path)
        os.rmdir(os.path.dirname(path))
    return out[0]


def _raw(path: str, data: bytes) -> list[Message]:
    """Send raw bytes and end our side, read until the server closes; the lines it sent."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        buf = b""
        while chunk := s.recv(65536):
            buf += chunk
    return [json.loads(line) for line in buf.splitlines()]


def test_request_and_reply_with_progress_lines() -> None:
    seen: list[Message] = []

    def client(path: str) -> tuple[Message, Message]:
        status = control.request(path, {"op": "status", "x": [1, "two"]})
        warm = control.request(path, {"op": "warmup"}, on_progress=seen.append)
        return status, warm

    status, warm = _with_server(client)
    assert status == {"pid": 42, "echo": [1, "two"], "ok": True}  # "ok" added by the server
    assert warm == {"done": True, "ok": True}
    assert seen == [{"progress": 1}, {"progress": 2}]


def test_a_mountfs_error_is_an_error_reply_and_the_server_goes_on() -> None:
    def client(path: str) -> tuple[Message, Message]:
        return control.request(path, {"op": "nope"}), control.request(path, {"op": "status"})

    bad, good = _with_server(client)
    assert bad == {"ok": False, "error": "no such op 'nope'; use status, warmup or stop"}
    assert good["ok"] is True and good["pid"] == 42


@pytest.mark.allow_warnings  # the malformed request is logged as an error
def test_a_malformed_request_gets_an_error_reply() -> None:
    def client(path: str) -> tuple[list[Message], Message]:
        return _raw(path, b"{this is not json\n"), control.request(path, {"op": "status"})

    replies, after = _with_server(client)
    assert len(replies) == 1 and replies[0]["ok"] is False and "internal error" in replies[0]["error"]
    assert after["ok"] is True


def test_a_connection_closed_before_a_full_line_gets_nothing() -> None:
    # no newline before the end: not a request, and the server closes without answering
    assert _with_server(lambda path: _raw(path, b'{"op": "status"}')) == []


def test_the_socket_is_owner_only_and_replaces_a_leftover_file() -> None:
    run_dir = short_run_dir()
    path = os.path.join(run_dir, "c.sock")
    with open(path, "w") as fh:  # a previous daemon's leftover
        fh.write("stale")

    async def main() -> int:
        async with trio.open_nursery() as nursery:
            await nursery.start(control.serve, path, _handler)
            mode = os.stat(path).st_mode
            reply = await trio.to_thread.run_sync(control.request, path, {"op": "status"})
            assert reply["ok"] is True
            nursery.cancel_scope.cancel()
            return mode

    try:
        mode = trio.run(main)
    finally:
        os.unlink(path)
        os.rmdir(run_dir)
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="connecting as another user needs root")
def test_another_user_is_refused_by_the_socket() -> None:
    probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    sys.exit(13)\n")

    def client(path: str) -> tuple[int, int]:
        os.chmod(os.path.dirname(path), 0o755)  # the folder is not what refuses: the socket's own mode is
        other = subprocess.run([*NOBODY, sys.executable, "-c", probe, path], capture_output=True, timeout=30)
        mine = subprocess.run([sys.executable, "-c", probe, path], capture_output=True, timeout=30)
        return other.returncode, mine.returncode

    assert _with_server(client) == (13, 0)


@pytest.mark.parametrize("sent, says", [(b"[1, 2]\n", "not a JSON object"), (b"", "closed the control connection")])
def test_the_client_refuses_a_reply_that_is_not_an_object(sent: bytes, says: str) -> None:
    path = os.path.join(short_run_dir(), "raw.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def answer() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(sent)

    t = threading.Thread(target=answer)
    t.start()
    try:
        with pytest.raises(ConnectionError, match=says):
            control.request(path, {"op": "status"}, timeout=10)
    finally:
        t.join(10)
        srv.close()
        os.unlink(path)
        os.rmdir(os.path.dirname(path))
