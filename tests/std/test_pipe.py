"""euralios.std.pipe: a writer's text reaches the reader in order, a full pipe holds the writer,
the reader sees the end when the writers are gone, and a writer learns the reader has gone."""

from __future__ import annotations

from typing import Any

from euralios.std import SyscallError, abi
from euralios.std.pipe import Pipe


async def until(proc: Any, cond: Any, what: str) -> None:
    for _ in range(5000):
        if cond():
            return
        await proc.sys.yield_()
    raise AssertionError(f"never happened: {what}")


async def test_text_goes_through_in_order_then_the_end_then_keys(guest: Any) -> None:
    async def body(proc: Any) -> None:
        pipe = await Pipe.open(proc)
        got: list[str] = []
        after: list[int | None] = []

        async def writer(p: Any) -> int:
            for i in range(50):
                await p.write(f"line {i}\n")
            return 0

        async def reader(p: Any) -> int:
            while line := await p.read_line(echo=False):
                got.append(line)
            after.append(await p.read_key())  # a key sent after the end still arrives
            return 0

        await pipe.put_key(ord("q"))  # typed before any text: it still comes after the end
        try:
            w = await proc.exec(writer, stdout=pipe.write_end)
            r = await proc.exec(reader, stdin=pipe.read_end)
            assert await w.wait() == 0
            assert await r.wait() == 0
        finally:
            await pipe.close()
        assert got == [f"line {i}\n" for i in range(50)]
        assert after == [ord("q")]

    await guest(body)


async def test_a_full_pipe_holds_the_writer_until_the_reader_reads(guest: Any) -> None:
    async def body(proc: Any) -> None:
        pipe = await Pipe.open(proc, limit=4096)
        sent: list[int] = []
        go: list[bool] = []
        total: list[int] = []

        async def writer(p: Any) -> int:
            for _ in range(64):
                await p.write(b"x" * 1024)
                sent.append(1)
            return 0

        async def reader(p: Any) -> int:
            await until(p, lambda: bool(go), "the test lets the reader go")
            n = 0
            while (await p.read_key()) is not None:
                n += 1
            total.append(n)
            return 0

        try:
            w = await proc.exec(writer, stdout=pipe.write_end)
            r = await proc.exec(reader, stdin=pipe.read_end)
            # The writer stops a few KiB in (the limit, and the one chunk the output thread holds).
            await until(proc, lambda: len(sent) >= 4, "the writer filled the pipe")
            for _ in range(500):
                await proc.sys.yield_()
            assert 4 <= len(sent) <= 7, len(sent)
            assert pipe.buffered <= 4096 + 1024
        finally:
            go.append(True)
        try:
            assert await w.wait() == 0 and await r.wait() == 0
        finally:
            await pipe.close()
        assert total == [64 * 1024] and len(sent) == 64

    await guest(body)


async def test_a_writer_is_told_closed_once_the_reader_has_gone(guest: Any) -> None:
    async def body(proc: Any) -> None:
        pipe = await Pipe.open(proc)
        error: list[int] = []

        async def yes(p: Any) -> int:
            try:
                while True:
                    await p.write("y\n")
            except SyscallError as e:
                error.append(e.code)
            return 3

        async def head(p: Any) -> int:
            for _ in range(3):
                await p.read_line(echo=False)
            return 0

        try:
            w = await proc.exec(yes, stdout=pipe.write_end)
            r = await proc.exec(head, stdin=pipe.read_end)
            assert await r.wait() == 0
            assert await w.wait() == 3
        finally:
            await pipe.close()
        assert error == [abi.CLOSED]

    await guest(body)
