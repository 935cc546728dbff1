"""An example packet-level test: the guest on a real (namespaced) Ethernet, spoken to with scapy.

The `euralios_tap` fixture (euralios/pytest_plugin.py, installed with the package) boots a guest
on a tap in a private network namespace -- guest 10.0.2.15, the namespace's side 10.0.2.2 -- and
gives the test a host-side handle: `send`, `sniff` and `exchange` frames, plus the guest System.
Needs root; skipped only on a host without /dev/net/tun or `ip netns`.

    .venv/bin/python -m pytest examples/test_packet_example.py
"""

from __future__ import annotations

import trio
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw


async def test_guest_answers_ping(euralios_tap) -> None:
    tap = euralios_tap
    request = (Ether(dst=tap.guest_mac, src=tap.host_mac) / IP(src=tap.host_ip, dst=tap.guest_ip)
               / ICMP(type=8, id=0x4242, seq=1) / b"are you there?")
    reply = await tap.exchange(request, lambda f: ICMP in f and f[ICMP].type == 0 and f[ICMP].id == 0x4242)
    assert reply[IP].src == tap.guest_ip and reply[IP].dst == tap.host_ip
    assert reply[ICMP].seq == 1 and reply[Raw].load == b"are you there?"  # (then the NIC's padding)


async def test_guest_listener_answers_syn_with_syn_ack(euralios_tap) -> None:
    tap = euralios_tap
    listening = trio.Event()

    async def server(proc) -> int:
        # A guest program: listen on port 7000 and hold the port open while the test probes it.
        listener = await proc.listen(7000)
        listening.set()
        await proc.sleep(30)
        await listener.close()
        return 0

    tap.system.spawn(server)
    with trio.fail_after(10):
        await listening.wait()
    syn = (Ether(dst=tap.guest_mac, src=tap.host_mac) / IP(src=tap.host_ip, dst=tap.guest_ip)
           / TCP(sport=40123, dport=7000, flags="S", seq=1_000_000, options=[("MSS", 1460)]))
    synack = await tap.exchange(syn, lambda f: TCP in f and f[TCP].sport == 7000 and f[TCP].dport == 40123)
    assert synack[TCP].flags == "SA"
    assert synack[TCP].ack == 1_000_001
    assert dict(synack[TCP].options)["MSS"] == 1460
    # (The namespace's own kernel owns 10.0.2.2 and never sent that SYN, so it resets the
    # SYN-ACK; the guest's listener drops the half-open connection, as it should.)
