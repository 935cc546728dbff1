"""The ARP neighbour cache (RFC 826): who has which MAC, and the packets waiting to know.

Entries live ARP_TTL seconds and are refreshed by a unicast request a few seconds before they
expire, so a busy connection never stalls on re-resolution. Packets for an unresolved next hop
wait in a bounded per-hop queue while the request is retried (ARP_TRIES, ARP_RETRY apart); when
it fails they are handed to the stack's `failed` callback, which drops them and tells their
owners (a connecting TCP socket fails "host unreachable", a ping gets "unreachable"). The stack
learns the asker of a request for our own address (RFC 826's merge rule) through `learn`.

Kept apart from net/stack.py because it is a cache with its own clock and retry policy; the
stack builds the frames (the `request` callback sends a request) and decides what a failure
means.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from proto.wire.tcp import TcpSegment

ARP_TTL = 60.0  # seconds an ARP entry is believed without news from its owner
ARP_REFRESH = 5.0  # re-ask (unicast) this long before an entry in use expires
ARP_RETRY = 1.0  # seconds between requests for an unresolved address
ARP_TRIES = 3  # requests before the address is declared unreachable
ARP_QUEUE = 64  # packets held per unresolved next hop (oldest dropped beyond)


@dataclass
class ArpEntry:
    """A resolved neighbour. `refreshing` is when we last re-asked (unicast) before expiry."""

    mac: str
    updated: float
    refreshing: float | None = None


@dataclass
class Queued:
    """A packet waiting for its next hop's MAC: built into a frame once it is known."""

    src: str
    dst: str
    proto: int
    payload: bytes | TcpSegment
    owner: object = None  # told when resolution fails (TcpConnection, PingSocket, UdpSocket)
    tag: int = 0  # the ping sequence number for a PingSocket owner


@dataclass
class Pending:
    """An address being asked for: what waits for it, and the retry schedule."""

    queue: deque[Queued] = field(default_factory=deque)
    tries: int = 0
    next_try: float = 0.0


class Neighbours:
    """The cache: `entries` (resolved), `pending` (being asked). ``ip in cache``: resolved.

    `request(hop, eth_dst)` sends an ARP request for `hop` (broadcast, or unicast to
    `eth_dst` for a refresh); `failed(queue, now)` gets the packets of an address nobody
    answered for. Both update the stack's `counters`, as the cache does."""

    def __init__(self, counters: dict[str, int], request: Callable[[str, str | None], None],
                 failed: Callable[[deque[Queued], float], None]) -> None:
        self.entries: dict[str, ArpEntry] = {}
        self.pending: dict[str, Pending] = {}
        self.counters = counters
        self.request = request
        self.failed = failed

    def __contains__(self, ip: object) -> bool:
        return ip in self.entries

    def lookup(self, hop: str, now: float) -> str | None:
        """The MAC of `hop` if it is known and fresh (asking its owner again near expiry)."""
        entry = self.entries.get(hop)
        if entry is None:
            return None
        age = now - entry.updated
        if age >= ARP_TTL:
            del self.entries[hop]
            return None
        if age >= ARP_TTL - ARP_REFRESH and (entry.refreshing is None or now - entry.refreshing >= ARP_RETRY):
            entry.refreshing = now  # still good: ask its owner directly, keep using it meanwhile
            self.request(hop, entry.mac)
        return entry.mac

    def hold(self, hop: str, packet: Queued, now: float) -> None:
        """Keep `packet` until `hop` is resolved (asking for it, if nobody has yet)."""
        pending = self.pending.get(hop)
        if pending is None:
            pending = self.pending[hop] = Pending()
            self._ask(hop, now)
        if len(pending.queue) >= ARP_QUEUE:
            pending.queue.popleft()
            self.counters["drop_arp_queue"] += 1
        pending.queue.append(packet)

    def learn(self, ip: str, mac: str, now: float, ours: bool) -> Iterable[Queued]:
        """A packet from `ip` said it has `mac`. RFC 826: merge the sender into the table if it
        is there (or asked for); add it if the packet was for us (`ours`). Returns the packets
        that waited for it, now to be sent."""
        if ip in self.entries or ours or ip in self.pending:
            self.entries[ip] = ArpEntry(mac, now)
            pending = self.pending.pop(ip, None)
            if pending is not None:
                return pending.queue
        return ()

    def next_deadline(self) -> float | None:
        """When `poll` next has a request to repeat or a failure to declare."""
        return min((p.next_try for p in self.pending.values()), default=None)

    def poll(self, now: float) -> None:
        """Ask again for every address whose retry is due; give up on those asked ARP_TRIES times."""
        for hop in [h for h, p in self.pending.items() if now >= p.next_try]:
            p = self.pending.get(hop)
            if p is None or now < p.next_try:
                continue  # resolved, or asked afresh, by what an earlier failure set off
            if p.tries >= ARP_TRIES:
                self._fail(hop, now)
            else:
                self._ask(hop, now)

    def table(self, now: float) -> list[dict[str, object]]:
        """The cache for people: resolved entries with seconds left, then unresolved ones."""
        rows: list[dict[str, object]] = []
        for ip, e in sorted(self.entries.items(), key=lambda kv: ipaddress.IPv4Address(kv[0])):
            left = ARP_TTL - (now - e.updated)
            if left > 0:
                rows.append({"address": ip, "mac": e.mac, "state": "reachable", "expires": round(left, 1)})
        for ip, p in sorted(self.pending.items()):
            rows.append({"address": ip, "mac": None, "state": "incomplete", "tries": p.tries, "queued": len(p.queue)})
        return rows

    def _ask(self, hop: str, now: float) -> None:
        pending = self.pending[hop]
        pending.tries += 1
        pending.next_try = now + ARP_RETRY
        self.request(hop, None)

    def _fail(self, hop: str, now: float) -> None:
        """Nobody answers for `hop`: drop what waited for it and let the stack tell its owners."""
        pending = self.pending.pop(hop)
        self.counters["arp_failures"] += 1
        self.counters["drop_arp_failed"] += len(pending.queue)
        self.failed(pending.queue, now)
