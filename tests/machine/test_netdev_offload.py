"""Offloads through the backends: send_gso and deliver_gso on the memory backend, the wrappers
(pcap records the big frame, impairment applies to segments) and the switch."""

from __future__ import annotations

import uuid
from pathlib import Path

import trio
import trio.testing
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import rdpcap

from euralios.pytest_plugin import wait_until
from machine.netdev import Backend, software_gso
from machine.netdev.impair import ImpairBackend, Impairment
from machine.netdev.memory import MemoryBackend
from machine.netdev.pcap import PcapBackend
from machine.netdev.switch import SwitchBackend
from proto.wire.checksum import finish, pseudo_header_sum
from proto.wire.frame import decode_frame
from proto.wire.vnet import GsoType, HdrFlags, VnetHdr

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def tso(payload: bytes, dst: str = B, src: str = A, mss: int = 1000) -> tuple[VnetHdr, bytes]:
    raw = bytearray(bytes(Ether(dst=dst, src=src) / IP(src="10.0.3.1", dst="10.0.3.2", id=7, flags="DF")
                          / TCP(sport=1, dport=2, seq=5, flags="PA") / Raw(payload)))
    partial = ~finish(pseudo_header_sum(raw[26:30], raw[30:34], 6, len(raw) - 34)) & 0xFFFF
    raw[50:52] = partial.to_bytes(2, "big")
    return VnetHdr(HdrFlags.NEEDS_CSUM, GsoType.TCPV4, 54, mss, 34, 16), bytes(raw)


def payload_of(frames: list[bytes]) -> bytes:
    return b"".join(decode_frame(f).tcp.payload for f in frames)  # type: ignore[union-attr]


def test_base_class_segments_and_counts_bad_headers() -> None:
    mem = MemoryBackend()
    hdr, frame = tso(bytes(range(250)) * 40)
    mem.send_gso(hdr, frame)
    assert len(mem.sent) == 10 and payload_of(mem.sent) == bytes(range(250)) * 40
    mem.send_gso(VnetHdr(HdrFlags.NONE, GsoType.TCPV4, 54, 0), frame)
    mem.send_gso(VnetHdr(HdrFlags.NEEDS_CSUM, csum_start=5000, csum_offset=0), frame[:100])
    assert mem.stats["tx_bad_offload"] == 2 and len(mem.sent) == 10


async def test_memory_backend_takes_and_offers_large_frames(nursery: trio.Nursery) -> None:
    mem = MemoryBackend(gso=True)
    hdr, frame = tso(b"x" * 5000)
    mem.send_gso(hdr, frame)
    assert mem.sent_gso == [(hdr, frame)] and not mem.sent
    plain: list[bytes] = []
    large: list[tuple[VnetHdr, bytes]] = []
    mem.inject_gso(hdr, frame)  # before run: held
    nursery.start_soon(mem.run, plain.append, lambda h, f: large.append((h, f)))
    await trio.testing.wait_all_tasks_blocked()
    assert large == [(hdr, frame)] and not plain
    # without deliver_gso the card gets checksummed MTU-sized frames
    other, got = MemoryBackend(), []
    nursery.start_soon(other.run, got.append)
    await trio.testing.wait_all_tasks_blocked()
    other.inject_gso(hdr, frame)
    assert len(got) == 5 and payload_of(got) == b"x" * 5000


def test_software_gso_delivers_plain_frames() -> None:
    got: list[bytes] = []
    counters: dict[str, int] = {}
    deliver = software_gso(got.append, counters)
    hdr, frame = tso(b"y" * 2500)
    deliver(hdr, frame)
    deliver(VnetHdr(HdrFlags.NONE, GsoType.UDP, 42, 100), frame)
    assert payload_of(got) == b"y" * 2500 and counters == {"rx_bad_offload": 1}


