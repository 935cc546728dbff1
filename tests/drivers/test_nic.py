"""drivers/pci and drivers/rtl8139 end to end: a booted system with an RTL8139 whose wire is an
in-memory backend; test programs talk to /pci and /dev/nic as any user program would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing
from nic_harness import BROADCAST, MAC, PEER, frame, read_frame, run, start_server, write_frame

from euralios.boot import System, boot
from euralios.pytest_plugin import wait_until
from euralios.std import Memory, Message, abi
from euralios.std.fs import send_bytes, take_bytes
from euralios.std.protocols.nic import FEATURES, GET_FEATURES, READ_FRAMES_HDR, WRITE_READ_FRAMES_HDR
from machine.netdev.memory import MemoryBackend

FIND_DEVICE, READ_BAR, ENABLE_BUS_MASTERING = 256, 257, 258
ADDRESS, NOTFOUND, BAR = 384, 385, 386
GET_MAC_ADDRESS, MAC_ADDRESS = 260, 300
NIC_ADDRESS = 0x8000_1800


@pytest.fixture
async def backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
async def system(backend: MemoryBackend) -> AsyncIterator[System]:
    async with boot(nic=backend) as s:
        start_server(s, "drivers/pci.py", "/pci")
        yield s


@pytest.fixture
async def nic_system(system: System) -> AsyncIterator[System]:
    start_server(system, "drivers/rtl8139.py", "/dev/nic")
    await system.wait_for_output(r"\[rtl8139\] MAC address 52:54:00:12:34:56", 10)
    yield system


# -------------------------------------------------------------------------------------------- /pci

async def test_pci_find_device_and_read_bar(system: System) -> None:
    async def program(proc: Any) -> None:
        h, _ = await proc.sys.open("/pci")
        r = await proc.sys.rcall(h, FIND_DEVICE, 0x10EC, 0x8139)  # spec §16.4 row 54
        assert (r.tag, r.d2, r.d3) == (ADDRESS, NIC_ADDRESS, 0)
        r = await proc.sys.rcall(h, FIND_DEVICE, 0x1234, 0x5678)
        assert (r.tag, r.d2, r.d3) == (NOTFOUND, 0xFFFF_FFFF_FFFF_FFFF, 0)
        r = await proc.sys.rcall(h, READ_BAR, NIC_ADDRESS, 6)
        assert r.tag == NOTFOUND
        r = await proc.sys.rcall(h, READ_BAR, NIC_ADDRESS, 0)
        assert (r.tag, r.d2, r.d3) == (BAR, 0xC001, 0)
        r = await proc.sys.rcall(h, READ_BAR, 0x8000_F800, 0)  # nothing at slot 31
        assert r.tag == NOTFOUND
        r = await proc.sys.rcall(h, FIND_DEVICE, 0x8086, 0x7010)  # function 1 of slot 1 is found too
        assert (r.tag, r.d2) == (ADDRESS, 0x8000_0900)

    await run(system, program)
    assert "[pci] Device 0000:03:00 [10EC:8139] Ethernet Controller" in system.output()


async def test_pci_enable_bus_mastering_with_and_without_reply(system: System) -> None:
    nic = system.machine.nic
    assert nic is not None and not nic.pci.bus_master

    async def program(proc: Any) -> None:
        h, _ = await proc.sys.open("/pci")
        await proc.sys.send(h, Message(ENABLE_BUS_MASTERING, NIC_ADDRESS, 0))  # the seed's way: no reply
        await proc.sys.rcall(h, FIND_DEVICE, 0x10EC, 0x8139)  # served after it, so it is done
        assert nic.pci.bus_master
        r = await proc.sys.rcall(h, ENABLE_BUS_MASTERING, NIC_ADDRESS, 0)
        assert r.tag == abi.OK
        r = await proc.sys.rcall(h, ENABLE_BUS_MASTERING, 0x8000_F800, 0)
        assert r.tag == NOTFOUND

    await run(system, program)


async def test_pci_query_lists_devices_with_bar_sizes(system: System) -> None:
    async def program(proc: Any) -> None:
        info = await proc.stat_dir("/pci")
        devices = {d["name"]: d for d in info["subdirs"]}
        assert list(devices) == ["8086_1237", "8086_7000", "8086_7010", "8086_7113", "1234_1111", "10EC_8139"]
        nic = devices["10EC_8139"]
        assert (nic["address"], nic["class"], nic["subclass"], nic["irq"], nic["location"]) == \
            (NIC_ADDRESS, 2, 0, 11, "00:03.0")
        assert nic["bars"][0] == {"index": 0, "kind": "io", "address": 0xC000, "size": 256, "value": 0xC001}
        assert nic["bars"][1]["kind"] == "mem" and nic["bars"][1]["size"] == 256
        vga = devices["1234_1111"]
        assert vga["bars"][0]["size"] == 16 << 20 and vga["bars"][0]["prefetchable"]
        assert devices["8086_1237"]["irq"] is None
        assert "10EC_8139" in await proc.listdir("/pci")

    await run(system, program)
    nic = system.machine.nic
    assert nic is not None and nic.pci.bar_value(0) == 0xC001  # sizing restored the BAR
    assert nic.pci.command & 0x3 == 0x3  # and the decoding


async def test_pci_bad_messages_get_an_error_and_the_server_goes_on(system: System) -> None:
    async def program(proc: Any) -> None:
        h, _ = await proc.sys.open("/pci")
        r = await proc.sys.rcall(h, 999, 1, 2)
        assert r.tag == abi.ERROR_UNKNOWN_MESSAGE
        before = system.kernel.stats()["frames_used"]
        for _ in range(30):  # chunks sent with bad requests are freed, not leaked
            r = await proc.sys.rcall(h, abi.WRITE, 4096, await send_bytes(proc.sys, b"x" * 4096))
            assert r.tag == abi.ERROR_UNKNOWN_MESSAGE
        assert system.kernel.stats()["frames_used"] - before < 5
        r = await proc.sys.rcall(h, FIND_DEVICE, 0x10EC, 0x8139)
        assert r.tag == ADDRESS

    await run(system, program)


# ---------------------------------------------------------------------------------------- /dev/nic

async def test_mac_address_and_empty_read(nic_system: System) -> None:
    async def program(proc: Any) -> None:
        h, _ = await proc.sys.open("/dev/nic")
        r = await proc.sys.rcall(h, GET_MAC_ADDRESS, 0, 0)  # spec §16.4 row 55
        assert (r.tag, r.d2, r.d3) == (MAC_ADDRESS, 0x5634_1200_5452, 0)
        r = await proc.sys.rcall(h, abi.READ, 0, 0)
        assert (r.tag, r.d2, r.d3) == (abi.EMPTY, 0, 0)
        r = await proc.sys.rcall(h, GET_FEATURES, 0, 0)  # no virtio features: no offloads
        assert (r.tag, r.d2, r.d3) == (FEATURES, 0, 0)
        r = await proc.sys.rcall(h, READ_FRAMES_HDR, 0, 0)  # so no header batches either
        assert r.tag == abi.ERROR_UNKNOWN_MESSAGE
        r = await proc.sys.rcall(h, WRITE_READ_FRAMES_HDR, 1, await send_bytes(proc.sys, bytes(1)))
        assert r.tag == abi.ERROR_UNKNOWN_MESSAGE

    await run(nic_system, program)


async def test_write_reaches_the_wire_byte_exact(nic_system: System, backend: MemoryBackend) -> None:
    out = [frame(BROADCAST, MAC, i, size) for i, size in enumerate((60, 1514, 342, 64, 1000, 77))]

    async def program(proc: Any) -> None:
        h, _ = await proc.sys.open("/dev/nic")
        for f in out:
            r = await write_frame(proc, h, f)
            assert (r.tag, r.d2) == (abi.OK, len(f))
        r = await write_frame(proc, h, out[0][:20])  # short frames are padded to the minimum
        assert (r.tag, r.d2) == (abi.OK, 20)
        await proc.sys.send(h, Message(abi.WRITE, 60, await send_bytes(proc.sys, out[0])))  # seed style

    await run(nic_system, program)
    sent = await backend.wait_sent(len(out) + 2)
    assert sent[: len(out)] == out
    assert sent[len(out)] == out[0][:20] + bytes(40)
    assert sent[len(out) + 1] == out[0]


async def test_injected_frames_are_read_back_in_order(nic_system: System, backend: MemoryBackend) -> None:
    incoming = [frame(MAC, PEER, i, 60 + 97 * i) for i in range(10)]
    incoming.insert(3, frame(PEER, MAC, 99))  # for another station: the card filters it out
    incoming.insert(5, frame(BROADCAST, PEER, 98))
    expected = [f for f in incoming if f[:6] != PEER]

    async def program(proc: Any) -> None:
        h, _ = await proc.sys.open("/dev/nic")
        for f in incoming:
            backend.inject(f)
        got = [await read_frame(proc, h) for _ in expected]
        assert got == expected
        assert await read_frame(proc, h, blocking=False) is None

    await run(nic_system, program)


async def test_many_frames_through_the_wrapping_ring(nic_system: System, backend: MemoryBackend) -> None:
    sizes = [60 + (i * 331) % 1455 for i in range(120)]  # ~90 KB: the 8 KiB ring wraps many times
    incoming = [frame(MAC, PEER, i, size) for i, size in enumerate(sizes)]

    async def program(proc: Any) -> None:
        h, _ = await proc.sys.open("/dev/nic")
        for i in range(0, len(incoming), 4):  # bursts that fit the ring
            for f in incoming[i:i + 4]:
                backend.inject(f)
            for f in incoming[i:i + 4]:
                assert await read_frame(proc, h) == f

    await run(nic_system, program)


@pytest.mark.parametrize(("ring", "burst", "fit"), [(65536, 50, 43), (8192, 12, 5)])
async def test_a_burst_larger_than_the_ring_loses_frames_not_order(system: System, backend: MemoryBackend,
                                                                   ring: int, burst: int, fit: int) -> None:
    # Frames of 1514 bytes take 1524 in the ring (header, CRC, dword alignment): 43 fit in the
    # default 64 KiB ring and 5 in an 8 KiB one (--ring 8192); the rest overflow.
    start_server(system, "drivers/rtl8139.py", "/dev/nic", ["--ring", str(ring)])
    await system.wait_for_output(r"\[rtl8139\] MAC address", 10)
    incoming = [frame(MAC, PEER, i, 1514) for i in range(burst)]

    async def program(proc: Any) -> None:
        h, _ = await proc.sys.open("/dev/nic")
        for f in incoming:
            backend.inject(f)
        got: list[bytes] = []
        info: dict[str, Any] = {}

        async def accounted() -> bool:  # every frame either read or counted as missed by the card
            while (f := await read_frame(proc, h, blocking=False)) is not None:
                got.append(f)
            info.update(json.loads(await take_bytes(proc.sys, await proc.sys.rcall(h, abi.QUERY))))
            return len(got) + info["missed"] == len(incoming)

        await wait_until(accounted, timeout=5, what="every frame read or missed", sleep=proc.sleep)
        assert got == incoming[:fit]
        assert info["missed"] == burst - fit and info["overflows"] >= 1
        backend.inject(incoming[0])  # the driver and the card carry on
        assert await read_frame(proc, h) == incoming[0]

    await run(system, program)


async def test_blocking_read_does_not_hold_up_writes(nic_system: System, backend: MemoryBackend) -> None:
    got: list[bytes | None] = []

    async def reader(proc: Any, h: int) -> None:
        got.append(await read_frame(proc, h))

    async def program(proc: Any) -> None:
        h, _ = await proc.sys.open("/dev/nic")
        h2 = await proc.sys.copy_rendezvous(h)
        await proc.spawn_thread(reader, proc, h2)
        await trio.testing.wait_all_tasks_blocked()  # the reader is now blocked in READ(1) inside the driver
        for i in range(3):
            r = await write_frame(proc, h, frame(BROADCAST, MAC, i))
            assert r.tag == abi.OK
        assert got == []
        backend.inject(frame(MAC, PEER, 7))
        await trio.testing.wait_all_tasks_blocked()  # the reader has had its frame
        assert got == [frame(MAC, PEER, 7)]

    await run(nic_system, program)
    assert len(backend.sent) == 3


async def test_query_and_bad_messages(nic_system: System, backend: MemoryBackend) -> None:
    async def program(proc: Any) -> None:
        h, _ = await proc.sys.open("/dev/nic")
        await write_frame(proc, h, frame(BROADCAST, MAC, 1))
        r = await proc.sys.rcall(h, 999, 0, 0)
        assert r.tag == abi.ERROR_UNKNOWN_MESSAGE
        r = await proc.sys.rcall(h, abi.WRITE, 5000, await send_bytes(proc.sys, b"x" * 100))  # len > chunk
        assert r.tag == abi.ERROR_INVALID_VALUE
        r = await proc.sys.rcall(h, abi.WRITE, 1793, await send_bytes(proc.sys, b"x" * 4096))  # > 1792
        assert r.tag == abi.ERROR_INVALID_VALUE
        r = await proc.sys.rcall(h, 77, 1, await send_bytes(proc.sys, b"junk"))
        assert r.tag == abi.ERROR_UNKNOWN_MESSAGE
        info = json.loads(await take_bytes(proc.sys, await proc.sys.rcall(h, abi.QUERY)))
        assert info["mac"] == "52:54:00:12:34:56" and info["tx"] == 1 and info["irq"] == 11
        assert {"rx", "tx", "drops"} <= set(info)
        r = await proc.sys.rcall(h, GET_MAC_ADDRESS, 0, 0)  # still serving
        assert r.tag == MAC_ADDRESS

    await run(nic_system, program)
    assert len(backend.sent) == 1


async def test_rtl8139_driver_exits_when_there_is_no_card() -> None:
    async with boot() as system:  # no NIC on the PCI bus
        start_server(system, "drivers/pci.py", "/pci")
        proc = start_server(system, "drivers/rtl8139.py", "/dev/nic")
        with trio.fail_after(10):
            await proc.ended.wait()
        assert proc.status == 1
        assert "[rtl8139] Device not found. Exiting." in system.output()


# ------------------------------------------------------------------------------- batched frames

WRITE_FRAMES, READ_FRAMES = 261, 262


def batch(frames: list[bytes]) -> bytes:
    return b"".join(len(f).to_bytes(2, "little") + f for f in frames)


def unbatch(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 2], "little")
        out.append(data[pos + 2:pos + 2 + n])
        pos += 2 + n
    return out


async def test_write_frames_sends_a_batch_in_order_and_gives_the_chunk_back(nic_system: System,
                                                                             backend: MemoryBackend) -> None:
    first = [frame(BROADCAST, MAC, i, size) for i, size in enumerate((60, 1514, 342, 20, 1000, 77, 1514, 64, 99))]
    second = [frame(BROADCAST, MAC, 50 + i, 1514) for i in range(30)]  # ~45 KB: the card's 4 buffers, many times

    async def program(proc: Any) -> None:
        sys = proc.sys
        h, _ = await sys.open("/dev/nic")
        data = batch(first)
        r = await sys.rcall(h, WRITE_FRAMES, len(data), await send_bytes(sys, data))
        assert r.tag == abi.OK and r.d2 == len(first) and isinstance(r.d3, Memory)
        _, size, _ = await sys.chunk_info(r.d3.vaddr)
        assert size == 2 * abi.PAGE  # our two-page chunk came back: too small for the next batch
        await sys.free(r.d3.vaddr)
        data = batch(second)
        mem = await send_bytes(sys, data)
        r = await sys.rcall(h, WRITE_FRAMES, len(data), mem)
        assert (r.tag, r.d2) == (abi.OK, len(second))
        sys.gate.store(r.d3.vaddr, batch(first[:2]))  # the returned chunk carries the next batch
        r = await sys.rcall(h, WRITE_FRAMES, len(batch(first[:2])), r.d3)
        assert (r.tag, r.d2) == (abi.OK, 2)
        await sys.free(r.d3.vaddr)
        info = json.loads(await take_bytes(sys, await sys.rcall(h, abi.QUERY)))
        assert info["tx"] == len(first) + len(second) + 2 and info["tx_batches"] == 3

    await run(nic_system, program)
    sent = await backend.wait_sent(len(first) + len(second) + 2)
    padded = [f + bytes(60 - len(f)) if len(f) < 60 else f for f in first]
    assert sent == padded + second + padded[:2]


async def test_malformed_write_frames_sends_nothing(nic_system: System, backend: MemoryBackend) -> None:
    good = frame(BROADCAST, MAC, 1)

    async def program(proc: Any) -> None:
        sys = proc.sys
        h, _ = await sys.open("/dev/nic")
        for data in (batch([good]) + b"\x05",  # a length cut in half
                     batch([good]) + (200).to_bytes(2, "little") + b"short",  # longer than the batch
                     batch([good, b""]),  # an empty frame
                     batch([good, b"x" * 1793])):  # past the chip's largest frame
            r = await sys.rcall(h, WRITE_FRAMES, len(data), await send_bytes(sys, data))
            assert r.tag == abi.ERROR_INVALID_VALUE
        r = await sys.rcall(h, WRITE_FRAMES, 5000, await send_bytes(sys, batch([good])))  # longer than the chunk
        assert r.tag == abi.ERROR_INVALID_VALUE
        r = await sys.rcall(h, WRITE_FRAMES, 5, 0)  # no chunk at all
        assert r.tag in (abi.ERROR_INVALID_VALUE, abi.ERROR_UNKNOWN_MESSAGE)
        info = json.loads(await take_bytes(sys, await sys.rcall(h, abi.QUERY)))
        assert info["tx"] == 0

    await run(nic_system, program)
    assert backend.sent == []


async def test_read_frames_returns_every_queued_frame_in_the_callers_chunk(nic_system: System,
                                                                           backend: MemoryBackend) -> None:
    incoming = [frame(MAC, PEER, i, 60 + 97 * i) for i in range(12)]

    async def program(proc: Any) -> None:
        sys = proc.sys
        h, _ = await sys.open("/dev/nic")
        r = await sys.rcall(h, READ_FRAMES, 0, 0)  # nothing queued, no chunk: EMPTY
        assert (r.tag, r.d2, r.d3) == (abi.EMPTY, 0, 0)
        mem = Memory((await sys.malloc(1))[0])
        r = await sys.rcall(h, READ_FRAMES, 0, mem)  # nothing queued: EMPTY, and our chunk back
        assert r.tag == abi.EMPTY and isinstance(r.d3, Memory)
        for f in incoming:
            backend.inject(f)
        got: list[bytes] = []
        chunk = r.d3
        while len(got) < len(incoming):  # one page holds a few frames; the rest wait their turn
            r = await sys.rcall(h, READ_FRAMES, 1, chunk)
            assert r.tag == abi.DATA and isinstance(r.d3, Memory) and 0 < r.d2 <= abi.PAGE
            batch_frames = unbatch(sys.gate.load(r.d3.vaddr, r.d2))
            assert batch_frames
            got += batch_frames
            chunk = r.d3
        assert got == incoming
        await sys.free(chunk.vaddr)
        for f in incoming:
            backend.inject(f)
        await trio.testing.wait_all_tasks_blocked()  # the card and driver have taken them all
        r = await sys.rcall(h, READ_FRAMES, 0, 0)  # no chunk: the driver's own, all of them
        assert r.tag == abi.DATA and unbatch(await take_bytes(sys, r)) == incoming

    await run(nic_system, program)


async def test_blocking_read_frames_waits_for_a_frame(nic_system: System, backend: MemoryBackend) -> None:
    got: list[list[bytes]] = []

    async def reader(proc: Any, h: int) -> None:
        r = await proc.sys.rcall(h, READ_FRAMES, 1, Memory((await proc.sys.malloc(16))[0]))
        got.append(unbatch(await take_bytes(proc.sys, r)))

    async def program(proc: Any) -> None:
        h, _ = await proc.sys.open("/dev/nic")
        await proc.spawn_thread(reader, proc, await proc.sys.copy_rendezvous(h))
        await trio.testing.wait_all_tasks_blocked()  # the reader is now blocked inside the driver
        data = batch([frame(BROADCAST, MAC, 1)])
        r = await proc.sys.rcall(h, WRITE_FRAMES, len(data), await send_bytes(proc.sys, data))  # not held up
        assert r.tag == abi.OK
        await proc.sys.free(r.d3.vaddr)
        assert got == []
        backend.inject(frame(MAC, PEER, 7))
        await trio.testing.wait_all_tasks_blocked()  # the reader has had its frame
        assert got == [[frame(MAC, PEER, 7)]]

    await run(nic_system, program)
