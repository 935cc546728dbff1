"""The Ethernet segment the ``user`` router makes for the guest: QEMU slirp's addresses.

The guest sees 10.0.2.0/24 with a gateway (10.0.2.2) and a DNS server (10.0.2.3), both answered
by the router under slirp's MACs (52:55 followed by the IPv4 address), and is leased 10.0.2.15.
Every part of the router speaks in these names, so they live apart from any one of them.
"""

from __future__ import annotations

import ipaddress

__all__ = [
    "NETWORK",
    "GATEWAY",
    "DNS_SERVER",
    "GUEST",
    "NETMASK",
    "BROADCAST_IP",
    "GATEWAY_MAC",
    "DNS_MAC",
    "ETHER_BROADCAST",
    "MTU",
]

NETWORK = ipaddress.IPv4Network("10.0.2.0/24")
GATEWAY = "10.0.2.2"
DNS_SERVER = "10.0.2.3"
GUEST = "10.0.2.15"
NETMASK = "255.255.255.0"
BROADCAST_IP = "10.0.2.255"
GATEWAY_MAC = "52:55:0a:00:02:02"  # slirp: 52:55 followed by the IPv4 address
DNS_MAC = "52:55:0a:00:02:03"
ETHER_BROADCAST = "ff:ff:ff:ff:ff:ff"

MTU = 1500
