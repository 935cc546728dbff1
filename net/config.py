"""The interface's IPv4 configuration: address/prefix, gateway, DNS servers, MTU.

Set statically (`parse_config("10.0.2.15/24,gw=10.0.2.2,dns=10.0.2.3")`, from the command line)
or by the DHCP client (net/dhcp.py) through the stack, with an optional static fallback. Kept
apart from the stack because the command line (net/options.py) parses it before any stack
exists, and because what it derives (network, broadcast, on-link) is asked on every packet.
What happens to the configuration is told as StackEvents.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum

from net.dns import is_address

MTU = 1500
LIMITED_BROADCAST = "255.255.255.255"  # every host on the link, whatever its configuration


class StackEvent(StrEnum):
    """News of the interface's configuration, queued in `NetStack.events` with the IfConfig
    it concerns (None for the last three); the server prints it."""

    CONFIGURED = "configured"  # an address (static, DHCP, a new DHCP lease)
    FALLBACK = "fallback"  # no DHCP answer: the static fallback is in use
    DHCP_WAITING = "dhcp-waiting"  # no DHCP answer yet, and no fallback: still asking
    UNCONFIGURED = "unconfigured"  # the lease expired (or the configuration was cleared)
    DHCP_NAK = "dhcp-nak"  # the server refused our lease


class ConfigSource(StrEnum):
    """Where a configuration came from; the server says so when it is applied."""

    STATIC = "static"
    DHCP = "dhcp"
    FALLBACK = "fallback"


@dataclass
class IfConfig:
    """The interface's IPv4 configuration. `source` says where it came from (static, dhcp,
    fallback) so the I/O layer can say so."""

    address: str
    prefix: int = 24
    gateway: str | None = None
    dns: list[str] = field(default_factory=list)
    mtu: int = MTU
    source: ConfigSource = ConfigSource.STATIC

    # The derived values are asked for on every packet (routing, "is it for us?"): building an
    # IPv4Network each time was 6 % of the upload profile, so they are cached, keyed by the
    # fields they come from (the dataclass stays mutable).
    @property
    def network(self) -> ipaddress.IPv4Network:
        return self._derived()[0]

    @property
    def broadcast(self) -> str:
        return self._derived()[1]

    def on_link(self, ip: str) -> bool:
        _, _, links = self._derived()
        hit = links.get(ip)
        if hit is None:
            if len(links) >= 256:
                links.clear()
            hit = links[ip] = ipaddress.IPv4Address(ip) in self.network
        return hit

    def _derived(self) -> tuple[ipaddress.IPv4Network, str, dict[str, bool]]:
        key = (self.address, self.prefix)
        cache = self.__dict__.get("_cache")
        if cache is None or cache[0] != key:
            net = ipaddress.IPv4Network(f"{self.address}/{self.prefix}", strict=False)
            cache = self.__dict__["_cache"] = (key, (net, str(net.broadcast_address), {}))
        return cache[1]

    def describe(self) -> str:
        """`10.0.2.15/24 gw 10.0.2.2 dns 10.0.2.3` (what the server prints)."""
        text = f"{self.address}/{self.prefix}"
        if self.gateway:
            text += f" gw {self.gateway}"
        if self.dns:
            text += " dns " + " ".join(self.dns)
        return text

    def as_dict(self) -> dict[str, object]:
        return {"address": self.address, "prefix": self.prefix, "gateway": self.gateway, "dns": list(self.dns),
                "mtu": self.mtu, "source": self.source}


def parse_config(text: str, source: ConfigSource = ConfigSource.STATIC) -> IfConfig:
    """`10.0.2.15/24,gw=10.0.2.2,dns=10.0.2.3[,dns=...][,mtu=1500]` -> IfConfig.

    ValueError with a one-line message on anything else (the command line shows it as is)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError("empty network configuration (expected ADDRESS/PREFIX[,gw=IP][,dns=IP])")
    try:
        iface = ipaddress.IPv4Interface(parts[0] if "/" in parts[0] else parts[0] + "/24")
    except ValueError:
        raise ValueError(f"{parts[0]!r} is not an IPv4 address/prefix (e.g. 10.0.2.15/24)") from None
    cfg = IfConfig(str(iface.ip), iface.network.prefixlen, source=source)
    for item in parts[1:]:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        value = value.strip()
        if not sep or not value:
            raise ValueError(f"expected key=value in the network configuration, got {item!r}")
        if key in ("gw", "gateway", "router"):
            cfg.gateway = _check_ip(value, key)
        elif key == "dns":
            cfg.dns.extend(_check_ip(v, key) for v in value.split("+"))
        elif key == "mtu":
            if not value.isdigit() or not 576 <= int(value) <= MTU:
                raise ValueError(f"mtu={value}: must be between 576 and {MTU}")
            cfg.mtu = int(value)
        else:
            raise ValueError(f"unknown network setting {key!r} (use gw=, dns=, mtu=)")
    if cfg.gateway is not None and not cfg.on_link(cfg.gateway):
        raise ValueError(f"gateway {cfg.gateway} is not in {cfg.network}")
    return cfg


def _check_ip(value: str, what: str) -> str:
    if not is_address(value):
        raise ValueError(f"{what}={value}: not an IPv4 address")
    return str(ipaddress.IPv4Address(value))