async def test_pcap_records_the_big_frame_as_the_guest_sent_it(tmp_path: Path, nursery: trio.Nursery) -> None:
    mem = MemoryBackend()
    pcap = PcapBackend(mem, tmp_path / "o.pcap")
    hdr, frame = tso(b"z" * 60000)
    pcap.send_gso(hdr, frame)
    large: list[bytes] = []
    nursery.start_soon(pcap.run, lambda f: None, lambda h, f: large.append(f))
    await trio.testing.wait_all_tasks_blocked()
    mem.gso = True
    mem.inject_gso(hdr, frame)
    pcap.close()
    assert [bytes(p) for p in rdpcap(str(tmp_path / "o.pcap"))] == [frame, frame]
    assert len(mem.sent) == 60 and large == [frame]


async def test_impairment_applies_to_segments(nursery: trio.Nursery) -> None:
    mem = MemoryBackend(gso=True)
    imp = ImpairBackend(mem, Impairment(loss=30, seed=3))
    hdr, frame = tso(b"w" * 50000)
    imp.send_gso(hdr, frame)
    stats = imp.stats
    assert not mem.sent_gso and stats["impair_tx_frames"] == 50
    assert 0 < stats["impair_tx_lost"] < 50 and len(mem.sent) == 50 - stats["impair_tx_lost"]
    # impaired receive: the inner backend is asked for plain frames only
    got: list[bytes] = []
    large: list[bytes] = []
    nursery.start_soon(imp.run, got.append, lambda h, f: large.append(f))
    await trio.testing.wait_all_tasks_blocked()
    mem.inject_gso(hdr, frame)
    assert not large and 0 < len(got) < 50
    # dir=rx leaves the transmit side alone: the big frame goes on whole
    only_rx = ImpairBackend(mem, Impairment(loss=30, seed=3, directions="rx"))
    only_rx.send_gso(hdr, frame)
    assert mem.sent_gso == [(hdr, frame)]


class Port:
    def __init__(self, name: str, large: bool) -> None:
        self.backend = SwitchBackend(name)
        self.large = large
        self.plain: list[bytes] = []
        self.gso: list[bytes] = []

    async def run(self) -> None:
        await self.backend.run(self.plain.append, (lambda h, f: self.gso.append(f)) if self.large else None)


async def test_switch_carries_large_frames_whole_and_plain_ports_cut_them(nursery: trio.Nursery) -> None:
    name = f"hoff-{uuid.uuid4().hex[:8]}"
    hub, big, small = Port(name, True), Port(name, True), Port(name, False)
    try:
        for port in (hub, big, small):
            nursery.start_soon(port.run)
        await trio.testing.wait_all_tasks_blocked()
        assert hub.backend.is_hub
        hdr, frame = tso(b"v" * 30000, dst="ff:ff:ff:ff:ff:ff")  # flooded: every port
        big.backend.send_gso(hdr, frame)
        await wait_until(lambda: hub.gso and len(small.plain) == 30, timeout=5, what="the flood")
        assert hub.gso == [frame] and payload_of(small.plain) == b"v" * 30000 and not small.gso
        hdr, frame = tso(b"u" * 20000, dst=B, src=A)
        small.backend.send_gso(hdr, frame)  # a port may still send big frames; the hub cuts them
        await wait_until(lambda: len(big.gso) == 1 and len(hub.gso) == 2, timeout=5, what="the second flood")
        assert big.gso == [frame]
        hdr, frame = tso(b"t" * 3000, dst=A, src=B)  # learnt: A is at `small`; only it gets this
        hub.backend.send_gso(hdr, frame)
        await wait_until(lambda: len(small.plain) == 33, timeout=5, what="the forwarded frame")
        assert payload_of(small.plain[30:]) == b"t" * 3000 and len(big.gso) == 1
        small.backend.send_gso(VnetHdr(HdrFlags.NEEDS_CSUM, GsoType.TCPV4, 54, 0, 34, 16), frame)
        assert small.backend.stats["tx_bad_offload"] == 1
    finally:
        for port in (small, big, hub):
            port.backend.close()


def test_backend_is_the_contract() -> None:
    assert Backend.send_gso is not None and Backend.run.__code__.co_varnames[:3] == ("self", "deliver", "deliver_gso")
