"""The ``user`` router's UDP port forwarding: ``hostfwd=udp:HOSTADDR:HOSTPORT-GUESTADDR:GUESTPORT``.

A host socket bound to HOSTADDR:HOSTPORT takes datagrams from host clients and hands each to
the guest's GUESTADDR:GUESTPORT. The guest must be able to answer each client, so every client
(address, port) is given a port of the router's own (from 49152 up): the guest sees the
datagram come from 10.0.2.2:THAT_PORT, and what the guest sends from GUESTPORT to
10.0.2.2:THAT_PORT goes back to that client through the forwarding socket (so the client sees
the answer come from HOSTADDR:HOSTPORT, the address it asked). The table keeps the newest
``MAX_CLIENTS`` clients; the oldest is forgotten first (UDP has no end to wait for).

Bound at construction, as the TCP rules are, so a port in use fails at start-up.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import trio

from machine.netdev import BackendError
from machine.netdev.user.options import HostFwd
from machine.netdev.user.segment import GATEWAY

if TYPE_CHECKING:
    from machine.netdev.user.router import UserBackend

__all__ = ["UdpForwarder", "MAX_CLIENTS"]

MAX_CLIENTS = 1024
FIRST_PORT, LAST_PORT = 49152, 65535


class UdpForwarder:
    """Every ``hostfwd=udp:`` rule: their host sockets, and the clients they have seen."""

    def __init__(self, router: UserBackend, rules: list[HostFwd]) -> None:
        self.router = router
        self.rules = rules
        self.sockets: list[socket.socket] = []
        self.ports: list[int] = []  # host port of each rule (0 resolved)
        # router port -> (rule index, client address); client -> router port (insertion = age)
        self.by_port: dict[int, tuple[int, tuple[str, int]]] = {}
        self.by_client: dict[tuple[int, tuple[str, int]], int] = {}
        self._next = FIRST_PORT

    def bind(self) -> None:
        for rule in self.rules:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((rule.host_addr, rule.host_port))
                s.setblocking(False)
            except OSError as e:
                s.close()
                raise BackendError(f"--net {self.router.spec}: cannot forward udp {rule.host_addr}:{rule.host_port}: "
                                   f"{e.strerror or e}") from None
            self.sockets.append(s)
            self.ports.append(s.getsockname()[1])
            self.router.host_sockets.add(s)

    def start(self, nursery: trio.Nursery) -> None:
        for i, s in enumerate(self.sockets):
            nursery.start_soon(self._serve, i, trio.socket.from_stdlib_socket(s))

    def _port_for(self, key: tuple[int, tuple[str, int]]) -> int:
        port = self.by_client.get(key)
        if port is not None:
            del self.by_client[key]  # re-inserted below: now the newest
        else:
            if len(self.by_client) >= MAX_CLIENTS:
                old_key = next(iter(self.by_client))
                del self.by_port[self.by_client.pop(old_key)]
            while self._next in self.by_port:
                self._next = FIRST_PORT if self._next >= LAST_PORT else self._next + 1
            port = self._next
            self._next = FIRST_PORT if port >= LAST_PORT else port + 1
            self.by_port[port] = key
        self.by_client[key] = port
        return port

    async def _serve(self, index: int, sock: trio.socket.SocketType) -> None:
        rule, router = self.rules[index], self.router
        while True:
            try:
                data, client = await sock.recvfrom(65536)
            except OSError:  # an ICMP error from an earlier answer surfaces here: nothing to do
                continue
            router.events["hostfwd_udp_in"] += 1
            port = self._port_for((index, (client[0], client[1])))
            router.emit_udp(GATEWAY, port, rule.guest_addr, rule.guest_port, data)

    def is_answer(self, src: str, sport: int, dst: str, dport: int) -> bool:
        """Is this guest datagram an answer to a forwarded client (restrict=on lets it pass)?"""
        entry = self.by_port.get(dport) if dst == GATEWAY else None
        return entry is not None and self.rules[entry[0]].guest_port == sport and \
            self.rules[entry[0]].guest_addr == src

    def answer(self, src: str, sport: int, dst: str, dport: int, payload: bytes) -> bool:
        """Send a guest's answer back to its client; False: not an answer to one."""
        if not self.is_answer(src, sport, dst, dport):
            return False
        index, client = self.by_port[dport]
        try:
            self.sockets[index].sendto(payload, client)
            self.router.events["hostfwd_udp_out"] += 1
        except OSError:
            self.router.events["udp_send_errors"] += 1
        return True
