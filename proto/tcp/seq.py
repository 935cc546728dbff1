"""Sequence-number arithmetic (RFC 9293 3.4), in one place.

Sequence numbers are 32-bit and wrap. Every comparison of two of them goes through
``seq_diff`` and every sum is masked with ``MASK``, so wraparound needs no special case anywhere
else in the engine (the tests start connections near 2**32 to keep it that way)."""

from __future__ import annotations

__all__ = ["MASK", "seq_diff"]

MASK = 0xFFFFFFFF


def seq_diff(a: int, b: int) -> int:
    """``a - b`` as a signed 32-bit sequence-space distance: < 0 means a is before b.

    Every comparison of sequence numbers goes through this, which is all wraparound needs
    (valid while the two are within 2**31 of each other, which windows guarantee)."""
    return ((a - b + 0x80000000) & MASK) - 0x80000000
