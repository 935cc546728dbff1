"""The stack's DNS client: lookups over its own UDP sockets (net/dns.py makes the messages).

One lookup per name in flight, retried with a per-try timeout (DNS_TRY_TIMEOUT) rotating over
the configured servers, answered from net/dns.py's TTL cache when it can be, NXDOMAIN reported
as such. Each try uses a fresh connected UDP socket on an ephemeral port, so a late answer to
an earlier try is told apart by its socket; an ICMP error on it (the server's port closed, no
route) moves on to the next try at once.

Kept apart from net/stack.py because it is an application of the stack's UDP sockets, as any
program's resolver would be, with its own retry clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from net.dns import DnsError, DnsErrorKind, Resolver
from net.sockets import SocketError, StackError, UdpSocket

if TYPE_CHECKING:
    from net.stack import NetStack

DNS_PORT = 53
DNS_TRY_TIMEOUT = (1.0, 1.0, 2.0, 2.0)  # per attempt; attempts rotate over the servers
HOSTNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")
# What an ICMP error on the query's socket says about the server.
SOCKET_FAILURES = {SocketError.REFUSED: DnsErrorKind.REFUSED, SocketError.UNREACHABLE: DnsErrorKind.UNREACHABLE}


class Lookup:
    """A DNS lookup: `done` once `addresses` (and `canonical`, the name at the end of a CNAME
    chain) or `error` (a DnsErrorKind) is known."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.done = False
        self.addresses: list[str] = []
        self.canonical: str = name
        self.error: DnsErrorKind | None = None
        self.attempt = 0
        self.deadline: float | None = None
        self.sock: UdpSocket | None = None
        self.qids: list[int] = []
        self.server = ""

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "canonical": self.canonical, "addresses": list(self.addresses),
                "error": self.error}


class Lookups:
    """The lookups in flight (`lookups`, by name) and the cache (`resolver`) of one stack."""

    def __init__(self, stack: NetStack, seed: int | None) -> None:
        self.stack = stack
        self.resolver = Resolver(seed=seed, hosts={"localhost": "127.0.0.1"})
        self.lookups: dict[str, Lookup] = {}

    def resolve(self, name: str, now: float) -> Lookup:
        """A lookup for `name`: already done for addresses, the cache and obvious failures;
        otherwise in flight (check `done` after input and polls)."""
        key = name.lower().rstrip(".")
        cached = self.resolver.cached(key, now)
        if cached:
            lk = Lookup(key)
            lk.done, lk.addresses, lk.canonical = True, cached, self._canonical(key, now)
            return lk
        if key in self.lookups:
            return self.lookups[key]
        lk = Lookup(key)
        if (not key or len(key) > 253 or any(not 0 < len(label) < 64 for label in key.split("."))
                or not set(key) <= HOSTNAME_CHARS):
            lk.done, lk.error = True, DnsErrorKind.INVALID
            return lk
        config = self.stack.config
        if config is None or not config.dns:
            lk.done, lk.error = True, DnsErrorKind.NO_SERVER
            return lk
        self.lookups[key] = lk
        self._send(lk, now)
        return lk

    def next_deadline(self) -> float | None:
        return min((lk.deadline for lk in self.lookups.values() if lk.deadline is not None), default=None)

    def poll(self, now: float) -> None:
        """Try again (or give up) every lookup whose try timed out."""
        for lk in [lk for lk in self.lookups.values() if lk.deadline is not None and now >= lk.deadline]:
            if lk.deadline is not None and now >= lk.deadline:
                self._retry(lk, now)

    def _send(self, lk: Lookup, now: float) -> None:
        stack = self.stack
        cfg = stack.config
        if cfg is None or not cfg.dns:
            self._done(lk, error=DnsErrorKind.NO_SERVER)
            return
        server = cfg.dns[lk.attempt % len(cfg.dns)]
        lk.server = server
        if lk.sock is not None:
            stack.udp_close(lk.sock)
        sock = stack.udp_open(0, (server, DNS_PORT))

        def handler(src: str, sport: int, payload: bytes, when: float) -> None:
            if lk.sock is not sock:
                return  # an earlier attempt's socket
            try:
                result = self.resolver.answer(payload, when)
            except DnsError as e:
                self._done(lk, error=e.kind)
                return
            if result is not None:
                self._done(lk, addresses=result[1])

        def on_error(kind: SocketError) -> None:
            if lk.sock is sock:
                self._retry(lk, stack.now, error=SOCKET_FAILURES[kind])

        sock.handler = handler
        sock.on_error = on_error
        lk.sock = sock
        qid, query = self.resolver.query(lk.name)
        lk.qids.append(qid)
        lk.deadline = now + DNS_TRY_TIMEOUT[min(lk.attempt, len(DNS_TRY_TIMEOUT) - 1)]
        try:
            stack.udp_send(sock, query, now)
        except StackError:
            self._retry(lk, now, error=DnsErrorKind.UNREACHABLE)

    def _retry(self, lk: Lookup, now: float, error: DnsErrorKind = DnsErrorKind.TIMEOUT) -> None:
        if lk.done:
            return
        lk.attempt += 1
        if lk.attempt >= len(DNS_TRY_TIMEOUT):
            self._done(lk, error=error)
            return
        self._send(lk, now)

    def _done(self, lk: Lookup, addresses: list[str] | None = None, error: DnsErrorKind | None = None) -> None:
        if lk.done:
            return
        lk.done = True
        lk.deadline = None
        lk.error = error
        if addresses:
            lk.addresses = list(addresses)
            lk.canonical = self._canonical(lk.name, self.stack.now)
        for qid in lk.qids:
            self.resolver.pending.pop(qid, None)
        if lk.sock is not None:
            self.stack.udp_close(lk.sock)
            lk.sock = None
        if self.lookups.get(lk.name) is lk:
            del self.lookups[lk.name]

    def _canonical(self, name: str, now: float) -> str:
        """The end of `name`'s CNAME chain in the cache (the name itself when there is none)."""
        for _ in range(8):
            entry = self.resolver.cache.get(name)
            if entry is None or entry[0] <= now or entry[2] is None:
                return name
            name = entry[2]
        return name
