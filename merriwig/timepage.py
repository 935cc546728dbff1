"""The kernel-info page: a read-only page in every process from which time is computed with no
syscall (the vDSO idea, spec §8).

Layout (u64 little-endian): 0 pit_ticks (PIT input ticks since boot), 8 last_tsc (TSC at the last
timer interrupt), 16 tsc_per_pit (TSC ticks per PIT input tick). The seed smoothed tsc_per_pit
starting from 0, which divided by zero before the first tick [quirk]; our TSC rate is known, so
the page is valid from boot and every tick only moves the (pit_ticks, last_tsc) pair forward.
"""

from __future__ import annotations

import struct

from machine.memory import PhysicalMemory
from machine.tsc import TSC_PER_PIT, rdtsc

PIT_DIVISOR = 65536
_PACK = struct.Struct("<QQQ")


class TimePage:
    def __init__(self, memory: PhysicalMemory, frame: int) -> None:
        self.memory = memory
        self.frame = frame
        self.boot_tsc = rdtsc()
        self.pit_ticks = 0
        self.update()

    def update(self) -> None:
        """Called on every timer interrupt: re-anchor the page at the current TSC."""
        now = rdtsc()
        self.pit_ticks = (now - self.boot_tsc) // TSC_PER_PIT
        last = self.boot_tsc + self.pit_ticks * TSC_PER_PIT
        self.memory.write(self.frame, _PACK.pack(self.pit_ticks, last, TSC_PER_PIT))


def microseconds(pit_ticks: int, tsc_since: int, tsc_per_pit: int) -> int:
    """The seed's integer formula (spec §8.3): one PIT tick is 2011*437/2**24 * 16 us."""
    scaled = (tsc_since * 16) // tsc_per_pit
    return ((((pit_ticks * 16 + scaled) * 2011) // 4096) * 437) // 4096
