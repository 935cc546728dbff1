"""The zygote's control protocol: one JSON object per SOCK_SEQPACKET message, fds as SCM_RIGHTS.

Only the kernel and the zygote speak it (both trusted); a worker never sees a control socket.
One zygote serves every kernel of a host process (client.py keeps it across trio runs), so there
are two kinds of socket. The master, one per zygote, held by the host process for its lifetime:
  zygote -> host    {"pid": zygote pid}, or {"error": "preload NAME: ..."} and exit   once, at start
  host -> zygote    {"attach": true} + one end of a new socketpair: a session
A session, one per open_zygote block (one kernel, one trio run):
  zygote -> kernel  {"pid": zygote pid, "probe": {mechanism: [applied, detail]}}     once, at attach
  kernel -> zygote  {"entry": "module:function", "limits": {...}, "without": [...]}  + the worker's channel fd
  zygote -> kernel  {"pid": worker pid} + its pidfd, or {"error": text}              the reply
  zygote -> kernel  {"exited": worker pid, "status": returncode (-signal if killed)} when one is reaped
The zygote serves a session's requests in order and replies on the socket that asked, so replies
come in request order per session. A session ends when the kernel shuts its side: the zygote kills
that session's workers, reports each exit and then closes its side. The master closing (the host
process exiting) ends the zygote and every worker. This module is the zygote's (blocking sockets,
no trio: the zygote imports only what workers need); client.py speaks the session messages over
trio sockets with fds_from/decode/ancillary.
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


def decode_owning(data: bytes, fds: list[int]) -> dict[str, Any]:
    """decode(data), closing ``fds`` if it fails: the caller never learns of them then."""
    try:
        return decode(data)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def recv(sock: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, ancdata, flags, _ = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(MAX_FDS * 4))
    fds = fds_from(ancdata, flags)
    return decode_owning(data, fds), fds
