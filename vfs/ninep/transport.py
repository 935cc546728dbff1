"""What the 9P client needs from whatever carries its frames: one request frame out, its reply back.

A transport is a TCP connection to a 9P server (vfs/ninep/tcp.py), a virtio-9p device's queue
(the driver's), or, in tests, a call into machine.share.ShareServer. The client neither knows nor
cares which; it only relies on the contract below.
"""

from __future__ import annotations

from typing import Protocol

from euralios.std import abi


class Transport(Protocol):
    """Carries whole 9P frames (``size[4] type[1] tag[2] body``).

    ``rpc(request)`` sends one T-message frame and answers the whole R-message frame with the
    same tag. It may be called concurrently from several session threads: a transport either
    serialises the calls or multiplexes them by tag (the client never has two requests with one
    tag in flight). It raises :class:`TransportError` when it can carry nothing more (the share
    vanished, the TCP connection closed); the client then fails every request cleanly.

    ``max_message`` is the largest frame the transport can carry either way: the client asks
    for an msize no larger."""

    max_message: int

    async def rpc(self, request: bytes) -> bytes: ...


class TransportError(Exception):
    """The transport is gone or out of step: no reply will come. `code` is the file protocol's
    error a client of the mount sees from then on (Connection reset unless the transport knows
    better, e.g. Connection refused)."""

    def __init__(self, detail: str, code: int = abi.RESET) -> None:
        super().__init__(detail)
        self.code = code
