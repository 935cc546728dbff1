"""init's drivers and servers: each started from its image in the initial RAM disk, supervised.

The host hands init the initial RAM disk first thing on handle 1: Long(INITRD, n, chunk), JSON
{"bin/NAME": source, "sbin/NAME": source} (euralios/system_boot.py packs it). bin/ holds the
built-in programs, sbin/ the drivers and servers init starts (Image below). init imports none of
them: each runs from its image with proc.exec, with I/O privilege where it programs hardware,
and a restart execs the same image again (programs/init/supervisor.py). init keeps the images in
memory -- the keyboard and console drivers start before there is a RAM disk to read them from,
and a restarted RAM disk is refilled from them -- and installs them at /ramdisk/bin and
/ramdisk/sbin, so they can be read, edited and run inside the OS. A user's VFS (programs/login.py)
has /ramdisk/user as /ramdisk, so /ramdisk/sbin is root's to read.

The services: the keyboard and console drivers (no mount: the keyboard driver writes keys to
init's own stdin, the console driver is the screen), the RAM disk at /ramdisk, the password store
(a second, small RAM disk that only login mounts), /pci, and /dev/nic and /tcp when there is a
network card, and one drivers/virtio_9p.py per host folder (SHARES in our environment,
euralios.std.protocols.shares) mounted at /host/TAG. A crashed keyboard driver is restarted with a new copy of our stdin as its stdout
(keys typed meanwhile wait in the controller, and the new driver drains them first); the console
driver's restart is programs/init/consoles.py's.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from enum import StrEnum

from euralios.std import STDIN, STDOUT, Memory, SyscallError, abi, discard
from euralios.std.fs import take_bytes
from euralios.std.protocols.pci import ADDRESS, FIND_DEVICE
from euralios.std.protocols.shares import SHARES_ENV
from euralios.std.protocols.shares import decode as decode_shares
from programs.init.consoles import RED, RESET, Consoles
from programs.init.supervisor import Service, Stdio, Supervisor


class Image(StrEnum):
    """The images init runs, by their names in the initial RAM disk."""

    KEYBOARD = "sbin/keyboard"
    CONSOLE = "sbin/console"
    RAMDISK = "sbin/ramdisk"
    PCI = "sbin/pci"
    NIC = "sbin/rtl8139"
    VIRTIO_NIC = "sbin/virtio_net"
    NINEP = "sbin/virtio_9p"
    TCP = "sbin/tcp"
    ECHO = "bin/echo"  # the console program when there is no /bin/login


async def receive_initrd(sys) -> dict[str, bytes] | None:
    """The initial RAM disk the host parked on handle 1, {name: image}; None if it is not there
    (then init has no drivers to start)."""
    msg = await sys.receive(STDOUT)
    if msg.tag != abi.INITRD or not isinstance(msg.d3, Memory):
        await sys.debug_write(f"[init] expected INITRD on handle 1, got message {msg.tag}")
        await discard(sys, msg)
        return None
    try:
        files = json.loads(await take_bytes(sys, msg))
    except ValueError as e:
        await sys.debug_write(f"[init] the initial RAM disk is not JSON: {e}")
        return None
    return {name: source.encode() for name, source in files.items()}


class Services:
    """The supervised drivers and servers, started from `images` (the initial RAM disk)."""

    def __init__(self, proc, consoles: Consoles, images: dict[str, bytes]) -> None:
        self.proc = proc
        self.sys = proc.sys
        self.consoles = consoles
        self.images = images
        self.supervisor = Supervisor(proc, consoles.log, consoles.system_stdout)
        self.stdin_spare = -1  # a copy of STDIN we hold so that it never looks closed
        self.secrets: Service | None = None  # the password store (mounted for login only)

    def image(self, name: Image) -> bytes:
        try:
            return self.images[name]
        except KeyError:
            raise SyscallError(abi.NOTFOUND, detail=f"no {name} in the initial RAM disk") from None

    async def start(self, name: str, image: Image, path: str | None, args: list[str] | None = None,
                    io: bool = False, on_restart: Callable[[Service], Awaitable[None]] | None = None,
                    idle: bool = False, stdio: Stdio | None = None, env: dict[str, str] | None = None) -> Service:
        """Start a supervised service on a new rendezvous (mounted at `path` if given): if it
        crashes it is restarted with back-off and re-mounted (programs/init/supervisor.py)."""
        if path is not None:
            await self.consoles.log(f"starting {name} mounted at {path}" + (" (I/O)" if io else ""))
        return await self.supervisor.start(name, self.image(image), path, args, io, on_restart,
                                           stdio=stdio, env=env, idle=idle)

    # ------------------------------------------------------------------ the keyboard and console drivers
    async def keyboard(self, keymap: str) -> Service:
        # A second reference of our own to stdin: while the keyboard driver is dead (being
        # restarted) we would otherwise be the only holder, and the closed rule would end our
        # receive -- and the key loop -- with CLOSED.
        self.stdin_spare = await self.sys.copy_rendezvous(STDIN)
        return await self.start("keyboard", Image.KEYBOARD, None, ["keyboard"], io=True,
                                stdio=self.keyboard_stdio, env={"KEYMAP": keymap},
                                on_restart=self.keyboard_restarted)

    async def keyboard_restarted(self, _svc: Service) -> None:
        """A new keyboard driver: tell it where the console driver is (keys go straight there)."""
        await self.consoles.wire_keys()

    async def keyboard_stdio(self, _svc: Service) -> tuple[int, int, int]:
        """The keyboard driver's plumbing: a stdin nobody uses, and our stdin as its stdout."""
        mine, theirs = await self.sys.new_rendezvous()
        return mine, theirs, await self.sys.copy_rendezvous(STDIN)

    async def console(self) -> Service:
        consoles = self.consoles
        svc = await self.start("console", Image.CONSOLE, None, ["console"], io=True,
                               stdio=consoles.driver_stdio, on_restart=consoles.driver_restarted)
        svc.on_give_up = consoles.driver_given_up
        return svc

    # ------------------------------------------------------------------ file systems
    async def filesystems(self) -> None:
        """/ramdisk with bin/, sbin/, root/ and user/, filled from the initial RAM disk, /bin
        pointing at it; the password store (a second, small RAM disk that only login mounts)."""
        await self.start("ramdisk", Image.RAMDISK, "/ramdisk", on_restart=self.populate)
        await self.populate(None, first=True)
        self.secrets = await self.start("passwords", Image.RAMDISK, None, ["passwords", "--capacity", "1M"])

    async def populate(self, _service: Service | None, first: bool = False) -> None:
        """Fill a (new) RAM disk: directories, the images, and /bin pointing at it."""
        proc, sys = self.proc, self.sys
        for d in ("/ramdisk/bin", "/ramdisk/sbin", "/ramdisk/root", "/ramdisk/user"):
            try:
                await proc.mkdir(d)
            except SyscallError as e:
                await self.consoles.log(f"{RED}mkdir {d}: {e}{RESET}")
        for name, image in self.images.items():
            await proc.write_file(f"/ramdisk/{name}", image)
        programs = sum(name.startswith("bin/") for name in self.images)
        await self.consoles.log(f"installed {programs} programs in /ramdisk/bin and "
                                f"{len(self.images) - programs} services in /ramdisk/sbin")
        if not first:
            try:
                await sys.umount("/bin")
            except SyscallError:
                pass
        bin_dir = await proc.open("/ramdisk/bin", "r+")
        await sys.mount("/bin", bin_dir.handle)

    # ------------------------------------------------------------------ devices
    async def devices(self) -> None:
        """/pci, the host folders, and /dev/nic and /tcp when there is a network card."""
        log = self.consoles.log
        pci = await self.start("pci", Image.PCI, "/pci", io=True)
        await self.shares()
        try:
            reply = await self.sys.rcall(pci.handle, FIND_DEVICE, 0x10EC, 0x8139)
        except SyscallError as e:
            await log(f"{RED}pci: {e}{RESET}")
            return
        if reply.tag == ADDRESS:
            await self.start("rtl8139", Image.NIC, "/dev/nic", io=True)
        else:
            try:
                virtio = await self.sys.rcall(pci.handle, FIND_DEVICE, 0x1AF4, 0x1000)
            except SyscallError:
                virtio = None
            if virtio is None or virtio.tag != ADDRESS:
                await log("no network card")
                return
            await self.start("virtio_net", Image.VIRTIO_NIC, "/dev/nic", io=True)
        # The TCP/IP stack at /tcp: DHCP unless NET_ARGS (e.g. "--static 10.0.2.15/24,gw=10.0.2.2")
        # says otherwise. Mounted now, started once the system is idle (abi.EXEC_IDLE): loading
        # its image (scapy) takes a fifth of a second, which an idle start moves past the moment
        # the login prompt appears instead of before it. An early open of /tcp waits for the
        # stack meanwhile, it does not fail.
        await self.start("tcp", Image.TCP, "/tcp", args=["tcp", *self.proc.env.get("NET_ARGS", "").split()],
                         idle=True)

    async def shares(self) -> None:
        """One virtio-9p driver per host folder, mounted at /host/TAG in our (root's, shared) VFS.
        The driver finds its device by the tag; a read-only share's server refuses writes too."""
        for share in decode_shares(self.proc.env.get(SHARES_ENV, "")):
            args = ["virtio_9p", share.tag, *(["--readonly"] if share.readonly else [])]
            await self.start(f"9p-{share.tag}", Image.NINEP, share.path, args=args, io=True)
