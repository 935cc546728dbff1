"""ping: ICMP echo through the TCP/IP stack, as the Unix tool does it.

    ping HOST [-c COUNT] [-i INTERVAL] [-W TIMEOUT]

Opens /tcp/ping/HOST (the stack resolves HOST first), then sends one echo request per interval
(ECHO(66, seq, timeout_ms) on that session; 56 bytes of payload, so 64-byte ICMP messages) and
prints each reply with its round-trip time, then the summary Linux's ping prints. Count defaults to
4 (there is no Ctrl+C-to-stop habit to rely on in every console). Exit status: 0 if any reply came
back, 1 if none did, 2 for a usage, name or network error (said in one line).
"""

from __future__ import annotations

import json

from euralios.std import SyscallError, abi
from euralios.std.fs import take_bytes
from euralios.std.protocols.ping import ECHO

DNS_REASONS = {
    1: "name not found (NXDOMAIN)", 2: "the name has no IPv4 address", 3: "DNS server failure",
    4: "the DNS server refused the query", 5: "bad answer from the DNS server",
    6: "no answer from the DNS server", 7: "DNS server unreachable", 8: "no DNS server configured",
    9: "not a valid host name",
}
USAGE = "usage: ping HOST [-c COUNT] [-i INTERVAL] [-W TIMEOUT]"


def parse(args: list[str]) -> tuple[str, int, float, float]:
    host, count, interval, timeout = "", 4, 1.0, 1.0
    it = iter(args)
    for a in it:
        if a in ("-c", "-i", "-W"):
            value = next(it, "")
            try:
                if a == "-c":
                    count = int(value)
                    if count <= 0:
                        raise ValueError
                elif a == "-i":
                    interval = float(value)
                    if interval < 0.01:
                        raise ValueError
                else:
                    timeout = float(value)
                    if timeout <= 0:
                        raise ValueError
            except ValueError:
                raise ValueError(f"ping: bad value {value!r} for {a}") from None
        elif a.startswith("-"):
            raise ValueError(f"ping: unknown option {a}")
        elif host:
            raise ValueError(USAGE)
        else:
            host = a
    if not host:
        raise ValueError(USAGE)
    return host, count, interval, timeout


def open_error(host: str, e: SyscallError, mounts: list[str]) -> str:
    if e.code == abi.NOTFOUND and "/tcp" not in mounts:
        return "ping: no network (/tcp is not mounted)"
    if e.code == abi.NOTFOUND:
        reason = e.message.d3 if e.message is not None and isinstance(getattr(e.message, "d3", None), int) else 0
        return f"ping: {host}: {DNS_REASONS.get(reason, 'name not found')}"
    if e.code == abi.UNREACHABLE:
        return f"ping: {host}: network unreachable (no address or no route)"
    if e.code == 0:
        return f"ping: {host}: not a host name or address"
    return f"ping: {host}: {e}"


async def main(proc) -> int:
    try:
        host, count, interval, timeout = parse(proc.args[1:])
    except ValueError as e:
        await proc.print(str(e))
        return 2
    try:
        session = await proc.open(f"/tcp/ping/{host}")
    except SyscallError as e:
        try:
            mounts = await proc.mounts()
        except SyscallError:
            mounts = []
        await proc.print(open_error(host, e, mounts))
        return 2
    sys = proc.sys
    try:
        info = await session.query()
        address = info.get("address", host)
        await proc.print(f"PING {host} ({address}) 56(84) bytes of data.")
        times: list[float] = []
        sent = 0
        start = proc.now()
        for seq in range(1, count + 1):
            began = proc.now()
            sent += 1
            try:
                reply = await sys.rcall(session.handle, ECHO, seq, int(timeout * 1000))
                r = json.loads(await take_bytes(sys, reply))
                times.append(r["time_ms"])
                await proc.print(f"{r['bytes']} bytes from {r['from']}: icmp_seq={seq} ttl={r['ttl']} "
                                 f"time={r['time_ms']:.3f} ms")
            except SyscallError as e:
                if e.code == abi.UNREACHABLE:
                    await proc.print(f"From {address} icmp_seq={seq} Destination Host Unreachable")
                elif e.code != abi.TIMEDOUT:
                    await proc.print(f"ping: {e}")
                    return 2
            if seq < count:
                await proc.sleep(max(0.0, interval - (proc.now() - began)))
        elapsed = int((proc.now() - start) * 1000)
        lost = 100 * (sent - len(times)) // sent
        await proc.print(f"\n--- {host} ping statistics ---")
        await proc.print(f"{sent} packets transmitted, {len(times)} received, {lost}% packet loss, time {elapsed}ms")
        if times:
            avg = sum(times) / len(times)
            await proc.print(f"rtt min/avg/max = {min(times):.3f}/{avg:.3f}/{max(times):.3f} ms")
        return 0 if times else 1
    finally:
        await session.close()
