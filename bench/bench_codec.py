"""Packet codec: the struct fast path against scapy for one full-size IPv4+TCP segment.

Why it matters: every segment the stack sends or receives goes through this path, and the
emulated NIC's throughput is bounded by it. scapy is the baseline because it is what the
codecs would be without the fast path (and what the tests hold them equal to).

    .venv/bin/python -m bench.bench_codec
"""

from __future__ import annotations

import random

from scapy.layers.inet import IP, TCP
from scapy.packet import Raw

from bench.common import best_rate, record
from proto.wire.tcp import ACK, PSH, TcpSegment, build_ipv4_tcp, parse_ipv4_tcp

SRC, DST = "10.0.2.15", "10.0.2.2"


def main() -> int:
    payload = random.Random(1).randbytes(1460)
    seg = TcpSegment(40000, 70, 123456789, 987654321, ACK | PSH, 65535, payload)
    wire = build_ipv4_tcp(seg, SRC, DST, ident=7)

    def scapy_packet() -> bytes:
        return bytes(
            IP(src=SRC, dst=DST, id=7, flags="DF", ttl=64)
            / TCP(sport=40000, dport=70, seq=123456789, ack=987654321, flags="PA", window=65535)
            / Raw(payload)
        )

    assert scapy_packet() == wire  # same bytes, or the comparison means nothing

    def build_struct(n: int) -> None:
        for _ in range(n):
            build_ipv4_tcp(seg, SRC, DST, ident=7)

    def build_scapy(n: int) -> None:
        for _ in range(n):
            scapy_packet()

    def parse_struct(n: int) -> None:
        for _ in range(n):
            parse_ipv4_tcp(wire)

    def parse_scapy(n: int) -> None:
        for _ in range(n):
            IP(wire)

    build_us = 1e6 / best_rate(build_struct, 20_000)
    scapy_build_us = 1e6 / best_rate(build_scapy, 1_000)
    record(
        "codec.tcp_segment_build_struct",
        build_us,
        "us",
        "scapy_build",
        scapy_build_us,
        build_us / scapy_build_us,
    )
    parse_us = 1e6 / best_rate(parse_struct, 20_000)
    scapy_parse_us = 1e6 / best_rate(parse_scapy, 2_000)
    record(
        "codec.tcp_segment_parse_struct",
        parse_us,
        "us",
        "scapy_dissect",
        scapy_parse_us,
        parse_us / scapy_parse_us,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
