"""proto/wire: codecs round-trip, the struct paths match scapy byte for byte, corruption and
malformed input are rejected, and nothing but DecodeError ever escapes decode_frame."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from proto.wire import ChecksumError, DecodeError, arp, ethernet, icmp, ip_to_bytes, ipv4, tcp, udp
from proto.wire.checksum import internet_checksum
from proto.wire.frame import Frame, build_arp, build_icmp_echo, build_tcp_frame, build_udp_frame, decode_frame
from proto.wire.tcp import (
    ACK,
    FIN,
    OPT_EOL,
    OPT_MSS,
    OPT_NOP,
    OPT_SACK,
    OPT_SACK_PERMITTED,
    OPT_TIMESTAMP,
    OPT_WSCALE,
    PSH,
    SYN,
    TcpSegment,
)

MAC_A, MAC_B = "52:54:00:12:34:56", "52:55:0a:00:02:02"
IP_A, IP_B = "10.0.2.15", "10.0.2.2"

_SCAPY_OPT = {
    OPT_EOL: "EOL",
    OPT_NOP: "NOP",
    OPT_MSS: "MSS",
    OPT_WSCALE: "WScale",
    OPT_SACK_PERMITTED: "SAckOK",
    OPT_SACK: "SAck",
    OPT_TIMESTAMP: "Timestamp",
}


def scapy_options(options: tuple) -> list:
    out = []
    for kind, value in options:
        if kind == OPT_SACK_PERMITTED:
            value = b""
        out.append((_SCAPY_OPT[kind], value))
    return out


def random_options(rng: random.Random) -> tuple:
    """A random, valid option list of at most 40 bytes (before padding)."""
    choices = [
        ((OPT_MSS, rng.randrange(65536)), 4),
        ((OPT_WSCALE, rng.randrange(15)), 3),
        ((OPT_SACK_PERMITTED, None), 2),
        ((OPT_TIMESTAMP, (rng.getrandbits(32), rng.getrandbits(32))), 10),
        ((OPT_NOP, None), 1),
        ((OPT_SACK, tuple(rng.getrandbits(32) for _ in range(2 * rng.randint(1, 2)))), 0),
    ]
    opts, size = [], 0
    for _ in range(rng.randint(0, 6)):
        opt, n = rng.choice(choices)
        n = n or 2 + 4 * len(opt[1])  # type: ignore[arg-type]
        if size + n > 39:
            break
        opts.append(opt)
        size += n
    if opts and rng.random() < 0.2:
        opts.append((OPT_EOL, None))
    return tuple(opts)


def random_segment(rng: random.Random, *, with_options: bool = True) -> TcpSegment:
    return TcpSegment(
        rng.randrange(65536),
        rng.randrange(65536),
        rng.getrandbits(32),
        rng.getrandbits(32),
        rng.randrange(0x200),
        rng.randrange(65536),
        rng.randbytes(rng.choice([0, 1, 2, 3, rng.randrange(1461), 1460])),
        random_options(rng) if with_options else (),
        rng.randrange(65536),
    )


def scapy_ip_tcp(seg: TcpSegment, src: str, dst: str, *, ident: int = 0, ttl: int = 64):
    return (
        IP(src=src, dst=dst, id=ident, ttl=ttl, flags="DF")
        / TCP(
            sport=seg.src_port,
            dport=seg.dst_port,
            seq=seg.seq,
            ack=seg.ack,
            flags=seg.flags,
            window=seg.window,
            urgptr=seg.urgent,
            options=scapy_options(seg.options),
        )
        / Raw(seg.payload)
    )


# --------------------------------------------------------------------------- struct vs scapy


def test_fast_path_build_equals_scapy_for_many_random_segments() -> None:
    rng = random.Random(2024)
    for _ in range(400):
        seg = random_segment(rng)
        src, dst = f"10.{rng.randrange(256)}.0.{rng.randrange(256)}", f"192.168.{rng.randrange(256)}.9"
        ident, ttl = rng.randrange(65536), rng.randrange(1, 256)
        ours = tcp.build_ipv4_tcp(seg, src, dst, ident=ident, ttl=ttl)
        assert ours == bytes(scapy_ip_tcp(seg, src, dst, ident=ident, ttl=ttl)), seg
        assert tcp.encode(seg, src, dst) == ours[20:]


def test_fast_path_parse_agrees_with_scapy_dissect() -> None:
    rng = random.Random(99)
    for _ in range(300):
        seg = random_segment(rng)
        raw = bytes(scapy_ip_tcp(seg, IP_A, IP_B, ident=7))
        ip_hdr, parsed = tcp.parse_ipv4_tcp(raw)
        assert parsed.payload == seg.payload and parsed.seq == seg.seq and parsed.flags == seg.flags
        # Re-encoding what we parsed gives the same bytes (padding EOLs become explicit).
        assert tcp.build_ipv4_tcp(parsed, IP_A, IP_B, ident=7) == raw
        dis = IP(raw)
        assert (ip_hdr.src, ip_hdr.dst, ip_hdr.ident, ip_hdr.ttl, ip_hdr.flags) == (
            dis.src,
            dis.dst,
            dis.id,
            dis.ttl,
            int(dis.flags),
        )
        t = dis[TCP]
        assert (parsed.src_port, parsed.dst_port, parsed.ack, parsed.window, parsed.urgent) == (
            t.sport,
            t.dport,
            t.ack,
            t.window,
            t.urgptr,
        )
        assert parsed.mss == dict(t.options).get("MSS")
        assert parsed.timestamps == dict(t.options).get("Timestamp")


def test_parse_with_ip_options_takes_the_general_path() -> None:
    seg = TcpSegment(1, 2, 3, 4, ACK, 5, b"data")
    hdr = ipv4.Ipv4Header(IP_A, IP_B, ipv4.PROTO_TCP, options=b"\x01\x01\x01\x00")
    raw = ipv4.encode(hdr, tcp.encode(seg, IP_A, IP_B))
    assert raw[0] == 0x46
    ip_hdr, parsed = tcp.parse_ipv4_tcp(raw)
    assert parsed == seg and ip_hdr.options == b"\x01\x01\x01\x00"
    assert bytes(IP(src=IP_A, dst=IP_B, proto=6, flags="DF", id=0, options=[b"\x01\x01\x01\x00"]) / Raw(raw[24:]))[:24] == raw[:24]


def test_ethernet_matches_scapy() -> None:
    raw = ethernet.encode(ethernet.EthernetHeader(MAC_B, MAC_A, 0x1234), b"xyz")
    assert raw == bytes(Ether(dst=MAC_B, src=MAC_A, type=0x1234) / Raw(b"xyz"))
    hdr, payload = ethernet.decode(raw)
    assert hdr == ethernet.EthernetHeader(MAC_B, MAC_A, 0x1234) and payload == b"xyz"
    assert len(ethernet.encode(hdr, b"", pad=True)) == 60


def test_ipv4_round_trip_and_matches_scapy() -> None:
    hdr = ipv4.Ipv4Header(IP_A, IP_B, 17, ttl=3, tos=0x10, ident=999, flags=0, frag_offset=0)
    raw = ipv4.encode(hdr, b"payload")
    assert raw == bytes(IP(src=IP_A, dst=IP_B, proto=17, ttl=3, tos=0x10, id=999, flags=0) / Raw(b"payload"))
    assert ipv4.decode(raw + b"\0" * 6) == (hdr, b"payload")  # Ethernet padding is cut


def test_udp_round_trip_and_matches_scapy() -> None:
    dg = udp.UdpDatagram(5353, 53, b"\x12\x34query")
    raw = udp.encode(dg, IP_A, IP_B)
    assert raw == bytes(IP(src=IP_A, dst=IP_B) / UDP(sport=5353, dport=53) / Raw(b"\x12\x34query"))[20:]
    assert udp.decode(raw, IP_A, IP_B) == dg
    frame = build_udp_frame(MAC_A, MAC_B, IP_A, IP_B, 5353, 53, dg.payload, ident=4)
    f = decode_frame(frame)
    assert f.udp == dg and f.ip is not None and f.ip.ident == 4 and f.ip.flags == ipv4.FLAG_DF


@pytest.mark.parametrize(
    ("src", "dst", "payload"),
    [(IP_A, IP_B, b""), (IP_A, IP_B, b"odd"), ("0.0.0.0", "255.255.255.255", b"dhcp" * 75)],
)
def test_ipv4_udp_and_udp_frame_match_scapy(src: str, dst: str, payload: bytes) -> None:
    """The struct UDP encoder, in IPv4 (build_ipv4_udp) and in Ethernet (build_udp_frame)."""
    ip = IP(src=src, dst=dst, ttl=9, id=77, flags="DF") / UDP(sport=68, dport=67) / Raw(payload)
    assert udp.build_ipv4_udp(src, dst, 68, 67, payload, ident=77, ttl=9) == bytes(ip)
    frame = build_udp_frame(MAC_A, "ff:ff:ff:ff:ff:ff", src, dst, 68, 67, payload, ttl=9, ident=77)
    assert frame == bytes(Ether(src=MAC_A, dst="ff:ff:ff:ff:ff:ff") / ip)


def test_udp_checksum_computed_as_zero_is_sent_as_ffff() -> None:
    """RFC 768: 0 on the wire means "no checksum", so a sum that comes out 0 is sent as 0xFFFF.
    The payload is chosen to make it so: the checksum over two zero bytes, put in their place."""
    zero = udp.encode(udp.UdpDatagram(1, 2, b"\0\0"), IP_A, IP_B)
    raw = udp.encode(udp.UdpDatagram(1, 2, zero[6:8]), IP_A, IP_B)
    assert raw[6:8] == b"\xff\xff"
    assert raw == bytes(IP(src=IP_A, dst=IP_B) / UDP(sport=1, dport=2) / Raw(zero[6:8]))[20:]
    assert udp.decode(raw, IP_A, IP_B).payload == zero[6:8]


def test_icmp_echo_frame_matches_scapy() -> None:
    for reply in (False, True):
        frame = build_icmp_echo(MAC_A, MAC_B, IP_A, IP_B, 0x1234, 7, b"ping!", reply=reply, ttl=5, ip_ident=3)
        want = (
            Ether(src=MAC_A, dst=MAC_B)
            / IP(src=IP_A, dst=IP_B, ttl=5, id=3, flags="DF")
            / ICMP(type=0 if reply else 8, id=0x1234, seq=7)
            / Raw(b"ping!")
        )
        assert frame == bytes(want)


def test_udp_zero_checksum_means_none() -> None:
    raw = bytearray(udp.encode(udp.UdpDatagram(1, 2, b"abc"), IP_A, IP_B))
    raw[6:8] = b"\0\0"
    assert udp.decode(bytes(raw), IP_A, IP_B).payload == b"abc"


def test_icmp_round_trip_and_matches_scapy() -> None:
    msg = icmp.IcmpMessage(icmp.ECHO_REQUEST, 0, 0x1234, 7, b"ping!")
    raw = icmp.encode(msg)
    assert raw == bytes(ICMP(type=8, code=0, id=0x1234, seq=7) / Raw(b"ping!"))
    assert icmp.decode(raw) == msg
    unreachable = icmp.IcmpMessage(icmp.DEST_UNREACHABLE, 4, 0, 1400, b"hdr")
    assert icmp.encode(unreachable) == bytes(ICMP(type=3, code=4, nexthopmtu=1400) / Raw(b"hdr"))
    assert icmp.decode(icmp.encode(unreachable)) == unreachable
    frame = build_icmp_echo(MAC_A, MAC_B, IP_A, IP_B, 0x1234, 7, b"ping!")
    assert decode_frame(frame).icmp == msg
    reply = decode_frame(build_icmp_echo(MAC_B, MAC_A, IP_B, IP_A, 0x1234, 7, b"ping!", reply=True))
    assert reply.icmp is not None and reply.icmp.type == icmp.ECHO_REPLY


def test_arp_round_trip_and_matches_scapy() -> None:
    req = arp.ArpPacket(arp.REQUEST, MAC_A, IP_A, "00:00:00:00:00:00", IP_B)
    raw = arp.encode(req)
    assert raw == bytes(ARP(op=1, hwsrc=MAC_A, psrc=IP_A, hwdst="00:00:00:00:00:00", pdst=IP_B))
    assert arp.decode(raw + b"\0" * 18) == req
    frame = decode_frame(build_arp(arp.REQUEST, MAC_A, IP_A, IP_B))
    assert frame.eth.dst == "ff:ff:ff:ff:ff:ff" and frame.arp == req
    reply = decode_frame(build_arp(arp.REPLY, MAC_B, IP_B, IP_A, MAC_A))
    assert reply.eth.dst == MAC_A and reply.arp == arp.ArpPacket(arp.REPLY, MAC_B, IP_B, MAC_A, IP_A)


def test_tcp_frame_round_trip() -> None:
    seg = TcpSegment(40000, 70, 2**32 - 1, 5, SYN | ACK, 1000, b"", ((OPT_MSS, 1460),))
    raw = build_tcp_frame(MAC_A, MAC_B, IP_A, IP_B, seg, ident=3)
    f = decode_frame(raw)
    assert f == Frame(ethernet.EthernetHeader(MAC_B, MAC_A, ethernet.ETH_P_IPV4), f.ip, seg)
    assert f.tcp == seg and f.ip is not None and f.ip.ident == 3 and f.udp is None and f.arp is None
    assert raw == bytes(Ether(dst=MAC_B, src=MAC_A) / scapy_ip_tcp(seg, IP_A, IP_B, ident=3))
    assert decode_frame(raw + b"\0" * 4).tcp == seg  # trailing FCS/padding ignored
    assert seg.seg_len == 1 and TcpSegment(1, 2, 3, flags=FIN | SYN, payload=b"ab").seg_len == 4


def test_every_option_kind_parses() -> None:
    opts = (
        (OPT_MSS, 1460),
        (OPT_NOP, None),
        (OPT_WSCALE, 7),
        (OPT_SACK_PERMITTED, None),
        (OPT_TIMESTAMP, (1, 2)),
        (OPT_SACK, (10, 20)),
        (OPT_EOL, None),
    )
    seg = TcpSegment(1, 2, 3, 4, ACK, 5, b"", opts)
    parsed = tcp.decode(tcp.encode(seg, IP_A, IP_B), IP_A, IP_B)
    assert parsed == seg
    assert (parsed.mss, parsed.wscale, parsed.sack_permitted, parsed.timestamps, parsed.sack_blocks) == (
        1460,
        7,
        True,
        (1, 2),
        ((10, 20),),
    )
    unknown = tcp.decode_options(b"\x1e\x04\xab\xcd")  # kind 30 (MPTCP), kept raw
    assert unknown == ((30, b"\xab\xcd"),)


def test_unrelated_frames_pass_through_raw() -> None:
    raw = ethernet.encode(ethernet.EthernetHeader(MAC_B, MAC_A, 0x86DD), b"ipv6...")
    assert decode_frame(raw).payload == b"ipv6..."
    other = ipv4.encode(ipv4.Ipv4Header(IP_A, IP_B, 47), b"gre")
    f = decode_frame(ethernet.encode(ethernet.EthernetHeader(MAC_B, MAC_A, 0x0800), other))
    assert f.payload == b"gre" and f.ip is not None and f.ip.proto == 47
    frag = ipv4.encode(ipv4.Ipv4Header(IP_A, IP_B, 6, flags=ipv4.FLAG_MF), b"x" * 40)
    f = decode_frame(ethernet.encode(ethernet.EthernetHeader(MAC_B, MAC_A, 0x0800), frag))
    assert f.payload == b"x" * 40 and f.ip is not None and f.ip.is_fragment


# --------------------------------------------------------------------------- checksums


def test_internet_checksum_matches_scapy() -> None:
    from scapy.utils import checksum

    rng = random.Random(5)
    for n in list(range(0, 40)) + [1459, 1460, 1480]:
        data = rng.randbytes(n)
        assert internet_checksum(data) == checksum(data)
    assert internet_checksum(b"\0\0") == 0xFFFF and internet_checksum(b"\xff\xff") == 0


def test_every_single_byte_corruption_of_a_tcp_datagram_is_detected() -> None:
    seg = TcpSegment(1234, 80, 1, 2, ACK | PSH, 100, bytes(range(200)), ((OPT_MSS, 1460),))
    raw = tcp.build_ipv4_tcp(seg, IP_A, IP_B)
    rng = random.Random(1)
    for pos in range(len(raw)):
        bad = bytearray(raw)
        bad[pos] ^= rng.randrange(1, 256)
        with pytest.raises(DecodeError):
            tcp.parse_ipv4_tcp(bytes(bad))


@pytest.mark.parametrize(
    ("layer", "offset"),
    [("ip", 14 + 8), ("tcp", 14 + 20 + 30), ("udp", 14 + 20 + 9), ("icmp", 14 + 20 + 9)],
)
def test_checksum_errors(layer: str, offset: int) -> None:
    if layer in ("ip", "tcp"):
        frame = build_tcp_frame(MAC_A, MAC_B, IP_A, IP_B, TcpSegment(1, 2, 3, 4, ACK, 5, b"x" * 40))
    elif layer == "udp":
        frame = build_udp_frame(MAC_A, MAC_B, IP_A, IP_B, 1, 2, b"y" * 20)
    else:
        frame = build_icmp_echo(MAC_A, MAC_B, IP_A, IP_B, 1, 2, b"z" * 20)
    bad = bytearray(frame)
    bad[offset] ^= 0x40
    with pytest.raises(ChecksumError, match=layer):
        decode_frame(bytes(bad))
    assert decode_frame(bytes(bad), verify=False).ip is not None


# --------------------------------------------------------------------------- malformed input


def _ip_frame(ip_bytes: bytes) -> bytes:
    return ethernet.encode(ethernet.EthernetHeader(MAC_B, MAC_A, ethernet.ETH_P_IPV4), ip_bytes)


def _tcp_raw(data_offset_words: int, options: bytes, payload: bytes = b"") -> bytes:
    """An IPv4+TCP datagram with a hand-made TCP header (valid checksums)."""
    from proto.wire.checksum import finish, ones_sum, pseudo_header_sum

    body = bytearray(20 + len(options) + len(payload))
    body[0:4] = b"\x00\x01\x00\x02"
    body[12] = data_offset_words << 4
    body[13] = ACK
    body[20 : 20 + len(options)] = options
    body[20 + len(options) :] = payload
    total = pseudo_header_sum(ip_to_bytes(IP_A), ip_to_bytes(IP_B), 6, len(body)) + ones_sum(bytes(body))
    body[16:18] = finish(total).to_bytes(2, "big")
    return ipv4.encode(ipv4.Ipv4Header(IP_A, IP_B, 6), bytes(body))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x01" * 13, "ethernet"),
        (_ip_frame(b"\x45" + b"\0" * 10), "shorter than"),
        (_ip_frame(b"\x44" + ipv4.encode(ipv4.Ipv4Header(IP_A, IP_B, 99), b"x" * 8)[1:]), "IHL"),
        (_ip_frame(b"\x4f" + ipv4.encode(ipv4.Ipv4Header(IP_A, IP_B, 99), b"x" * 8)[1:]), "header length"),
        (_ip_frame(b"\x65" + b"\0" * 30), "version"),
        (_ip_frame(_tcp_raw(5, b"")[:30]), "total length"),
        (_ip_frame(_tcp_raw(4, b"")), "data offset"),
        (_ip_frame(_tcp_raw(15, b"")), "data offset"),
        (_ip_frame(_tcp_raw(6, b"\x01\x01\x01\x02")), "truncated"),
        (_ip_frame(_tcp_raw(6, b"\x02\x05\x05\x00")), "bad length"),
        (_ip_frame(_tcp_raw(6, b"\x08\x01\x00\x00")), "bad length"),
        (_ip_frame(_tcp_raw(6, b"\x02\x03\x05\x00")), "expected 4"),
        (_ip_frame(_tcp_raw(7, b"\x05\x06" + b"\0" * 6)), "SACK"),
    ],
)
def test_malformed_frames_raise_decode_error(raw: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_frame(raw)


def test_malformed_udp_icmp_arp() -> None:
    with pytest.raises(DecodeError, match="length field"):
        udp.decode(b"\0\1\0\2\0\x40\0\0abc", IP_A, IP_B)
    with pytest.raises(DecodeError, match="shorter"):
        icmp.decode(b"\x08\0\0")
    with pytest.raises(DecodeError, match="not Ethernet/IPv4"):
        arp.decode(b"\0\6" + bytes(26))
    with pytest.raises(DecodeError, match="shorter"):
        arp.decode(bytes(27))


# --------------------------------------------------------------------------- fuzzing


def _valid_frames() -> list[bytes]:
    rng = random.Random(11)
    frames = [
        build_tcp_frame(MAC_A, MAC_B, IP_A, IP_B, random_segment(rng)) for _ in range(6)
    ] + [
        build_udp_frame(MAC_A, MAC_B, IP_A, IP_B, 68, 67, b"dhcp" * 10),
        build_icmp_echo(MAC_A, MAC_B, IP_A, IP_B, 1, 2, b"ping"),
        build_arp(arp.REQUEST, MAC_A, IP_A, IP_B),
        _ip_frame(ipv4.encode(ipv4.Ipv4Header(IP_A, IP_B, 6, options=b"\x07\x07\x04\x00"), tcp.encode(
            TcpSegment(1, 2, 3, 4, ACK, 5, b"opt", ((OPT_TIMESTAMP, (9, 9)),)), IP_A, IP_B))),
    ]
    return frames


VALID = _valid_frames()
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode_only_raises_decode_error(data: bytes, verify: bool = True) -> None:
    try:
        frame = decode_frame(data, verify=verify)
    except DecodeError:
        return
    assert isinstance(frame, Frame)


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data: bytes) -> None:
    _decode_only_raises_decode_error(data)


@FUZZ
@given(st.binary(max_size=120), st.sampled_from([0x0800, 0x0806]), st.sampled_from([1, 6, 17, 99]))
def test_fuzz_random_ip_and_arp_bodies(body: bytes, ethertype: int, proto: int) -> None:
    """Random bytes behind a plausible header, checksums off, so the deep parsers get fuzzed."""
    if ethertype == 0x0800 and len(body) >= 20:
        body = bytes([0x40 | (body[0] & 0xF)]) + body[1:9] + bytes([proto]) + body[10:]
    raw = ethernet.encode(ethernet.EthernetHeader(MAC_B, MAC_A, ethertype), body)
    _decode_only_raises_decode_error(raw, verify=False)
    _decode_only_raises_decode_error(raw)


@FUZZ
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(0, 2000),
    st.booleans(),
)
def test_fuzz_mutated_valid_frames(frame: bytes, flips: list, cut: int, verify: bool) -> None:
    data = bytearray(frame)
    for pos, value in flips:
        data[pos % len(data)] = value
    if cut < len(data):
        del data[cut:]
    _decode_only_raises_decode_error(bytes(data), verify=verify)


@FUZZ
@given(st.binary(min_size=0, max_size=48))
def test_fuzz_tcp_option_area(options: bytes) -> None:
    try:
        parsed = tcp.decode_options(options)
    except DecodeError:
        return
    # Whatever parses re-encodes to the same bytes up to the first EOL (the rest is padding).
    encoded = tcp.encode_options(parsed)
    end = len(encoded.rstrip(b"\0")) if encoded else 0
    assert encoded[:end] == options[:end]
