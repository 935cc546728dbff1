"""The newcomer's path over a real wire: log in as `user` on the full system booted on a tap,
run `gopher 10.0.2.2`, and browse Debian's gophernicus — an independent Gopher server — then
fetch a 100 KiB binary byte-exact, and let the host ping the guest; with each network card.

gophernicus is an inetd-style server (one process per connection, the socket on its stdin and
stdout), so the test runs a tiny accept-and-spawn loop for it in the namespace, dropping root as
gophernicus insists. Root only; skipped only where /dev/net/tun or `ip netns` is missing;
`make test` installs gophernicus and dnsmasq.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from euralios.pytest_plugin import Netns, netns_unavailable, wait_screen, wait_until
from euralios.system_boot import FullSystem, boot_full
from machine.board import Machine

GUEST, HOST = "10.0.2.15", "10.0.2.2"
BIG = random.Random(7).randbytes(100 * 1024)
INETD = """
import os, socket, subprocess, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 70)); s.listen(16); print("serving", flush=True)
while True:
    c, _ = s.accept()
    subprocess.Popen(sys.argv[2:], stdin=c.fileno(), stdout=c.fileno(), stderr=subprocess.DEVNULL)
    c.close()
"""

_why = netns_unavailable()
pytestmark = pytest.mark.skipif(_why is not None, reason=f"real-peer network tests: {_why}")


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"{name} is not installed (`make test-deps` installs it as root)")
    return path


async def wait_line(path: Path, text: str, timeout: float = 10.0) -> None:
    """Wait until a host daemon has written `text` to its log: its word that it is ready."""

    def log() -> str:
        return path.read_text(errors="replace") if path.exists() else ""

    await wait_until(lambda: text in log(), timeout=timeout, interval=0.02, what=f"{text!r} in {path.name}",
                     detail=log)


@pytest.fixture(params=["rtl8139", "virtio"])
async def desktop(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[tuple[FullSystem, Netns]]:
    """gophernicus and dnsmasq in a namespace, and the full system on its tap with either card
    (the virtio one with its offloads: the tap carries virtio-net headers)."""
    # gophernicus drops to nobody, who cannot enter pytest's private tmp directories.
    root = Path(tempfile.mkdtemp(prefix="euralios-gopher-", dir="/tmp"))
    root.chmod(0o755)
    (root / "hello.txt").write_text("hello from gophernicus\nsecond line\n")
    (root / "big.bin").write_bytes(BIG)
    for p in root.iterdir():
        p.chmod(0o644)
    with Netns() as ns:
        log = tmp_path / "dnsmasq.log"
        ns.popen([tool("dnsmasq"), "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                  f"--interface={ns.tap}", "--bind-interfaces", "--user=root", "--pid-file",
                  f"--dhcp-range={GUEST},{GUEST},255.255.255.0,1h", f"--dhcp-option=option:router,{HOST}",
                  f"--dhcp-option=option:dns-server,{HOST}", f"--dhcp-leasefile={tmp_path / 'leases'}",
                  "--no-ping"], stdout=log.open("w"), stderr=subprocess.STDOUT)
        await wait_line(log, "started")
        glog = tmp_path / "inetd.log"
        ns.popen([sys.executable, "-c", INETD, HOST, tool("setpriv"), "--reuid=65534", "--regid=65534",
                  "--clear-groups", tool("gophernicus"), "-h", HOST, "-p", "70", "-r", str(root)],
                 stdout=glog.open("w"), stderr=subprocess.STDOUT)
        await wait_line(glog, "serving")
        machine = Machine("64M", nic=ns.backend(), card=request.param)
        try:
            async with boot_full(machine=machine) as system:
                yield system, ns
        finally:
            shutil.rmtree(root, ignore_errors=True)


async def test_user_browses_gophernicus_through_a_tap_and_host_pings_guest(desktop) -> None:
    system, ns = desktop
    await wait_screen(system, r"login: ?$", 15)
    # The network came up by DHCP (the stack reports it on the system console).
    await system.type("user\n")
    await wait_screen(system, r"\$ ?$", 15)
    await system.type("gopher 10.0.2.2\n")
    menu = await wait_screen(system, r"hello\.txt", 15)
    assert "big.bin" in menu and "Gophernicus" in menu
    # The menu's links are big.bin then hello.txt (info lines are not selectable): the first
    # link starts selected, so one Down selects hello.txt.
    await system.type("{Down}{Enter}")
    text = await wait_screen(system, r"hello from gophernicus", 15)
    assert "second line" in text
    await system.type("{Left}")
    await wait_screen(system, r"big\.bin", 15)
    await system.type("q")
    await wait_screen(system, r"\[gopher\] Bye!", 15)
    # The host pings the guest through the tap (run_process: the guest must keep running).
    with trio.fail_after(20):
        r = await trio.run_process(["ip", "netns", "exec", ns.name, tool("ping"), "-c", "2", "-W", "2", GUEST],
                                   capture_stdout=True, check=False)
    out = r.stdout.decode()
    assert r.returncode == 0, out
    assert "2 received" in out


async def test_100k_binary_from_gophernicus_byte_exact(desktop) -> None:
    system, _ = desktop
    await wait_screen(system, r"login: ?$", 15)
    got: list[bytes] = []

    async def fetch(proc):
        stream = await proc.connect(HOST, 70)
        await stream.write_all(b"/big.bin\r\n")
        got.append(await stream.read_all())
        await stream.close()
        return 0

    with trio.fail_after(60):
        assert await system.run(fetch) == 0
    assert got[0] == BIG
