"""The shared mount handle of /tcp: where opens arrive (and QUERY for the listing).

Several mount workers serve it (net/server.py starts another before an open waits), so one
slow connect never holds up the others; `mount_busy` counts the opens in progress.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from euralios.std import Message, abi
from vfs import protocol as P
from vfs.protocol import FsError
from vfs.server import Session

if TYPE_CHECKING:
    from net.server import NetServer


class MountSession(Session):
    """The shared mount handle: opens, and QUERY for the listing. Several workers serve it."""

    mount = True

    def __init__(self, server: NetServer) -> None:
        super().__init__(server, server.root, False)
        self.srv = server

    async def handle(self, req: P.Request) -> Message:
        srv = self.srv
        if isinstance(req, P.Open):
            srv.mount_busy += 1
            try:
                return await srv.open(req)
            finally:
                srv.mount_busy -= 1
        if isinstance(req, P.Query):
            return await srv.blob_reply(abi.JSON, srv.root.info())
        if isinstance(req, (P.Read, P.Write)):
            raise FsError(abi.PARAM, "file request to the /tcp directory")
        return P.unknown()
