"""Host-folder read throughput over virtio-9p, against the RAM disk, in one booted system.

``ninep.read_mb_per_s``: a program reads a 16 MiB host file, /host/bench/big (a share of a
temporary folder: ``boot(shares=...)`` and drivers/virtio_9p.py, as ``euralios --share`` gives),
from start to end in READs of :data:`READ` bytes (1 MiB, the most one READ of a 9P file
answers: vfs/ninep/serve.py), then closes it. The figure is payload MB/s (10^6 bytes to the MB).
Everything real is on the path: the file protocol to the driver, vfs.ninep's Treads, the
driver's virtqueue (port I/O kick, DMA, interrupt), the device model and the ShareServer's
host file reads in a thread.

Baseline ``ramdisk.read_16mib``: the same program reading the same 16 MiB from /ramdisk/big
(written there once before timing) in the same READs: the file protocol with the cheapest
server behind it. Target: >= 0.5x the RAM disk. Both are timed in alternating rounds (best
round of each), so drift on a shared machine falls on both.

Run: ``.venv/bin/python -m bench.bench_ninep``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from bench.common import record
from euralios.boot import boot
from euralios.std import File, SyscallError, abi
from euralios.std.fs import take_bytes
from machine.share.options import ShareOption

MIB = 1 << 20
SIZE = 16 * MIB
READ = 1 * MIB  # bytes asked for by one READ
ROUNDS = 5
TARGET = 0.5


async def read_to_end(proc: Any, path: str) -> tuple[float, int]:
    """(seconds, bytes) to open `path`, READ it to the end in READ-sized requests and close it.

    Written out rather than File.read(), which asks 64 KiB at a time: the point is large reads."""
    sys = proc.sys
    t0 = time.perf_counter()
    f: File = await proc.open(path)
    got = 0
    async with f:
        while True:
            try:
                reply = await sys.rcall(f.handle, abi.READ, got, READ)
            except SyscallError as e:
                if e.code == abi.NO_DATA:  # at the end, as File.read knows
                    break
                raise
            data = await take_bytes(sys, reply)
            got += len(data)
            if len(data) < READ:
                break
    return time.perf_counter() - t0, got


async def measure(folder: Path) -> tuple[float, float]:
    """(9P MB/s, RAM disk MB/s), best round of each."""
    out: dict[str, float] = {}
    data = (folder / "big").read_bytes()

    async def prog(proc: Any) -> int:
        await proc.write_file("/ramdisk/big", data)
        await read_to_end(proc, "/host/bench/big")  # warm: the host page cache, code paths
        await read_to_end(proc, "/ramdisk/big")
        best_9p = best_disk = float("inf")
        for _ in range(ROUNDS):
            t, n = await read_to_end(proc, "/host/bench/big")
            assert n == SIZE, n
            best_9p = min(best_9p, t)
            t, n = await read_to_end(proc, "/ramdisk/big")
            assert n == SIZE, n
            best_disk = min(best_disk, t)
        out["9p"] = SIZE / best_9p / 1e6
        out["disk"] = SIZE / best_disk / 1e6
        return 0

    async with boot("256M", watchdog=0, shares=[ShareOption(str(folder), "bench", readonly=True)]) as system:
        system.start_shares(log="klog")
        status = await system.run(prog)
        assert status == 0, system.klog()
    return out["9p"], out["disk"]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-9p-") as tmp:
        folder = Path(tmp)
        (folder / "big").write_bytes(bytes(range(256)) * (SIZE // 256))
        ninep, disk = trio.run(measure, folder)
    ratio = ninep / disk
    record("ninep.read_mb_per_s", ninep, "MB/s", "ramdisk.read_16mib", disk, ratio,
           target=f">= {TARGET}x", met=ratio >= TARGET)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
