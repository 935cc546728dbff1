"""The zygote's control protocol: one JSON object per SOCK_SEQPACKET message, fds as SCM_RIGHTS.

Only the kernel and the zygote speak it (both trusted); a worker never sees the control socket.
Messages:
  zygote -> kernel  {"pid": zygote pid, "probe": {mechanism: [applied, detail]}}     once, at start
  kernel -> zygote  {"entry": "module:function", "limits": {...}, "without": [...]}  + the worker's channel fd
  zygote -> kernel  {"pid": worker pid} + its pidfd, or {"error": text}              the reply
  zygote -> kernel  {"exited": worker pid, "status": returncode (-signal if killed)} when one is reaped
The zygote serves one spawn at a time, so replies come in request order. This module is the
zygote's (blocking sockets, no trio: the zygote imports only what workers need); client.py speaks
the same messages over trio sockets with fds_from/decode/ancillary.
"""

from __future__ import annotations

import array
import json
import os
import socket
from collections.abc import Sequence
from typing import Any

MAX_MESSAGE = 64 * 1024
MAX_FDS = 4


def fds_from(ancdata: list[tuple[int, int, bytes]], flags: int) -> list[int]:
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC):
        for fd in fds:
            os.close(fd)
        raise OSError("control message truncated")
    return list(fds)


def decode(data: bytes) -> dict[str, Any]:
    if not data:
        raise EOFError("control socket closed")
    obj = json.loads(data)
    if not isinstance(obj, dict):
        raise ValueError(f"not a control message: {data[:80]!r}")
    return obj


def ancillary(fds: Sequence[int]) -> list[tuple[int, int, bytes]]:
    return [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []


def send(sock: socket.socket, obj: dict[str, Any], fds: Sequence[int] = ()) -> None:
    sock.sendmsg([json.dumps(obj).encode()], ancillary(fds))


def recv(sock: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, ancdata, flags, _ = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(MAX_FDS * 4))
    fds = fds_from(ancdata, flags)
    return decode(data), fds
