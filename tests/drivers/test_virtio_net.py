"""drivers/virtio_net against the virtio-net-pci model in a booted system: test programs talk to
/dev/nic as net/ does, the wire is an in-memory backend. Frames both ways, the MAC and the
negotiated features, interrupts, rings that wrap, offloads through header batches and finished
in software for plain clients, bad requests answered while the driver lives on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio
import trio.testing
from nic_harness import BROADCAST, MAC, PEER, frame, read_frame, run, start_server, write_frame
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from euralios.boot import System, boot
from euralios.std import Chunk, Memory, abi
from euralios.std.fs import send_bytes, take_bytes
from euralios.std.protocols.nic import (
    FEATURES,
    GET_FEATURES,
    GET_MAC_ADDRESS,
    HDR_WRITE_BYTES,
    MAC_ADDRESS,
    READ_FRAMES,
    READ_FRAMES_HDR,
    VNET_HDR_BYTES,
    WRITE_FRAMES,
    WRITE_FRAMES_HDR,
    WRITE_READ_FRAMES_HDR,
    pack_frames,
    pack_hdr_frames,
    split_frames,
    split_hdr_frames,
)
from euralios.std.protocols.pci import CONFIG, NOTFOUND, READ_CONFIG
from machine.netdev.memory import MemoryBackend
from machine.virtio.net import VirtioNet
from proto.virtio import Feature, feature_names
from proto.wire.checksum import finish, pseudo_header_sum
from proto.wire.vnet import HDR_LEN, GsoType, HdrFlags, VnetHdr

NIC_ADDRESS = 0x8000_1800
OFFLOADS = Feature.NET_CSUM | Feature.NET_HOST_TSO4 | Feature.NET_GUEST_CSUM | Feature.NET_GUEST_TSO4
BASIC = Feature.VERSION_1 | Feature.NET_MAC | Feature.NET_STATUS | Feature.NET_MRG_RXBUF | Feature.EVENT_IDX


@pytest.fixture
async def backend() -> MemoryBackend:
    return MemoryBackend()


async def start(backend: MemoryBackend, args: list[str] | None = None) -> AsyncIterator[System]:
    async with boot(nic=backend, card="virtio") as s:
        start_server(s, "drivers/pci.py", "/pci")
        start_server(s, "drivers/virtio_net.py", "/dev/nic", args)
        await s.wait_for_output(r"\[virtio-net\] MAC address 52:54:00:12:34:56", 10)
        yield s


@pytest.fixture
async def system(backend: MemoryBackend) -> AsyncIterator[System]:
    async for s in start(backend):
        yield s


def card(system: System) -> VirtioNet:
    nic = system.machine.nic
    assert isinstance(nic, VirtioNet)
    return nic


def tcp_super_frame(payload: bytes, seq: int = 1000) -> tuple[VnetHdr, bytes]:
    """A TSO frame as a stack with offloads hands it over: NEEDS_CSUM, the pseudo-header sum."""
    raw = bytearray(bytes(Ether(src="52:54:00:12:34:56", dst="02:00:00:00:00:02")
                          / IP(src="10.0.2.2", dst="10.0.2.15", id=7, flags="DF")
                          / TCP(sport=80, dport=40000, seq=seq, ack=1, flags="PA", window=65535) / Raw(payload)))
    partial = ~finish(pseudo_header_sum(bytes(raw[26:30]), bytes(raw[30:34]), 6, len(raw) - 34)) & 0xFFFF
    raw[50:52] = partial.to_bytes(2, "big")
    return VnetHdr(HdrFlags.NEEDS_CSUM, GsoType.TCPV4, 54, 1460, 34, 16), bytes(raw)


def valid_tcp(f: bytes) -> bytes:
    """The TCP payload of a frame whose IPv4 and TCP checksums are what scapy computes afresh."""
    pkt = Ether(f)
    sums = (pkt[IP].chksum, pkt[TCP].chksum)
    del pkt[IP].chksum
    del pkt[TCP].chksum
    again = Ether(bytes(pkt))
    assert (again[IP].chksum, again[TCP].chksum) == sums
    return bytes(again[TCP].payload)


# -------------------------------------------------------------------------------------- bring-up

async def test_negotiates_logs_features_and_answers_mac_and_features(system: System) -> None:
    nic = card(system)
    assert nic.features == BASIC | OFFLOADS
    assert nic.driver_ok and nic.info()["error"] is None
    names = " ".join(feature_names(nic.features))
    assert any(f"virtio-net: features {names}" in line for _, line in system.kernel.klog.lines)

    async def program(proc: Any) -> None:
        h, _ = await proc.sys.open("/dev/nic")
        r = await proc.sys.rcall(h, GET_MAC_ADDRESS, 0, 0)
        assert (r.tag, r.d2.to_bytes(6, "little")) == (MAC_ADDRESS, MAC)
        r = await proc.sys.rcall(h, GET_FEATURES, 0, 0)
        assert (r.tag, r.d2) == (FEATURES, nic.features)

    await run(system, program)


async def test_no_offloads_negotiates_the_basic_set_and_refuses_header_batches(backend: MemoryBackend) -> None:
    async for system in start(backend, ["--no-offloads"]):
        assert card(system).features == BASIC

        async def program(proc: Any) -> None:
            h, _ = await proc.sys.open("/dev/nic")
            r = await proc.sys.rcall(h, READ_FRAMES_HDR, 0, 0)
            assert r.tag == abi.ERROR_UNKNOWN_MESSAGE
            batch = (60).to_bytes(2, "little") + VnetHdr().pack() + frame(PEER, MAC, 2, 60)
            r = await proc.sys.rcall(h, WRITE_READ_FRAMES_HDR, len(batch), await send_bytes(proc.sys, batch))
            assert r.tag == abi.ERROR_UNKNOWN_MESSAGE  # nothing sent: only frame 1 reaches the wire
            await write_frame(proc, h, frame(PEER, MAC, 1))  # still serving

        await run(system, program)
        assert backend.sent == [frame(PEER, MAC, 1)]


async def test_pci_read_config_reads_only_and_checks_its_arguments(system: System) -> None:
    async def program(proc: Any) -> None:
        h, _ = await proc.sys.open("/pci")
        r = await proc.sys.rcall(h, READ_CONFIG, NIC_ADDRESS, 0)
        assert (r.tag, r.d2, r.d3) == (CONFIG, 0x1000_1AF4, 0)
        r = await proc.sys.rcall(h, READ_CONFIG, NIC_ADDRESS, 0x34)
        assert r.d2 & 0xFF == 0x70  # the capability list starts at the newest (machine/virtio/pci.py)
        for bad in (2, 0x100, -4):
            r = await proc.sys.rcall(h, READ_CONFIG, NIC_ADDRESS, bad)
            assert r.tag == abi.ERROR_INVALID_VALUE, bad
        r = await proc.sys.rcall(h, READ_CONFIG, 0x8000_F800, 0)  # no device there
        assert r.tag == NOTFOUND

    await run(system, program)


# -------------------------------------------------------------------------------------- frames

async def test_frames_both_ways_with_interrupts(system: System, backend: MemoryBackend) -> None:
    nic = card(system)
    out = frame(PEER, MAC, 1, 60)

    async def program(proc: Any) -> None:
        h, _ = await proc.sys.open("/dev/nic")
        r = await write_frame(proc, h, out)
        assert (r.tag, r.d2) == (abi.OK, len(out))
        assert await read_frame(proc, h, blocking=False) is None
        before = nic.counters["interrupts"]
        backend.inject(frame(MAC, PEER, 2))
        backend.inject(frame(BROADCAST, PEER, 3, 1514))
        assert await read_frame(proc, h) == frame(MAC, PEER, 2)
        assert await read_frame(proc, h) == frame(BROADCAST, PEER, 3, 1514)
        assert nic.counters["interrupts"] > before  # the driver asked for them (used_event)
        r = await proc.sys.rcall(h, abi.QUERY, 0, 0)
        import json
        info = json.loads(await take_bytes(proc.sys, r))
        assert info["rx"] == 2 and info["tx"] == 1 and info["interrupts"] >= 1
        assert "HOST_TSO4" in info["features"]

    await run(system, program)
    assert backend.sent == [out]


async def test_many_frames_each_way_wrap_the_rings(system: System, backend: MemoryBackend) -> None:
    nic = card(system)
    size = nic.queues[0].size
    n = 3 * size + 17

    async def program(proc: Any) -> None:
        sys = proc.sys
        h, _ = await sys.open("/dev/nic")
        outgoing = [frame(PEER, MAC, i, 60 + i % 1400) for i in range(n)]
        for batch, count in pack_frames(outgoing, 16 * 1024):
            r = await sys.rcall(h, WRITE_FRAMES, len(batch), await send_bytes(sys, batch))
            assert (r.tag, r.d2) == (abi.OK, count)
            await sys.free(r.d3.vaddr)
        # One batch of more frames than the queue has descriptors: the driver hands over what
        # it chained, takes the finished chains back and goes on, within the one request.
        tiny = [frame(PEER, MAC, i, 60) for i in range(2 * size + 5)]
        ((batch, count),) = pack_frames(tiny, 64 * 1024)
        r = await sys.rcall(h, WRITE_FRAMES, len(batch), await send_bytes(sys, batch))
        assert (r.tag, r.d2) == (abi.OK, len(tiny))
        got: list[bytes] = []
        for start in range(0, n, 100):
            wave = [frame(MAC, PEER, i, 60 + i % 1400) for i in range(start, min(n, start + 100))]
            for f in wave:
                backend.inject(f)
            seen = 0
            while seen < len(wave):
                r = await sys.rcall(h, READ_FRAMES, 1, 0)
                assert r.tag == abi.DATA
                frames = split_frames(await take_bytes(sys, r))
                seen += len(frames)
                got += frames
        assert got == [frame(MAC, PEER, i, 60 + i % 1400) for i in range(n)]

    await run(system, program)
    assert backend.sent == [frame(PEER, MAC, i, 60 + i % 1400) for i in range(n)] + \
        [frame(PEER, MAC, i, 60) for i in range(2 * size + 5)]
    rx, tx = nic.queues
    assert rx.used_idx > size and tx.used_idx > size  # both rings went round more than once
    assert nic.counters["rx_no_buffer"] == 0 and nic.counters["needs_reset"] == 0


async def test_bad_requests_get_errors_and_the_driver_lives(system: System, backend: MemoryBackend) -> None:
    async def program(proc: Any) -> None:
        sys = proc.sys
        h, _ = await sys.open("/dev/nic")
        bad = (2000).to_bytes(2, "little") + bytes(2000)  # longer than a plain frame
        r = await sys.rcall(h, WRITE_FRAMES, len(bad), await send_bytes(sys, bad))
        assert r.tag == abi.ERROR_INVALID_VALUE
        cut = (100).to_bytes(2, "little") + bytes(50)  # the frame runs past the batch
        r = await sys.rcall(h, WRITE_FRAMES_HDR, len(cut), await send_bytes(sys, cut))
        assert r.tag == abi.ERROR_INVALID_VALUE
        r = await sys.rcall(h, 999, 0, 0)
        assert r.tag == abi.ERROR_UNKNOWN_MESSAGE
        r = await sys.rcall(h, abi.WRITE, 5000, await send_bytes(sys, bytes(100)))  # length past the chunk
        assert r.tag == abi.ERROR_INVALID_VALUE
        r = await write_frame(proc, h, frame(PEER, MAC, 9))
        assert r.tag == abi.OK

    await run(system, program)
    assert backend.sent == [frame(PEER, MAC, 9)]
    assert card(system).counters["needs_reset"] == 0


# -------------------------------------------------------------------------------------- offloads

async def test_tso_segment_through_a_header_batch_reaches_the_wire_as_it_was_sent(
        system: System, backend: MemoryBackend) -> None:
    backend.gso = True  # the wire takes offloaded frames (as the user router and tap do)
    payload = bytes(range(256)) * 40
    hdr, big = tcp_super_frame(payload)
    assert len(big) > 1514

    async def program(proc: Any) -> None:
        sys = proc.sys
        h, _ = await sys.open("/dev/nic")
        plain = frame(PEER, MAC, 5)
        ((batch, count),) = pack_hdr_frames([hdr.pack() + big, VnetHdr().pack() + plain], 64 * 1024)
        r = await sys.rcall(h, WRITE_FRAMES_HDR, len(batch), await send_bytes(sys, batch))
        assert (r.tag, r.d2) == (abi.OK, 2)

    await run(system, program)
    assert backend.sent_gso == [(hdr, big)]
    assert backend.sent == [frame(PEER, MAC, 5)]
    assert card(system).counters["tx_gso"] == 1


async def test_a_header_batch_out_carries_several_tso_segments_up_to_hdr_write_bytes(
        system: System, backend: MemoryBackend) -> None:
    backend.gso = True
    segments = [tcp_super_frame(bytes([i]) * 60000, seq=1000 + 60000 * i) for i in range(4)]
    entries = [hdr.pack() + big for hdr, big in segments]

    async def program(proc: Any) -> None:
        sys = proc.sys
        h, _ = await sys.open("/dev/nic")
        ((batch, count),) = pack_hdr_frames(entries, HDR_WRITE_BYTES)
        assert count == 4 and 64 * 1024 < len(batch) <= HDR_WRITE_BYTES
        r = await sys.rcall(h, WRITE_FRAMES_HDR, len(batch), await send_bytes(sys, batch))
        assert (r.tag, r.d2) == (abi.OK, 4)
        await sys.free(r.d3.vaddr)
        more = entries + entries[:1]  # five: past HDR_WRITE_BYTES, refused whole
        over = b"".join(len(e[HDR_LEN:]).to_bytes(2, "little") + e for e in more)
        assert len(over) > HDR_WRITE_BYTES
        for request in (WRITE_FRAMES_HDR, WRITE_READ_FRAMES_HDR):
            r = await sys.rcall(h, request, len(over), await send_bytes(sys, over))
            assert r.tag == abi.ERROR_INVALID_VALUE

    with trio.fail_after(20):
        await run(system, program)
    assert backend.sent_gso == segments


async def test_large_receive_reaches_a_header_client_whole_and_a_plain_client_segmented(
        system: System, backend: MemoryBackend) -> None:
    payload = bytes(range(251)) * 20  # 5020 bytes: 4 segments of 1460 at most
    hdr, big = tcp_super_frame(payload)

    async def program(proc: Any) -> None:
        sys = proc.sys
        h, _ = await sys.open("/dev/nic")
        backend.inject_gso(hdr, big)
        r = await sys.rcall(h, READ_FRAMES_HDR, 1, 0)
        (entry,) = split_hdr_frames(await take_bytes(sys, r))
        got = VnetHdr.unpack(entry[:VNET_HDR_BYTES])
        assert (got.gso_type, got.gso_size, entry[HDR_LEN:]) == (GsoType.TCPV4, 1460, big)
        backend.inject_gso(hdr, big)
        r = await sys.rcall(h, READ_FRAMES, 1, 0)
        segments = split_frames(await take_bytes(sys, r))
        assert len(segments) == 4 and all(len(s) <= 1514 for s in segments)
        assert b"".join(valid_tcp(s) for s in segments) == payload

    with trio.fail_after(20):
        await run(system, program)
    assert card(system).counters["rx_gso"] == 2


# -------------------------------------------------------------------------------------- exchange

async def test_write_read_frames_hdr_sends_a_batch_and_brings_back_the_queued_frames_that_fit(
        system: System, backend: MemoryBackend) -> None:
    payload = bytes(range(251)) * 20
    hdr, big = tcp_super_frame(payload)  # 5074 bytes: more than a page
    plain = VnetHdr().pack()

    def one(n: int) -> bytes:
        ((batch, _),) = pack_hdr_frames([plain + frame(PEER, MAC, n)], 64 * 1024)
        return batch

    async def program(proc: Any) -> None:
        sys = proc.sys
        h, _ = await sys.open("/dev/nic")
        for i in range(3):  # placed at once: the driver queues all three before the read wakes
            backend.inject(frame(MAC, PEER, i, 1514))
        r = await sys.rcall(h, READ_FRAMES_HDR, 1, await send_bytes(sys, bytes(1)))  # one page: two fit
        assert [e[HDR_LEN:] for e in split_hdr_frames(await take_bytes(sys, r))] == \
            [frame(MAC, PEER, 0, 1514), frame(MAC, PEER, 1, 1514)]
        batch = one(10)
        r = await sys.rcall(h, WRITE_READ_FRAMES_HDR, len(batch), await send_bytes(sys, batch))
        assert r.tag == abi.DATA  # sent, and the third frame came back in the same chunk
        assert [(e[:HDR_LEN], e[HDR_LEN:]) for e in split_hdr_frames(await take_bytes(sys, r))] == \
            [(plain, frame(MAC, PEER, 2, 1514))]
        batch = one(11)
        r = await sys.rcall(h, WRITE_READ_FRAMES_HDR, len(batch), await send_bytes(sys, batch))
        assert (r.tag, r.d2) == (abi.DATA, 0)  # nothing queued: no wait, the chunk back empty
        await sys.free(r.d3.vaddr)
        backend.inject(frame(MAC, PEER, 3, 60))
        backend.inject_gso(hdr, big)
        r = await sys.rcall(h, READ_FRAMES_HDR, 1, await send_bytes(sys, bytes(1)))
        assert [e[HDR_LEN:] for e in split_hdr_frames(await take_bytes(sys, r))] == [frame(MAC, PEER, 3, 60)]
        batch = one(12)
        r = await sys.rcall(h, WRITE_READ_FRAMES_HDR, len(batch), await send_bytes(sys, batch))
        assert (r.tag, r.d2) == (abi.DATA, 0)  # the large frame does not fit a page: left queued, not cut
        await sys.free(r.d3.vaddr)
        r = await sys.rcall(h, READ_FRAMES_HDR, 1, 0)
        (entry,) = split_hdr_frames(await take_bytes(sys, r))
        assert (VnetHdr.unpack(entry[:HDR_LEN]).gso_type, entry[HDR_LEN:]) == (GsoType.TCPV4, big)

    with trio.fail_after(20):
        await run(system, program)
    assert backend.sent == [frame(PEER, MAC, n) for n in (10, 11, 12)]


class Answering(MemoryBackend):
    """A host that answers every frame at once, its answer queued until the card's pump (a TCP
    sender's next segment, there as soon as our ACK is)."""

    def __init__(self) -> None:
        super().__init__()
        self.queued: list[bytes] = []

    def send(self, data: bytes) -> None:
        super().send(data)
        self.queued.append(data[6:12] + data[:6] + data[12:])  # back to the sender

    def pump(self) -> None:
        while self.queued and self._deliver is not None:
            self.inject(self.queued.pop(0))


