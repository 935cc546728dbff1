"""stat: a top-like view of the system: kernel counters and the busiest processes.

    stat [SECONDS]           redraw the screen every SECONDS (default 1) until q or Ctrl+C
    stat -n COUNT [SECONDS]  print COUNT snapshots one after another and end (top -b -n COUNT)

CPU use is measured over each interval. Between redraws the program sleeps on a timer (a key
thread waits for q): an idle system stays idle. q is noticed within a quarter of a second.
"""

import json

QUIT = {ord("q"), ord("Q"), 3, 27}  # q, Ctrl+C (the shell also interrupts it), Esc
SLICE = 0.25  # how long a sleep lasts at most, so q ends it soon


async def snapshot(proc, first: dict[int, float], interval: float) -> tuple[list[str], dict[int, float]]:
    """The lines of one screen, and the CPU times to measure the next one from."""
    table = json.loads(await proc.read_file("/proc/ps.json"))
    k = json.loads(await proc.read_file("/proc/stat.json"))
    mem = json.loads(await proc.read_file("/proc/meminfo.json"))
    lines = [f"up {k['uptime']:.1f} s  processes {k['processes']}  threads {k['threads']}  "
             f"rendezvous {k['rendezvous']}  preemptions {k['preemptions']}  killed {k['killed']}",
             f"frames: {mem['frames_used']} used, {mem['frames_free']} free of {mem['frames_total']}",
             f"{'PID':>5} {'USER':<6} {'%CPU':>6} {'FRAMES':>6}  NAME"]
    rows = []
    for p in table:
        used = max(0.0, p["cpu"] - first.get(p["pid"], 0.0))
        rows.append((used / interval * 100, p))
    rows.sort(key=lambda r: -r[0])
    for pct, p in rows[:15]:
        lines.append(f"{p['pid']:>5} {p['user']:<6} {pct:>6.1f} {p['frames']:>6}  {p['name']}")
    return lines, {p["pid"]: p["cpu"] for p in table}


async def cpu_times(proc) -> dict[int, float]:
    return {p["pid"]: p["cpu"] for p in json.loads(await proc.read_file("/proc/ps.json"))}


async def main(proc):
    args = proc.args[1:]
    count = None
    try:
        if args[:1] == ["-n"]:
            count = int(args[1])
            args = args[2:]
        interval = float(args[0]) if args else 1.0
        if interval <= 0 or (count is not None and count < 1):
            raise ValueError
    except (ValueError, IndexError):
        await proc.print("Usage: stat [-n COUNT] [SECONDS]")
        return 2
    first = await cpu_times(proc)
    if count is not None:
        for i in range(count):
            await proc.sleep(interval)
            lines, first = await snapshot(proc, first, interval)
            await proc.print(("\n" if i else "") + "\n".join(lines))
        return 0
    state = {"done": False}

    async def keys() -> None:
        while not state["done"]:
            code = await proc.read_key()
            if code is None or code in QUIT:
                state["done"] = True

    await proc.spawn_thread(keys)
    await proc.write("\x1b[?25l")
    try:
        while not state["done"]:
            waited = 0.0
            while waited < interval and not state["done"]:
                step = min(SLICE, interval - waited)
                await proc.sleep(step)
                waited += step
            if state["done"]:
                break
            lines, first = await snapshot(proc, first, interval)
            await proc.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n\n\x1b[7m stat: every "
                             f"{interval:g} s   q quit \x1b[0m")
    finally:
        await proc.write("\x1b[H\x1b[2J\x1b[0m\x1b[?25h")
    return 0
