"""The CPU's time-stamp counter: a fixed-rate counter derived from the host's monotonic clock.

The emulated TSC runs at 2275 ticks per PIT input tick (about 2.71 GHz), the rate the spec's
worked examples use, so the kernel-info page arithmetic (spec §8) gives real microseconds.
"""

import time

PIT_HZ = 1_193_182
TSC_PER_PIT = 2275
TSC_HZ = PIT_HZ * TSC_PER_PIT
_NS_NUM = TSC_HZ
_NS_DEN = 1_000_000_000
_origin = time.perf_counter_ns()


def rdtsc() -> int:
    """Current TSC value (ticks since the emulator started)."""
    return (time.perf_counter_ns() - _origin) * _NS_NUM // _NS_DEN


def origin_ns() -> int:
    """The host's perf_counter_ns() reading at which this TSC read 0: another process on the host
    (a confined worker) computes the same TSC from it, CLOCK_MONOTONIC being one clock for all."""
    return _origin
