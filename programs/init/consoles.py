"""init's virtual consoles: the system console (F1), the user consoles (F2-F5) and their programs.

* F1 shows the system console (it has no input: keys typed there are dropped).
* F2-F5 show user console 1-4; 2-4 are created, with their own program, on first use.
* Shift+PgUp / Shift+PgDn scroll the console on screen through its scrollback; the console
  driver does that (and returns a scrolled console to the bottom on the next key). The system console keeps SYSTEM_SCROLLBACK rows (the whole boot log), user consoles the driver's
  default (1000).
* Any other key goes to the console driver, for the console on screen: the console is a tty
  (drivers/tty.py) that keeps its input and hands it to the reader in front.

The console program is CONSOLE_PROGRAM (default /bin/login) read from the VFS, or echo (its image
bin/echo from the initial RAM disk, programs/echo.py) when that file does not exist (there is no
login yet). When a console's program exits, init starts a new one there, as getty does.

Improvement over the seed, whose init did blocking sends and so stalled every console (F-keys
included) when one program stopped reading (its README's "known issue"): the key loop sends only
to the console driver, which never waits for a program (its tty queues what nobody reads yet).
Each console's program is started in front of it: a foreground reader pushed on its writer
(euralios.std.tty.foreground) is its stdin.

The console driver is supervised like the servers (programs/init/supervisor.py): a crashed one
is restarted, and we map the VGA text memory ourselves with map_phys(0xB8000, 1) (the kernel's
parked copy went with the old driver) and send it as Long(VIDEO_MEMORY, 4096, chunk). Then every
console is opened again on the new driver (new writer handles; the old ones are dead), the
console on screen is shown again, and the program of each user console -- which prints to a dead
writer -- is killed with whatever it started, so the getty loop starts a fresh one on the new
writer. Lines logged while the system console was down (the crash report, the back-off) are
kept and printed once it is back.
"""

from __future__ import annotations

import json
from collections import deque

from euralios.std import STDIN, Handle, Memory, Message, SyscallError, abi, discard, tty
from euralios.std.keys import F_KEYS, KEY_SHIFT_PGDN, KEY_SHIFT_PGUP
from euralios.std.protocols.shares import SHARES_ENV
from programs.init.supervisor import Service

USER_CONSOLES = 4  # F2..F5
QUICK_EXIT = 2.0  # seconds: a console program that exits faster than this is "crashing"
MAX_QUICK_EXITS = 3
DEFAULT_PROGRAM = "/bin/login"
VGA_PAGES = 1
SYSTEM_SCROLLBACK = 10000  # the system console keeps the whole boot log (the most the driver allows)
MISSED_LINES = 64  # system-console writes kept while the console driver is down...
MISSED_CHARS = 8192  # ...and at most this much of their text (a few screens: the latest part)

# Colours readable on the consoles' white background: dark green, dark blue, brown, red.
GREEN, BLUE, YELLOW, RED, RESET = "\x1b[32m", "\x1b[34m", "\x1b[33m", "\x1b[31m", "\x1b[0m"
TAG = f"{GREEN}[init]{RESET}"


async def answer(sys, handle: int, msg: Message) -> None:
    """Reply to a caller; one that died meanwhile is no reason for init to die."""
    try:
        await sys.send(handle, msg)
    except SyscallError:
        pass


def scrollback(index: int) -> int:
    """Rows of history console `index` asks the driver for (0: the driver's default)."""
    return SYSTEM_SCROLLBACK if index == 0 else 0


def tail(text: str) -> str:
    """The last MISSED_CHARS of text, from a line start: what is worth replaying after an outage
    (a console given up for good must not make init hoard its log for ever)."""
    if len(text) <= MISSED_CHARS:
        return text
    cut = text[-MISSED_CHARS:]
    newline = cut.find("\n")
    return cut[newline + 1:] if 0 <= newline < len(cut) - 1 else cut


