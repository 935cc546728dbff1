"""Network streams: `await proc.connect(host, port)` and `await proc.listen(port)`.

The TCP/IP stack is a user-space server mounted at /tcp (spec §11.9, DESIGN.md §5). A connection
is a file session: `open("/tcp/HOST:PORT")` connects (HOST a name or an address); WRITE sends
(answered when the stack has taken the bytes), READ(0, max) answers with the next bytes as soon
as there are some, and NO_DATA at the end of the stream; CLOSE sends FIN. Listening:
`open("/tcp/listen/PORT")`, then ACCEPT requests each answer with a new connection session.
Errors come back as SyscallError codes: REFUSED, TIMEDOUT, UNREACHABLE, RESET, NOTFOUND (DNS).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from euralios.std import abi
from euralios.std.errors import SyscallError
from euralios.std.fs import File
from euralios.std.message import Handle

if TYPE_CHECKING:
    from euralios.std.proc import Proc


class Stream(File):
    """A TCP connection. `read(n)` returns what has arrived (up to n bytes, at least one),
    b"" at the end of the stream; `read_exactly(n)` and `read_all()` loop for you."""

    async def read(self, n: int = 65536) -> bytes:
        try:
            reply = await self.sys.rcall(self.handle, abi.READ, 0, n)
        except SyscallError as e:
            if e.code == abi.NO_DATA:
                return b""
            raise
        from euralios.std.fs import take_bytes

        return await take_bytes(self.sys, reply)

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
            n = await self.write(bytes(view[:65536]))
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
