"""Sans-IO packet codecs: Ethernet, ARP, IPv4, ICMP, UDP and TCP.

One module per protocol, each with a frozen dataclass and ``encode()``/``decode()`` functions;
``frame.py`` ties them together (``decode_frame`` and the ``build_*`` helpers).

How the work is split, and why:

* **Decoding** is always strict ``struct`` code. Every byte that reaches the stack comes from
  the wire, so the decoders check every length, IHL, data offset, option length and checksum,
  and the *only* exception they raise is :class:`DecodeError` (or its subclass
  :class:`ChecksumError`). scapy's dissector is deliberately lenient (it turns anything into
  ``Raw``/``Padding`` and never rejects a truncated header), so it cannot be that gatekeeper.
* **Encoding** is ``struct`` too -- Ethernet, IPv4, TCP, UDP and ICMP -- because scapy costs
  ~0.5 ms to build and ~0.13 ms to dissect a full-size segment against ~6 us here, and UDP is
  a data path too once the user-mode router relays it. Only ARP, rare and fixed-shape, uses
  scapy's layer definition. Each protocol has one encoder, which ``frame.py``'s builders call.
* scapy is the reference: the tests check every struct codec byte-for-byte against scapy.

Addresses are kept as text (``"10.0.2.15"``, ``"52:54:00:12:34:56"``) because that is what
callers, logs and scapy use; the converters below are cached so the hot path pays a dict hit.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = [
    "DecodeError",
    "ChecksumError",
    "ip_to_bytes",
    "bytes_to_ip",
    "mac_to_bytes",
    "bytes_to_mac",
]


class DecodeError(ValueError):
    """Malformed input: truncated header, impossible length field, bad option, bad checksum.

    The one exception any ``decode`` function raises, so a receive loop needs one ``except``."""


class ChecksumError(DecodeError):
    """The bytes parsed but an IPv4/ICMP/UDP/TCP checksum did not verify (corruption)."""


@lru_cache(maxsize=4096)
def ip_to_bytes(addr: str) -> bytes:
    """``"10.0.2.15"`` -> 4 bytes. Strict dotted quad (no ``inet_aton`` shorthands).

    Raises ``ValueError`` (a caller bug, not a decode failure) for anything else."""
    parts = addr.split(".")
    if len(parts) != 4:
        raise ValueError(f"not an IPv4 address: {addr!r}")
    try:
        octets = [int(p, 10) for p in parts]
    except ValueError:
        raise ValueError(f"not an IPv4 address: {addr!r}") from None
    if any(not (0 <= o <= 255) or not p.isdigit() for o, p in zip(octets, parts, strict=True)):
        raise ValueError(f"not an IPv4 address: {addr!r}")
    return bytes(octets)


@lru_cache(maxsize=4096)
def bytes_to_ip(raw: bytes) -> str:
    """4 bytes -> dotted quad text."""
    return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"


@lru_cache(maxsize=1024)
def mac_to_bytes(mac: str) -> bytes:
    """``"52:54:00:12:34:56"`` (or ``-`` separated) -> 6 bytes; ``ValueError`` otherwise."""
    raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return raw


@lru_cache(maxsize=1024)
def bytes_to_mac(raw: bytes) -> str:
    """6 bytes -> lower-case colon-separated text (scapy's spelling)."""
    return raw.hex(":")
