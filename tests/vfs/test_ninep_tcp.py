"""vfs/ninep/tcp.py: 9P's framing over a byte stream, shared by concurrent session threads.

The stream here is a fake in the test: what the transport writes goes to a ShareServer, and the
replies come back cut into random pieces (as TCP may deliver them), or stop (a closed
connection), or come with another tag or garbled. A booted system runs serve_ninep over it, so
the transport's lock is used by real session threads.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from euralios.boot import System, boot
from euralios.std import STDIN, SyscallError, abi
from euralios.std.sync import Wakeup
from machine.share import ShareServer
from tests.support.guest import run_body
from vfs.ninep import TransportError, serve_ninep
from vfs.ninep.tcp import StreamTransport

MNT = "/mnt/share"


class FakeStream:
    """A byte stream to a ShareServer: each written frame is answered; reads hand the answer
    back in random pieces. `mangle(frame)` may change a reply; `hang_up` ends the stream."""

    def __init__(self, server: ShareServer, seed: int = 0) -> None:
        self.server = server
        self.rng = random.Random(seed)
        self.pending = bytearray()
        self.hang_up = False
        self.mangle = lambda frame: frame
        self.writes = 0
        self.concurrent = 0  # the most exchanges in flight at once (the transport serialises)
        self._in_flight = 0

    async def write_all(self, data: bytes | str) -> None:
        assert isinstance(data, bytes)
        self.writes += 1
        self._in_flight += 1
        self.concurrent = max(self.concurrent, self._in_flight)
        reply = self.server.handle_frame(data)
        assert reply is not None
        self.pending += self.mangle(reply)

    async def read(self, n: int = 65536) -> bytes:
        await trio.sleep(0)  # let another thread try to get in between, as a real wait would
        if self.hang_up:
            return b""
        take = self.rng.randint(1, max(1, min(n, len(self.pending))))
        out = bytes(self.pending[:take])
        del self.pending[:take]
        if not self.pending:
            self._in_flight -= 1
        return out

    async def close(self) -> None:
        self.hang_up = True


async def with_stream(stream: FakeStream, body: Any, timeout: float = 30) -> None:
    async with boot() as system:

        async def server(proc: Any) -> int:
            transport = StreamTransport(stream, await Wakeup.new(proc.sys), 65536)
            return await serve_ninep(proc, STDIN, transport)

        async def prog(proc: Any) -> None:
            mine, theirs = await proc.sys.new_rendezvous()
            await proc.exec(server, stdin=theirs, name="ninep")
            await proc.sys.mount(MNT, mine)
            await body(proc, system)

        await run_body(system, prog, timeout=timeout)
        assert "[vfs.server]" not in system.klog(), system.klog()


async def test_concurrent_sessions_share_one_stream_cut_in_random_pieces(tmp_path: Path) -> None:
    files = {f"f{i}": random.Random(i).randbytes(40_000 + i * 1000) for i in range(4)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    stream = FakeStream(ShareServer(tmp_path), seed=5)

    async def body(proc: Any, system: System) -> None:
        got: dict[str, bytes] = {}
        done = await Wakeup.new(proc.sys)

        async def reader(name: str) -> None:
            got[name] = await proc.read_file(f"{MNT}/{name}")
            await proc.write_file(f"{MNT}/{name}.copy", got[name])
            if len(got) == len(files):
                await done.wake()

        for name in files:
            await proc.spawn_thread(reader, name)
        await done.sleep()
        assert got == files

    await with_stream(stream, body)
    assert stream.concurrent == 1  # never two exchanges interleaved on the stream
    for name, data in files.items():
        assert (tmp_path / f"{name}.copy").read_bytes() == data


@pytest.mark.parametrize("fault", ["hang_up", "wrong_tag", "garbled"])
async def test_a_broken_stream_gives_every_client_an_error(tmp_path: Path, fault: str) -> None:
    (tmp_path / "f").write_text("data")
    stream = FakeStream(ShareServer(tmp_path), seed=6)

    async def body(proc: Any, system: System) -> None:
        assert await proc.read_file(f"{MNT}/f") == b"data"
        if fault == "hang_up":
            stream.hang_up = True
        elif fault == "wrong_tag":
            stream.mangle = lambda fr: fr[:5] + struct.pack("<H", (struct.unpack_from("<H", fr, 5)[0] + 1) & 0xFFFF) + fr[7:]
        else:
            stream.mangle = lambda fr: fr[:4] + b"\xee" + fr[5:]  # a type that is no message
        for _ in range(2):  # the first meets the fault; the next fails at once
            with pytest.raises(SyscallError) as e:
                await proc.read_file(f"{MNT}/f")
            assert e.value.code == abi.RESET
        writes = stream.writes
        with pytest.raises(SyscallError):
            await proc.listdir(MNT)
        assert stream.writes == writes  # nothing more is sent on a failed stream

    await with_stream(stream, body)


async def test_the_transport_refuses_calls_after_a_failure_without_waiting(tmp_path: Path) -> None:
    stream = FakeStream(ShareServer(tmp_path))
    stream.hang_up = True

    async with boot() as system:
        async def prog(proc: Any) -> int:
            t = StreamTransport(stream, await Wakeup.new(proc.sys), 65536)
            for _ in range(2):
                with pytest.raises(TransportError, match="closed the connection"):
                    await t.rpc(b"\x0b\x00\x00\x00\x78\x01\x00\x01\x00\x00\x00")
            return 0

        with trio.fail_after(10):
            assert await system.run(prog) == 0
