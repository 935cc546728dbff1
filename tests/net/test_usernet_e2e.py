"""The root-free network end to end: the newcomer's path with the defaults, port forwarding
into a Gopher server inside the OS, and two machines on a virtual switch.

No root, no tap: everything here runs as any user (the router is `--net user`, the switch is a
Unix datagram socket hub).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import trio

from euralios.boot import boot
from euralios.pytest_plugin import wait_until_blocking
from machine.netdev import make_backend

ROOT = Path(__file__).resolve().parents[2]
# gopherd is a program: it runs from its own image (programs/ is never imported by other user code).
GOPHERD = ROOT / "programs" / "gopherd.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gopher_fetch(port: int, selector: str = "", timeout: float = 30.0) -> bytes:
    """Fetch a selector from 127.0.0.1:port, retrying while the server is not up yet (the guest
    runs in another host process: trying is the only way to know its gopherd listens)."""

    def fetch() -> bytes:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(selector.encode() + b"\r\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
                return data
        except OSError:
            return b""

    return wait_until_blocking(fetch, timeout=timeout, interval=0.05, what=f"a Gopher answer on 127.0.0.1:{port}")


def test_newcomer_boots_with_defaults_logs_in_and_browses_a_host_gopher_server() -> None:
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "examples" / "gopher_server.py"), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        assert b"serving" in server.stdout.readline()
        r = subprocess.run(
            [sys.executable, "-m", "euralios.cli", "--headless", "--timeout", "30",
             "--expect", "login: ", "--type", r"user\n", "--expect", r"\$ ",
             "--type", rf"gopher 10.0.2.2 {port}\n", "--expect", "demo gopher server"],
            cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        server.terminate()
        server.wait(10)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Welcome to the EuraliOS-py demo gopher server" in r.stdout and f"gopher://10.0.2.2:{port}" in r.stdout


def test_hostfwd_reaches_gopherd_inside_the_os() -> None:
    port = free_port()
    guest = subprocess.Popen([sys.executable, "-m", "euralios.cli", "run", "--net",
                              f"user,hostfwd=tcp:127.0.0.1:{port}-:70", str(GOPHERD)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        menu = gopher_fetch(port)
        text = gopher_fetch(port, "/about.txt")
    finally:
        guest.terminate()
        guest.wait(10)
    assert menu.startswith(b"i") or b"\t" in menu
    assert b"about.txt" in menu
    assert text.strip()


async def test_gopherd_advertises_the_forwarded_address_and_its_links_work() -> None:
    """Behind hostfwd the menus must name the host's side (127.0.0.1:PORT), not the guest's 70:
    every link of the menu, followed as a client would (to the host and port the line names),
    answers."""
    port = free_port()
    nic = make_backend(f"user,hostfwd=tcp:127.0.0.1:{port}-:70")
    try:
        async with boot(nic=nic) as system:
            system.start_network()
            system.spawn(GOPHERD.read_bytes(), ["gopherd", "--advertise", f"127.0.0.1:{port}"], name="gopherd")
            await system.wait_for_output(rf"\[gopherd\] serving /ramdisk/gopher on port 70 as 127\.0\.0\.1:{port}", 20)
            menu = await trio.to_thread.run_sync(gopher_fetch, port)
            links = [line.split(b"\t") for line in menu.split(b"\r\n") if line[:1] in (b"0", b"1", b"7")]
            assert links, menu
            for fields in links:
                assert fields[2:4] == [b"127.0.0.1", str(port).encode()], fields
            about = next(f for f in links if f[0].startswith(b"0about"))
            text = await trio.to_thread.run_sync(gopher_fetch, int(about[3]), about[1].decode())
            assert b"gopherd is a small Gopher" in text
            system.spawn(GOPHERD.read_bytes(), ["gopherd", "--port", "71", "--advertise", "nocolon"], name="bad")
            await system.wait_for_output("gopherd: --advertise wants HOST:PORT, not 'nocolon'", 10)
    finally:
        nic.close()


async def test_two_machines_on_a_switch_one_serves_gopher_the_other_browses() -> None:
    name = f"eurtest-{uuid.uuid4().hex[:8]}"
    got: list[bytes] = []

    async def browse(proc):
        stream = await proc.connect("10.0.3.5", 70)
        await stream.write_all(b"\r\n")
        got.append(await stream.read_all())
        await stream.close()
        return 0

    a_nic = make_backend(f"switch:{name}")
    b_nic = make_backend(f"switch:{name}")
    try:
        async with boot(nic=a_nic, mac="52:54:00:00:03:05") as a, \
                boot(nic=b_nic, mac="52:54:00:00:03:06") as b:
            a.start_network(["--static", "10.0.3.5/24"])
            b.start_network(["--static", "10.0.3.6/24"])
            a.spawn(GOPHERD.read_bytes(), ["gopherd"], name="gopherd")
            await a.wait_for_output(r"\[gopherd\] serving", 20)  # printed once it listens
            await b.wait_for_output(r"\[tcp\] static", 20)  # b's stack is up too
            with trio.fail_after(30):
                assert await b.run(browse) == 0, b.output()
    finally:
        a_nic.close()
        b_nic.close()
    assert b"about.txt" in got[0]


@pytest.mark.parametrize("card", ["rtl8139", "virtio"])
async def test_router_functions_against_the_guest_stack(tmp_path: Path, card: str) -> None:
    """DHCP from the router, DNS from a hosts table, ping to the gateway, TCP to a host server,
    a refused host port, all through the OS's own stack and programs, with either card."""
    hosts = tmp_path / "hosts"
    hosts.write_text("10.0.2.2 gopher.local\n")
    port = free_port()
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", port))
    listener.listen()
    seen: dict[str, object] = {}

    async def host_server() -> None:
        conn, _ = await listener.accept()
        with conn:
            data = await conn.recv(100)
            await conn.send(b"host says " + data)

    async def guest(proc):
        from euralios.std import SyscallError
        from euralios.std import abi as A

        stream = await proc.connect("gopher.local", port)
        await stream.write_all(b"hi")
        seen["reply"] = await stream.read_all()
        await stream.close()
        try:
            await proc.connect("10.0.2.2", free_port())
        except SyscallError as e:
            seen["refused"] = e.code == A.REFUSED
        return 0

    nic = make_backend("user", hosts=str(hosts))
    try:
        async with boot(nic=nic, card=card) as system, trio.open_nursery() as nursery:
            nursery.start_soon(host_server)
            system.start_network()
            await system.wait_for_output(r"\[tcp\] DHCP: 10\.0\.2\.15/24 gw 10\.0\.2\.2 dns 10\.0\.2\.3", 20)
            with trio.fail_after(30):
                assert await system.run(guest) == 0
            ping = (ROOT / "programs" / "ping.py").read_bytes()
            with trio.fail_after(30):
                assert await system.run(ping, ["ping", "-c", "2", "10.0.2.2"]) == 0
            assert "2 received" in system.output() or "2 packets received" in system.output(), system.output()
            nursery.cancel_scope.cancel()
    finally:
        nic.close()
        listener.close()
    assert seen["reply"] == b"host says hi"
    assert seen["refused"] is True


