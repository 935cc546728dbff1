"""Network streams: `await proc.connect(host, port)` and `await proc.listen(port)`.

The TCP/IP stack is a user-space server mounted at /tcp (spec §11.9, DESIGN.md §5). A connection
is a file session: `open("/tcp/HOST:PORT")` connects (HOST a name or an address); WRITE sends
(answered when the stack has taken the bytes), READ(0, max) answers with the next bytes as soon
as there are some, and NO_DATA at the end of the stream (Stream.read sends READ_INTO, the same
answered in a chunk it lends and gets back: net/sessions/tcp.py); CLOSE sends FIN. Listening:
`open("/tcp/listen/PORT")`, then ACCEPT requests each answer with a new connection session.
Errors come back as SyscallError codes: REFUSED, TIMEDOUT, UNREACHABLE, RESET, NOTFOUND (DNS).

Many connections: each Stream is a session of the stack, served by a thread of its own, and a
process has 64 threads. `await proc.mux()` opens one session (/tcp/mux) that carries any number
of sockets, select/poll style: non-blocking `send`/`recv`/`accept` by socket id, and `poll`,
which waits for events on any of them.

Datagrams: `await proc.udp_bind(port)` is a bound UDP socket (a server's, or a client's that
talks to many peers; port 0 picks an ephemeral one): `recvfrom()` answers (payload, (host,
port)), `sendto(payload, (host, port))` sends one. `await proc.udp_connect(host, port)` is a
connected one: `send`/`recv` with that peer only. Records and requests: euralios.std.protocols.udp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from euralios.std import abi
from euralios.std.carried import discard
from euralios.std.chunk import Chunk
from euralios.std.errors import SyscallError
from euralios.std.fs import File, send_bytes, take_bytes
from euralios.std.message import Handle, Memory, Message
from euralios.std.protocols import mux as M
from euralios.std.protocols import udp as U
from euralios.std.protocols.mux import ACCEPTABLE, ERROR, READABLE, WRITABLE

# The event bits Mux.poll reports and Mux.watch takes are the protocol's, part of this API.
__all__ = ["Stream", "Listener", "Mux", "DatagramSocket", "connect", "listen", "mux", "udp_bind", "udp_connect",
           "READABLE", "WRITABLE", "ACCEPTABLE", "ERROR"]

if TYPE_CHECKING:
    from euralios.std.proc import Proc

#: The most one WRITE of `write_all` carries (the stack takes what fits in its send buffer).
WRITE_MAX = 256 * 1024
#: The most one READ of a /tcp connection answers (a quarter of a 1 MiB window): the stack's
#: limit (net/sessions/tcp.py) and the largest buffer a Stream lends its reads.
READ_MAX = 256 * 1024


class Stream(File):
    """A TCP connection. `read(n)` returns what has arrived (up to n bytes, at least one),
    b"" at the end of the stream; `read_exactly(n)` and `read_all()` loop for you.

    Reads lend the stack one buffer chunk (READ_INTO, net/sessions/tcp.py), which comes back
    with the bytes and carries the next read, instead of a fresh chunk per read; a server that
    does not know READ_INTO gets plain READs from then on. `close` frees the buffer."""

    _buffer: Memory | None = None  # the chunk lent to the next read, while this Stream holds it
    _buffer_bytes = 0
    _plain = False  # the server answered READ_INTO with ERROR_UNKNOWN_MESSAGE

    async def read(self, n: int = 65536) -> bytes:
        if self._plain or n <= 0:
            return await self._read_plain(n)
        mem, self._buffer = self._buffer, None
        if mem is None or self._buffer_bytes < min(n, READ_MAX):
            if mem is not None:
                await self.sys.free(mem.vaddr)
            pages = min(-(-n // abi.PAGE), READ_MAX // abi.PAGE)
            mem = Memory((await self.sys.malloc(pages))[0])
            self._buffer_bytes = pages * abi.PAGE
        try:  # an error reply frees the lent chunk
            reply = await self.sys.rcall(self.handle, abi.READ_INTO, n, mem)
        except SyscallError as e:
            if e.code == abi.NO_DATA:
                return b""
            raise
        if reply.tag == abi.ERROR_UNKNOWN_MESSAGE:  # it freed the chunk, as for any error
            self._plain = True
            return await self._read_plain(n)
        if reply.tag != abi.DATA or not isinstance(reply.d3, Memory) or not isinstance(reply.d2, int):
            await discard(self.sys, reply)
            raise SyscallError(abi.PARAM, reply, detail="bad reply to read")
        chunk = await Chunk.received(self.sys, reply.d3)
        if reply.d2 > chunk.size:
            await chunk.free()
            raise SyscallError(abi.PARAM, reply, detail="reply longer than its chunk")
        self._buffer, self._buffer_bytes = reply.d3, chunk.size
        return chunk.read(0, reply.d2)

    async def _read_plain(self, n: int) -> bytes:
        try:
            reply = await self.sys.rcall(self.handle, abi.READ, 0, n)
        except SyscallError as e:
            if e.code == abi.NO_DATA:
                return b""
            raise
        return await take_bytes(self.sys, reply)

    async def close(self) -> None:
        mem, self._buffer = self._buffer, None
        if mem is not None:
            try:
                await self.sys.free(mem.vaddr)
            except SyscallError:
                pass
        await super().close()

    async def read_all(self) -> bytes:
        out = bytearray()
        while chunk := await self.read(65536):
            out += chunk
        return bytes(out)

    async def read_exactly(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = await self.read(n - len(out))
            if not chunk:
                raise SyscallError(abi.NO_DATA, detail=f"stream ended after {len(out)} of {n} bytes")
            out += chunk
        return bytes(out)

    async def write_all(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        view = memoryview(data)
        while view:
            n = await self.write(bytes(view[:WRITE_MAX]))
            view = view[n:]


class Listener(File):
    """A listening TCP port: `accept()` waits for the next connection."""

    async def accept(self) -> Stream:
        reply = await self.sys.rcall(self.handle, abi.ACCEPT)
        if reply.tag != abi.COMM_HANDLE or not isinstance(reply.d2, Handle):
            raise SyscallError(abi.PARAM, reply, detail="bad reply to accept")
        return Stream(self.sys, reply.d2.number, self.path)


async def connect(proc: Proc, host: str, port: int) -> Stream:
    f = await proc.open(f"/tcp/{host}:{port}", "r+")
    return Stream(proc.sys, f.handle, f.path, f.session)


async def listen(proc: Proc, port: int) -> Listener:
    f = await proc.open(f"/tcp/listen/{port}", "r+")
    return Listener(proc.sys, f.handle, f.path, f.session)


def _socket(reply: Message) -> int:
    """The socket id a /tcp/mux reply names in its first word."""
    if not isinstance(reply.d2, int):
        raise SyscallError(abi.PARAM, reply, detail="bad reply from /tcp/mux")
    return reply.d2


class Mux(File):
    """Many sockets on one /tcp session. Sockets are small integers; nothing blocks but `poll`.

    `connect` returns at once (the socket polls WRITABLE once the handshake is done, ERROR if it
    failed); `send` takes what fits (0 when the send buffer is full: watch WRITABLE); `recv`
    answers None when nothing has arrived yet and b"" at the end of the stream; a failed
    connection raises its SyscallError (RESET, REFUSED, TIMEDOUT ...)."""

    async def _call(self, op: int, sid: int, d2: object = 0, d3: object = 0) -> Message:
        return await self.sys.rcall(self.handle, op | sid << M.ID_SHIFT, d2, d3)

    async def _call_with(self, op: int, sid: int, data: bytes) -> Message:
        """A request carrying ``data`` in a chunk; a chunk handed back with an error is freed."""
        try:
            return await self._call(op, sid, len(data), await send_bytes(self.sys, data))
        except SyscallError as e:
            await discard(self.sys, e.message)
            raise

    async def connect(self, host: str, port: int) -> int:
        return _socket(await self._call_with(M.CONNECT, 0, f"{host}:{port}".encode()))

    async def listen(self, port: int, backlog: int = 16) -> int:
        return _socket(await self._call(M.LISTEN, 0, port, backlog))

    async def accept(self, sid: int) -> int | None:
        reply = await self._call(abi.ACCEPT, sid)
        return None if reply.tag == abi.EMPTY else _socket(reply)

    async def send(self, sid: int, data: bytes) -> int:
        if not data:
            return 0
        reply = await self._call_with(abi.WRITE, sid, bytes(data))
        return reply.d2 if isinstance(reply.d2, int) else 0

    async def recv(self, sid: int, n: int = 65536) -> bytes | None:
        try:
            reply = await self._call(abi.READ, sid, 0, n)
        except SyscallError as e:
            if e.code == abi.NO_DATA:
                return b""
            raise
        if reply.tag == abi.EMPTY:
            return None
        return await take_bytes(self.sys, reply)

    async def watch(self, sid: int, events: int) -> None:
        """Which of READABLE, WRITABLE, ACCEPTABLE, ERROR `poll` reports for the socket."""
        await self._call(M.WATCH, sid, events)

    async def shut(self, sid: int, abort: bool = False) -> None:
        """Close one socket: FIN after its queued data (abort: RST at once)."""
        await self._call(abi.CLOSE_TAG, sid, 1 if abort else 0)

    async def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        """[(socket, events)] of every watched socket with an event (level-triggered), waiting
        up to `timeout` seconds (None: as long as it takes) for one; [] at the timeout."""
        ms = -1 if timeout is None else max(0, int(timeout * 1000))
        reply = await self._call(M.POLL, 0, ms)
        if reply.tag == abi.EMPTY:
            return []
        raw = await take_bytes(self.sys, reply)
        return [M.EVENT.unpack_from(raw, i) for i in range(0, len(raw) - M.EVENT.size + 1, M.EVENT.size)]


async def mux(proc: Proc) -> Mux:
    f = await proc.open("/tcp/mux", "r+")
    return Mux(proc.sys, f.handle, f.path, f.session)


class DatagramSocket(File):
    """A UDP socket. Bound (`udp_bind`): `recvfrom`/`sendto` name the peer of each datagram.
    Connected (`udp_connect`): `send`/`recv` talk to its one peer, and an ICMP error from it
    (nobody on that port) is the next call's SyscallError(REFUSED)."""

    async def recvfrom(self, n: int = 65536, timeout: float | None = None) -> tuple[bytes, tuple[str, int]] | None:
        """The next datagram (its payload cut to n bytes) and who sent it, as (payload, (host,
        port)); None when `timeout` seconds pass first (None: wait as long as it takes)."""
        ms = 0 if timeout is None else max(1, int(timeout * 1000))
        reply = await self.sys.rcall(self.handle, abi.READ, ms, n)
        if reply.tag == abi.EMPTY:
            return None
        dgram = U.decode(await take_bytes(self.sys, reply))
        return dgram.payload, dgram.address

    async def sendto(self, data: bytes | str, address: tuple[str, int]) -> int:
        """Send one datagram to (host, port); host an address or a name. The bytes sent."""
        payload = data.encode() if isinstance(data, str) else bytes(data)
        record = U.encode(U.Datagram(address[0], address[1], payload))
        reply = await self._write_record(record)
        return reply.d2 if isinstance(reply.d2, int) else 0

    async def _write_record(self, record: bytes) -> Message:
        mem = await send_bytes(self.sys, record)
        try:
            return await self.sys.rcall(self.handle, abi.WRITE, len(record), mem)
        except SyscallError as e:
            await discard(self.sys, e.message)
            raise

    async def send(self, data: bytes | str) -> int:
        """A connected socket: one datagram to its peer."""
        return await self.write(data.encode() if isinstance(data, str) else bytes(data))

    async def recv(self, n: int = 65536) -> bytes:
        """A connected socket: the next datagram from its peer (cut to n bytes)."""
        return await take_bytes(self.sys, await self.sys.rcall(self.handle, abi.READ, 0, n))


async def udp_bind(proc: Proc, port: int = 0) -> DatagramSocket:
    """A bound UDP socket on `port` (0: an ephemeral one); SyscallError(EXISTS) when taken."""
    f = await proc.open(f"/tcp/udp/{port}", "r+")
    return DatagramSocket(proc.sys, f.handle, f.path, f.session)


async def udp_connect(proc: Proc, host: str, port: int) -> DatagramSocket:
    """A UDP socket connected to host:port (from an ephemeral port)."""
    f = await proc.open(f"/tcp/udp/{host}:{port}", "r+")
    return DatagramSocket(proc.sys, f.handle, f.path, f.session)
