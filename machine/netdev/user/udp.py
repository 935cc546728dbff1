"""The ``user`` router's UDP relay: guest datagrams through host UDP sockets.

**UDP** from the guest (other than DHCP and DNS, which the router answers itself) is relayed
through one host UDP socket per guest (address, port), closed after ``udp_idle`` seconds without
traffic. Each flow's task sleeps until a datagram or that idle deadline.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import trio

from machine.netdev.user.host import host_address
from machine.netdev.user.segment import GATEWAY
from proto.wire.ipv4 import Ipv4Header
from proto.wire.udp import UdpDatagram

if TYPE_CHECKING:
    from machine.netdev.user.router import UserBackend

__all__ = ["UdpRelay", "UdpFlow", "MAX_UDP_FLOWS"]

MAX_UDP_FLOWS = 256


class UdpRelay:
    """The flow table and the way in: a guest datagram for somewhere beyond the router."""

    def __init__(self, router: UserBackend) -> None:
        self.router = router
        self.flows: dict[tuple[str, int], UdpFlow] = {}

    def datagram(self, ip: Ipv4Header, dgram: UdpDatagram) -> None:
        """Send ``dgram`` from the guest on its way, opening its flow if it is the first."""
        router = self.router
        target = host_address(ip.dst)
        if target is None:
            router.events["dropped"] += 1
            return
        key = (ip.src, dgram.src_port)
        flow = self.flows.get(key)
        if flow is None:
            if len(self.flows) >= MAX_UDP_FLOWS or router.nursery is None:
                router.events["dropped"] += 1
                return
            try:
                flow = UdpFlow(router, key)
            except OSError:  # out of file descriptors: a lost datagram
                router.events["dropped"] += 1
                return
            self.flows[key] = flow
            router.events["udp_flows"] += 1
            router.nursery.start_soon(flow.run)
        flow.send(dgram.payload, (target, dgram.dst_port))


class UdpFlow:
    """One guest (address, port) relayed through one host UDP socket.

    Sends are synchronous (from ``send()`` of the backend; a full socket buffer drops the
    datagram, as a network would). Replies from any host address come back to the guest, the
    host's loopback appearing as 10.0.2.2. The receive task sleeps until a datagram or the idle
    deadline, which sends merely push back -- no timer is re-armed per datagram."""

    def __init__(self, router: UserBackend, key: tuple[str, int]) -> None:
        self.router = router
        self.key = key
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.bind(("0.0.0.0", 0))
        router.host_sockets.add(self.sock)
        self.expires = trio.current_time() + router.udp_idle

    def send(self, payload: bytes, target: tuple[str, int]) -> None:
        self.expires = trio.current_time() + self.router.udp_idle
        try:
            self.sock.sendto(payload, target)
        except OSError:
            self.router.events["udp_send_errors"] += 1

    async def run(self) -> None:
        router = self.router
        guest_ip, guest_port = self.key
        tsock = trio.socket.from_stdlib_socket(self.sock)
        try:
            while True:
                with trio.move_on_at(self.expires):
                    try:
                        data, (addr, port) = await tsock.recvfrom(65536)
                    except OSError:  # ICMP errors surface here (ECONNREFUSED): nothing to do
                        continue
                    self.expires = trio.current_time() + router.udp_idle
                    src = GATEWAY if addr.startswith("127.") else addr
                    router.emit_udp(src, port, guest_ip, guest_port, data)
                    continue
                if trio.current_time() >= self.expires:
                    return
        finally:
            router.host_sockets.discard(self.sock)
            tsock.close()
            flows = router.udp.flows
            if flows.get(self.key) is self:
                del flows[self.key]
