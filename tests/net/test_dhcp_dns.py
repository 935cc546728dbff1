"""DHCP client and DNS resolver state machines against scapy-built server replies."""

from __future__ import annotations

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSQR, DNSRR

from net.dhcp import DhcpClient, Lease
from net.dns import DnsError, Resolver

MAC = bytes.fromhex("525400123456")


def server_reply(client: DhcpClient, mtype: str, lease_time: int = 3600, **extra) -> bytes:
    opts = [("message-type", mtype), ("server_id", "10.0.2.2"), ("subnet_mask", "255.255.255.0"),
            ("router", "10.0.2.2"), ("name_server", "10.0.2.3"), ("domain", b"example.test"),
            ("lease_time", lease_time), ("renewal_time", lease_time // 2), ("rebinding_time", lease_time * 7 // 8)]
    return bytes(BOOTP(op=2, xid=client.xid, yiaddr=extra.get("yiaddr", "10.0.2.15"), chaddr=MAC + b"\0" * 10)
                 / DHCP(options=opts + ["end"]))


def test_dhcp_discover_offer_request_ack_and_options() -> None:
    c = DhcpClient(MAC, seed=1)
    c.start(0.0)
    (disc,) = c.datagrams_to_send()
    assert dict(o for o in BOOTP(disc.payload)[DHCP].options if isinstance(o, tuple))["message-type"] == 1
    c.datagram_received(server_reply(c, "offer"), 0.1)
    (req,) = c.datagrams_to_send()
    opts = {o[0]: o[1] for o in BOOTP(req.payload)[DHCP].options if isinstance(o, tuple)}
    assert opts["message-type"] == 3 and opts["requested_addr"] == "10.0.2.15" and opts["server_id"] == "10.0.2.2"
    c.datagram_received(server_reply(c, "ack"), 0.2)
    assert c.state == "BOUND" and c.events == ["bound"]
    lease = c.lease
    assert lease is not None
    assert (lease.address, lease.router, lease.dns, lease.domain, lease.prefix_len) == (
        "10.0.2.15", "10.0.2.2", ["10.0.2.3"], "example.test", 24)
    assert c.next_deadline() == pytest.approx(0.2 + 1800)


def test_dhcp_renews_at_t1_unicast_to_the_server() -> None:
    c = DhcpClient(MAC, seed=2)
    c.start(0.0)
    c.datagram_received(server_reply(c, "offer", 100), 0.0)
    c.datagram_received(server_reply(c, "ack", 100), 0.0)
    c.datagrams_to_send()
    c.poll(50.0)
    (renew,) = c.datagrams_to_send()
    assert c.state == "RENEWING" and renew.unicast_to == "10.0.2.2"
    assert BOOTP(renew.payload).ciaddr == "10.0.2.15"
    c.datagram_received(server_reply(c, "ack", 100), 51.0)
    assert c.state == "BOUND" and c.events[-1] == "renewed"


def test_dhcp_retries_with_backoff_and_falls_back_to_static() -> None:
    fallback = Lease(address="10.0.2.15", router="10.0.2.2", dns=["10.0.2.3"])
    c = DhcpClient(MAC, seed=3, fallback=fallback, give_up_after=20.0)
    c.start(0.0)
    sent = len(c.datagrams_to_send())
    now = 0.0
    while c.state != "FALLBACK" and now < 100:
        now = c.next_deadline()
        c.poll(now)
        sent += len(c.datagrams_to_send())
    assert c.state == "FALLBACK" and c.events == ["fallback"]
    assert c.lease.static and c.lease.address == "10.0.2.15"
    assert 2 <= sent <= 5


def test_dhcp_nobody_answers_for_an_hour_costs_a_datagram_every_half_minute() -> None:
    """A card on a wire nobody answers (no fallback): the client keeps asking, as RFC 2131's does,
    but backed off to one DISCOVER about every 32 s, never faster: it does not keep a system busy."""
    c = DhcpClient(MAC, seed=5)
    c.start(0.0)
    times = [0.0] * len(c.datagrams_to_send())
    while (now := c.next_deadline()) is not None and now < 3600:
        c.poll(now)
        times += [now] * len(c.datagrams_to_send())
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(g >= 3.0 for g in gaps) and all(g >= 31.0 for g in gaps[4:])
    assert len(times) <= 3600 / 31 + 5


def test_dhcp_ignores_other_transactions_and_garbage() -> None:
    c = DhcpClient(MAC, seed=4)
    c.start(0.0)
    c.datagram_received(b"\x00garbage", 0.1)
    other = DhcpClient(MAC, seed=99)
    other.start(0.0)
    c.datagram_received(server_reply(other, "offer"), 0.1)
    assert c.state == "SELECTING"


def dns_reply(qid: int, name: str, rcode: int = 0, answers=()) -> bytes:
    return bytes(DNS(id=qid, qr=1, rd=1, ra=1, rcode=rcode, qd=[DNSQR(qname=name)], an=list(answers)))


def test_dns_a_record_cname_chain_and_ttl_cache() -> None:
    r = Resolver(seed=1)
    qid, q = r.query("www.example.test")
    assert DNS(q).qd[0].qname == b"www.example.test."
    reply = dns_reply(qid, "www.example.test", answers=[
        DNSRR(rrname="www.example.test", type="CNAME", rdata="web.example.test", ttl=300),
        DNSRR(rrname="web.example.test", type="CNAME", rdata="host.example.test", ttl=300),
        DNSRR(rrname="host.example.test", type="A", rdata="10.0.2.99", ttl=60)])
    assert r.answer(reply, 0.0) == ("www.example.test", ["10.0.2.99"])
    assert r.cached("WWW.example.test.", 30.0) == ["10.0.2.99"]
    assert r.cached("www.example.test", 61.0) is None  # the A record's TTL ran out
    assert r.cached("10.1.2.3", 0.0) == ["10.1.2.3"]


def test_dns_nxdomain_is_a_clear_not_found_and_strays_are_ignored() -> None:
    r = Resolver(seed=2, hosts={"gopher.local": "10.0.2.2"})
    assert r.cached("gopher.local", 0) == ["10.0.2.2"]
    qid, _ = r.query("nope.example.test")
    assert r.answer(dns_reply(qid ^ 1, "nope.example.test", rcode=3), 0.0) is None
    with pytest.raises(DnsError, match="nope.example.test: not found") as e:
        r.answer(dns_reply(qid, "nope.example.test", rcode=3), 0.0)
    assert e.value.kind == "nxdomain"
    assert r.answer(b"junk", 0.0) is None
