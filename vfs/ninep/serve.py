"""serve_ninep: attach a 9P tree and serve it over the file protocol on a mount handle."""

from __future__ import annotations

from typing import Any

from euralios.std.errors import SyscallError
from vfs.ninep.client import Client
from vfs.ninep.errors import LinkDown
from vfs.ninep.nodes import Tree
from vfs.ninep.transport import Transport
from vfs.protocol import FsError
from vfs.server import serve

DEFAULT_MSIZE = 256 * 1024
MAX_READ = 1 << 20  # bytes one READ answers: a client asking for "everything" gets it in parts


async def _log(proc: Any, line: str) -> None:
    try:
        await proc.sys.debug_write(line)
    except SyscallError:
        pass


async def attach(transport: Transport, *, aname: str = "", uname: str = "root", n_uname: int = 0,
                 msize: int = DEFAULT_MSIZE) -> Client:
    """A Client with Tversion and Tattach done; FsError (RemoteError, LinkDown) saying why not."""
    client = Client(transport)
    await client.connect(msize, aname, uname, n_uname)
    return client


async def serve_attached(proc: Any, handle: int, client: Client, *, writable: bool = True) -> int:
    """Serve the attached tree on `handle` until the mount handle closes; 0, or 1 if the
    transport had failed by then.

    A failed transport does not end the serving: from then on every request through the mount
    and its open sessions is answered at once with the failure (Connection reset), until the
    mount is umounted. Why not close the mount handle instead: a client's open first takes its
    own reference to the mount's rendezvous, so a rendezvous closed by its server alone is not
    "closed" to that client, whose OPEN would wait for a receiver for ever (the kernel orphans
    a mount only when its server process dies holding it). An error answered is also clearer to
    a user than a rendezvous gone."""

    async def down(e: LinkDown) -> None:
        await _log(proc, f"[9p] pid {proc.pid}: {e}; every request now answers that until umount")

    client.on_down = down
    tree = Tree(client)
    await serve(proc, handle, tree.root, writable=writable, max_read=MAX_READ)
    return 0 if client.down is None else 1


async def serve_ninep(proc: Any, handle: int, transport: Transport, *, aname: str = "", uname: str = "root",
                      n_uname: int = 0, writable: bool = True, msize: int = DEFAULT_MSIZE) -> int:
    """Tversion + Tattach, then serve the file protocol (vfs/server.py) on `handle` for this 9P
    tree until the mount handle closes or the transport fails; returns an exit status (0 the
    mount was closed, 1 the attach or the transport failed, said in the kernel log)."""
    try:
        client = await attach(transport, aname=aname, uname=uname, n_uname=n_uname, msize=msize)
    except FsError as e:
        await _log(proc, f"[9p] pid {proc.pid}: attach failed: {e}")
        return 1
    return await serve_attached(proc, handle, client, writable=writable)
