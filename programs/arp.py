"""arp: the TCP/IP stack's ARP cache (read from /tcp/arp), like `arp -n`.

The seed's arp was a demo that sent one request itself through /dev/nic; here the stack owns ARP
(answering, resolving, expiring) and this tool only reads its table, as a user expects of `arp`.
"""

from __future__ import annotations

import json

from euralios.std import SyscallError


async def main(proc) -> int:
    try:
        table = json.loads(await proc.read_file("/tcp/arp"))
    except SyscallError as e:
        await proc.print(f"arp: no network (/tcp/arp: {e})")
        return 1
    if not table:
        await proc.print("arp: the cache is empty")
        return 0
    await proc.print(f"{'Address':<16}{'HWaddress':<20}{'State':<12}Expires")
    for row in table:
        mac = row.get("mac") or "(incomplete)"
        left = f"{row['expires']:.0f}s" if row.get("expires") is not None else ""
        await proc.print(f"{row['address']:<16}{mac:<20}{row.get('state', ''):<12}{left}")
    return 0
