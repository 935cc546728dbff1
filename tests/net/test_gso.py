"""proto/wire/gso: software checksum and TCP segmentation, byte for byte against scapy-built
segments, and properties over random payload and segment sizes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from proto.wire import DecodeError
from proto.wire.checksum import finish, pseudo_header_sum
from proto.wire.frame import decode_frame
from proto.wire.gso import check, complete_checksum, segment, wire_frames
from proto.wire.vnet import GsoType, HdrFlags, VnetHdr

SRC, DST = "10.0.2.15", "93.184.216.34"
MACS = {"src": "52:54:00:12:34:56", "dst": "52:55:0a:00:02:02"}
OPTIONS = [("NOP", None), ("NOP", None), ("Timestamp", (123456, 654321))]


def pseudo_partial(frame: bytes, l4_off: int, proto: int) -> int:
    """What a sender with checksum offload leaves in the L4 checksum field: the pseudo-header's
    folded sum, not complemented."""
    length = len(frame) - l4_off
    return ~finish(pseudo_header_sum(frame[26:30], frame[30:34], proto, length)) & 0xFFFF


def scapy_tcp(payload: bytes, *, seq: int, flags: str, ident: int, options: list | None = None) -> bytes:
    pkt = (Ether(**MACS) / IP(src=SRC, dst=DST, id=ident, flags="DF", ttl=64, tos=0x10)
           / TCP(sport=40000, dport=80, seq=seq, ack=777, flags=flags, window=29200, options=options or [])
           / Raw(payload))
    return bytes(pkt)


def super_frame(payload: bytes, *, seq: int = 1000, flags: str = "PA", ident: int = 0x1234,
                options: list | None = None) -> tuple[VnetHdr, bytes, int]:
    """A TSO frame as a guest hands it over: NEEDS_CSUM, the pseudo-header sum in the field."""
    raw = bytearray(scapy_tcp(payload, seq=seq, flags=flags, ident=ident, options=options))
    hlen = 14 + 20 + (raw[46] >> 4) * 4
    raw[50:52] = pseudo_partial(bytes(raw), 34, 6).to_bytes(2, "big")
    return VnetHdr(HdrFlags.NEEDS_CSUM, GsoType.TCPV4, hlen, 0, 34, 16), bytes(raw), hlen


def gso(hdr: VnetHdr, size: int) -> VnetHdr:
    return VnetHdr(hdr.flags, hdr.gso_type, hdr.hdr_len, size, hdr.csum_start, hdr.csum_offset)


def test_segments_equal_scapy_byte_for_byte() -> None:
    payload = bytes(range(256)) * 40 + b"tail"  # 10244 bytes, 8 segments of 1448 and a short one
    hdr, frame, _ = super_frame(payload, flags="FPAC", options=OPTIONS)
    got = segment(gso(hdr, 1448), frame)
    chunks = [payload[i : i + 1448] for i in range(0, len(payload), 1448)]
    assert len(got) == len(chunks) == 8
    for i, (seg, chunk) in enumerate(zip(got, chunks, strict=True)):
        flags = "A" + ("C" if i == 0 else "") + ("FP" if i == len(chunks) - 1 else "")
        want = scapy_tcp(chunk, seq=1000 + i * 1448, flags=flags, ident=0x1234 + i, options=OPTIONS)
        assert seg == want, i


def test_ident_and_sequence_wrap() -> None:
    hdr, frame, _ = super_frame(bytes(3000), seq=0xFFFFFF00, ident=0xFFFF)
    got = segment(gso(hdr, 1000), frame)
    assert [decode_frame(s).ip.ident for s in got] == [0xFFFF, 0, 1]  # type: ignore[union-attr]
    assert [decode_frame(s).tcp.seq for s in got] == [0xFFFFFF00, 0x2E8, 0x6D0]  # type: ignore[union-attr]


def test_a_frame_that_fits_is_one_frame_with_its_checksums_done() -> None:
    hdr, frame, _ = super_frame(b"x" * 100)
    assert segment(gso(hdr, 1460), frame) == [scapy_tcp(b"x" * 100, seq=1000, flags="PA", ident=0x1234)]
    hdr, frame, _ = super_frame(b"", flags="A")
    assert segment(gso(hdr, 1460), frame) == [scapy_tcp(b"", seq=1000, flags="A", ident=0x1234)]


def test_complete_checksum_matches_scapy() -> None:
    for payload in (b"", b"a", b"hello world" * 50, bytes(range(256)) * 5 + b"odd"):
        hdr, frame, _ = super_frame(payload)
        want = scapy_tcp(payload, seq=1000, flags="PA", ident=0x1234)
        plain = VnetHdr(HdrFlags.NEEDS_CSUM, csum_start=34, csum_offset=16)
        got = complete_checksum(plain, frame)
        assert got == want or (want[50:52] == b"\0\0" and got == want[:50] + b"\xff\xff" + want[52:])
        assert wire_frames(plain, frame) == [got]


def test_complete_checksum_udp_and_nothing_to_do() -> None:
    pkt = bytearray(bytes(Ether(**MACS) / IP(src=SRC, dst=DST) / UDP(sport=5, dport=53) / Raw(b"query")))
    want = bytes(pkt)
    pkt[40:42] = pseudo_partial(bytes(pkt), 34, 17).to_bytes(2, "big")
    assert complete_checksum(VnetHdr(HdrFlags.NEEDS_CSUM, csum_start=34, csum_offset=6), bytes(pkt)) == want
    assert complete_checksum(VnetHdr(), b"anything") == b"anything"
    assert wire_frames(VnetHdr(), b"anything") == [b"anything"]


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 65535 - 40 - 12), mss=st.integers(1, 9000), seq=st.integers(0, 2**32 - 1),
       seed=st.binary(min_size=1, max_size=64))
def test_segments_give_the_payload_back_and_verify(size: int, mss: int, seq: int, seed: bytes) -> None:
    if -(-size // mss) > 4000:
        mss = -(-size // 4000)  # keep an example quick: at most 4000 segments
    payload = (seed * (size // len(seed) + 1))[:size]
    hdr, frame, hlen = super_frame(payload, seq=seq, flags="FPA", options=OPTIONS)
    got = segment(gso(hdr, mss), frame)
    assert len(got) == max(1, -(-size // mss))
    data = b""
    for i, raw in enumerate(got):
        f = decode_frame(raw)  # verifies the IPv4 and TCP checksums
        assert f.tcp is not None and f.ip is not None
        assert len(f.tcp.payload) <= mss and len(raw) - hlen == len(f.tcp.payload)
        assert f.tcp.seq == (seq + len(data)) & 0xFFFFFFFF
        last = i == len(got) - 1
        assert bool(f.tcp.flags & 0x09) == last  # FIN and PSH on the last segment only
        data += f.tcp.payload
    assert data == payload


def test_odd_and_tiny_segment_sizes() -> None:
    payload = b"abcdefghijk"
    hdr, frame, _ = super_frame(payload)
    got = segment(gso(hdr, 3), frame)
    assert b"".join(decode_frame(s).tcp.payload for s in got) == payload  # type: ignore[union-attr]
    assert len(got) == 4


def _bad(frame: bytes, offset: int, value: bytes) -> bytes:
    return frame[:offset] + value + frame[offset + len(value) :]


@pytest.mark.parametrize("change", ["size0", "udp", "v6", "short", "ethertype", "proto", "fragment", "ihl",
                                    "totlen", "doff", "hdr_len", "huge"])
def test_malformed_input_is_a_decode_error(change: str) -> None:
    hdr, frame, _ = super_frame(b"z" * 3000)
    hdr = gso(hdr, 1000)
    if change == "size0":
        hdr = gso(hdr, 0)
    elif change == "udp":
        hdr = VnetHdr(HdrFlags.NEEDS_CSUM, GsoType.UDP, 42, 1000, 34, 6)
    elif change == "v6":
        hdr = VnetHdr(HdrFlags.NEEDS_CSUM, GsoType.TCPV6, 74, 1000, 54, 16)
    elif change == "short":
        frame = frame[:50]
    elif change == "ethertype":
        frame = _bad(frame, 12, b"\x86\xdd")
    elif change == "proto":
        frame = _bad(frame, 23, b"\x11")
    elif change == "fragment":
        frame = _bad(frame, 20, b"\x20\x00")
    elif change == "ihl":
        frame = _bad(frame, 14, b"\x44")
    elif change == "totlen":
        frame = _bad(frame, 16, (len(frame) - 13).to_bytes(2, "big"))
    elif change == "doff":
        frame = _bad(frame, 46, b"\x40")
    elif change == "hdr_len":
        hdr = VnetHdr(hdr.flags, hdr.gso_type, len(frame) + 1, 1000, 34, 16)
    elif change == "huge":
        frame = frame + bytes(70000)
    with pytest.raises(DecodeError):
        wire_frames(hdr, frame)


def test_checksum_position_outside_the_frame_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        complete_checksum(VnetHdr(HdrFlags.NEEDS_CSUM, csum_start=34, csum_offset=16), bytes(40))
    with pytest.raises(DecodeError):
        complete_checksum(VnetHdr(HdrFlags.NEEDS_CSUM, csum_start=60, csum_offset=0), bytes(60))


def test_ones_sum_of_segments_is_independent_of_the_stale_field() -> None:
    """The big frame's checksum field may hold anything (partial, stale): segments ignore it."""
    hdr, frame, _ = super_frame(b"q" * 2000)
    garbage = _bad(frame, 50, b"\xde\xad")
    assert segment(gso(hdr, 1000), garbage) == segment(gso(hdr, 1000), frame)


def test_check_accepts_what_can_be_done_and_refuses_the_rest() -> None:
    hdr, frame, _ = super_frame(b"z" * 3000)
    check(gso(hdr, 1000), frame)
    check(VnetHdr(), b"")
    with pytest.raises(DecodeError):
        check(gso(hdr, 0), frame)
    with pytest.raises(DecodeError):
        check(VnetHdr(HdrFlags.NEEDS_CSUM, csum_start=len(frame), csum_offset=0), frame)
