"""DNS stub resolver, sans-IO: A queries, CNAME chains, a TTL cache, NXDOMAIN as not-found.

The I/O layer sends `query(name)`'s bytes to the server (UDP 53), retries on its own timer, and
hands replies to `answer(reply_bytes, now)`. Lookups in `cached(name, now)` avoid the network
while a record's TTL lasts. scapy's DNS layer encodes and decodes (off the hot path).
"""

from __future__ import annotations

import ipaddress
import random
from enum import StrEnum

from scapy.layers.dns import DNS, DNSQR

MAX_CNAME_CHAIN = 8


class DnsErrorKind(StrEnum):
    """Why a lookup failed. The first five are the answer's (DnsError.kind); the rest are the
    lookup's own (net/lookups.py). The values are what /tcp/dns answers in JSON ("error")."""

    NXDOMAIN = "nxdomain"  # no such name (RCODE 3)
    SERVFAIL = "servfail"  # RCODE 2
    REFUSED = "refused"  # RCODE 5, or the server's port unreachable
    NO_ADDRESS = "no-address"  # the name exists but has no A record
    BAD_REPLY = "bad-reply"  # another RCODE
    TIMEOUT = "timeout"  # no answer after every try
    UNREACHABLE = "unreachable"  # no route to the server
    NO_SERVER = "no-server"  # no DNS server configured
    INVALID = "invalid"  # not a host name


class DnsError(Exception):
    """A reply says the lookup failed: `kind` is NXDOMAIN, SERVFAIL, REFUSED, NO_ADDRESS or
    BAD_REPLY."""

    def __init__(self, name: str, kind: DnsErrorKind) -> None:
        super().__init__(f"{name}: {'not found' if kind == DnsErrorKind.NXDOMAIN else kind}")
        self.name = name
        self.kind = kind


def is_address(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
        return True
    except ValueError:
        return False


class Resolver:
    def __init__(self, seed: int | None = None, hosts: dict[str, str] | None = None) -> None:
        self.rng = random.Random(seed)
        self.cache: dict[str, tuple[float, list[str], str | None]] = {}  # name -> (expiry, addrs, cname)
        self.pending: dict[int, str] = {}  # query id -> name
        self.hosts = {k.lower().rstrip("."): v for k, v in (hosts or {}).items()}

    def query(self, name: str) -> tuple[int, bytes]:
        """(query id, bytes of an A query with recursion desired)."""
        qid = self.rng.getrandbits(16)
        while qid in self.pending:
            qid = self.rng.getrandbits(16)
        self.pending[qid] = name.lower().rstrip(".")
        return qid, bytes(DNS(id=qid, rd=1, qd=[DNSQR(qname=name, qtype="A")]))

    def cached(self, name: str, now: float) -> list[str] | None:
        """Addresses from hosts, an IP literal, or an unexpired cache entry (following CNAMEs)."""
        name = name.lower().rstrip(".")
        if is_address(name):
            return [name]
        if name in self.hosts:
            return [self.hosts[name]]
        for _ in range(MAX_CNAME_CHAIN):
            entry = self.cache.get(name)
            if entry is None or entry[0] <= now:
                return None
            expiry, addrs, cname = entry
            if addrs:
                return addrs
            if cname is None:
                return None
            name = cname
        return None

    def answer(self, reply: bytes, now: float) -> tuple[str, list[str]] | None:
        """Process a reply: (name asked, addresses), or None if it answers nothing we asked.
        Raises DnsError for NXDOMAIN and other failures."""
        try:
            pkt = DNS(reply)
        except Exception:  # noqa: BLE001 - scapy raises many kinds on garbage
            return None
        if not pkt.qr or pkt.id not in self.pending:
            return None
        name = self.pending.pop(pkt.id)
        rcode = pkt.rcode
        if rcode == 3:
            raise DnsError(name, DnsErrorKind.NXDOMAIN)
        if rcode == 2:
            raise DnsError(name, DnsErrorKind.SERVFAIL)
        if rcode == 5:
            raise DnsError(name, DnsErrorKind.REFUSED)
        if rcode != 0:
            raise DnsError(name, DnsErrorKind.BAD_REPLY)
        records: dict[str, list[tuple[str, str, int]]] = {}
        for rr in list(pkt.an or []):
            owner = rr.rrname.decode("ascii", "replace").lower().rstrip(".") if isinstance(rr.rrname, bytes) else str(rr.rrname).lower().rstrip(".")
            if rr.type == 1:
                records.setdefault(owner, []).append(("A", str(rr.rdata), int(rr.ttl)))
            elif rr.type == 5:
                target = rr.rdata.decode("ascii", "replace") if isinstance(rr.rdata, bytes) else str(rr.rdata)
                records.setdefault(owner, []).append(("CNAME", target.lower().rstrip("."), int(rr.ttl)))
        for owner, recs in records.items():
            addrs = [v for t, v, _ in recs if t == "A"]
            cname = next((v for t, v, _ in recs if t == "CNAME"), None)
            ttl = min(ttl for _, _, ttl in recs)
            self.cache[owner] = (now + max(ttl, 0), addrs, cname)
        # A TTL of 0 (dnsmasq's default for its local records) means "use for this answer only,
        # do not cache" (RFC 1035 3.2.1): the cache then knows nothing, the answer itself does.
        addrs = self.cached(name, now) or _chase(name, records)
        if not addrs:
            raise DnsError(name, DnsErrorKind.NO_ADDRESS)
        return name, addrs


def _chase(name: str, records: dict[str, list[tuple[str, str, int]]]) -> list[str]:
    """The A records for `name` in one answer's records, following its CNAMEs."""
    for _ in range(MAX_CNAME_CHAIN):
        recs = records.get(name, [])
        addrs = [v for t, v, _ in recs if t == "A"]
        if addrs:
            return addrs
        target = next((v for t, v, _ in recs if t == "CNAME"), None)
        if target is None:
            return []
        name = target
    return []