def host_fixture(name: str, make: Callable[[], MemoryBackend]) -> Any:
    """A fixture ``name``: a system booted on the host ``make()`` gives, and that host."""
    @pytest.fixture(name=name)
    async def fixture() -> AsyncIterator[tuple[System, Any]]:
        host = make()
        async for s in start(host):
            yield s, host
    return fixture


answering = host_fixture("answering", Answering)


async def test_an_exchange_brings_back_the_answer_the_host_gave_during_its_kick(
        answering: tuple[System, Answering]) -> None:
    system, host = answering
    plain = VnetHdr().pack()
    nic = card(system)

    async def program(proc: Any) -> None:
        sys = proc.sys
        h, _ = await sys.open("/dev/nic")
        for n in (20, 21):
            ((batch, _),) = pack_hdr_frames([plain + frame(PEER, MAC, n)], 64 * 1024)
            before = nic.counters["interrupts"]
            r = await sys.rcall(h, WRITE_READ_FRAMES_HDR, len(batch), await send_bytes(sys, batch))
            assert r.tag == abi.DATA  # sent, and the host's answer in the same reply
            assert [e[HDR_LEN:] for e in split_hdr_frames(await take_bytes(sys, r))] == [frame(MAC, PEER, n)]
            # the driver polled the ring itself, interrupts off meanwhile: none was raised
            assert nic.counters["interrupts"] == before
        host.inject(frame(MAC, PEER, 22))  # left in the ring (interrupts still off) ...
        assert nic.counters["interrupts"] == before
        assert await read_frame(proc, h) == frame(MAC, PEER, 22)  # ... and found by the next read
        system.nursery.start_soon(inject_when_blocked, frame(MAC, PEER, 23))
        assert await read_frame(proc, h) == frame(MAC, PEER, 23)  # a reader that waits is woken
        assert nic.counters["interrupts"] > before  # by an interrupt: on again before it slept

    async def inject_when_blocked(f: bytes) -> None:
        await trio.testing.wait_all_tasks_blocked()
        host.inject(f)

    with trio.fail_after(20):
        await run(system, program)
    assert host.sent == [frame(PEER, MAC, n) for n in (20, 21)]


