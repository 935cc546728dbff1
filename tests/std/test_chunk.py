"""euralios.std.chunk: every read and write of user memory is checked against the chunk's real
size, so a length a sender lies about is an error, not a page fault that kills the reader."""

from __future__ import annotations

from typing import Any

import pytest

from euralios.std import STDIN, STDOUT, Chunk, Message, SyscallError, abi
from euralios.std.fs import send_bytes, take_bytes


async def test_allocated_chunks_refuse_bytes_outside_them(guest: Any) -> None:
    async def body(proc: Any) -> None:
        chunk = await Chunk.allocate(proc.sys, 5000)
        assert chunk.size == 2 * abi.PAGE
        chunk.write(8189, b"xyz")
        assert chunk.read(8189, 3) == b"xyz" and chunk.read(8190) == b"yz"
        for bad in (lambda: chunk.read(8190, 3), lambda: chunk.read(-1, 1), lambda: chunk.write(8191, b"ab")):
            with pytest.raises(SyscallError) as e:
                bad()
            assert e.value.code == abi.PARAM
        await chunk.free()

    await guest(body)


async def received(proc: Any) -> int:
    """Receive Long(DATA, claimed length, chunk): check what Chunk.received and take_bytes make
    of it; the exit status says what was seen."""
    sys = proc.sys
    msg = await sys.receive(STDIN)
    chunk = await Chunk.received(sys, msg.d3)
    if chunk.size != 3 * abi.PAGE or chunk.read(0, 5) != b"hello":
        return 2
    try:
        await take_bytes(sys, msg)  # the claimed length is past the end: refused, chunk freed
    except SyscallError as e:
        return 0 if e.code == abi.PARAM else 3
    return 4


async def test_a_received_chunk_is_sized_by_the_kernel_not_the_sender(guest: Any) -> None:
    async def body(proc: Any) -> None:
        sys = proc.sys
        ours, theirs = await sys.new_rendezvous()
        child = await proc.exec(received, stdin=theirs)
        mem = (await Chunk.allocate(sys, 3 * abi.PAGE)).memory
        Chunk(sys, mem.vaddr, 5).write(0, b"hello")
        await sys.send(ours, Message(abi.DATA, 10 * abi.PAGE, mem))
        assert await child.wait() == 0

    await guest(body)


async def test_a_server_survives_a_lying_length(guest: Any) -> None:
    """The serial console (our stdout) is sent a WRITE claiming more bytes than its chunk has:
    it answers an error and keeps serving instead of dying of a page fault."""

    async def body(proc: Any) -> None:
        sys = proc.sys
        mem = await send_bytes(sys, b"short")
        reply = await sys.send_receive(STDOUT, Message(abi.WRITE, 1 << 20, mem))
        assert reply == Message(abi.ERROR, abi.PARAM, 0)
        await proc.print("still serving")  # raises if the console died

    await guest(body)
