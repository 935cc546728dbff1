"""The guest's TCP/IP stack against real Linux peers, over a tap in a private network namespace.

Each test makes its own namespace and tap (euralios.pytest_plugin.Netns: the host side is
10.0.2.2/24 there, nothing touches the machine's own networks), starts what it needs inside it --
dnsmasq (DHCP for 10.0.2.15 with router and DNS options; DNS with an A record `files.test` and a
CNAME `www.test -> files.test`, `--no-resolv`, bound to the tap) and a real Gopher server
(examples/gopher_server.py, serving a 100 KiB file) -- and boots the OS with `--net tap:NAME`:
in this process through machine.netdev.make_backend as the command line does, and once through
the `euralios run --net tap:NAME` command itself.

Root only (namespaces, taps). Skipped only when the host has no /dev/net/tun or no `ip netns`;
dnsmasq and ping are installed by `make test` (test-deps) and their absence is a failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from euralios.boot import System, boot, program_source
from euralios.pytest_plugin import Netns, netns_unavailable, wait_until
from euralios.std import SyscallError, abi

ROOT = Path(__file__).resolve().parents[2]
GUEST, HOST = "10.0.2.15", "10.0.2.2"
GUEST_MAC = "52:54:00:12:34:56"
BIG = random.Random(1).randbytes(100 * 1024)
IMPAIRMENT = "loss=10,reorder=5,dup=5,corrupt=2,seed=1"

_why = netns_unavailable()
pytestmark = pytest.mark.skipif(_why is not None, reason=f"real-peer network tests: {_why}")


def need(tool: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"{tool} is not installed (`make test-deps` installs it as root)")
    return path


async def wait_file(path: Path, text: str, timeout: float = 10.0) -> None:
    """Wait until a host daemon has written `text` to its log: its word that it is ready (it
    runs outside this process, so its log is all there is to watch)."""

    def log() -> str:
        return path.read_text(errors="replace") if path.exists() else ""

    await wait_until(lambda: text in log(), timeout=timeout, interval=0.02, what=f"{text!r} in {path.name}",
                     detail=log)


class Peers:
    """The namespace with its daemons (dnsmasq, the Gopher server)."""

    def __init__(self, ns: Netns, tmp: Path) -> None:
        self.ns = ns
        self.tmp = tmp
        self.leases = tmp / "dnsmasq.leases"

    async def dnsmasq(self) -> None:
        log = self.tmp / "dnsmasq.log"
        self.ns.popen([
            need("dnsmasq"), "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            f"--interface={self.ns.tap}", "--bind-interfaces", "--user=root", "--pid-file",
            f"--dhcp-range={GUEST},{GUEST},255.255.255.0,1h", f"--dhcp-option=option:router,{HOST}",
            f"--dhcp-option=option:dns-server,{HOST}", f"--dhcp-leasefile={self.leases}",
            f"--host-record=files.test,{HOST}", "--cname=www.test,files.test", "--local=/test/",
            "--local-ttl=60", "--log-dhcp", "--no-ping",  # no ping check: it costs 3 s per lease
        ], stdout=log.open("w"), stderr=subprocess.STDOUT)
        await wait_file(log, "started")

    async def gopher(self) -> None:
        root = self.tmp / "gopher"
        root.mkdir()
        (root / "big.bin").write_bytes(BIG)
        log = self.tmp / "gopher.log"
        self.ns.popen([sys.executable, str(ROOT / "examples" / "gopher_server.py"), "--port", "70", "--host", HOST,
                       str(root)], stdout=log.open("w"), stderr=subprocess.STDOUT)
        await wait_file(log, "serving")


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[Peers]:
    with Netns() as ns:
        yield Peers(ns, tmp_path)


@pytest.fixture(params=["rtl8139", "virtio"])
async def guest(peers: Peers, request: pytest.FixtureRequest) -> AsyncIterator[System]:
    """dnsmasq and the Gopher server up, then a guest on the tap taking its address by DHCP,
    with either card (the virtio one with its offloads: the tap carries virtio-net headers)."""
    await peers.dnsmasq()
    await peers.gopher()
    async with boot(nic=peers.ns.backend(), mac=GUEST_MAC, card=request.param) as system:
        system.start_network()
        await system.wait_for_output(r"\[tcp\] DHCP: ", 15)
        yield system


async def run_in(system: System, program: Any, timeout: float = 30) -> None:
    """Run a test program in the guest; a failed assert inside it is re-raised here."""
    failure: list[BaseException] = []

    async def main(proc: Any) -> int:
        try:
            await program(proc)
        except BaseException as e:  # noqa: BLE001 - carried back to pytest
            failure.append(e)
            return 1
        return 0

    with trio.fail_after(timeout):
        status = await system.run(main)
    if failure:
        raise failure[0]
    assert status == 0, system.output()


async def download(proc: Any, host: str, selector: str = "/big.bin") -> bytes:
    stream = await proc.connect(host, 70)
    await stream.write_all(f"{selector}\r\n".encode())
    data = await stream.read_all()
    await stream.close()
    return data


# ---------------------------------------------------------------------------------------- tests

async def test_dhcp_lease_arp_ping_both_ways_and_dns(guest: System, peers: Peers) -> None:
    ns = peers.ns
    assert f"[tcp] DHCP: {GUEST}/24 gw {HOST} dns {HOST}" in guest.output()
    leases = peers.leases.read_text()
    assert GUEST_MAC in leases and GUEST in leases and "euralios" in leases  # our client id and hostname

    results: dict[str, Any] = {}

    async def program(proc: Any) -> None:
        stats = json.loads(await proc.read_file("/tcp/stats"))
        results["stats"] = stats
        results["www"] = json.loads(await proc.read_file("/tcp/dns/www.test"))
        results["files"] = json.loads(await proc.read_file("/tcp/dns/files.test"))
        with pytest.raises(SyscallError) as e:
            await proc.read_file("/tcp/dns/nope.test")
        results["nx"] = (e.value.code, e.value.message.d3)

    await run_in(guest, program)
    cfg = results["stats"]["config"]
    assert (cfg["address"], cfg["prefix"], cfg["gateway"], cfg["dns"], cfg["source"]) == (GUEST, 24, HOST, [HOST],
                                                                                          "dhcp")
    assert results["stats"]["dhcp"]["state"] == "BOUND"
    server = results["stats"]["server"]
    # Idle is idle: the lease's renewal (30 min away) is an alarm's business; the timer is parked.
    assert server["timer_parked"] and server["alarms"] == 1
    assert results["www"] == {"name": "www.test", "canonical": "files.test", "addresses": [HOST], "error": None}
    assert results["files"]["addresses"] == [HOST]
    assert results["nx"] == (abi.NOTFOUND, 1)  # NXDOMAIN, said as such

    # ping both ways, then both ARP caches know the other side.
    r = await trio.to_thread.run_sync(lambda: ns.exec(["ping", "-c", "2", "-i", "0.2", "-W", "2", GUEST]))
    assert r.returncode == 0 and "2 received" in r.stdout, r.stdout + r.stderr
    assert await guest.run(program_source("programs/ping.py"), ["ping", "files.test", "-c", "2", "-i", "0.2"]) == 0
    out = guest.output()
    assert "PING files.test (10.0.2.2) 56(84) bytes of data." in out
    assert "2 packets transmitted, 2 received, 0% packet loss" in out
    host_mac = ns.host_mac()
    assert await guest.run(program_source("programs/arp.py"), ["arp"]) == 0
    assert f"{HOST:<16}{host_mac:<20}reachable" in guest.output()
    neigh = ns.exec(["ip", "neigh", "show", GUEST]).stdout
    assert GUEST_MAC in neigh.lower()


async def test_refused_port_and_100k_download_byte_exact(guest: System) -> None:
    got: dict[str, Any] = {}

    async def program(proc: Any) -> None:
        with pytest.raises(SyscallError) as e:
            await proc.connect(HOST, 71)  # nobody listens: Linux answers RST
        got["refused"] = e.value.code
        stream = await proc.connect(HOST, 70)  # Linux offers WS and TS: both are used
        got["query"] = await stream.query()
        await stream.close()
        t0 = proc.now()
        got["data"] = await download(proc, "www.test")
        got["seconds"] = proc.now() - t0
        got["stats"] = json.loads(await proc.read_file("/tcp/stats"))

    await run_in(guest, program)
    assert got["refused"] == abi.REFUSED
    query = got["query"]
    assert query["timestamps"] is True and query["mss"] == 1460 - 12
    assert query["window_scale"] is not None and query["window_scale"][1] > 0  # Linux's shift
    assert len(got["data"]) == len(BIG) and hashlib.sha256(got["data"]).digest() == hashlib.sha256(BIG).digest()
    counters = got["stats"]["counters"]
    assert counters["drop_ip_checksum"] == counters["drop_l4_checksum"] == 0
    server = got["stats"]["server"]
    assert server["nic_errors"] == 0 and server["bugs"] == 0


@pytest.mark.parametrize("card", ["rtl8139", "virtio"])
async def test_100k_download_under_impairment(peers: Peers, card: str) -> None:
    await peers.gopher()
    backend = peers.ns.backend(impair=IMPAIRMENT)
    got: dict[str, Any] = {}

    async def program(proc: Any) -> None:
        got["data"] = await download(proc, HOST)
        got["stats"] = json.loads(await proc.read_file("/tcp/stats"))

    async with boot(nic=backend, mac=GUEST_MAC, card=card) as system:
        system.start_network(["--static", f"{GUEST}/24,gw={HOST},dns={HOST}"])
        await system.wait_for_output(r"\[tcp\] static", 15)
        await run_in(system, program, timeout=60)
        impaired = backend.stats
    assert hashlib.sha256(got["data"]).digest() == hashlib.sha256(BIG).digest()
    # The wire really was bad, both ways, and the stack saw (and repaired) the disorder.
    assert impaired["impair_rx_lost"] > 0 and impaired["impair_tx_lost"] > 0
    tcp = got["stats"]["tcp"]
    assert tcp["out_of_order"] + tcp["dup_segments"] > 0
    assert got["stats"]["server"]["bugs"] == 0


PROGRAM = '''
import hashlib

async def main(proc):
    stream = await proc.connect("files.test", 70)
    await stream.write_all(b"/big.bin\\r\\n")
    data = await stream.read_all()
    await stream.close()
    await proc.print("got", len(data), hashlib.sha256(data).hexdigest())
    return 0
'''


async def test_euralios_run_with_net_tap(peers: Peers, tmp_path: Path) -> None:
    """The command line: `euralios run --net tap:NAME --pcap FILE -v PROGRAM` inside the namespace
    attaches to the tap, starts pci, rtl8139 and the stack, and the program reaches the server."""
    await peers.dnsmasq()
    await peers.gopher()
    prog = tmp_path / "fetch.py"
    prog.write_text(PROGRAM)
    pcap = tmp_path / "guest.pcap"
    cmd = [sys.executable, "-m", "euralios.cli", "run", "--net", f"tap:{peers.ns.tap}", "--pcap", str(pcap),
           "--mac", "52:54:00:ab:cd:ef", "-v", str(prog)]
    r = await trio.to_thread.run_sync(lambda: peers.ns.exec(cmd, cwd=ROOT, timeout=60, stdin=subprocess.DEVNULL,
                                                            env=dict(os.environ, PYTHONPATH=str(ROOT))))
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == f"got {len(BIG)} {hashlib.sha256(BIG).hexdigest()}\n"  # the program's output alone
    assert "[tcp] DHCP: 10.0.2.15/24 gw 10.0.2.2 dns 10.0.2.2" in r.stderr  # -v: the kernel log
    assert "52:54:00:ab:cd:ef" in peers.leases.read_text()
    from scapy.utils import rdpcap

    frames = rdpcap(str(pcap))
    assert len(frames) > 70  # DHCP, ARP, DNS and the download, both directions


def test_bad_net_options_are_one_line_errors() -> None:
    for args, text in ((["--net", "tap:"], "needs an interface name"),
                       (["--net", "tap:x", "--impair", "loss=x"], "--impair: bad value"),
                       (["--mac", "01:00:00:00:00:01", "--net", "none"], "multicast"),
                       (["--pcap", "x.pcap"], "--pcap needs --net")):
        r = subprocess.run([sys.executable, "-m", "euralios.cli", "run", *args, "examples/hello.py"], cwd=ROOT,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and r.stdout == "", (args, r.stderr)
        assert r.stderr.startswith("euralios run: ") and text in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_closed_socket_in_namespace_is_cleaned_up() -> None:
    """Netns.delete closes what it made and removes the namespace."""
    ns = Netns().create()
    s = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, 0))
    name = ns.name
    ns.delete()
    assert s.fileno() == -1
    assert name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


async def test_gopherd_inside_the_os_is_reachable_through_the_tap(guest: System, peers: Peers) -> None:
    """The OS as a peer: gopherd in the guest, a Linux client in the namespace."""
    guest.spawn((ROOT / "programs" / "gopherd.py").read_bytes(), ["gopherd"], name="gopherd")
    data = b""
    await guest.wait_for_output(r"\[gopherd\] serving", 20)  # printed once it listens
    sock = peers.ns.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    client = trio.socket.from_stdlib_socket(sock)
    with trio.fail_after(20):
        await client.connect((GUEST, 70))
        await client.send(b"\r\n")
        while chunk := await client.recv(65536):
            data += chunk
    client.close()
    assert b"about.txt" in data
