"""Guests on a network, for tests and scripts: the root-free user network and a real tap.

    async with usernet_guest(hostfwd=["udp:127.0.0.1:0-:7777"]) as net:     # no root
        port = net.host_port(7777, "udp")          # where the host reaches the guest's 7777
        ...
    async with tap_guest(dhcp=True, impair="loss=5,seed=1") as tap:  # root: netns + tap
        reply = await tap.exchange(pkt, match)

Both boot the small system (euralios.boot.System) with an RTL8139 on that network and the
network started (drivers/pci, drivers/rtl8139, the TCP/IP stack at /tcp), and by default wait
for the stack to have its address (`System.network_ready`: the DHCP lease or the static
address, woken by the stack's own announcement). The pytest plugin's `euralios_usernet` and
`euralios_tap` fixtures are these, with their options given by indirect parametrisation.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from euralios.boot import System, boot
from euralios.netns import Netns

GUEST_MAC = "52:54:00:12:34:56"
PACKET_OUTGOING = 4

__all__ = ["GUEST_MAC", "TapGuest", "UserNetGuest", "tap_guest", "usernet_guest"]


class UserNetGuest:
    """A guest behind the `user` router (QEMU slirp's addresses: it is 10.0.2.15, the host
    10.0.2.2, DNS 10.0.2.3). `system` is the guest; `backend` the router (or its pcap or
    impairment wrapper); `address` the stack's address once ready ("10.0.2.15/24")."""

    def __init__(self, system: System, backend: Any, hostfwd: Sequence[str]) -> None:
        self.system = system
        self.backend = backend
        self.hostfwd = list(hostfwd)
        self.address: str | None = None
        router = backend
        while hasattr(router, "inner"):
            router = router.inner
        self.router = router

    def host_port(self, guest_port: int, proto: str = "tcp") -> int:
        """The host port the `hostfwd` rule for `guest_port` listens on (host port 0 in the
        rule is resolved: the free port the router was given)."""
        from machine.netdev.user import parse_hostfwd

        rules = [parse_hostfwd(r) for r in self.hostfwd]
        for rule, port in zip(rules, self.router.hostfwd_ports, strict=True):
            if rule.guest_port == guest_port and rule.proto == proto:
                return int(port)
        raise KeyError(f"no hostfwd rule for {proto} guest port {guest_port} (rules: {self.hostfwd})")


@asynccontextmanager
async def usernet_guest(*, hostfwd: Sequence[str] = (), hosts: str | None = None, restrict: bool = False,
                        mac: str | None = None, pcap: str | None = None, impair: str | None = None,
                        tcp_args: Sequence[str] | None = None, wait: bool = True,
                        log: str = "console") -> AsyncIterator[UserNetGuest]:
    """A guest on `--net user` (no root). hostfwd: QEMU-syntax rules ("tcp:127.0.0.1:0-:70",
    "udp:127.0.0.1:0-:7777"; host port 0 picks a free one, see UserNetGuest.host_port);
    hosts: a hosts file for the router's DNS; restrict: restrict=on; mac, pcap, impair: as the command line's
    --mac, --pcap, --impair; tcp_args: the stack's options (DHCP by default); wait: wait for
    the stack's address before yielding; log: where the network's start-up lines go
    ("console" or "klog", see System.start_network)."""
    from machine.netdev import make_backend

    spec = "user" + "".join(f",hostfwd={r}" for r in hostfwd) + (",restrict=on" if restrict else "")
    backend = make_backend(spec, pcap=pcap, impair=impair, hosts=hosts)
    try:
        async with boot(nic=backend, mac=mac) as system:
            system.start_network(list(tcp_args or []), log=log)
            guest = UserNetGuest(system, backend, hostfwd)
            if wait:
                guest.address = await system.network_ready()
            yield guest
    finally:
        backend.close()