async def test_malformed_write_read_frames_hdr_sends_nothing_loses_nothing_and_the_driver_lives(
        system: System, backend: MemoryBackend) -> None:
    async def program(proc: Any) -> None:
        sys = proc.sys
        h, _ = await sys.open("/dev/nic")
        backend.inject(frame(MAC, PEER, 1))
        assert await read_frame(proc, h) == frame(MAC, PEER, 1)  # the driver is up and reading
        backend.inject(frame(MAC, PEER, 2))
        cut = (100).to_bytes(2, "little") + bytes(50)  # the entry runs past the batch
        r = await sys.rcall(h, WRITE_READ_FRAMES_HDR, len(cut), await send_bytes(sys, cut))
        assert r.tag == abi.ERROR_INVALID_VALUE
        good = (60).to_bytes(2, "little") + VnetHdr().pack() + frame(PEER, MAC, 3, 60)
        r = await sys.rcall(h, WRITE_READ_FRAMES_HDR, 5000, await send_bytes(sys, good))  # past the chunk
        assert r.tag == abi.ERROR_INVALID_VALUE
        r = await sys.rcall(h, WRITE_READ_FRAMES_HDR, 0, 0)  # no chunk at all
        assert r.tag == abi.ERROR_UNKNOWN_MESSAGE
        assert await read_frame(proc, h) == frame(MAC, PEER, 2)  # the queued frame is still there
        r = await write_frame(proc, h, frame(PEER, MAC, 9))
        assert r.tag == abi.OK

    with trio.fail_after(20):
        await run(system, program)
    assert backend.sent == [frame(PEER, MAC, 9)]
    assert card(system).counters["needs_reset"] == 0


