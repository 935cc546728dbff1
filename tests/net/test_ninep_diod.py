"""`9mount` against Debian's diod, an independent 9P2000.L server, over the OS's own TCP/IP.

diod runs on the host exporting a temporary folder (no authentication, `-n`), listening on
127.0.0.1; the guest boots with the default user network, where the gateway 10.0.2.2 is the
host, and runs /bin-style `9mount 10.0.2.2:PORT /mnt/d FOLDER` (diod's aname is the exported
path). Files must be byte-exact both ways, listings and changes must show on the host, and
errors must be the file protocol's. diod 1.0 has no Trenameat/Tunlinkat, so this also runs the
client's Trename/Tremove fallbacks. The last test does it all again over a tap in a private
network namespace (DHCP from dnsmasq, diod bound to the tap's 10.0.2.2); run it under
`flock /tmp/euralios-net.lock` as the other tap tests. Root only (NEED_ROOT: diod serves as
root, namespaces need it); `make test-deps` installs diod and dnsmasq.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from netns_root import NEED_ROOT

from euralios.boot import ROOT, System, boot
from euralios.pytest_plugin import wait_until, wait_until_blocking
from euralios.std import SyscallError, abi
from machine.netdev import make_backend
from tests.support.guest import run_body

DIOD = "/usr/sbin/diod"
NINEMOUNT = (ROOT / "programs" / "9mount.py").read_bytes()
BIG = random.Random(11).randbytes(150 * 1024)
OURS = random.Random(12).randbytes(120 * 1024)
pytestmark = NEED_ROOT  # diod serves as root (it would squash us to a user who cannot read the folder)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"{name} is not installed (`make test-deps` installs it as root)")
    return path


def make_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="euralios-diod-", dir="/tmp"))
    (folder / "hello.txt").write_text("hello from diod\n")
    (folder / "big.bin").write_bytes(BIG)
    (folder / "full").mkdir()
    (folder / "full" / "x").write_text("x")
    return folder


def accepting(host: str, port: int, daemon: subprocess.Popen[Any], log: Path) -> Callable[[], bool]:
    """A predicate: diod accepts on host:port (it is another process: trying is the only way)."""

    def accepts() -> bool:
        if daemon.poll() is not None:
            pytest.fail(f"diod exited: {log.read_text()}")
        try:
            socket.create_connection((host, port), timeout=1).close()
            return True
        except OSError:
            return False

    return accepts


@pytest.fixture
def diod(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A folder with a few files, exported by diod on 127.0.0.1:PORT."""
    if not os.path.exists(DIOD):
        pytest.fail("diod is not installed (`make test-deps` installs it as root)")
    folder = make_folder()
    port = free_port()
    log = tmp_path / "diod.log"
    proc = subprocess.Popen([DIOD, "-f", "-n", "-e", str(folder), "-l", f"127.0.0.1:{port}", "-L", "stderr"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        wait_until_blocking(accepting("127.0.0.1", port, proc, log), timeout=10, interval=0.02,
                            what=f"diod listening on port {port}")
        yield folder, port
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def guest() -> AsyncIterator[System]:
    nic = make_backend("user")
    try:
        async with boot(nic=nic) as system:
            system.start_network()
            await system.wait_for_output(r"\[tcp\] DHCP: 10\.0\.2\.15/24", 20)
            yield system
    finally:
        nic.close()


async def ninemount(proc: Any, *args: str) -> int:
    """Run 9mount as a user types it: from its file (a confined program), to its end."""
    await proc.write_file("/ramdisk/9mount", NINEMOUNT)
    child = await proc.exec("/ramdisk/9mount", ["/ramdisk/9mount", *args])
    return await child.wait()


async def run(system: System, body: Any, timeout: float = 60) -> None:
    await run_body(system, body, timeout=timeout, detail=system.output)


async def code_of(coro: Any) -> int:
    with pytest.raises(SyscallError) as e:
        await coro
    return e.value.code


async def test_9mount_diod_files_byte_exact_both_ways_listing_and_errors(diod, guest) -> None:
    folder, port = diod
    await exercise(guest, folder, port)


async def exercise(system: System, folder: Path, port: int) -> None:
    """Mount diod's export at /mnt/d with 9mount; read, write, list, change, fail; check the host."""

    async def body(proc: Any) -> None:
        assert await ninemount(proc, f"10.0.2.2:{port}", "/mnt/d", str(folder)) == 0, system.output()
        assert "/mnt/d" in await proc.mounts()
        assert await proc.listdir("/mnt/d") == ["big.bin", "full", "hello.txt"]
        assert await proc.read_file("/mnt/d/hello.txt") == b"hello from diod\n"
        assert await proc.read_file("/mnt/d/big.bin") == BIG
        await proc.write_file("/mnt/d/ours.bin", OURS)
        await proc.mkdir("/mnt/d/made")
        await proc.write_file("/mnt/d/made/note.txt", "note")
        await proc.rename("/mnt/d/made/note.txt", "renamed.txt")
        assert await proc.listdir("/mnt/d/made") == ["renamed.txt"]
        await proc.write_file("/mnt/d/gone.txt", "bye")
        await proc.remove("/mnt/d/gone.txt")
        assert await code_of(proc.read_file("/mnt/d/missing")) == abi.NOTFOUND
        assert await code_of(proc.remove("/mnt/d/full")) == abi.NOT_EMPTY
        assert await code_of(proc.mkdir("/mnt/d/full")) == abi.EXISTS
        assert await code_of(proc.write_file("/mnt/d/full", "x")) == abi.IS_DIR

    await run(system, body)
    assert f"9mount: 10.0.2.2:{port} mounted on /mnt/d" in system.output()
    assert (folder / "ours.bin").read_bytes() == OURS
    assert sorted(os.listdir(folder)) == ["big.bin", "full", "hello.txt", "made", "ours.bin"]
    assert (folder / "made" / "renamed.txt").read_text() == "note"
    assert (folder / "full" / "x").exists()


async def test_9mount_says_what_went_wrong(diod, guest) -> None:
    folder, port = diod
    system = guest
    closed = free_port()  # nobody listens there

    async def body(proc: Any) -> None:
        assert await ninemount(proc, f"10.0.2.2:{closed}", "/mnt/x") == 1
        assert await ninemount(proc, f"10.0.2.2:{port}", "/mnt/y", "/not/exported") == 1
        assert await ninemount(proc, "10.0.2.2:99999", "/mnt/z") == 2
        assert await ninemount(proc, "10.0.2.2") == 2
        assert await ninemount(proc, "10.0.2.2", "relative") == 2
        mounts = await proc.mounts()
        assert not any(m.startswith("/mnt") for m in mounts)

    await run(system, body)
    out = system.output()
    # The serving copy printed these before it exited, and 9mount waited for its end.
    assert f"9mount: 10.0.2.2:{closed}: connection refused" in out
    assert f"9mount: 10.0.2.2:{port}: attach failed: permission denied" in out
    assert "9mount: bad port '99999'" in out
    assert "Usage: 9mount ADDRESS[:PORT] MOUNTPOINT [ANAME]" in out
    assert "9mount: bad mount point 'relative'" in out


async def test_user_types_9mount_in_the_shell_and_uses_the_host_folder(diod) -> None:
    """The newcomer's path: log in as `user`, type `9mount`, then cat, ls and a redirect."""
    from euralios.pytest_plugin import wait_screen
    from euralios.system_boot import boot_full
    from machine.board import Machine

    folder, port = diod
    nic = make_backend("user")
    try:
        async with boot_full(machine=Machine("64M", nic=nic)) as system:
            await wait_screen(system, r"login: ?$", 20)
            await system.type("user\n")
            await wait_screen(system, r"\$ ?$", 15)
            await system.type(f"9mount 10.0.2.2:{port} /mnt/d {folder}\n")
            await wait_screen(system, r"mounted on /mnt/d\s+\$ ?$", 30)
            await system.type("cat /mnt/d/hello.txt\n")
            await wait_screen(system, r"hello from diod\s+\$ ?$", 15)
            await system.type("ls /mnt/d\n")
            screen = await wait_screen(system, r"\$ ls /mnt/d\n[\s\S]*hello\.txt[\s\S]*\$ ?$", 15)
            listing = screen.rsplit("$ ls /mnt/d", 1)[1]
            assert "big.bin" in listing and "full" in listing
            await system.type("echo typed in the OS > /mnt/d/typed.txt\n")
            await wait_until(lambda: (folder / "typed.txt").exists() and b"typed" in (folder / "typed.txt").read_bytes(),
                             timeout=15, what="typed.txt on the host")
            await system.type("cat /mnt/d/nope\n")
            await wait_screen(system, r"\$ cat /mnt/d/nope\n.*not found[\s\S]*\$ ?$", 15)
    finally:
        nic.close()
    assert (folder / "typed.txt").read_text() == "typed in the OS\n"


async def test_9mount_diod_over_a_tap(tmp_path: Path) -> None:
    """The same over a real wire: a tap in a private namespace, DHCP from dnsmasq, diod there."""
    from euralios.netns import Netns

    folder = make_folder()
    port = 5640
    ns = Netns()
    try:
        with ns:
            dlog = tmp_path / "dnsmasq.log"
            ns.popen([tool("dnsmasq"), "--no-daemon",
                      "--conf-file=/dev/null", "--no-resolv", "--no-hosts", f"--interface={ns.tap}",
                      "--bind-interfaces", "--user=root", "--pid-file", "--dhcp-range=10.0.2.15,10.0.2.15,255.255.255.0,1h",
                      "--dhcp-option=option:router,10.0.2.2", f"--dhcp-leasefile={tmp_path / 'leases'}", "--no-ping"],
                     stdout=dlog.open("w"), stderr=subprocess.STDOUT)
            await wait_until(lambda: "started" in dlog.read_text(), timeout=10, interval=0.02, what="dnsmasq started")
            # diod looks up the name of every client (getnameinfo) and hangs up when that fails;
            # the namespace has no DNS, so give it a hosts file (`ip netns exec` mounts
            # /etc/netns/NAME/hosts over /etc/hosts for the programs it starts).
            etc = Path("/etc/netns") / ns.name
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text("127.0.0.1 localhost\n10.0.2.2 host\n10.0.2.15 guest\n")
            log = tmp_path / "diod.log"
            daemon = ns.popen([DIOD, "-f", "-n", "-e", str(folder), "-l", f"10.0.2.2:{port}", "-L", "stderr"],
                              stdout=log.open("w"), stderr=subprocess.STDOUT)
            accepts = accepting("10.0.2.2", port, daemon, log)
            await wait_until(lambda: ns.run(accepts), timeout=10, interval=0.02, what="diod listening in the namespace")
            async with boot(nic=ns.backend()) as system:
                system.start_network()
                await system.wait_for_output(r"\[tcp\] DHCP: 10\.0\.2\.15/24", 20)
                await exercise(system, folder, port)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(Path("/etc/netns") / ns.name, ignore_errors=True)
