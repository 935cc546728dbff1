"""vmmap PID: a process' page tables as regions of present pages with their flags."""

import json

from euralios.std import SyscallError


async def main(proc):
    if len(proc.args) != 2 or not proc.args[1].isdigit():
        await proc.print("Usage: vmmap <pid>")
        return 2
    try:
        runs = json.loads(await proc.read_file(f"/proc/{proc.args[1]}/vmmap.json"))
    except SyscallError as e:
        await proc.print(f"vmmap: {proc.args[1]}: {e}")
        return 1
    await proc.print(f"{'START':>18} {'END':>18} {'PAGES':>6} FLAGS {'PHYS':>10}  REGION")
    total = 0
    for r in runs:
        total += r["pages"]
        await proc.print(f"{r['start']:#018x} {r['end']:#018x} {r['pages']:>6} {r['flags']:<5} {r['paddr']:#010x}  {r['region']}")
    await proc.print(f"{total} pages present ({total * 4} KiB); flags: r/w/x, u=user k=kernel")
    return 0
