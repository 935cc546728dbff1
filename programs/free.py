"""free: physical memory in frames and KiB (from /proc/meminfo)."""

import json


async def main(proc):
    m = json.loads(await proc.read_file("/proc/meminfo.json"))
    kib = m["frame_size"] // 1024
    await proc.print(f"{'':8}{'frames':>10}{'KiB':>12}")
    for label, key in (("total", "frames_total"), ("used", "frames_used"), ("free", "frames_free")):
        await proc.print(f"{label:<8}{m[key]:>10}{m[key] * kib:>12}")
    return 0