async def test_the_nic_client_takes_a_large_frame_whole_right_after_small_ones(
        system: System, backend: MemoryBackend) -> None:
    """net/nic.py with header batches offers a 64 KiB chunk whatever came last: a connection's
    first large frame (after the handshake's small ones) reaches the stack as one frame, not cut
    in software into MSS frames that come a page at a time."""
    from net.nic import NicClient, nic_features

    hdr, big = tcp_super_frame(bytes(range(251)) * 40)  # 10040 bytes: 7 segments

    async def program(proc: Any) -> None:
        h, _ = await proc.sys.open("/dev/nic")
        client = NicClient(proc, h, {"nic_errors": 0, "frames_in": 0, "frames_out": 0, "nic_batches_in": 0,
                                     "nic_batches_out": 0}, await nic_features(proc.sys, h))
        backend.inject(frame(MAC, PEER, 1, 60))
        assert [f for _, f in await client.receive()] == [frame(MAC, PEER, 1, 60)]
        backend.inject_gso(hdr, big)
        ((got_hdr, got),) = await client.receive()
        assert (got_hdr.gso_type, got) == (GsoType.TCPV4, big)

    with trio.fail_after(20):
        await run(system, program)


class AnsweringThrice(Answering):
    """A host that answers every frame with three, queued until the card's pump."""

    def send(self, data: bytes) -> None:
        MemoryBackend.send(self, data)
        n = int.from_bytes(data[14:18], "big")  # frame()'s number
        self.queued.extend(frame(MAC, PEER, n + i, 1514) for i in range(3))


