"""The host side of the ``user`` router: where guest packets go, the resolver, the TCP connect.

These are the defaults; :class:`~machine.netdev.user.router.UserBackend` takes ``resolve`` and
``connect`` replacements (tests, or a host that must reach the world through something else).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable
from functools import lru_cache

import trio

from machine.netdev.user.segment import GATEWAY, NETWORK

__all__ = ["Resolve", "Connect", "host_resolve", "host_connect", "host_address"]

Resolve = Callable[[str], Awaitable[list[str]]]
Connect = Callable[[tuple[str, int]], Awaitable[trio.socket.SocketType]]


async def host_resolve(name: str) -> list[str]:
    """The host's IPv4 addresses for ``name`` (its resolver: /etc/hosts, DNS, mDNS, ...).

    Raises ``socket.gaierror`` as getaddrinfo does."""
    infos = await trio.socket.getaddrinfo(name, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
    out: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in out:
            out.append(addr)
    return out


@lru_cache(maxsize=1024)
def host_address(dst: str) -> str | None:
    """Where a guest packet for ``dst`` goes on the host: 10.0.2.2 is the host itself (its
    loopback, as in QEMU); other 10.0.2.x, broadcasts, multicast and the like go nowhere."""
    if dst == GATEWAY:
        return "127.0.0.1"
    addr = ipaddress.IPv4Address(dst)
    if addr in NETWORK or addr.is_multicast or addr.is_unspecified or addr.is_loopback or addr.is_reserved \
            or addr == ipaddress.IPv4Address("255.255.255.255"):
        return None
    return dst


async def host_connect(target: tuple[str, int]) -> trio.socket.SocketType:
    """A TCP socket connected to ``target`` on the host (closed again if that fails)."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        await sock.connect(target)
    except BaseException:
        sock.close()
        raise
    return sock
