"""sleep: wait a while. `sleep SECONDS` (a number; a suffix s, m, h or d as GNU sleep's); several
are added up. Ctrl+C interrupts it, as any program in front."""

from __future__ import annotations

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(arg: str) -> float:
    """ValueError for anything that is not a number with an optional unit."""
    unit = UNITS.get(arg[-1:], 0)
    value = float(arg[:-1] if unit else arg)
    if value < 0 or value != value:
        raise ValueError(arg)
    return value * (unit or 1)


async def main(proc) -> int:
    if len(proc.args) < 2:
        await proc.print("Usage: sleep SECONDS[s|m|h|d]...")
        return 1
    try:
        total = sum(seconds(a) for a in proc.args[1:])
    except ValueError:
        bad = next(a for a in proc.args[1:] if not _ok(a))
        await proc.print(f"sleep: invalid time interval '{bad}'")
        return 1
    await proc.sleep(total)
    return 0


def _ok(arg: str) -> bool:
    try:
        seconds(arg)
        return True
    except ValueError:
        return False