class Console:
    """One virtual console as init sees it: the writer handle its programs print to, the id the
    console driver gave it and, for a user console, the program running there."""

    def __init__(self, index: int, writer: int, cid: int) -> None:
        self.index = index  # 0 = system console (F1), 1..4 = F2..F5
        self.writer = writer
        self.cid = cid
        self.program = ""
        self.child = None  # the running program (euralios.std Child), if any
        self.generation = 0  # which console driver opened it (Consoles.vga_generation)
        self.hangup = False  # its program was killed because the console driver restarted
        self.getty: int | None = None  # our reader on it (its first): programs are pushed through it


class Consoles:
    """The consoles on the console driver, the keys routed to them, and the driver's restarts.

    `fallback` is the echo image, run when there is no CONSOLE_PROGRAM file."""

    def shares_env(self) -> dict[str, str]:
        """SHARES for login: which host folders a `user` session gets (login reads it)."""
        shares = self.proc.env.get(SHARES_ENV)
        return {SHARES_ENV: shares} if shares else {}

    def __init__(self, proc, fallback: bytes) -> None:
        self.proc = proc
        self.sys = proc.sys
        self.fallback = fallback
        self.vga = -1  # the console driver's main handle
        self.vga_generation = 0  # bumped each time the console driver is restarted
        self.missed: deque[str] = deque(maxlen=MISSED_LINES)  # system-console text while it was down
        self.consoles: list[Console | None] = [None] * (1 + USER_CONSOLES)
        self.current = 0
        self.secrets: Service | None = None  # the password store (mounted for login only)
        self.driver: Service | None = None  # the console driver
        self.waiters: list[int] = []  # console_back sleepers, woken when the console returns
        self.keyboard: Service | None = None  # the keyboard driver (wire_keys)

    # ------------------------------------------------------------------ output
    async def say(self, con: Console | None, text: str) -> None:
        """Print on a console; a console that cannot be written to is not worth dying for.
        System-console text that cannot be shown (its driver is being restarted) is kept and
        shown once the console is back."""
        con = con or self.consoles[0]
        if con is None:
            await self.sys.debug_write(text.rstrip("\n"))
            return
        if con.index == 0 and self.missed:
            text = tail("".join(self.missed) + text)  # what it missed first, in order
            self.missed.clear()
        try:
            await self.proc.write(text, handle=con.writer)
        except SyscallError:
            if con.index == 0:
                self.missed.append(text)

    async def log(self, text: str) -> None:
        await self.say(None, f"{TAG} {text}\n")

    async def system_stdout(self) -> int | None:
        """A new handle to the system console's writer: a service's stdout."""
        system = self.consoles[0]
        return await self.sys.copy_rendezvous(system.writer) if system is not None else None

    # ------------------------------------------------------------------ consoles
    async def open_console(self, index: int) -> Console:
        reply = await self.sys.rcall(self.vga, abi.OPEN_READWRITE, scrollback(index))
        if reply.tag != abi.COMM_HANDLE or not isinstance(reply.d2, Handle) or not isinstance(reply.d3, int):
            await discard(self.sys, reply)
            raise SyscallError(abi.PARAM, reply, detail="console driver gave no console")
        con = Console(index, reply.d2.number, reply.d3)
        con.generation = self.vga_generation
        await self.claim(con)
        self.consoles[index] = con
        return con

    async def claim(self, con: Console) -> None:
        """Push our getty entry, the console's first reader, before any program can print there:
        every later foreground goes through the reader in front (drivers/ttyserve.py), so no
        process holding the writer can put itself in front of a login. We never read from it."""
        try:
            con.getty, _ = await tty.foreground(self.sys, con.writer)
        except SyscallError as e:
            con.getty = None
            await self.sys.debug_write(f"[init] console {con.cid}: no getty entry: {e}")

    async def activate(self, con: Console) -> None:
        try:
            await self.sys.rcall(self.vga, abi.WRITE, con.cid, 0, expect=abi.OK)
        except SyscallError as e:
            await self.log(f"{RED}cannot switch to console F{con.index + 1}: {e}{RESET}")
            return
        self.current = con.index

    async def user_console(self, index: int) -> Console:
        """Console `index` (1..4), created with its program on first use."""
        con = self.consoles[index]
        if con is not None:
            return con
        con = await self.open_console(index)
        await self.proc.spawn_thread(self.supervise, con)
        return con

    async def console_program(self) -> tuple[bytes, str]:
        """(image, name) of the program for a user console: CONSOLE_PROGRAM from the VFS if it
        exists, else echo from the initial RAM disk."""
        path = self.proc.env.get("CONSOLE_PROGRAM", DEFAULT_PROGRAM)
        if path:
            try:
                image = await self.proc.read_file(path)
                if image:
                    return image, path.rsplit("/", 1)[-1]
            except SyscallError as e:
                if path != DEFAULT_PROGRAM:
                    why = abi.ERROR_TEXT.get(e.code, f"error {e.code}").lower()  # e names the path too
                    await self.log(f"{YELLOW}CONSOLE_PROGRAM {path}: {why}; using echo{RESET}")
        return self.fallback, "echo"

    async def supervise(self, con: Console) -> None:
        """Run the console's program, and a new one each time it exits (like getty)."""
        sys = self.sys
        quick = 0
        while True:
            image, name = await self.console_program()
            started = self.proc.now()
            try:
                stdout = await sys.copy_rendezvous(con.writer)
                mounts = None
                if name == "login" and self.secrets is not None:
                    # Only login's VFS has the password store.
                    mounts = {"/etc": await sys.copy_rendezvous(self.secrets.handle)}
                if con.getty is None:
                    raise SyscallError(abi.PARAM, detail="no getty entry on the console")
                stdin, entry = await tty.foreground(sys, con.getty)
                child = await self.proc.exec(image, args=[name], stdin=stdin, stdout=stdout, name=name,
                                             env={"CONSOLE": f"F{con.index + 1}", tty.TTY_ENV: "1", **self.shares_env()},
                                             mounts=mounts)
            except SyscallError as e:
                await self.say(con, f"{TAG} {RED}cannot start {name}: {e}{RESET}\n")
                return
            child.tty_entry, child.tty_console = entry, con.getty
            con.program = name
            con.child = child
            await self.log(f"console F{con.index + 1}: {name} (pid {child.pid})")
            status = await child.wait()
            con.child = None
            hung_up, con.hangup = con.hangup, False  # we killed it: its console driver was restarted
            if not hung_up and not await self.writer_alive(con):
                # It died of its console's death (a print failed with CLOSED): restarting it now
                # would only see it die again. Wait until the console is opened on a new driver.
                if not await self.console_back(con):
                    return
                hung_up = True
            if hung_up:
                quick = 0
                await self.say(con, f"{TAG} console restarted; starting a new {name}\n")
                continue
            quick = quick + 1 if self.proc.now() - started < QUICK_EXIT else 0
            if quick >= MAX_QUICK_EXITS:
                await self.say(con, f"\n{TAG} {RED}{name} keeps exiting (status {status}); not restarting{RESET}\n")
                return
            await self.say(con, f"\n{TAG} {name} exited with status {status}; starting a new one\n")

    async def serial_getty(self, line: int) -> None:
        """A login on the serial line (`euralios --serial`, QEMU's -nographic): `line` is the
        serial console driver's handle, which the host gave us. As on a virtual console, the
        program runs in front of the line (the driver is a tty too) and a new one is started
        each time it exits."""
        sys = self.sys
        quick = 0
        try:
            getty, _ = await tty.foreground(sys, line)  # our first reader: see claim()
        except SyscallError as e:
            await self.log(f"{RED}serial line: {e}{RESET}")
            return
        while True:
            image, name = await self.console_program()
            started = self.proc.now()
            try:
                stdout = await sys.copy_rendezvous(line)
                mounts = None
                if name == "login" and self.secrets is not None:
                    mounts = {"/etc": await sys.copy_rendezvous(self.secrets.handle)}
                stdin, entry = await tty.foreground(sys, getty)
                child = await self.proc.exec(image, args=[name], stdin=stdin, stdout=stdout, name=name,
                                             env={"CONSOLE": "ttyS0", tty.TTY_ENV: "1", **self.shares_env()}, mounts=mounts)
            except SyscallError as e:
                await self.log(f"{RED}serial line: cannot start {name}: {e}{RESET}")
                return
            child.tty_entry, child.tty_console = entry, getty
            await self.log(f"serial line ttyS0: {name} (pid {child.pid})")
            status = await child.wait()
            quick = quick + 1 if self.proc.now() - started < QUICK_EXIT else 0
            if quick >= MAX_QUICK_EXITS:
                await self.log(f"{RED}serial line: {name} keeps exiting (status {status}); not restarting{RESET}")
                return

    async def console_back(self, con: Console) -> bool:
        """Sleep until `con` is opened on a restarted console driver (True), or the driver is
        given up (False). A rendezvous of our own to wait on, woken by driver_restarted or
        driver_given_up: no polling while the screen is down."""
        sys = self.sys
        generation = con.generation
        mine, theirs = await sys.new_rendezvous()
        # No await between here and receive: a restart cannot slip in unseen.
        if con.generation != generation or self.driver is None or self.driver.given_up:
            for h in (mine, theirs):
                await sys.close(h)
            return con.generation != generation
        self.waiters.append(theirs)
        try:
            await sys.receive(mine)
        except SyscallError:
            pass  # woken by the close of the other end
        await sys.close(mine)
        return con.generation != generation

    async def wake_waiters(self) -> None:
        waiters, self.waiters = self.waiters, []
        for h in waiters:
            try:
                await self.sys.send(h, Message(abi.OK, 0, 0))
            except SyscallError:
                pass
            await self.sys.close(h)

    async def writer_alive(self, con: Console) -> bool:
        """Does the console driver still serve this console's writer? (QUERY it.)"""
        try:
            reply = await self.sys.rcall(con.writer, abi.QUERY)
        except SyscallError:
            return False
        await discard(self.sys, reply)
        return True

    # ------------------------------------------------------------------ keys
    async def key(self, code: int) -> None:
        """A key from the keyboard driver (before it sends to the console driver itself, or
        while that restarts) or a console-switching key the console driver passed on."""
        if code in F_KEYS[: 1 + USER_CONSOLES]:
            index = F_KEYS.index(code)
            try:
                if index:
                    await self.user_console(index)
            finally:
                # Always answer with an activate: the console driver holds the keys typed after
                # a switching key until we have said where they go.
                target = self.consoles[index]
                if target is None:
                    target = self.consoles[self.current]
                if target is not None:
                    await self.activate(target)
            return
        con = self.consoles[self.current]
        if con is None or (con.index == 0 and code not in (KEY_SHIFT_PGUP, KEY_SHIFT_PGDN)):
            return  # the system console has no input, only its scrollback
        try:
            await self.sys.send(self.vga, Message(abi.CHAR, code, 0))
        except SyscallError:
            pass  # the console driver is being restarted: the key is lost with the screen

    async def serve_keys(self) -> int:
        """The main loop: every key the keyboard driver sends to our stdin, routed."""
        sys = self.sys
        while True:
            try:
                msg = await sys.receive(STDIN)
            except SyscallError as e:
                await self.log(f"{RED}no more keys: {e}{RESET}")
                return 1
            if msg.tag == abi.CHAR and isinstance(msg.d2, int) and not msg.is_long:
                try:
                    await self.key(msg.d2)
                except SyscallError as e:  # e.g. no memory for a new console: keep serving keys
                    await self.log(f"{RED}key {msg.d2:#x}: {e}{RESET}")
            else:
                await discard(sys, msg)
            if msg.reply:
                await answer(sys, STDIN, Message(abi.OK, 0, 0))

    # ------------------------------------------------------------------ the console driver
    async def driver_stdio(self, _svc: Service) -> tuple[int, int, int]:
        """The console driver's plumbing: its main handle (ours: self.vga), and a stdout to
        nowhere (it *is* the screen; it reports through the kernel log)."""
        mine, theirs = await self.sys.new_rendezvous()
        nothing, nothing_theirs = await self.sys.new_rendezvous()
        await self.sys.close(nothing)
        return mine, theirs, nothing_theirs

    async def driver_started(self, svc: Service, video: Message) -> None:
        """The first console driver is running on svc.handle: give it the video memory the
        kernel parked for us (Long(VIDEO_MEMORY, n, chunk))."""
        self.driver = svc
        self.vga = svc.handle
        await self.sys.send(self.vga, Message(abi.VIDEO_MEMORY, video.d2, video.d3))
        await self.wire_keys()

    async def wire_keys(self) -> None:
        """Keys straight from the keyboard driver to the console driver, and the console
        switching keys from there back to us (so a key takes one hop, not two). Without either
        driver, keys keep coming through us: nothing is lost, it is only slower."""
        sys = self.sys
        keyboard = self.keyboard
        if keyboard is None or keyboard.handle < 0 or self.vga < 0:
            return
        try:
            await sys.rcall(self.vga, abi.COMM_HANDLE, Handle(await sys.copy_rendezvous(STDIN)), 0)
            await sys.send(keyboard.handle, Message(abi.COMM_HANDLE, Handle(await sys.copy_rendezvous(self.vga)), 0))
        except SyscallError as e:
            await discard(sys, e.message)
            await self.log(f"{YELLOW}keys go through init: {e}{RESET}")

    async def driver_restarted(self, svc: Service) -> None:
        """A new console driver is running on svc.handle: give it the screen, open every console
        again, show the one that was on screen, print what the system console missed, and hang
        up the user consoles' programs (they print to writers that died with the old driver)."""
        sys = self.sys
        self.vga = svc.handle
        self.vga_generation += 1
        generation = self.vga_generation
        vaddr = await sys.map_phys(abi.VGA_TEXT, VGA_PAGES)
        try:
            await sys.send(self.vga, Message(abi.VIDEO_MEMORY, VGA_PAGES * abi.PAGE, Memory(vaddr)))
        except SyscallError as e:
            await discard(sys, e.message)  # the chunk came back: the driver died already
            raise
        await self.wire_keys()
        for con in list(self.consoles):
            if con is None or con.generation == generation:
                continue  # not created yet, or created on the new driver already
            reply = await sys.rcall(self.vga, abi.OPEN_READWRITE, scrollback(con.index))
            if reply.tag != abi.COMM_HANDLE or not isinstance(reply.d2, Handle) or not isinstance(reply.d3, int):
                await discard(sys, reply)
                raise SyscallError(abi.PARAM, reply, detail="console driver gave no console")
            old, con.writer, con.cid, con.generation = con.writer, reply.d2.number, reply.d3, generation
            old_getty = con.getty
            await self.claim(con)
            for h in (old, old_getty):
                if h is not None:
                    try:
                        await sys.close(h)
                    except SyscallError:
                        pass
        current = self.consoles[self.current]
        if current is not None:
            await self.activate(current)
        await self.log(f"video memory re-mapped, {sum(c is not None for c in self.consoles)} consoles re-opened")
        await self.wake_waiters()
        for con in self.consoles[1:]:
            if con is not None and con.child is not None:
                con.hangup = True
                await self.kill_tree(con.child.pid)

    async def driver_given_up(self, _svc: Service) -> None:
        await self.wake_waiters()

    async def kill_tree(self, pid: int) -> None:
        """Kill a console's program and everything it started (a hang-up). Top first: its
        children see their stdin close and usually end by themselves before their turn comes
        (a child that printed first would die of the dead console instead, less tidily)."""
        try:
            table = json.loads(await self.proc.read_file("/proc/ps"))
        except (SyscallError, ValueError):
            table = []
        children: dict[int, list[int]] = {}
        for p in table:
            children.setdefault(p.get("parent", 0), []).append(p.get("pid", 0))
        order: list[int] = []
        todo = [pid]
        while todo:
            p = todo.pop(0)
            order.append(p)
            todo.extend(children.get(p, ()))
        for p in order:
            try:
                async with await self.proc.open(f"/proc/{p}/ctl", "r+") as f:
                    await f.write("kill")
            except SyscallError:
                pass  # it has gone meanwhile
