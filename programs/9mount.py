"""9mount: a 9P2000.L server's tree (a host folder exported by diod, say) mounted in your VFS.

    9mount ADDRESS[:PORT] MOUNTPOINT [ANAME]      PORT defaults to 564 (9P's port)

    $ 9mount 10.0.2.2:5640 /mnt/d
    9mount: 10.0.2.2:5640 mounted on /mnt/d
    $ ls /mnt/d

Files read and write byte-exact, directories list, create, rename and delete as on any mount.
Without `-n` authentication a 9P server decides on its own who you are: diod's `-n` (no auth)
with `-S` squashes everyone to one user; this program sends uname "root" (n_uname 0).

How it keeps serving after the shell has its prompt back: the shell waits for the program it
started, so the program does not serve: it starts a copy of itself (`9mount --serve ...`, shown
by `ps` as 9mount) on a new rendezvous, which connects over /tcp, attaches and serves the file
protocol there (vfs.ninep), and waits for it to answer one listing through the other end. Then
it mounts that end at MOUNTPOINT -- in the VFS it shares with the shell -- and exits. When the
server cannot connect or attach, it says why in one line and exits, and so does this program,
with its status. `umount MOUNTPOINT` ends the server (once its open files are closed); so does
the connection closing, after which the mount point answers errors until umounted.
"""

from __future__ import annotations

from euralios.std import STDIN, SyscallError, abi
from euralios.std.fs import File
from vfs.ninep import attach, serve_attached
from vfs.ninep.tcp import StreamTransport
from vfs.protocol import FsError

PORT = 564
USAGE = "Usage: 9mount ADDRESS[:PORT] MOUNTPOINT [ANAME]   (PORT defaults to 564)"
SERVE = "--serve"  # how the program starts its serving copy (not for people)
HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")


def parse_address(text: str) -> tuple[str, int]:
    """(host, port) from ADDRESS[:PORT]; ValueError with the one-line reason."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, str(PORT)
    if not host or not set(host) <= HOST_CHARS:
        raise ValueError(f"bad address {text!r} (want HOST or HOST:PORT)")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port {port_text!r} in {text!r} (want 1-65535)")
    return host, int(port_text)


def error_text(e: BaseException) -> str:
    if isinstance(e, SyscallError):
        return abi.ERROR_TEXT.get(e.code, f"error {e.code}").lower()
    if isinstance(e, FsError):
        return f"{abi.ERROR_TEXT.get(e.code, f'error {e.code}').lower()} ({e})"
    return str(e)


async def serve(proc, host: str, port: int, aname: str) -> int:
    """The serving copy: connect, attach, serve on stdin (the rendezvous its parent mounts)."""
    where = f"{host}:{port}"
    try:
        stream = await proc.connect(host, port)
    except SyscallError as e:
        await proc.print(f"9mount: {where}: {error_text(e)}")
        return 1
    transport = await StreamTransport.new(proc.sys, stream)
    try:
        client = await attach(transport, aname=aname)
    except FsError as e:
        await proc.print(f"9mount: {where}: attach failed: {error_text(e)}")
        await transport.close()
        return 1
    return await serve_attached(proc, STDIN, client)


async def main(proc) -> int:
    args = list(proc.args[1:])
    if args[:1] == [SERVE] and len(args) == 4 and args[2].isdigit():
        return await serve(proc, args[1], int(args[2]), args[3])
    if len(args) not in (2, 3) or any(a.startswith("-") for a in args):
        await proc.print(USAGE)
        return 2
    try:
        host, port = parse_address(args[0])
    except ValueError as e:
        await proc.print(f"9mount: {e}")
        return 2
    mountpoint = "/" + "/".join(p for p in args[1].split("/") if p)
    if not args[1].startswith("/") or mountpoint == "/" or any(p in (".", "..") for p in mountpoint.split("/")):
        await proc.print(f"9mount: bad mount point {args[1]!r} (want an absolute path such as /mnt/d)")
        return 2
    aname = args[2] if len(args) == 3 else ""
    me = proc.args[0] if "/" in proc.args[0] else f"/bin/{proc.args[0]}"
    sys = proc.sys
    ours, theirs = await sys.new_rendezvous()
    try:
        child = await proc.exec(me, ["9mount", SERVE, host, str(port), aname], stdin=theirs, name="9mount")
    except SyscallError as e:
        await sys.close(ours)
        await proc.print(f"9mount: cannot start its server: {error_text(e)}")
        return 1
    root = File(sys, ours, mountpoint, session=False)
    try:
        await root.query()  # answered once the server has attached; CLOSED if it gave up
    except SyscallError as e:
        if e.code == abi.CLOSED:  # it said why on the console
            await sys.close(ours)
            return await child.wait() or 1
        # Attached, but the root does not list (a folder we may enter, not read): still a mount.
    try:
        await sys.mount(mountpoint, ours)  # the handle moves into the VFS we share with the shell
    except SyscallError as e:
        await sys.close(ours)  # the server sees the mount gone and ends
        await proc.print(f"9mount: {mountpoint}: {error_text(e)}")
        return 1
    await proc.print(f"9mount: {host}:{port} mounted on {mountpoint}")
    return 0
