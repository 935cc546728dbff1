"""The ``user`` router's DNS server at 10.0.2.3, a forwarder to the host's resolver.

**DNS**: A queries are answered from the ``hosts`` table (``hosts=FILE``, lines
``ADDRESS NAME...``) and otherwise from the host's own resolver (``trio.socket.getaddrinfo``),
so the guest sees exactly the names the host sees; NXDOMAIN when the host cannot resolve.

Off the data path (one query per name and TTL), so scapy reads and builds the messages.
"""

from __future__ import annotations

import socket
from collections import Counter
from enum import IntEnum

import trio

from machine.netdev.user.host import Resolve

__all__ = ["DnsForwarder", "Rcode", "DNS_TTL", "HOSTS_TTL", "DNS_TIMEOUT"]

DNS_TTL = 60  # answers from the host resolver: short, the host may learn better
HOSTS_TTL = 3600
DNS_TIMEOUT = 5.0  # a host lookup slower than this becomes SERVFAIL (the guest retries)

_NOT_FOUND = {getattr(socket, n) for n in ("EAI_NONAME", "EAI_NODATA", "EAI_ADDRFAMILY") if hasattr(socket, n)}


class Rcode(IntEnum):
    """The response codes the forwarder answers with (RFC 1035 4.1.1)."""

    NOERROR = 0
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4


class DnsForwarder:
    """Answers queries from the hosts table, then the host's resolver.

    ``hosts`` maps lower-case names without the final dot to addresses (the router's table);
    ``events`` is the router's counter table: SERVFAIL and NXDOMAIN answers are counted there."""

    def __init__(self, hosts: dict[str, list[str]], domain: str, resolve: Resolve,
                 events: Counter[str]) -> None:
        self.hosts = hosts
        self.domain = domain
        self.resolve = resolve
        self.events = events

    async def answer(self, query: bytes) -> bytes | None:
        """The reply to a DNS query, or None for something that is not a query.

        A: the hosts table (also for ``NAME.<domain>``), else the host's resolver. Other types
        for a name that exists: an empty NOERROR answer (the guest stack only asks for A).
        PTR: the hosts table in reverse. Unresolvable: NXDOMAIN; resolver trouble: SERVFAIL."""
        from scapy.layers.dns import DNS, DNSRR

        try:
            q = DNS(query)
            question = q.qd[0] if q.qd else None
        except Exception:  # noqa: BLE001
            return None
        if q.qr or question is None:
            return None
        rcode, answers = Rcode.NOERROR, []
        qname = question.qname
        name = (qname.decode("ascii", "replace") if isinstance(qname, bytes) else str(qname)).rstrip(".").lower()
        if q.opcode != 0:
            rcode = Rcode.NOTIMP
        elif question.qtype == 12:  # PTR
            target = self._reverse(name)
            if target is None:
                rcode = Rcode.NXDOMAIN
            else:
                answers.append(DNSRR(rrname=qname, type="PTR", ttl=HOSTS_TTL, rdata=target + "."))
        else:
            addrs, ttl, rcode = await self._lookup(name)
            if question.qtype in (1, 255):  # A, ANY
                answers = [DNSRR(rrname=qname, type="A", ttl=ttl, rdata=a) for a in addrs]
        reply = DNS(id=q.id, qr=1, opcode=q.opcode, aa=0, rd=q.rd, ra=1, rcode=int(rcode), qd=[question],
                    an=answers)
        return bytes(reply)

    async def _lookup(self, name: str) -> tuple[list[str], int, Rcode]:
        """(addresses, ttl, rcode) for a name."""
        if name in self.hosts:
            return self.hosts[name], HOSTS_TTL, Rcode.NOERROR
        suffix = "." + self.domain
        if self.domain and name.endswith(suffix) and name[: -len(suffix)] in self.hosts:
            return self.hosts[name[: -len(suffix)]], HOSTS_TTL, Rcode.NOERROR
        if not name:
            return [], DNS_TTL, Rcode.NXDOMAIN
        try:
            with trio.fail_after(DNS_TIMEOUT):
                addrs = await self.resolve(name)
        except trio.TooSlowError:
            self.events["dns_servfail"] += 1
            return [], DNS_TTL, Rcode.SERVFAIL
        except OSError as e:
            if isinstance(e, socket.gaierror) and e.errno not in _NOT_FOUND:
                self.events["dns_servfail"] += 1
                return [], DNS_TTL, Rcode.SERVFAIL
            addrs = []
        if not addrs:
            self.events["dns_nxdomain"] += 1
            return [], DNS_TTL, Rcode.NXDOMAIN
        return addrs, DNS_TTL, Rcode.NOERROR

    def _reverse(self, name: str) -> str | None:
        if not name.endswith(".in-addr.arpa"):
            return None
        parts = name[: -len(".in-addr.arpa")].split(".")
        addr = ".".join(reversed(parts))
        for host, addrs in self.hosts.items():
            if addr in addrs:
                return host
        return None