answering_thrice = host_fixture("answering_thrice", AnsweringThrice)


async def exchange_beside_a_sleeper(proc: Any, got: list[bytes], reads: int, n: int) -> list[bytes]:
    """Open /dev/nic, start a thread that sleeps in READ_FRAMES_HDR (``reads`` times, the frames
    it gets into ``got``), then exchange frame ``n``: the frames that came back with it."""
    sys = proc.sys
    h, _ = await sys.open("/dev/nic")

    async def reader(proc: Any, h2: int) -> None:
        for _ in range(reads):
            r = await sys.rcall(h2, READ_FRAMES_HDR, 1, Memory((await sys.malloc(16))[0]))
            got.extend(e[HDR_LEN:] for e in split_hdr_frames(await take_bytes(sys, r)))

    await proc.spawn_thread(reader, proc, await sys.copy_rendezvous(h))
    await trio.testing.wait_all_tasks_blocked()  # the reader sleeps inside the driver
    ((batch, _),) = pack_hdr_frames([VnetHdr().pack() + frame(PEER, MAC, n)], 64 * 1024)
    r = await sys.rcall(h, WRITE_READ_FRAMES_HDR, len(batch), await send_bytes(sys, batch))
    return [e[HDR_LEN:] for e in split_hdr_frames(await take_bytes(sys, r))]


