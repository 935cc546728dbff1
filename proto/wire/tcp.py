"""TCP segments (RFC 9293 3.1) and the IPv4+TCP fast path.

Everything here is ``struct``: TCP is the per-packet path of the stack. ``build_ipv4_tcp`` and
``parse_ipv4_tcp`` handle the common case -- an IPv4 header without options followed by a TCP
segment -- with one ``struct`` call for both headers and the checksums summed arithmetically from
the header fields, so the only per-byte work is one pass over the payload (see checksum.py).
The tests hold both byte-for-byte to scapy.

Options are kept as an ordered tuple of ``(kind, value)`` so that any segment re-encodes to the
same bytes; the ``mss``/``wscale``/``sack_permitted``/``timestamps``/``sack_blocks`` properties
read them. Values: EOL/NOP/SACK-permitted ``None``; MSS and window scale ``int``; timestamps
``(tsval, tsecr)``; SACK a flat tuple of block edges ``(left1, right1, left2, right2, ...)``;
any other kind the raw option data as ``bytes``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from proto.wire import ChecksumError, DecodeError, bytes_to_ip, ip_to_bytes
from proto.wire import ipv4 as _ipv4
from proto.wire.checksum import finish, ones_sum, pseudo_header_sum

__all__ = [
    "TcpSegment",
    "TcpOption",
    "OptionValue",
    "encode",
    "decode",
    "encode_options",
    "decode_options",
    "build_ipv4_tcp",
    "parse_ipv4_tcp",
    "FIN",
    "SYN",
    "RST",
    "PSH",
    "ACK",
    "URG",
    "ECE",
    "CWR",
    "OPT_EOL",
    "OPT_NOP",
    "OPT_MSS",
    "OPT_WSCALE",
    "OPT_SACK_PERMITTED",
    "OPT_SACK",
    "OPT_TIMESTAMP",
    "HEADER_LEN",
]

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
_FLAG_NAMES = "FSRPAUEC"

OPT_EOL, OPT_NOP, OPT_MSS, OPT_WSCALE, OPT_SACK_PERMITTED, OPT_SACK, OPT_TIMESTAMP = 0, 1, 2, 3, 4, 5, 8
# Required total option length (kind + len + data) for the kinds we interpret.
_FIXED_LEN = {OPT_MSS: 4, OPT_WSCALE: 3, OPT_SACK_PERMITTED: 2, OPT_TIMESTAMP: 10}

HEADER_LEN = 20
_MAX_OPTIONS = 40

# An option's value; which of these it is depends on the kind (see the module docstring), which
# the type system cannot say: readers narrow with isinstance, the encoder trusts the kind.
OptionValue = int | tuple[int, ...] | bytes | None
TcpOption = tuple[int, OptionValue]

_TCP = struct.Struct("!HHIIHHHH")
_TS_PREFIX = bytes((OPT_NOP, OPT_NOP, OPT_TIMESTAMP, 10))
_TS_VALUES = struct.Struct("!II")
_IP_TCP = struct.Struct("!BBHHHBBH4s4sHHIIHHHH")


@dataclass(frozen=True, slots=True)
class TcpSegment:
    """A TCP header and its payload, as the connection state machine sees it.

    ``flags`` is the 12-bit field after the data offset (``FIN``..``CWR`` in the low 8 bits; the
    reserved bits are kept so a decoded segment re-encodes exactly). The checksum and data
    offset are derived on encode and verified/consumed on decode, so they are not stored."""

    src_port: int
    dst_port: int
    seq: int
    ack: int = 0
    flags: int = 0
    window: int = 0
    payload: bytes = b""
    options: tuple[TcpOption, ...] = ()
    urgent: int = 0

    # --- flag and option accessors (read-only views of the fields above) ---

    @property
    def seg_len(self) -> int:
        """Sequence space the segment occupies: payload plus one each for SYN and FIN."""
        return len(self.payload) + (self.flags & SYN and 1) + (self.flags & FIN and 1)

    @property
    def mss(self) -> int | None:
        value = self._option(OPT_MSS)
        return value if isinstance(value, int) else None

    @property
    def wscale(self) -> int | None:
        value = self._option(OPT_WSCALE)
        return value if isinstance(value, int) else None

    @property
    def sack_permitted(self) -> bool:
        return any(kind == OPT_SACK_PERMITTED for kind, _ in self.options)

    @property
    def timestamps(self) -> tuple[int, int] | None:
        value = self._option(OPT_TIMESTAMP)
        return value if isinstance(value, tuple) and len(value) == 2 else None

    @property
    def sack_blocks(self) -> tuple[tuple[int, int], ...]:
        edges = self._option(OPT_SACK)
        if not isinstance(edges, tuple):
            return ()
        return tuple(zip(edges[0::2], edges[1::2], strict=True))

    def _option(self, kind: int) -> OptionValue:
        for k, value in self.options:
            if k == kind:
                return value
        return None

    def __str__(self) -> str:
        names = "".join(c for i, c in enumerate(_FLAG_NAMES) if self.flags >> i & 1) or "-"
        return (
            f"TCP {self.src_port}>{self.dst_port} [{names}] seq={self.seq} ack={self.ack} "
            f"win={self.window} len={len(self.payload)}"
        )


# --------------------------------------------------------------------------- options


def encode_options(options: tuple[TcpOption, ...] | list[TcpOption]) -> bytes:
    """Options in the given order, zero-padded to a multiple of 4 bytes (at most 40)."""
    if not options:
        return b""
    if len(options) == 3 and options[2][0] == OPT_TIMESTAMP and options[0][0] == options[1][0] == OPT_NOP:
        # NOP NOP TS: what every segment of a connection with timestamps carries.
        return _TS_PREFIX + _TS_VALUES.pack(*options[2][1])  # type: ignore[misc]  # kind says: a tuple
    out = bytearray()
    for kind, value in options:
        if kind in (OPT_EOL, OPT_NOP):
            out.append(kind)
        elif kind == OPT_MSS:
            out += struct.pack("!BBH", kind, 4, value)
        elif kind == OPT_WSCALE:
            out += struct.pack("!BBB", kind, 3, value)
        elif kind == OPT_SACK_PERMITTED:
            out += bytes((kind, 2))
        elif kind == OPT_TIMESTAMP:
            out += struct.pack("!BBII", kind, 10, *value)  # type: ignore[misc]  # kind says: a tuple
        elif kind == OPT_SACK:
            edges = tuple(value)  # type: ignore[arg-type]  # kind says: a tuple of edges
            if not edges or len(edges) % 2:
                raise ValueError("tcp: SACK option needs an even, non-zero number of edges")
            out += struct.pack(f"!BB{len(edges)}I", kind, 2 + 4 * len(edges), *edges)
        else:
            data = bytes(value or b"")
            out += bytes((kind, 2 + len(data))) + data
    if len(out) % 4:
        out += bytes(4 - len(out) % 4)
    if len(out) > _MAX_OPTIONS:
        raise ValueError(f"tcp: {len(out)} bytes of options exceed 40")
    return bytes(out)


def decode_options(raw: bytes) -> tuple[TcpOption, ...]:
    """Parse the option area. Anything after EOL is padding and is not returned.

    Strict, because a malformed option means a malformed segment: a kind without its length
    byte, a length below 2 or past the area, or a known kind with the wrong length is a
    ``DecodeError`` (RFC 9293 3.1 asks receivers to be prepared for exactly these)."""
    if len(raw) == 12 and raw[:4] == _TS_PREFIX:  # NOP NOP TS, the common case
        return ((OPT_NOP, None), (OPT_NOP, None), (OPT_TIMESTAMP, _TS_VALUES.unpack_from(raw, 4)))
    opts: list[TcpOption] = []
    i, n = 0, len(raw)
    while i < n:
        kind = raw[i]
        if kind == OPT_EOL:
            opts.append((OPT_EOL, None))
            break
        if kind == OPT_NOP:
            opts.append((OPT_NOP, None))
            i += 1
            continue
        if i + 1 >= n:
            raise DecodeError(f"tcp: option kind {kind} truncated (no length byte)")
        olen = raw[i + 1]
        if olen < 2 or i + olen > n:
            raise DecodeError(f"tcp: option kind {kind} has bad length {olen}")
        want = _FIXED_LEN.get(kind)
        if want is not None and olen != want:
            raise DecodeError(f"tcp: option kind {kind} has length {olen}, expected {want}")
        body = raw[i + 2 : i + olen]
        if kind == OPT_MSS:
            opts.append((kind, int.from_bytes(body, "big")))
        elif kind == OPT_WSCALE:
            opts.append((kind, body[0]))
        elif kind == OPT_SACK_PERMITTED:
            opts.append((kind, None))
        elif kind == OPT_TIMESTAMP:
            opts.append((kind, struct.unpack("!II", body)))
        elif kind == OPT_SACK:
            if len(body) % 8 or not body:
                raise DecodeError(f"tcp: SACK option length {olen} is not 2 + 8n")
            opts.append((kind, struct.unpack(f"!{len(body) // 4}I", body)))
        else:
            opts.append((kind, bytes(body)))
        i += olen
    return tuple(opts)


# --------------------------------------------------------------------------- TCP alone


def _header_words(seg: TcpSegment, offset_flags: int) -> int:
    """Sum of the fixed header's 16-bit words (checksum field taken as zero)."""
    return (
        seg.src_port
        + seg.dst_port
        + (seg.seq >> 16)
        + (seg.seq & 0xFFFF)
        + (seg.ack >> 16)
        + (seg.ack & 0xFFFF)
        + offset_flags
        + seg.window
        + seg.urgent
    )


