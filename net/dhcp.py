"""DHCP client (RFC 2131), sans-IO: DISCOVER -> OFFER -> REQUEST -> ACK, renewal at T1,
rebinding at T2, expiry, and an optional static fallback when no server answers.

The I/O layer feeds received DHCP payloads (UDP port 68) to `datagram_received`, sends what
`datagrams_to_send` returns (broadcast unless `unicast_to` is set) and calls `poll(now)` at
`next_deadline()`. scapy's BOOTP/DHCP layers encode and decode the messages (this is not a hot
path).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum

from scapy.layers.dhcp import BOOTP, DHCP

MESSAGE_TYPES = {1: "discover", 2: "offer", 3: "request", 5: "ack", 6: "nak", 7: "release"}
RETRY = (4.0, 8.0, 16.0, 32.0)  # back-off between DISCOVERs/REQUESTs (RFC 2131 §4.1)


class DhcpState(StrEnum):
    """RFC 2131's client states (figure 5), plus FALLBACK: no server answered, the static
    fallback lease is in use. The values are the RFC's names, as /tcp/stats shows them."""

    INIT = "INIT"
    SELECTING = "SELECTING"
    REQUESTING = "REQUESTING"
    BOUND = "BOUND"
    RENEWING = "RENEWING"
    REBINDING = "REBINDING"
    FALLBACK = "FALLBACK"


class DhcpEvent(StrEnum):
    """What the client tells its owner (`events`): a lease obtained, renewed or lost."""

    BOUND = "bound"
    RENEWED = "renewed"
    EXPIRED = "expired"
    FALLBACK = "fallback"
    NAK = "nak"


@dataclass
class Lease:
    address: str
    netmask: str = "255.255.255.0"
    router: str | None = None
    dns: list[str] = field(default_factory=list)
    domain: str | None = None
    server: str | None = None
    lease_time: float = 86400.0
    t1: float = 0.0
    t2: float = 0.0
    obtained: float = 0.0
    static: bool = False

    @property
    def prefix_len(self) -> int:
        return sum(bin(int(o)).count("1") for o in self.netmask.split("."))


@dataclass
class Outgoing:
    payload: bytes
    unicast_to: str | None = None  # renewals go to the server directly


def _options(pkt: BOOTP) -> dict[str, object]:
    out: dict[str, object] = {}
    if DHCP in pkt:
        for opt in pkt[DHCP].options:
            if isinstance(opt, tuple) and len(opt) >= 2:
                out[opt[0]] = opt[1] if len(opt) == 2 else list(opt[1:])
    return out