async def test_a_reader_asleep_gets_what_an_exchange_left_and_interrupts_stay_on_for_it(
        answering_thrice: tuple[System, AnsweringThrice]) -> None:
    """While one thread sleeps in a blocking READ_FRAMES_HDR, another exchanges: the answers
    that do not fit the exchange's one-page chunk go to the sleeper (woken by the exchange, as
    no interrupt comes for frames the exchange drained), and the exchange leaves the receive
    interrupt on, so a frame arriving later wakes the sleeper too."""
    system, host = answering_thrice
    nic = card(system)
    got: list[bytes] = []

    async def program(proc: Any) -> None:
        assert await exchange_beside_a_sleeper(proc, got, 2, 30) == \
            [frame(MAC, PEER, 30, 1514), frame(MAC, PEER, 31, 1514)]  # what fits a page
        await trio.testing.wait_all_tasks_blocked()
        assert got == [frame(MAC, PEER, 32, 1514)]  # the third, handed to the sleeper
        before = nic.counters["interrupts"]
        host.inject(frame(MAC, PEER, 40))
        await trio.testing.wait_all_tasks_blocked()
        assert got[1:] == [frame(MAC, PEER, 40)] and nic.counters["interrupts"] > before

    with trio.fail_after(20):
        await run(system, program)


