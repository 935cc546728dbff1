"""The stack with a card that offloads (net/offloads.py): checksums left to the card, TSO
segments cut by it, DATA_VALID and large receive on the way in -- between two NetStacks joined
by a software "card" written here (scapy cuts and checksums), on a virtual clock."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether

from net.config import parse_config
from net.offloads import NO_OFFLOAD, NicOffloads
from net.stack import NetStack
from proto.tcp import ESTABLISHED, TcpConnection
from proto.wire.checksum import finish, ones_sum
from proto.wire.vnet import GsoType, HdrFlags, VnetHdr

A_MAC, B_MAC = "52:54:00:12:34:56", "52:54:00:00:00:02"
A_IP, B_IP = "10.0.2.15", "10.0.2.2"
TSO = NicOffloads(tx_csum=True, tso_max=65535, rx_csum=True, large_receive=True)


def stack(mac: str, ip: str, offloads: NicOffloads = NicOffloads(), **tcp: float) -> NetStack:
    return NetStack(mac, config=parse_config(f"{ip}/24"), seed=1, offloads=offloads, tcp_options=tcp or None)


def complete_checksum(frame: bytes, hdr: VnetHdr) -> bytes:
    """What a card does for NEEDS_CSUM: the sum from csum_start on (the field holds the
    pseudo-header's), complemented, stored at csum_start + csum_offset."""
    at = hdr.csum_start + hdr.csum_offset
    csum = finish(ones_sum(frame[hdr.csum_start:]))
    return frame[:at] + csum.to_bytes(2, "big") + frame[at + 2:]


def cut(frame: bytes, hdr: VnetHdr) -> list[bytes]:
    """A card's TSO: gso_size pieces, each with the headers, its own IP length, id, sequence
    number and checksums; PSH and FIN only on the last."""
    head, payload = frame[: hdr.hdr_len], frame[hdr.hdr_len:]
    pieces = []
    for i, off in enumerate(range(0, len(payload), hdr.gso_size)):
        pkt = Ether(head + payload[off: off + hdr.gso_size])
        pkt[IP].len = pkt[IP].chksum = pkt[TCP].chksum = None
        pkt[IP].id = (pkt[IP].id + i) & 0xFFFF
        pkt[TCP].seq = (pkt[TCP].seq + off) & 0xFFFFFFFF
        if off + hdr.gso_size < len(payload):
            pkt[TCP].flags = int(pkt[TCP].flags) & ~0x09
        pieces.append(bytes(pkt))
    return pieces


class Card:
    """Both ends' wire: A's frames through the software card, B's as they are."""

    def __init__(self, a: NetStack, b: NetStack) -> None:
        self.a, self.b = a, b
        self.now = 0.0
        self.a_frames = 0  # what A's stack handed its card
        self.wire = 0  # what the card put on the wire for A
        self.headers: list[VnetHdr] = []

    def a_to_wire(self, hdr: VnetHdr, frame: bytes) -> list[bytes]:
        self.a_frames += 1
        if hdr == NO_OFFLOAD:
            out = [frame]
        else:
            self.headers.append(hdr)
            assert hdr.needs_csum and (hdr.csum_start, hdr.csum_offset) == (34, 16)
            out = cut(frame, hdr) if hdr.is_gso else [complete_checksum(frame, hdr)]
        self.wire += len(out)
        return out

    def run(self, until: Callable[[], bool], app: Callable[[], None] = lambda: None) -> None:
        for _ in range(200_000):
            app()
            moved = False
            for hdr, frame in self.a.frames_out(self.now):
                for piece in self.a_to_wire(hdr, frame):
                    self.b.frame_received(piece, self.now)
                moved = True
            for hdr, frame in self.b.frames_out(self.now):
                assert hdr == NO_OFFLOAD
                self.a.frame_received(frame, self.now)
                moved = True
            if until():
                return
            if not moved:
                times = [t for t in (self.a.next_deadline(), self.b.next_deadline()) if t is not None]
                assert times, "stalled"
                self.now = max(self.now + 0.001, min(times))
                self.a.poll(self.now)
                self.b.poll(self.now)
        raise AssertionError("did not finish")


def connected(a_off: NicOffloads, **tcp: float) -> tuple[Card, TcpConnection, TcpConnection]:
    a, b = stack(A_MAC, A_IP, a_off, **tcp), stack(B_MAC, B_IP, **tcp)
    listener = b.tcp_listen(70)
    card = Card(a, b)
    conn = a.tcp_connect(B_IP, 70, 0.0)
    got: list[TcpConnection] = []

    def accepted() -> bool:
        c = b.tcp_accept(listener)
        if c is not None:
            got.append(c)
        return bool(got) and conn.state == ESTABLISHED

    card.run(accepted)
    return card, conn, got[0]


def transfer(card: Card, conn: TcpConnection, peer: TcpConnection, data: bytes) -> bytes:
    sent, got = [0], bytearray()

    def app() -> None:
        if sent[0] < len(data):
            sent[0] += conn.send(data[sent[0]: sent[0] + 65536])
        got.extend(peer.receive())

    card.run(lambda: len(got) == len(data), app)
    return bytes(got)


def test_without_offloads_every_frame_is_whole_and_headerless() -> None:
    card, conn, peer = connected(NicOffloads())
    data = random.Random(1).randbytes(100_000)
    assert transfer(card, conn, peer, data) == data
    assert card.headers == [] and card.a_frames == card.wire
    assert card.a.stats()["offloads"] == {"tx_csum": False, "tso_max": 0, "rx_csum": False, "large_receive": False}


def test_checksum_offload_leaves_the_pseudo_header_sum_for_the_card() -> None:
    a = stack(A_MAC, A_IP, NicOffloads(tx_csum=True))
    a.frame_received(bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=B_MAC) / ARP(op=1, hwsrc=B_MAC, psrc=B_IP, pdst=A_IP)),
                     0.0)  # B asks for us: we learn it, so the RST leaves at once
    a.frame_received(bytes(Ether(dst=A_MAC, src=B_MAC) / IP(src=B_IP, dst=A_IP) / TCP(dport=9, flags="S")), 0.0)
    (hdr, rst), = [(h, f) for h, f in a.frames_out(0.0) if len(f) > 42]  # not the ARP reply: the RST
    a_frame = Ether(rst)
    assert hdr == VnetHdr(HdrFlags.NEEDS_CSUM, GsoType.NONE, 0, 0, 34, 16)
    field = a_frame[TCP].chksum
    assert field == ~finish(int.from_bytes(bytes.fromhex("0a00020f0a000202"), "big") + 6 + 20) & 0xFFFF
    done = Ether(complete_checksum(rst, hdr))
    expect = done.copy()
    expect[TCP].chksum = None
    assert done[TCP].chksum == Ether(bytes(expect))[TCP].chksum  # what scapy computes
    assert done[IP].chksum == Ether(rst)[IP].chksum  # the IP header is always whole


