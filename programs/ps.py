"""ps: the process table (from /proc/ps). HOST is the host process a confined program's Python
runs in (`-`: the kernel's own interpreter, the trusted base: init, drivers, servers, login)."""

import json


async def main(proc):
    table = json.loads(await proc.read_file("/proc/ps.json"))
    lines = [f"{'PID':>5} {'PPID':>5} {'USER':<6} {'THR':>3} {'FRAMES':>6} {'CPU(s)':>8} {'STATE':<16} {'HOST':>7} NAME"]
    for p in table:
        lines.append(f"{p['pid']:>5} {p['parent']:>5} {p['user']:<6} {p['threads']:>3} {p['frames']:>6} "
                     f"{p['cpu']:>8.3f} {p['state'][:16]:<16} {p.get('host_pid') or '-':>7} {p['name']}")
    await proc.print("\n".join(lines))
    return 0
