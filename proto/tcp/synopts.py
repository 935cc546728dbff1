"""What a SYN says (RFC 7323 window scale, RFC 2018 SACK-permitted, timestamps), laid out as
Linux lays it out, and the shift that lets a receive buffer beyond 64 KiB be advertised.

Why Linux's layout: the options are padded with NOPs so every 4-byte option word is aligned
(``MSS | SACK-permitted TS | NOP WS``, 20 bytes), which is what captures of real peers show and
what middleboxes have long seen; a SYN offering everything fits the 40-byte option space with
room to spare. A SYN offering neither window scaling nor timestamps keeps the old, unpadded
form (``MSS [SACK-permitted]``), byte for byte what the stack sent before RFC 7323.
"""

from __future__ import annotations

from proto.wire.tcp import OPT_MSS, OPT_NOP, OPT_SACK_PERMITTED, OPT_TIMESTAMP, OPT_WSCALE, TcpOption

__all__ = ["MAX_WINDOW", "MAX_WSCALE", "TS_OPTION_LEN", "syn_options", "wscale_for"]

MAX_WINDOW = 0xFFFF  # the 16-bit window field, unscaled (always so on a SYN, RFC 7323 2.2)
MAX_WSCALE = 14  # RFC 7323 2.3: a larger shift is taken as 14
TS_OPTION_LEN = 12  # NOP NOP TS(10): what timestamps take from every segment's option space

_NOP: TcpOption = (OPT_NOP, None)


def wscale_for(rcv_buf: int) -> int:
    """The smallest shift with which ``rcv_buf`` bytes fit the 16-bit window field (<= 14)."""
    shift = 0
    while shift < MAX_WSCALE and MAX_WINDOW << shift < rcv_buf:
        shift += 1
    return shift


def syn_options(
    mss: int, sack: bool, wscale: int | None, timestamps: tuple[int, int] | None
) -> tuple[TcpOption, ...]:
    """The options of a SYN or SYN-ACK: MSS always, the rest as offered (None: not offered)."""
    opts: list[TcpOption] = [(OPT_MSS, mss)]
    if wscale is None and timestamps is None:
        if sack:
            opts.append((OPT_SACK_PERMITTED, None))
        return tuple(opts)
    if timestamps is not None:
        opts += [(OPT_SACK_PERMITTED, None)] if sack else [_NOP, _NOP]
        opts.append((OPT_TIMESTAMP, timestamps))
    if wscale is not None:
        opts += [_NOP, (OPT_WSCALE, wscale)]
    if sack and timestamps is None:
        opts += [_NOP, _NOP, (OPT_SACK_PERMITTED, None)]
    return tuple(opts)
