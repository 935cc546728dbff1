"""A Transport over a byte stream (a /tcp connection): 9P's own framing, one call at a time.

9P over TCP needs no framing of its own: every message starts with its size. The replies are
cut out of the stream by proto.ninep's Decoder; a reply is handed back as its frame
(re-encoded from the decoded message: the codec round-trips exactly).

Calls are *serialised*: a session thread holds the connection from its request to its reply.
Multiplexing by tag would let a slow request (a large read) overlap others, but a /tcp session
answers one request at a time (a READ waiting for data would hold up the WRITE of the next
request), so it would buy nothing here. The lock is a flag and a Wakeup (euralios.std.sync):
threads of a process run one at a time between syscalls, so checking and taking the flag in one
step is atomic, and a waiter sleeps in the kernel, not in a loop.

A transport that fails (the peer closed, a reset, a stream out of step, a reply to another tag)
stays failed: every later call raises TransportError at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from euralios.std import abi
from euralios.std.errors import SyscallError
from euralios.std.sync import Wakeup
from proto.ninep import DEFAULT_MSIZE, BadMessage, Decoder, Frame, NeedData, StreamError, encode
from vfs.ninep.transport import TransportError

if TYPE_CHECKING:
    from euralios.std.syscalls import Sys

READ_SIZE = 65536


class ByteStream(Protocol):
    """What the transport needs of a connection (euralios.std.net.Stream is one)."""

    async def write_all(self, data: bytes | str) -> None: ...

    async def read(self, n: int = ...) -> bytes: ...

    async def close(self) -> None: ...


class StreamTransport:
    """A Transport over `stream`; `max_message` bounds a frame either way."""

    def __init__(self, stream: ByteStream, wakeup: Wakeup, max_message: int = DEFAULT_MSIZE) -> None:
        self.stream = stream
        self.max_message = max_message
        self._decoder = Decoder(max_message)
        self._wakeup = wakeup
        self._busy = False
        self.failed: TransportError | None = None

    @classmethod
    async def new(cls, sys: Sys, stream: ByteStream, max_message: int = DEFAULT_MSIZE) -> StreamTransport:
        return cls(stream, await Wakeup.new(sys), max_message)

    async def rpc(self, request: bytes) -> bytes:
        while self._busy:
            await self._wakeup.sleep()
        if self.failed is not None:
            await self._wakeup.wake()  # pass the news on to the next waiter
            raise self.failed
        self._busy = True
        try:
            return await self._exchange(request)
        except TransportError as e:
            self.failed = e
            raise
        finally:
            self._busy = False
            await self._wakeup.wake()

    async def _exchange(self, request: bytes) -> bytes:
        tag = int.from_bytes(request[5:7], "little")
        try:
            await self.stream.write_all(request)
            while True:
                ev = self._decoder.next_event()
                if isinstance(ev, Frame):
                    if ev.tag != tag:
                        raise TransportError(f"reply with tag {ev.tag} to a request with tag {tag}")
                    return encode(ev.message, ev.tag)
                if isinstance(ev, BadMessage):
                    raise TransportError(f"malformed reply (type {ev.type}): {ev.reason}")
                if isinstance(ev, StreamError):
                    raise TransportError(f"stream out of step: {ev.kind.value} ({ev.size})")
                assert isinstance(ev, NeedData)
                data = await self.stream.read(READ_SIZE)
                if not data:
                    raise TransportError("the server closed the connection")
                self._decoder.feed(data)
        except SyscallError as e:
            code = e.code if e.code in (abi.RESET, abi.REFUSED, abi.TIMEDOUT, abi.UNREACHABLE) else abi.RESET
            raise TransportError(f"connection: {abi.ERROR_TEXT.get(e.code, e.code)}", code) from None

    async def close(self) -> None:
        await self.stream.close()
        await self._wakeup.close()
