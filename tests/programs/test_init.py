"""init starts its drivers and servers from the images in the initial RAM disk -- it imports none
of them -- and installs those images at /ramdisk/sbin, where root can read them and a user's
login cannot see them."""

from __future__ import annotations

import ast

from euralios.boot import ROOT
from euralios.pytest_plugin import wait_screen as wait
from euralios.system_boot import SBIN, boot_full
from machine.board import Machine
from machine.netdev.memory import MemoryBackend
from merriwig import layout

NOT_IMPORTED = ("drivers", "vfs.ramdisk", "net", "programs.echo")
SERVICES = {"keyboard": "keyboard", "console": "console", "ramdisk": "ramdisk", "passwords": "ramdisk",
            "pci": "pci", "rtl8139": "rtl8139", "tcp": "tcp"}  # process -> its image in sbin/


def test_init_imports_no_driver_server_or_console_program() -> None:
    for path in sorted((ROOT / "programs" / "init").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            bad = [n for n in names if any(n == p or n.startswith(p + ".") for p in NOT_IMPORTED)]
            assert not bad, f"{path.name} imports {bad}"


async def test_services_run_from_their_initrd_images_which_root_finds_in_ramdisk_sbin() -> None:
    sources = {name: (ROOT / path).read_bytes() for name, path in SBIN.items()}
    installed: dict[str, bytes] = {}

    async def reader(proc) -> int:
        for name in sorted(await proc.listdir("/ramdisk/sbin")):
            installed[name] = await proc.read_file(f"/ramdisk/sbin/{name}")
        return 0

    async with boot_full(machine=Machine("64M", nic=MemoryBackend()), console_program="/bin/echo",
                         net_args=["--static", "10.0.2.15/24,gw=10.0.2.2"]) as system:
        await system.wait_for_screen(r"^> ", 10)
        for process, image in SERVICES.items():
            p = system.process(process)
            assert p is not None, f"no {process} process"
            assert p.space.read(layout.CODE_BASE, len(sources[image])) == sources[image], process
        assert await system.run(reader) == 0
    assert installed == sources


async def test_a_user_login_does_not_see_ramdisk_sbin() -> None:
    async with boot_full() as system:
        await wait(system, r"login:$", 10)
        await system.type("user\n")
        await wait(system, r"\$ ?$", 10)
        await system.type("ls /ramdisk/sbin\n")
        await wait(system, r"^ls: /ramdisk/sbin: not found\n\$ ?$", 10)