def test_tso_sends_the_same_stream_in_far_fewer_frames() -> None:
    data = random.Random(2).randbytes(300_000)
    plain, conn0, peer0 = connected(NicOffloads(), snd_buf=1 << 20)
    assert transfer(plain, conn0, peer0, data) == data
    card, conn, peer = connected(TSO, snd_buf=1 << 20)
    assert transfer(card, conn, peer, data) == data
    gso = [h for h in card.headers if h.is_gso]
    assert gso and all(h.gso_size == conn.send_mss == 1448 and h.hdr_len == 14 + 20 + 32 for h in gso)
    assert card.wire >= plain.wire - 10  # the wire sees MSS-sized segments either way
    assert card.a_frames * 4 < plain.a_frames  # ...but the stack hands its card far fewer


def test_data_valid_spares_the_l4_checksum_but_not_the_ip_header_one() -> None:
    def bad_tcp(s: NetStack) -> bytes:
        pkt = Ether(dst=A_MAC, src=B_MAC) / IP(src=B_IP, dst=A_IP) / TCP(dport=9, flags="S", chksum=0x1234)
        return bytes(pkt)

    valid = VnetHdr(HdrFlags.DATA_VALID)
    for offloads, dropped in ((NicOffloads(), 1), (NicOffloads(rx_csum=True), 0)):
        s = stack(A_MAC, A_IP, offloads)
        s.frame_received(bad_tcp(s), 0.0, valid)
        assert s.counters["drop_l4_checksum"] == dropped
        assert s.counters["tcp_resets_sent"] == 1 - dropped  # taken: the closed port answers
    s = stack(A_MAC, A_IP, NicOffloads(rx_csum=True))
    bad_ip = bytes(Ether(dst=A_MAC, src=B_MAC) / IP(src=B_IP, dst=A_IP, chksum=0x4321) / TCP(dport=9, flags="S"))
    s.frame_received(bad_ip, 0.0, valid)
    assert s.counters["drop_ip_checksum"] == 1


@pytest.mark.parametrize("large_receive", [False, True])
def test_a_large_segment_is_taken_whole_only_with_large_receive(large_receive: bool) -> None:
    card, conn, peer = connected(NicOffloads(rx_csum=True, large_receive=large_receive))
    a = card.a
    # B's side as the host's kernel would coalesce it: 60 000 bytes in one segment.
    seg = Ether(dst=A_MAC, src=B_MAC) / IP(src=B_IP, dst=A_IP) / TCP(
        sport=70, dport=conn.local[1], flags="PA", seq=peer._snd_nxt, ack=conn._snd_nxt,  # noqa: SLF001
        window=8192, options=[("NOP", None), ("NOP", None), ("Timestamp", (peer._ts.clock(card.now), conn._ts.recent))],  # noqa: SLF001
    ) / bytes(60_000)
    hdr = VnetHdr(HdrFlags.DATA_VALID, GsoType.TCPV4, 66, 1448)
    a.frame_received(bytes(seg), card.now, hdr)
    if large_receive:
        assert conn.available == 60_000 and a.counters["drop_offload"] == 0
    else:
        assert conn.available == 0 and a.counters["drop_offload"] == 1


def test_tso_needs_checksum_offload() -> None:
    with pytest.raises(ValueError, match="checksum"):
        NicOffloads(tso_max=65535)
    with pytest.raises(RuntimeError, match="frames_out"):
        stack(A_MAC, A_IP, NicOffloads(tx_csum=True)).frames_to_send(0.0)