async def test_an_exchange_leaves_the_interrupt_on_for_a_reader_already_asleep(
        answering: tuple[System, Answering]) -> None:
    """The exchange takes all its answers; the next frame must still wake the thread that was
    asleep in READ_FRAMES_HDR before the exchange began (the exchange stays quiet only when
    nobody sleeps)."""
    system, host = answering
    got: list[bytes] = []

    async def program(proc: Any) -> None:
        assert await exchange_beside_a_sleeper(proc, got, 1, 50) == [frame(MAC, PEER, 50)]
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        host.inject(frame(MAC, PEER, 51))
        await trio.testing.wait_all_tasks_blocked()
        assert got == [frame(MAC, PEER, 51)]

    with trio.fail_after(20):
        await run(system, program)


class AnsweringLarge(MemoryBackend):
    """A host that answers every frame with one 64 KiB TCP segment, during the card's pump."""

    def __init__(self, hdr: VnetHdr, frame: bytes) -> None:
        super().__init__()
        self.answer = (hdr, frame)
        self.owed = 0

    def send(self, data: bytes) -> None:
        super().send(data)
        self.owed += 1

    def pump(self) -> None:
        while self.owed and self._deliver is not None:
            self.owed -= 1
            self.inject_gso(*self.answer)


LARGE = tcp_super_frame(bytes(range(251)) * 250)  # 62750 bytes of payload in one segment


answering_large = host_fixture("answering_large", lambda: AnsweringLarge(*LARGE))


