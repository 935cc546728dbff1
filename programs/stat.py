"""stat: a top-like snapshot: kernel counters and the busiest processes. `stat [SECONDS]` samples
twice and shows CPU use over the interval."""

import json


async def main(proc):
    interval = float(proc.args[1]) if len(proc.args) > 1 else 0.5
    first = {p["pid"]: p["cpu"] for p in json.loads(await proc.read_file("/proc/ps.json"))}
    await proc.sleep(interval)
    table = json.loads(await proc.read_file("/proc/ps.json"))
    k = json.loads(await proc.read_file("/proc/stat.json"))
    mem = json.loads(await proc.read_file("/proc/meminfo.json"))
    await proc.print(f"up {k['uptime']:.1f} s  processes {k['processes']}  threads {k['threads']}  "
                     f"rendezvous {k['rendezvous']}  preemptions {k['preemptions']}  killed {k['killed']}")
    await proc.print(f"frames: {mem['frames_used']} used, {mem['frames_free']} free of {mem['frames_total']}")
    rows = []
    for p in table:
        used = max(0.0, p["cpu"] - first.get(p["pid"], 0.0))
        rows.append((used / interval * 100, p))
    rows.sort(key=lambda r: -r[0])
    await proc.print(f"{'PID':>5} {'USER':<6} {'%CPU':>6} {'FRAMES':>6}  NAME")
    for pct, p in rows[:15]:
        await proc.print(f"{p['pid']:>5} {p['user']:<6} {pct:>6.1f} {p['frames']:>6}  {p['name']}")
    return 0
