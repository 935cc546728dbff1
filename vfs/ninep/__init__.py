"""vfs.ninep: host folders (any 9P2000.L server's tree) as a EuraliOS file server.

The OS side of "Host folders over 9P": a 9P2000.L *client* (proto.ninep is the codec) whose
tree is served over the file protocol (vfs/protocol.py, through vfs/server.py), so a mount of
it reads, writes, lists, creates, renames and deletes on the host folder. What carries the 9P
frames is a Transport: a TCP connection (vfs/ninep/tcp.py, used by `9mount`) or the
virtio-9p-pci device's queue (its driver's).

The entry point a driver or program calls:

    async def serve_ninep(proc, handle: int, transport: Transport, *, aname: str = "",
                          uname: str = "root", n_uname: int = 0, writable: bool = True,
                          msize: int = 256 * 1024) -> int

Tversion (msize at most transport.max_message) + Tattach, then serve the file protocol on
`handle` (normally the rendezvous mounted at the mount point) until the mount handle closes:
returns 0, or 1 when the attach failed (at once) or the transport had failed (from that moment
every request is answered with the failure, Connection reset, never a hang or a crash, until
the mount is umounted; see serve_attached for why it does not close the mount itself). `writable=False` refuses every change (ERROR_DENIED) before
anything is sent; a server exporting read-only answers EROFS, which clients see as the same
refusal. `attach` + `serve_attached` are the same in two steps, for a caller (9mount) that
reports an attach failure itself before it serves.

    class Transport(Protocol):            # vfs/ninep/transport.py
        max_message: int                  # the largest frame it carries either way
        async def rpc(self, request: bytes) -> bytes: ...
            # one whole T-message frame out, its whole R-message frame back; may be called
            # concurrently (serialise, or multiplex by tag); raises TransportError when dead.

Modules: transport.py (the contract), client.py (fids, tags, requests), errors.py (errno ->
file-protocol codes), nodes.py (the tree as DirNode/FileNode, lazily), serve.py (the above),
tcp.py (a Transport over a /tcp stream).
"""

from vfs.ninep.client import Client
from vfs.ninep.errors import LinkDown, RemoteError, fs_code
from vfs.ninep.nodes import NinepDir, NinepFile, Tree
from vfs.ninep.serve import DEFAULT_MSIZE, attach, serve_attached, serve_ninep
from vfs.ninep.transport import Transport, TransportError

__all__ = ["Client", "LinkDown", "RemoteError", "fs_code", "NinepDir", "NinepFile", "Tree", "DEFAULT_MSIZE",
           "attach", "serve_attached", "serve_ninep", "Transport", "TransportError"]
