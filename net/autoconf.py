"""The interface configured by DHCP: net/dhcp.py's client wired to the stack.

The client's datagrams go out on UDP 68 -> 67 (broadcast from 0.0.0.0 until there is an
address, to the server itself for a renewal); its news becomes the stack's configuration and
events: a lease (bound, renewed) or the static fallback (when nobody answers within the
timeout) is an IfConfig, an expired lease clears it. Without a fallback, the stack says once
that it is still waiting (StackEvent.DHCP_WAITING) when the timeout passes.

Kept apart from net/stack.py: the IP layer only hands DHCP its datagrams and its clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from net.config import LIMITED_BROADCAST, MTU, ConfigSource, IfConfig, StackEvent
from net.dhcp import DhcpClient, DhcpEvent, Lease

if TYPE_CHECKING:
    from net.stack import NetStack

DHCP_PORT_CLIENT, DHCP_PORT_SERVER = 68, 67


class AutoConfig:
    """DHCP for `stack`'s interface (`client`, the state machine)."""

    def __init__(self, stack: NetStack, mac: bytes, *, fallback: IfConfig | None, timeout: float, hostname: str,
                 seed: int | None) -> None:
        self.stack = stack
        self.timeout = timeout
        self.started: float | None = None
        self.waiting_said = False
        lease = None
        if fallback is not None:
            lease = Lease(address=fallback.address, netmask=str(fallback.network.netmask), router=fallback.gateway,
                          dns=list(fallback.dns), static=True, lease_time=float("inf"))
        self.client = DhcpClient(mac, hostname=hostname, seed=seed, fallback=lease, give_up_after=timeout)
        self.fallback_mtu = fallback.mtu if fallback is not None else MTU

    def next_deadline(self) -> float | None:
        """The client's next retry or renewal, or the moment to say it is still waiting."""
        d = self.client.next_deadline()
        if self.started is not None and not self.waiting_said and self.stack.config is None:
            notice = self.started + self.timeout
            if d is None or notice < d:
                return notice
        return d

    def poll(self, now: float) -> None:
        d = self.client.next_deadline()
        if d is not None and now >= d:
            if self.started is None:
                self.started = now
            self.client.poll(now)
        self._io()
        if (self.started is not None and self.stack.config is None and not self.waiting_said
                and now >= self.started + self.timeout):
            self.waiting_said = True
            self.stack.events.append((StackEvent.DHCP_WAITING, None))

    def datagram_received(self, payload: bytes, now: float) -> None:
        """A datagram to UDP 68."""
        self.client.datagram_received(payload, now)
        self._io()

    def _io(self) -> None:
        """The client's datagrams out, its events into the stack's configuration."""
        stack, dhcp = self.stack, self.client
        for o in dhcp.datagrams_to_send():
            if o.unicast_to and stack.config is not None:
                stack.udp_output(stack.config.address, DHCP_PORT_CLIENT, o.unicast_to, DHCP_PORT_SERVER, o.payload)
            else:
                src = stack.config.address if stack.config is not None else "0.0.0.0"
                stack.udp_output(src, DHCP_PORT_CLIENT, LIMITED_BROADCAST, DHCP_PORT_SERVER, o.payload)
        while dhcp.events:
            event = dhcp.events.pop(0)
            lease = dhcp.lease
            if event in (DhcpEvent.BOUND, DhcpEvent.RENEWED, DhcpEvent.FALLBACK) and lease is not None:
                source = ConfigSource.FALLBACK if event == DhcpEvent.FALLBACK else ConfigSource.DHCP
                cfg = IfConfig(lease.address, lease.prefix_len, lease.router, list(lease.dns),
                               self.fallback_mtu if source == ConfigSource.FALLBACK else MTU, source)
                old = stack.config
                changed = old is None or (old.address, old.prefix, old.gateway, old.dns) != (cfg.address, cfg.prefix,
                                                                                          cfg.gateway, cfg.dns)
                stack.config = cfg
                if event == DhcpEvent.FALLBACK:
                    stack.events.append((StackEvent.FALLBACK, cfg))
                elif changed:
                    stack.events.append((StackEvent.CONFIGURED, cfg))
            elif event == DhcpEvent.EXPIRED:
                stack.config = None
                stack.events.append((StackEvent.UNCONFIGURED, None))
            elif event == DhcpEvent.NAK:
                stack.events.append((StackEvent.DHCP_NAK, None))
