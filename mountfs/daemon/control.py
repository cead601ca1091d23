"""The control socket: one JSON object per line, request then replies.

A request is ``{"op": "status" | "warmup" | "stop", ...}``.  The server sends
zero or more progress lines ``{"progress": ...}`` and then one final line with
``"ok": true`` or ``"ok": false, "error": "..."``.  The socket is owner-only
(a root daemon may also admit one configured group).
"""

from __future__ import annotations

import grp
import json
import logging
import os
import socket
from typing import Any, Awaitable, Callable

import trio

from ..errors import MountfsError

log = logging.getLogger(__name__)

Message = dict[str, Any]
Send = Callable[[Message], Awaitable[None]]
Handler = Callable[[Message, Send], Awaitable[Message]]
_MAX_LINE = 1 << 20


async def serve(path: str, handler: Handler, group: str = "", *,
                task_status: "trio.TaskStatus[list[trio.SocketListener]]" = trio.TASK_STATUS_IGNORED) -> None:
    """Listen on ``path`` until cancelled."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(path)
    mode = 0o600
    if group:
        gid = grp.getgrnam(group).gr_gid
        os.chown(path, -1, gid)
        os.chown(os.path.dirname(path), -1, gid)
        os.chmod(os.path.dirname(path), 0o750)
        mode = 0o660
    os.chmod(path, mode)
    sock.listen(16)

    async def one(stream: trio.SocketStream) -> None:
        async with stream:
            buf = b""
            while b"\n" not in buf:
                data = await stream.receive_some(65536)
                if not data or len(buf) > _MAX_LINE:
                    return
                buf += data

            async def send(obj: Message) -> None:
                await stream.send_all(json.dumps(obj).encode() + b"\n")

            try:
                req = json.loads(buf.split(b"\n", 1)[0])
                reply = await handler(req, send)
                reply.setdefault("ok", True)
            except MountfsError as exc:
                reply = {"ok": False, "error": str(exc)}
            except Exception as exc:
                log.error("control request failed", exc_info=exc)
                reply = {"ok": False, "error": f"internal error: {exc}"}
            try:
                await send(reply)
            except trio.BrokenResourceError:
                pass

    await trio.serve_listeners(one, [trio.SocketListener(sock)], task_status=task_status)


def request(path: str, req: Message, timeout: float = 10.0,
            on_progress: Callable[[Message], None] | None = None) -> Message:
    """Send one request and return the final reply; progress lines go to ``on_progress``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while True:
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                if not isinstance(msg, dict):
                    raise ConnectionError("the daemon sent something that is not a JSON object")
                if "progress" in msg and "ok" not in msg:
                    if on_progress:
                        on_progress(msg)
                    continue
                return msg
            data = s.recv(65536)
            if not data:
                raise ConnectionError("the daemon closed the control connection")
            buf += data
