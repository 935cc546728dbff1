"""The /tcp namespace: which paths there are, and the file nodes its sessions are open on.

One mount; every path is opened with proc.open / OPEN as a file, and each open starts a
session (net/sessions/) served by a thread of the server:

    /tcp/HOST:PORT      a TCP connection (HOST/PORT, the seed's spelling, works too); HOST is an
                        address or a DNS name (sessions/tcp.py)
    /tcp/listen/PORT    a listening port (sessions/tcp.py)
    /tcp/udp/HOST:PORT  a connected UDP socket (sessions/udp.py)
    /tcp/udp/PORT       a bound UDP socket: recvfrom/sendto (PORT 0: an ephemeral one)
    /tcp/dns/NAME       a file: JSON {"name", "canonical", "addresses"}; the lookup happens at open
    /tcp/ping/HOST      an ICMP echo session (sessions/ping.py)
    /tcp/mux            many sockets on one session, select/poll style (sessions/mux.py)
    /tcp/stats          a file: JSON counters, configuration, connections, ARP cache, server state
    /tcp/arp            a file: JSON list of ARP entries {address, mac, state, expires}
    /tcp (QUERY)        the directory: stats, arp, dns/, listen/, mux, ping/, udp/

A path that is not one of these, or a bad port, is answered Short(ERROR_INVALID_VALUE=132)
(spec §16.4 row 56; net/errors.py). Any open flags are accepted (row 57's read-only open is
served, not left unanswered; a connection opened without O_WRITE refuses WRITE).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from net.errors import BadPath
from vfs.server import DirNode, FileNode, Node

if TYPE_CHECKING:
    from net.server import NetServer


def split_hostport(text: str) -> tuple[str, int]:
    """`host:port` or `host/port` -> (host, port); BadPath otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, sep, port = text.rpartition("/")
    host, port = host.strip(), port.strip()
    if not sep or not host or "/" in host:
        raise BadPath(f"expected HOST:PORT, got {text!r}")
    return host, parse_port(port)


def parse_port(text: str) -> int:
    text = text.strip()
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise BadPath(f"bad port {text!r}")
    return int(text)


class NetNode(Node):
    """What a session is open on: runs `on_close` when the session ends (CLOSE or the client
    dropping its handle), so sockets never outlive their sessions."""

    def __init__(self, name: str, on_close: Callable[[], Any]) -> None:
        self.name = name
        self._on_close = on_close
        self._closed = False

    async def closed(self) -> None:
        if not self._closed:
            self._closed = True
            await self._on_close()

    def info(self) -> bytes:
        return b"{}"


class Snapshot(FileNode):
    """A read-only file whose bytes were fixed at open (stats, arp, a DNS answer)."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name = name
        self.data = data

    def size(self) -> int:
        return len(self.data)

    async def read(self, offset: int, n: int) -> bytes:
        return self.data[offset:offset + n]


class Root(DirNode):
    """The mount's directory listing (QUERY on /tcp)."""

    name = "tcp"

    def __init__(self, server: NetServer) -> None:
        self.server = server

    def lookup(self, name: str) -> Node | None:
        return None

    def entries(self) -> list[tuple[str, Node]]:
        srv = self.server
        return [("stats", Snapshot("stats", srv.stats_json())), ("arp", Snapshot("arp", srv.arp_json())),
                ("dns", DirNode()), ("listen", DirNode()), ("mux", Snapshot("mux", b"")), ("ping", DirNode()),
                ("udp", DirNode())]
