"""Files: the client side of the file protocol, spoken to file servers by messages (spec §10.7).

Opening `/ramdisk/notes.txt` asks the kernel for the mount `/ramdisk` (a handle to its server)
and then sends the server an OPEN request with the rest of the path; the server answers with a
handle to a private session for that file. Reads carry an offset; writes go at the session's
position (end of file with append).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from euralios.std import abi
from euralios.std.chunk import Chunk
from euralios.std.errors import SyscallError
from euralios.std.message import Handle, Memory, Message

if TYPE_CHECKING:
    from euralios.std.syscalls import Sys

READ_CHUNK = 64 * 1024
MODES = {
    "r": abi.O_READ,
    "rb": abi.O_READ,
    "w": abi.O_WRITE | abi.O_CREATE | abi.O_TRUNCATE,
    "wb": abi.O_WRITE | abi.O_CREATE | abi.O_TRUNCATE,
    "a": abi.O_WRITE | abi.O_CREATE | abi.O_APPEND,
    "ab": abi.O_WRITE | abi.O_CREATE | abi.O_APPEND,
    "r+": abi.O_WRITE,
    "x": abi.O_WRITE | abi.O_CREATE,
}


async def send_bytes(sys: Sys, data: bytes) -> Memory:
    """Copy bytes into a fresh chunk, ready to travel in a message."""
    chunk = await Chunk.allocate(sys, len(data))
    if data:
        chunk.write(0, data)
    return Memory(chunk.vaddr)


async def take_bytes(sys: Sys, msg: Message) -> bytes:
    """The bytes of a Long(tag, len, Memory) message; the chunk is freed. A length longer than
    the chunk is SyscallError(PARAM) (reading on would be a fatal page fault)."""
    if not isinstance(msg.d3, Memory):
        return b""
    n = msg.d2 if isinstance(msg.d2, int) else 0
    try:
        return (await Chunk.received(sys, msg.d3)).read(0, n) if n else b""
    finally:
        await sys.free(msg.d3.vaddr)


async def open_handle(sys: Sys, path: str, flags: int) -> tuple[int, bool]:
    """A handle to `path` and whether it is a private session (False: the mount itself,
    shared with every other client, which must never be sent CLOSE). A failure names the path
    (`7 : Not found (/ramdisk/nope)`), so a program that dies of it says what it looked for."""
    try:
        return await _open_handle(sys, path, flags)
    except SyscallError as e:
        if e.detail:
            raise
        raise SyscallError(e.code, e.message, detail=path) from None


async def _open_handle(sys: Sys, path: str, flags: int) -> tuple[int, bool]:
    h, matched = await sys.open(path)
    rest = path.encode()[matched:]
    if not rest.strip(b"/"):
        return h, False
    try:
        mem = await send_bytes(sys, rest)
        reply = await sys.rcall(h, abi.OPEN_TAG | flags, len(rest), mem)
    finally:
        await sys.close(h)
    if reply.tag != abi.COMM_HANDLE or not isinstance(reply.d2, Handle):
        raise SyscallError(0, reply, detail="bad reply to open")
    return reply.d2.number, True


class File:
    """An open file or directory session. Use as an async context manager to close it."""

    def __init__(self, sys: Sys, handle: int, path: str = "", session: bool = True) -> None:
        self.sys = sys
        self.handle = handle
        self.path = path
        self.session = session
        self.offset = 0
        self.closed = False

    async def read(self, n: int = -1) -> bytes:
        """Up to n bytes from the current offset (all the rest with n < 0); b"" at the end."""
        out = bytearray()
        while n < 0 or len(out) < n:
            want = READ_CHUNK if n < 0 else min(READ_CHUNK, n - len(out))
            try:
                reply = await self.sys.rcall(self.handle, abi.READ, self.offset, want)
            except SyscallError as e:
                if e.code == abi.NO_DATA:
                    break
                raise
            if reply.tag != abi.DATA:
                raise SyscallError(0, reply, detail="bad reply to read")
            data = await take_bytes(self.sys, reply)
            if not data:
                break
            out += data
            self.offset += len(data)
            if len(data) < want:
                break
        return bytes(out)

    async def write(self, data: bytes | str) -> int:
        if isinstance(data, str):
            data = data.encode()
        if not data:
            return 0
        mem = await send_bytes(self.sys, data)
        reply = await self.sys.rcall(self.handle, abi.WRITE, len(data), mem)
        if reply.tag != abi.OK:
            raise SyscallError(abi.PARAM, reply, detail="bad reply to write")
        n = reply.d2 if isinstance(reply.d2, int) else 0
        self.offset += n
        return n

    async def query(self) -> dict[str, Any]:
        """The server's JSON description (a directory listing, a device list...)."""
        reply = await self.sys.rcall(self.handle, abi.QUERY)
        if reply.tag != abi.JSON:
            raise SyscallError(abi.PARAM, reply, detail="bad reply to query")
        info: dict[str, Any] = json.loads(await take_bytes(self.sys, reply))
        return info

    async def request(self, tag: int, name: str) -> Message:
        """A directory request carrying a name (MKDIR, DELETE, RENAME)."""
        data = name.encode()
        mem = await send_bytes(self.sys, data)
        return await self.sys.rcall(self.handle, tag, len(data), mem)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.session:
            try:
                await self.sys.send(self.handle, Message(abi.CLOSE_TAG))
            except SyscallError:
                pass
        try:
            await self.sys.close(self.handle)
        except SyscallError:
            pass

    async def __aenter__(self) -> File:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def split_parent(path: str) -> tuple[str, str]:
    """('/a/b', 'c') for '/a/b/c'; the parent of '/c' is '/'."""
    path = path.rstrip("/")
    parent, _, name = path.rpartition("/")
    if not name:
        raise SyscallError(abi.PARAM, detail=f"no file name in {path!r}")
    return parent or "/", name
