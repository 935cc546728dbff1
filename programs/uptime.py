"""uptime: how long the system has run, as Linux's one line:

     16:53:20 up 3 min,  1 user,  load average: 0.08, 0.03, 0.01

The clock is /proc/rtc's (UTC), the time since boot /proc/uptime's, the users those logged in
(each console's shell), the load /proc/loadavg's (busy CPUs over 1, 5 and 15 minutes).
"""

from __future__ import annotations

import json

from euralios.std import SyscallError


def since_boot(seconds: float) -> str:
    """As procps writes it: `3 min`, `1:05`, `2 days, 4:10`."""
    minutes = int(seconds // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{days} day{'s' if days != 1 else ''}, " if days else ""
    return text + (f"{hours:2d}:{minutes:02d}" if hours else f"{minutes} min")


async def main(proc) -> int:
    try:
        up = float((await proc.read_file("/proc/uptime")).split()[0])
        load = (await proc.read_file("/proc/loadavg")).decode().split()[:3]
        rtc = dict(line.split("\t: ", 1) for line in (await proc.read_file("/proc/rtc")).decode().splitlines())
        table = json.loads(await proc.read_file("/proc/ps.json"))
    except SyscallError as e:
        await proc.print(f"uptime: {e}")
        return 1
    users = sum(1 for p in table if p["name"] == "shell")
    await proc.print(f" {rtc.get('rtc_time', '??:??:??')} up {since_boot(up)},  {users} user{'s' if users != 1 else ''},  "
                     f"load average: {', '.join(load)}")
    return 0