async def test_a_large_frame_comes_back_in_its_receive_buffer_and_the_clients_chunk_takes_its_place(
        answering_large: tuple[System, AnsweringLarge]) -> None:
    """Page flipping (drivers/virtio_flip.py): the answer to an exchange is a 64 KiB frame; the
    reply is the receive buffer it was placed in (another chunk than the one sent: its physical
    pages say so), holding a one-entry header batch. The client sends each reply's chunk back
    with its next batch, and over many rounds nothing is lost or leaked: every frame whole, the
    ring never short of buffers, and the RAM free afterwards what it was before."""
    system, host = answering_large
    nic = card(system)
    frames = system.kernel.memctx.frames
    big = LARGE[1]
    plain = VnetHdr().pack()
    rounds = 3 * 128  # the driver's buffers, round three times
    ((batch, _),) = pack_hdr_frames([plain + frame(PEER, MAC, 60)], 64 * 1024)
    free: list[int] = []

    async def program(proc: Any) -> None:
        sys = proc.sys
        h, _ = await sys.open("/dev/nic")
        mem = await send_bytes(sys, bytes(64 * 1024))  # an ordinary chunk to start with
        for i in range(rounds):
            Chunk(sys, mem.vaddr, len(batch)).write(0, batch)
            sent_phys = (await sys.chunk_info(mem.vaddr))[2]
            r = await sys.rcall(h, WRITE_READ_FRAMES_HDR, len(batch), mem)
            assert r.tag == abi.DATA and isinstance(r.d3, Memory) and isinstance(r.d2, int)
            mem = r.d3
            _, size, phys = await sys.chunk_info(mem.vaddr)
            assert phys and phys != sent_phys and size == 17 * abi.PAGE  # a receive buffer
            (entry,) = split_hdr_frames(Chunk(sys, mem.vaddr, r.d2).read(0, r.d2))
            assert (VnetHdr.unpack(entry[:HDR_LEN]).gso_type, entry[HDR_LEN:]) == (GsoType.TCPV4, big)
            if i == 2:  # the first chunk, not a buffer, was replaced by a new one: from here on
                free.append(frames.free_count)
        free.append(frames.free_count)

    with trio.fail_after(60):
        await run(system, program)
    assert free[0] == free[1]  # the chunks went round: none made, none lost
    assert nic.counters["rx_no_buffer"] == 0 and len(host.sent) == rounds


async def test_large_frames_nobody_reads_cost_the_driver_a_bounded_number_of_buffers(
        system: System, backend: MemoryBackend) -> None:
    """Held frames keep their buffers; the driver makes new ones for the ring, but never holds
    more than CHUNKS_MAX buffer chunks: frames past that are dropped by the card, not stored.
    Read afterwards, every frame kept comes back whole, and the chunks beyond the ring's need
    (SPARE_MAX) are given back."""
    from drivers.virtio_flip import CHUNKS_MAX, FLIP_BUFFERS, FLIP_PAGES, SPARE_MAX

    nic = card(system)
    frames = system.kernel.memctx.frames
    hdr, big = LARGE
    waves, per_wave = 12, 20
    free_before = frames.free_count
    for _ in range(waves):
        for _ in range(per_wave):
            backend.inject_gso(hdr, big)
        await trio.testing.wait_all_tasks_blocked()  # the driver drained them (Held)
    made = (free_before - frames.free_count) // (FLIP_PAGES + 2)  # a chunk's pages, its PD and PT
    assert 0 < made <= CHUNKS_MAX - FLIP_BUFFERS  # some new buffers, never more than the cap
    dropped = nic.counters["rx_no_buffer"]
    assert dropped == waves * per_wave - CHUNKS_MAX  # the rest: the card had nowhere to put them
    got: list[bytes] = []

    async def program(proc: Any) -> None:
        sys = proc.sys
        h, _ = await sys.open("/dev/nic")
        while len(got) < CHUNKS_MAX:
            r = await sys.rcall(h, READ_FRAMES_HDR, 0, 0)  # no chunk to swap: copied out
            if r.tag == abi.EMPTY:
                break
            got.extend(e[HDR_LEN:] for e in split_hdr_frames(await take_bytes(sys, r)))

    with trio.fail_after(30):
        await run(system, program)
    assert len(got) == CHUNKS_MAX and all(f == big for f in got)
    assert free_before - frames.free_count <= SPARE_MAX * (FLIP_PAGES + 2) + 16  # the spares kept