class DhcpClient:
    """The client's state machine (`state`, a DhcpState)."""

    def __init__(self, mac: bytes, *, hostname: str = "euralios", seed: int | None = None,
                 fallback: Lease | None = None, give_up_after: float = 30.0) -> None:
        self.mac = mac
        self.hostname = hostname
        self.rng = random.Random(seed)
        self.fallback = fallback
        self.give_up_after = give_up_after
        self.state = DhcpState.INIT
        self.xid = 0
        self.lease: Lease | None = None
        self.offer: Lease | None = None
        self.started = 0.0
        self.deadline: float | None = 0.0
        self.attempt = 0
        self.out: list[Outgoing] = []
        self.events: list[DhcpEvent] = []

    # ------------------------------------------------------------------ building
    def _bootp(self, ciaddr: str = "0.0.0.0") -> BOOTP:
        return BOOTP(op=1, chaddr=self.mac + b"\0" * 10, xid=self.xid, flags=0x8000 if ciaddr == "0.0.0.0" else 0,
                     ciaddr=ciaddr)

    def _discover(self) -> bytes:
        return bytes(self._bootp() / DHCP(options=[
            ("message-type", "discover"), ("hostname", self.hostname.encode()),
            ("param_req_list", [1, 3, 6, 15, 51, 58, 59]), "end"]))

    def _request(self, lease: Lease, renewing: bool) -> bytes:
        if renewing:
            opts = [("message-type", "request"), ("hostname", self.hostname.encode()), "end"]
            return bytes(self._bootp(lease.address) / DHCP(options=opts))
        opts = [("message-type", "request"), ("requested_addr", lease.address),
                ("server_id", lease.server or "0.0.0.0"), ("hostname", self.hostname.encode()),
                ("param_req_list", [1, 3, 6, 15, 51, 58, 59]), "end"]
        return bytes(self._bootp() / DHCP(options=opts))

    # ------------------------------------------------------------------ driving
    def start(self, now: float) -> None:
        self.started = now
        self.state = DhcpState.SELECTING
        self.xid = self.rng.getrandbits(32)
        self.attempt = 0
        self.out.append(Outgoing(self._discover()))
        self.deadline = now + RETRY[0]

    def next_deadline(self) -> float | None:
        return self.deadline

    def datagrams_to_send(self) -> list[Outgoing]:
        out, self.out = self.out, []
        return out

    def poll(self, now: float) -> None:
        if self.deadline is None or now < self.deadline:
            return
        if self.state == DhcpState.INIT:
            self.start(now)
        elif self.state in (DhcpState.SELECTING, DhcpState.REQUESTING):
            if self.fallback is not None and now - self.started >= self.give_up_after:
                self.lease = Lease(**{**self.fallback.__dict__, "static": True, "obtained": now})
                self.state = DhcpState.FALLBACK
                self.deadline = None
                self.events.append(DhcpEvent.FALLBACK)
                return
            self.attempt += 1
            if self.state == DhcpState.REQUESTING and self.attempt >= 3:
                self.start(now)  # the server went quiet: start over
                return
            delay = RETRY[min(self.attempt, len(RETRY) - 1)] + self.rng.uniform(-1, 1)
            payload = self._discover() if self.state == DhcpState.SELECTING else self._request(self.offer, False)  # type: ignore[arg-type]
            self.out.append(Outgoing(payload))
            self.deadline = now + max(1.0, delay)
        elif self.state in (DhcpState.BOUND, DhcpState.RENEWING, DhcpState.REBINDING):
            lease = self.lease
            assert lease is not None
            if now >= lease.obtained + lease.lease_time:
                self.events.append(DhcpEvent.EXPIRED)
                self.lease = None
                self.state = DhcpState.INIT
                self.start(now)
                return
            if now >= lease.obtained + lease.t2:
                self.state = DhcpState.REBINDING
                self.out.append(Outgoing(self._request(lease, True)))
            elif now >= lease.obtained + lease.t1:
                self.state = DhcpState.RENEWING
                self.out.append(Outgoing(self._request(lease, True), unicast_to=lease.server))
            end = lease.obtained + (lease.t2 if self.state == DhcpState.RENEWING else lease.lease_time)
            self.deadline = min(end, now + max(1.0, (end - now) / 2))

    def datagram_received(self, payload: bytes, now: float) -> None:
        try:
            pkt = BOOTP(payload)
        except Exception:  # noqa: BLE001 - scapy raises many kinds on garbage
            return
        if pkt.op != 2 or pkt.xid != self.xid or bytes(pkt.chaddr)[:6] != self.mac:
            return
        opts = _options(pkt)
        mtype = opts.get("message-type")
        mtype = MESSAGE_TYPES.get(mtype, mtype) if isinstance(mtype, int) else mtype
        lease = Lease(
            address=pkt.yiaddr,
            netmask=str(opts.get("subnet_mask", "255.255.255.0")),
            router=_first(opts.get("router")),
            dns=_all(opts.get("name_server")),
            domain=_text(opts.get("domain")),
            server=_first(opts.get("server_id")),
            lease_time=float(opts.get("lease_time", 86400)),
        )
        lease.t1 = float(opts.get("renewal_time", lease.lease_time / 2))
        lease.t2 = float(opts.get("rebinding_time", lease.lease_time * 7 / 8))
        if mtype == "offer" and self.state == DhcpState.SELECTING:
            self.offer = lease
            self.state = DhcpState.REQUESTING
            self.attempt = 0
            self.out.append(Outgoing(self._request(lease, False)))
            self.deadline = now + RETRY[0]
        elif mtype == "ack" and self.state in (DhcpState.REQUESTING, DhcpState.RENEWING, DhcpState.REBINDING):
            renewed = self.state != DhcpState.REQUESTING
            lease.obtained = now
            if renewed and self.lease is not None:
                lease.server = lease.server or self.lease.server
            self.lease = lease
            self.state = DhcpState.BOUND
            self.deadline = now + lease.t1
            self.events.append(DhcpEvent.RENEWED if renewed else DhcpEvent.BOUND)
        elif mtype == "nak" and self.state in (DhcpState.REQUESTING, DhcpState.RENEWING, DhcpState.REBINDING):
            self.events.append(DhcpEvent.NAK)
            self.lease = None
            self.start(now)


def _first(v: object) -> str | None:
    vals = _all(v)
    return vals[0] if vals else None


def _all(v: object) -> list[str]:
    if v is None:
        return []
    if isinstance(v, list | tuple):
        return [str(x) for x in v]
    return [str(v)]


def _text(v: object) -> str | None:
    if v is None:
        return None
    if isinstance(v, bytes):
        return v.rstrip(b"\0").decode("ascii", "replace")
    return str(v)
