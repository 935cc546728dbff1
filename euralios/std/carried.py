"""Giving back what a message carried.

A message moves chunks and handles into the receiver. A server that does not want what it was
sent (an unknown request, a reply nobody waits for, a message after shutdown) still owns those
frames and rendezvous references, and would leak them for the life of the process unless it
frees them. Every server needs this, so it lives here, once.
"""

from __future__ import annotations

from typing import Any

from euralios.std.errors import SyscallError
from euralios.std.message import Handle, Memory, Message


async def discard(sys: Any, msg: object) -> None:
    """Free the chunks and close the handles `msg` holds in this process (errors ignored: a
    word that is no longer ours has nothing left to give back). Anything but a Message -- e.g.
    None, a failed send's SyscallError.message when nothing came back -- is nothing to give back,
    so `discard(sys, e.message)` frees what a refused request bounced back to us."""
    if not isinstance(msg, Message):
        return
    for word in (msg.d2, msg.d3):
        try:
            if isinstance(word, Memory):
                await sys.free(word.vaddr)
            elif isinstance(word, Handle):
                await sys.close(word.number)
        except SyscallError:
            pass