def encode(seg: TcpSegment, src_ip: str, dst_ip: str) -> bytes:
    """TCP header + options + payload with the checksum over the IPv4 pseudo-header."""
    opts = encode_options(seg.options) if seg.options else b""
    rest = opts + seg.payload
    offset_flags = ((5 + len(opts) // 4) << 12) | (seg.flags & 0xFFF)
    length = HEADER_LEN + len(rest)
    total = pseudo_header_sum(ip_to_bytes(src_ip), ip_to_bytes(dst_ip), 6, length)
    csum = finish(total + _header_words(seg, offset_flags) + ones_sum(rest))
    return (
        _TCP.pack(seg.src_port, seg.dst_port, seg.seq, seg.ack, offset_flags, seg.window, csum, seg.urgent)
        + rest
    )


def decode(data: bytes, src_ip: str, dst_ip: str, *, verify: bool = True) -> TcpSegment:
    """Parse a whole TCP segment (the IPv4 payload); the pseudo-header needs the addresses."""
    n = len(data)
    if n < HEADER_LEN:
        raise DecodeError(f"tcp: {n} bytes is shorter than the 20-byte header")
    sport, dport, seq, ack, offset_flags, window, _csum, urgent = _TCP.unpack_from(data)
    hlen = (offset_flags >> 12) * 4
    if hlen < HEADER_LEN:
        raise DecodeError(f"tcp: data offset {hlen // 4} is below the minimum of 5")
    if hlen > n:
        raise DecodeError(f"tcp: data offset {hlen // 4} runs past the {n}-byte segment")
    if verify:
        total = pseudo_header_sum(ip_to_bytes(src_ip), ip_to_bytes(dst_ip), 6, n) + ones_sum(data)
        if finish(total) != 0:
            raise ChecksumError("tcp: bad checksum")
    return TcpSegment(
        sport,
        dport,
        seq,
        ack,
        offset_flags & 0xFFF,
        window,
        bytes(data[hlen:]),
        decode_options(data[HEADER_LEN:hlen]) if hlen > HEADER_LEN else (),
        urgent,
    )


# --------------------------------------------------------------------------- IPv4 + TCP


def build_ipv4_tcp(
    seg: TcpSegment,
    src_ip: str,
    dst_ip: str,
    *,
    ttl: int = 64,
    ident: int = 0,
    tos: int = 0,
    ip_flags: int = _ipv4.FLAG_DF,
    partial_csum: bool = False,
) -> bytes:
    """The fast path: one IPv4 datagram (no IP options) carrying ``seg``, both checksums set.

    ``partial_csum``: leave the TCP checksum to the card (checksum offload, Linux's
    CHECKSUM_PARTIAL): the field holds the folded pseudo-header sum, not complemented, and the
    card adds the ones-complement sum of the segment and stores its complement there -- so
    the payload is never summed here."""
    opts = encode_options(seg.options) if seg.options else b""
    rest = opts + seg.payload
    tcp_len = HEADER_LEN + len(rest)
    total_len = 20 + tcp_len
    if total_len > 0xFFFF:
        raise ValueError(f"ipv4: datagram of {total_len} bytes exceeds 65535")
    src = ip_to_bytes(src_ip)
    dst = ip_to_bytes(dst_ip)
    s = int.from_bytes(src, "big")
    d = int.from_bytes(dst, "big")
    addr_words = (s >> 16) + (s & 0xFFFF) + (d >> 16) + (d & 0xFFFF)
    frag = ip_flags << 13
    ip_csum = finish(0x4500 + tos + total_len + ident + frag + (ttl << 8) + 6 + addr_words)
    offset_flags = ((5 + len(opts) // 4) << 12) | (seg.flags & 0xFFF)
    if partial_csum:
        tcp_csum = ~finish(addr_words + 6 + tcp_len) & 0xFFFF
    else:
        tcp_csum = finish(addr_words + 6 + tcp_len + _header_words(seg, offset_flags) + ones_sum(rest))
    return (
        _IP_TCP.pack(
            0x45,
            tos,
            total_len,
            ident,
            frag,
            ttl,
            6,
            ip_csum,
            src,
            dst,
            seg.src_port,
            seg.dst_port,
            seg.seq,
            seg.ack,
            offset_flags,
            seg.window,
            tcp_csum,
            seg.urgent,
        )
        + rest
    )


def parse_ipv4_tcp(data: bytes, *, verify: bool = True) -> tuple[_ipv4.Ipv4Header, TcpSegment]:
    """The fast path's inverse: an IPv4 datagram carrying TCP -> (IP header, segment).

    Datagrams with IP options take the general path (``ipv4.decode`` + ``decode``); a datagram
    that is not TCP, or is a fragment, is a ``DecodeError`` here (``decode_frame`` routes those)."""
    n = len(data)
    if n < 40 or data[0] != 0x45:
        header, payload = _ipv4.decode(data, verify=verify)
        if header.proto != _ipv4.PROTO_TCP or header.is_fragment:
            raise DecodeError("ipv4: not an unfragmented TCP datagram")
        src = header.src
        dst = header.dst
        return header, decode(payload, src, dst, verify=verify)
    (
        _vihl,
        tos,
        total_len,
        ident,
        frag,
        ttl,
        proto,
        ip_csum,
        src_b,
        dst_b,
        sport,
        dport,
        seq,
        ack,
        offset_flags,
        window,
        _tcp_csum,
        urgent,
    ) = _IP_TCP.unpack_from(data)
    if total_len < 20 or total_len > n:
        raise DecodeError(f"ipv4: total length {total_len} invalid for {n} bytes received")
    if proto != _ipv4.PROTO_TCP or frag & 0x3FFF:
        raise DecodeError("ipv4: not an unfragmented TCP datagram")
    tcp_len = total_len - 20
    hlen = (offset_flags >> 12) * 4
    if tcp_len < HEADER_LEN:
        raise DecodeError(f"tcp: {tcp_len} bytes is shorter than the 20-byte header")
    if hlen < HEADER_LEN:
        raise DecodeError(f"tcp: data offset {hlen // 4} is below the minimum of 5")
    if hlen > tcp_len:
        raise DecodeError(f"tcp: data offset {hlen // 4} runs past the {tcp_len}-byte segment")
    s = int.from_bytes(src_b, "big")
    d = int.from_bytes(dst_b, "big")
    addr_words = (s >> 16) + (s & 0xFFFF) + (d >> 16) + (d & 0xFFFF)
    if verify:
        ip_sum = 0x4500 + tos + total_len + ident + frag + (ttl << 8) + proto + ip_csum + addr_words
        if finish(ip_sum) != 0:
            raise ChecksumError("ipv4: bad header checksum")
        if finish(addr_words + 6 + tcp_len + ones_sum(data[20:total_len])) != 0:
            raise ChecksumError("tcp: bad checksum")
    header = _ipv4.Ipv4Header(
        bytes_to_ip(src_b), bytes_to_ip(dst_b), proto, ttl, tos, ident, frag >> 13, frag & 0x1FFF
    )
    seg = TcpSegment(
        sport,
        dport,
        seq,
        ack,
        offset_flags & 0xFFF,
        window,
        bytes(data[20 + hlen : total_len]),
        decode_options(data[40 : 20 + hlen]) if hlen > HEADER_LEN else (),
        urgent,
    )
    return header, seg
