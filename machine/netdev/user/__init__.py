"""``--net user``: a virtual router behind the emulated card, like QEMU's user networking (slirp).

No root and no tap: the guest sees an Ethernet segment 10.0.2.0/24 with a gateway (10.0.2.2) and
a DNS server (10.0.2.3), and the router turns what the guest sends into ordinary host sockets::

    guest 10.0.2.15  <-- frames -->  UserBackend  <-- trio sockets -->  host / the Internet

One concept a module:

* ``segment``  the addresses and MACs of the segment (slirp's)
* ``options``  ``--net user,hostfwd=...,hosts=...,domainname=...`` and hosts files
* ``router``   :class:`UserBackend`: frames in and out, ARP, dispatch to the services below
* ``icmp``     echo replies for the router's addresses, destination unreachable
* ``dhcp``     the DHCP server (one fixed lease, 10.0.2.15)
* ``dns``      the DNS server at 10.0.2.3: hosts table, then the host's resolver
* ``tcp``      guest TCP terminated by ``proto.tcp`` and spliced to host sockets; ``hostfwd``
* ``udp``      guest UDP relayed through host UDP sockets
* ``udpfwd``   ``hostfwd=udp:...``: host clients' datagrams to a guest UDP server and back
* ``host``     the host side: where a guest address goes, the host resolver and connect
* ``wakeup``   the doorbell the router's tasks sleep on

Everything is event-driven: sockets are awaited, every TCP engine has one timer task that sleeps
until its ``next_deadline()`` (and is woken only when that moves earlier), UDP flows sleep until
their idle deadline. An idle router does not wake up at all.

The names below are the package's public surface; the modules' other names serve the router.
"""

from __future__ import annotations

from machine.netdev.user.host import host_address, host_connect, host_resolve
from machine.netdev.user.options import (
    HostFwd,
    UserOptions,
    load_hosts,
    parse_hostfwd,
    parse_hosts,
    parse_user_options,
)
from machine.netdev.user.router import UserBackend, make_user_backend
from machine.netdev.user.segment import DNS_MAC, DNS_SERVER, GATEWAY, GATEWAY_MAC, GUEST, NETWORK

__all__ = [
    "UserBackend",
    "UserOptions",
    "HostFwd",
    "parse_user_options",
    "parse_hostfwd",
    "parse_hosts",
    "load_hosts",
    "make_user_backend",
    "host_resolve",
    "host_connect",
    "host_address",
    "NETWORK",
    "GATEWAY",
    "DNS_SERVER",
    "GUEST",
    "GATEWAY_MAC",
    "DNS_MAC",
]
