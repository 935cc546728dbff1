"""Time without a syscall: the kernel-info page plus the CPU's time-stamp counter (spec §8)."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from euralios.std.abi import KERNEL_INFO

if TYPE_CHECKING:
    from euralios.std.syscalls import Gate

_PAGE = struct.Struct("<QQQ")


def kernel_info(gate: Gate) -> tuple[int, int, int]:
    """(PIT ticks, TSC at the last tick, TSC per PIT tick) from the read-only kernel-info page.

    The page is mapped in every process by the kernel, not a chunk anyone sends, so it is read
    straight through the gate rather than through euralios.std.chunk."""
    ticks, tsc, per_tick = _PAGE.unpack(gate.load(KERNEL_INFO, _PAGE.size))
    return ticks, tsc, per_tick


def microseconds(gate: Gate) -> int:
    """Microseconds since boot, by the seed's integer formula over the time page."""
    pit_ticks, last_tsc, tsc_per_pit = kernel_info(gate)
    tsc_since = max(0, gate.rdtsc() - last_tsc)
    scaled = (tsc_since * 16) // tsc_per_pit
    us: int = ((((pit_ticks * 16 + scaled) * 2011) // 4096) * 437) // 4096
    return us