async def test_virtio_offloads_carry_tcp_segments_past_the_mtu_byte_exact() -> None:
    """With the virtio card the stack sends TSO segments larger than a frame through the driver
    (header batches) and the user router relays them to a host socket byte for byte; the host's
    answer comes back as large received segments. /tcp/stats names the negotiated features."""
    port = free_port()
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", port))
    listener.listen()
    payload = bytes(i * 7 % 251 for i in range(300_000))
    seen: dict[str, object] = {}

    async def host_server() -> None:
        conn, _ = await listener.accept()
        with conn:
            data = b""
            while len(data) < len(payload):
                part = await conn.recv(65536)
                if not part:
                    break
                data += part
            seen["host"] = data
            back = memoryview(data[::-1])
            while back:
                back = back[await conn.send(back):]

    async def guest(proc):
        stream = await proc.connect("10.0.2.2", port)
        await stream.write_all(payload)
        back = b""
        while len(back) < len(payload):
            part = await stream.read(65536)
            if not part:
                break
            back += part
        seen["guest"] = back
        await stream.close()
        seen["stats"] = await proc.read_file("/tcp/stats")
        return 0

    nic = make_backend("user")
    try:
        async with boot(nic=nic, card="virtio") as system, trio.open_nursery() as nursery:
            nursery.start_soon(host_server)
            system.start_network()
            await system.wait_for_output(r"\[tcp\] DHCP: 10\.0\.2\.15/24", 20)
            with trio.fail_after(60):
                assert await system.run(guest) == 0, system.output()
            card = system.machine.nic
            counters = card.stats()  # type: ignore[union-attr]
            nursery.cancel_scope.cancel()
    finally:
        nic.close()
        listener.close()
    assert seen["host"] == payload
    assert seen["guest"] == payload[::-1]
    assert counters["tx_gso"] > 0 and counters["rx_gso"] > 0  # segments past 1514 bytes each way
    assert counters["tx_offload_refused"] == 0 and counters["needs_reset"] == 0
    import json
    stats = json.loads(seen["stats"])
    assert {"CSUM", "HOST_TSO4", "GUEST_CSUM", "GUEST_TSO4", "VERSION_1"} <= set(stats["nic_features"])
    assert stats["offloads"]["tso_max"] > 1460 and stats["offloads"]["large_receive"] is True
