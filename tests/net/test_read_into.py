"""READ_INTO on a /tcp connection (net/sessions/tcp.py): the caller lends the chunk the bytes
come back in, and Stream.read reuses it; malformed requests get an error and the session lives;
other sessions and files answer as before, and Stream falls back to plain READs for them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from euralios.boot import System, boot
from euralios.std import SyscallError, abi
from euralios.std.chunk import Chunk
from euralios.std.fs import take_bytes
from euralios.std.message import Handle, Memory
from euralios.std.net import Stream
from tests.net.test_stack import GUEST, HOST, Peer, run_in

PAYLOAD = bytes(range(256)) * 1200  # 300 KiB: more than one READ answers


@pytest.fixture
async def system() -> AsyncIterator[System]:
    peer = Peer()
    async with boot(nic=peer.backend) as system:
        system.start_network(["--static", f"{GUEST}/24,gw={HOST},dns={HOST}"])
        await system.wait_for_output(r"\[tcp\] static", 15)
        yield system


async def pair(proc: Any, port: int, data: bytes) -> tuple[Any, Stream]:
    """A listener and the accepted end of a loopback connection whose peer sent ``data``, then FIN."""
    listener = await proc.listen(port)

    async def client() -> None:
        s = await proc.connect("127.0.0.1", port)
        await s.write_all(data)
        await s.close()

    await proc.spawn_thread(client)
    return listener, await listener.accept()


async def test_stream_reads_lend_one_buffer_and_get_every_byte(system: System) -> None:
    async def program(proc: Any) -> None:
        listener, conn = await pair(proc, 8001, PAYLOAD)
        got = bytearray(await conn.read(1))
        assert got == PAYLOAD[:1] and isinstance(conn._buffer, Memory)
        got += await conn.read_exactly(1000)
        while chunk := await conn.read(64 << 10):
            assert len(chunk) <= 64 << 10
            got += chunk
            assert isinstance(conn._buffer, Memory)  # the lent chunk came back with the bytes
        assert bytes(got) == PAYLOAD
        assert conn._buffer is None  # NO_DATA: the stack freed the chunk lent to the last read
        await conn.close()
        await listener.close()

    await run_in(system, program)


async def test_read_into_answers_in_the_lent_chunk_and_refuses_malformed_requests(system: System) -> None:
    async def program(proc: Any) -> None:
        sys = proc.sys
        listener, conn = await pair(proc, 8002, PAYLOAD[:10000])
        h = conn.handle
        page = Memory((await sys.malloc(1))[0])
        reply = await sys.rcall(h, abi.READ_INTO, 5, page)  # the good case: at most max bytes
        assert reply.tag == abi.DATA and isinstance(reply.d3, Memory) and 1 <= reply.d2 <= 5
        chunk = await Chunk.received(sys, reply.d3)
        assert chunk.size == abi.PAGE  # the same one-page chunk back
        got = chunk.read(0, reply.d2)
        reply = await sys.rcall(h, abi.READ_INTO, 0, reply.d3)  # max 0: as much as the chunk holds
        got += (await Chunk.received(sys, reply.d3)).read(0, reply.d2)
        await sys.free(reply.d3.vaddr)
        assert got == PAYLOAD[:len(got)]
        for d2, d3 in ((5, 0), (0, 0), (Memory((await sys.malloc(1))[0]), Memory((await sys.malloc(1))[0]))):
            with pytest.raises(SyscallError) as e:  # no chunk, or a chunk for max: PARAM
                await sys.rcall(h, abi.READ_INTO, d2, d3)
            assert e.value.code == abi.PARAM
        a, b = await sys.new_rendezvous()
        with pytest.raises(SyscallError) as e:  # a handle for the chunk
            await sys.rcall(h, abi.READ_INTO, 5, Handle(a))
        assert e.value.code == abi.PARAM
        await sys.close(b)
        # The session lives, and a plain READ still answers in a fresh chunk.
        rest = await take_bytes(sys, await sys.rcall(h, abi.READ, 0, 1 << 20))
        got += rest
        while len(got) < 10000:
            got += await conn.read(4096)
        assert got == PAYLOAD[:10000]
        with pytest.raises(SyscallError) as e:  # the end of the stream
            await sys.rcall(h, abi.READ_INTO, 0, Memory((await sys.malloc(1))[0]))
        assert e.value.code == abi.NO_DATA
        # A listener does not know READ_INTO: ERROR_UNKNOWN_MESSAGE (its chunk freed), still listening.
        reply = await sys.rcall(listener.handle, abi.READ_INTO, 0, Memory((await sys.malloc(1))[0]))
        assert reply.tag == abi.ERROR_UNKNOWN_MESSAGE
        assert (await listener.query())["type"] == "listener"
        await conn.close()
        await listener.close()

    await run_in(system, program)


async def test_a_stream_on_a_server_without_read_into_falls_back_to_plain_reads(system: System) -> None:
    async def program(proc: Any) -> None:
        await proc.write_file("/ramdisk/plain", b"plain bytes")
        f = await proc.open("/ramdisk/plain", "r")
        s = Stream(proc.sys, f.handle, f.path, f.session)
        assert await s.read(100) == b"plain bytes"
        assert s._plain and s._buffer is None
        await s.close()

    await run_in(system, program)
