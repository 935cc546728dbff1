"""NIC transmit throughput: frames per second from a program through /dev/nic to the wire.

``nic.frames_per_second``: a root program sends 1514-byte frames with rcall(WRITE) to
drivers/rtl8139 (one chunk per frame, as the network stack will), which copies each into a
transmit buffer and writes TSDn; the RTL8139 model DMAs it out to an in-memory backend that counts
it. Everything a real frame goes through is on the path: chunk transfer, the driver's port I/O
syscalls, the register model and the backend. The baseline, ``python_deque_frames``, appends the
same frames to a deque: the cost of handing a frame over with no OS or hardware at all. The ratio
is far below 1 by nature; it is recorded to follow regressions (no target).

Run: ``.venv/bin/python -m bench.bench_nic``.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import trio

from bench.common import best_rate, record
from euralios.boot import boot, program_source
from euralios.std import abi
from euralios.std.fs import send_bytes
from machine.netdev.memory import MemoryBackend

FRAME = b"\xff" * 6 + bytes.fromhex("525400123456") + b"\x88\xb5" + bytes(range(256)) * 5 + bytes(1514 - 14 - 1280)
N_FRAMES = 3000
ROUNDS = 3
N_BASELINE = 1_000_000


def baseline(n: int) -> None:
    d: deque[bytes] = deque()
    append = d.append
    for _ in range(n):
        append(FRAME)


async def nic_rate(n: int, rounds: int) -> tuple[float, int]:
    """Best frames/s over ``rounds`` runs of ``n`` frames, and how many reached the backend."""
    backend = MemoryBackend(keep=False)
    rates: list[float] = []

    async def sender(proc: Any) -> int:
        h, _ = await proc.sys.open("/dev/nic")
        sys = proc.sys
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(n):
                reply = await sys.rcall(h, abi.WRITE, len(FRAME), await send_bytes(sys, FRAME))
                assert reply.tag == abi.OK
            rates.append(n / (time.perf_counter() - t0))
        return 0

    async with boot(nic=backend, watchdog=0) as system:
        for path, mount in (("drivers/pci.py", "/pci"), ("drivers/rtl8139.py", "/dev/nic")):
            r = system.kernel.new_rendezvous(refs=2)
            system.vfs.mount(mount, r)
            system.spawn(program_source(path), io=True, name=mount.rsplit("/", 1)[-1], stdin=r)
        await system.wait_for_output(r"\[rtl8139\] MAC address", 10)
        assert await system.run(sender) == 0
    return max(rates), backend.stats["tx_frames"]


def main() -> int:
    rate, delivered = trio.run(nic_rate, N_FRAMES, ROUNDS)
    assert delivered == N_FRAMES * ROUNDS, f"only {delivered} frames reached the backend"
    base = best_rate(baseline, N_BASELINE)
    record("nic.frames_per_second", rate, "frames/s", "python_deque_frames", base, rate / base)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