class TapGuest:
    """A guest on a tap in a private network namespace, and a packet-level view of the wire
    from the host side (euralios.pytest_plugin's docstring shows them in use)."""

    def __init__(self, netns: Netns, system: System, guest_ip: str, guest_mac: str,
                 dnsmasq_log: Path | None = None) -> None:
        self.netns = netns
        self.system = system
        self.guest_ip = guest_ip
        self.guest_mac = guest_mac
        self.host_ip = netns.host_ip
        self.host_mac = netns.host_mac()
        self.dnsmasq_log = dnsmasq_log
        raw = netns.packet_socket()
        raw.setblocking(False)
        self.sock = trio.socket.from_stdlib_socket(raw)

    async def send(self, pkt: Any) -> None:
        """Put one frame on the wire towards the guest (scapy packet or bytes)."""
        await self.sock.send(bytes(pkt))

    async def sniff(self, match: Callable[[Any], bool] = lambda f: True, timeout: float = 5.0) -> Any:
        """The next frame from the guest that `match` accepts, as a scapy Ether."""
        from scapy.layers.l2 import Ether

        with trio.fail_after(timeout):
            while True:
                data, addr = await self.sock.recvfrom(65536)
                if addr[2] == PACKET_OUTGOING:
                    continue  # sent by the namespace (ourselves included), not by the guest
                frame = Ether(data)
                if match(frame):
                    return frame

    async def exchange(self, pkt: Any, match: Callable[[Any], bool], timeout: float = 5.0) -> Any:
        """Send `pkt` and return the first frame from the guest that `match` accepts (the
        sniffer is listening before the frame leaves, so a quick answer is never missed)."""
        result: list[Any] = []
        async with trio.open_nursery() as nursery:
            async def catch() -> None:
                result.append(await self.sniff(match, timeout))

            nursery.start_soon(catch)
            await trio.sleep(0)
            await self.send(pkt)
        return result[0]


def _dnsmasq() -> str:
    path = shutil.which("dnsmasq") or shutil.which("dnsmasq", path="/usr/sbin:/sbin")
    if path is None:
        raise FileNotFoundError("euralios_tap(dhcp=True) needs dnsmasq (apt-get install dnsmasq-base)")
    return path


async def _start_dnsmasq(ns: Netns, workdir: Path, guest_ip: str, prefix: int) -> Path:
    """dnsmasq in the namespace, on the tap: one lease (guest_ip), router and DNS the host
    side; returns its log once it says it started."""
    from euralios.pytest_plugin import wait_until

    log = workdir / "dnsmasq.log"
    mask = ".".join(str((0xFFFFFFFF << (32 - prefix) >> s) & 0xFF) for s in (24, 16, 8, 0))
    with log.open("w") as out:
        ns.popen([_dnsmasq(), "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                  f"--interface={ns.tap}", "--bind-interfaces", "--user=root", "--pid-file",
                  f"--dhcp-range={guest_ip},{guest_ip},{mask},1h", f"--dhcp-option=option:router,{ns.host_ip}",
                  f"--dhcp-option=option:dns-server,{ns.host_ip}", f"--dhcp-leasefile={workdir / 'leases'}",
                  "--log-dhcp", "--no-ping"], stdout=out, stderr=out)
    await wait_until(lambda: "started" in log.read_text(errors="replace"), timeout=10, interval=0.02,
                     what="dnsmasq to start", detail=lambda: log.read_text(errors="replace"))
    return log


@asynccontextmanager
async def tap_guest(*, guest_ip: str = "10.0.2.15", host_ip: str = "10.0.2.2", prefix: int = 24,
                    mac: str = GUEST_MAC, dhcp: bool = False, impair: str | None = None, pcap: str | None = None,
                    tcp_args: Sequence[str] | None = None, wait: bool = True) -> AsyncIterator[TapGuest]:
    """A guest on a tap in a fresh network namespace (root). guest_ip/prefix: its address
    (static, gateway and DNS host_ip, unless dhcp); host_ip: the namespace's side of the tap;
    mac: the card's; dhcp: run dnsmasq on the tap (one lease, guest_ip) and let the stack ask
    it; impair: "loss=..,delay=..,reorder=..,dup=..,corrupt=..,seed=.." between the card and
    the tap; pcap: a capture file of what the card sent and got; tcp_args: the stack's options
    (overrides the static/DHCP choice); wait: wait for the stack's address first."""
    with Netns(host_ip=host_ip, prefix=prefix) as ns, tempfile.TemporaryDirectory(prefix="euralios-tap-") as tmp:
        log = await _start_dnsmasq(ns, Path(tmp), guest_ip, prefix) if dhcp else None
        backend = ns.backend(pcap=pcap, impair=impair)
        if tcp_args is None:
            tcp_args = [] if dhcp else ["--static", f"{guest_ip}/{prefix},gw={host_ip},dns={host_ip}"]
        async with boot(nic=backend, mac=mac) as system:
            system.start_network(list(tcp_args))
            if wait:
                await system.network_ready()
            yield TapGuest(ns, system, guest_ip, mac, log)
