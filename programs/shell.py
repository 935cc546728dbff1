"""The EuraliOS shell: built-in commands, running programs from /bin, history and completion.

The console is a tty (drivers/tty.py): each program is started in front of it (stdin="tty"),
so the keys typed while it runs are its own, and what is typed ahead waits in the console for
whoever reads next -- the shell never relays a key. Ctrl+C reaches the shell's interrupt thread
from the console (the job's controller), and the shell interrupts the job through /proc.
"""

from __future__ import annotations

import json
import shlex

from euralios.std import SyscallError, abi
from euralios.std.fs import open_handle
from euralios.std.lineedit import Interrupted, LineEditor

HELP = """EuraliOS shell help
  F1 system console (kernel log)    F2..F5 user consoles
* Built-in commands:
  ls [-l] [<path>]   list a directory       cat <file>...     print files
  cd <path>          change directory       echo <text>       print text
  pwd                working directory      mkdir <path>      make a directory
  rm <file>          delete a file          mv <a> <b>        rename or move
  cp <a> <b>         copy a file            ps                list processes
  mount              the mount table        umount <path>     un-mount
  mount <dir> <path> show directory <dir> also at <path> (in this shell's VFS)
  kill <pid>         stop a process         clear             clear the screen
  help               this page              exit              leave the shell
* Programs in /bin run with arguments: edit FILE, gopher HOST, gopherd, dmesg,
  free, stat, vmmap PID, passwd, hello NAME... Ctrl+C stops the program in front.
  `cmd > file` and `cmd >> file` send output to a file.
  Up/Down: history.  Tab: complete commands and paths (Tab Tab: list them).
  / holds the mount points; /proc files are text (NAME.json for programs)."""

RESET_SCREEN = "\x1b[0m\x1b[?25h"  # SGR reset, cursor shown
BUILTINS = ("cat", "cd", "clear", "cp", "echo", "exit", "help", "kill", "ls", "mkdir", "mount", "mounts",
            "mv", "ps", "pwd", "rm", "umount")
BLUE, RESET = "\x1b[34m", "\x1b[0m"


def error_text(e: BaseException) -> str:
    """`not found`, `permission denied`... for messages like `cat: /nope: not found`."""
    if isinstance(e, SyscallError):
        return abi.ERROR_TEXT.get(e.code, f"error {e.code}").lower()
    return str(e)


def inside_mount(path: str, mounts: list[str]) -> bool:
    """Whether a mount serves `path` (the kernel's whole-component longest match)."""
    return any(m == "/" or path == m or path.startswith(m + "/") for m in mounts)


def mount_children(path: str, mounts: list[str]) -> list[str]:
    """The names just below `path` that lead to mount points (`/` -> `bin`, `dev`, `proc`...)."""
    base = path.rstrip("/") + "/"
    return sorted({m[len(base):].split("/", 1)[0] for m in mounts if m.startswith(base) and len(m) > len(base)})


def canonical(cwd: str, path: str) -> str:
    """Lexical path resolution (spec §10.5): absolute replaces, `..` pops, `.` stays."""
    parts: list[str] = [] if path.startswith("/") else [p for p in cwd.split("/") if p]
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts:
                parts.pop()
        else:
            parts.append(comp)
    return "/" + "/".join(parts)


class Shell:
    def __init__(self, proc) -> None:
        self.proc = proc
        self.cwd = proc.env.get("PWD", "/ramdisk")
        self.editor = LineEditor()
        self.fg = None  # the foreground Child
        self.controller: int | None = None  # where the console says Ctrl+C (copies go with each job)
        self.interrupted = False  # Ctrl+C came for a job still being started
        self.running = True
        self.capture: list[str] | None = None  # output of a built-in redirected to a file

    # ------------------------------------------------------------------ I/O
    async def write(self, text: str) -> None:
        if self.capture is not None:
            self.capture.append(text)
        else:
            await self.proc.write(text)

    async def say(self, text: str) -> None:
        await self.write(text + "\n")

    async def read_key(self) -> int | None:
        """The line editor's next key: Ctrl+C is a key here (it cancels the line)."""
        return await self.proc.read_key(isig=False)

    async def interrupt_thread(self, handle: int) -> None:
        """Ctrl+C typed for the job in front: interrupt it (ends when the shell closes `handle`)."""
        sys = self.proc.sys
        while True:
            try:
                msg = await sys.receive(handle)
            except SyscallError:
                return
            if msg.tag == abi.INTERRUPT:
                if self.fg is not None:
                    await self.kill(self.fg.pid, quiet=True, command="interrupt")
                else:
                    self.interrupted = True  # typed while the job starts: interrupt it once it runs

    # ------------------------------------------------------------------ completion
    async def complete(self, head: str) -> list[str]:
        words = head.split(" ")
        last = words[-1]
        prefix = " ".join(words[:-1]) + (" " if len(words) > 1 else "")
        if len(words) == 1:
            names = set(BUILTINS)
            try:
                names.update(await self.proc.listdir("/bin"))
            except SyscallError:
                pass
            return sorted(prefix + n + " " for n in names if n.startswith(last))
        d, slash, stem = last.rpartition("/")
        base = canonical(self.cwd, d if d or not slash else "/")
        try:
            dirs, files = await self.entries(base)
        except SyscallError:
            return []
        shown = d + slash
        out = [prefix + shown + n + "/" for n in dirs if n.startswith(stem)]
        out += [prefix + shown + n + " " for n, _ in files if n.startswith(stem)]
        return sorted(out)

    # ------------------------------------------------------------------ the tree
    async def entries(self, path: str) -> tuple[list[str], list[tuple[str, int]]]:
        """(directory names, (file name, size)) in the directory `path`. The tree above the
        mounts is the mount table's: `/` (no server holds it) lists the top of every mount point,
        and mount points below a directory are listed in it. SyscallError if it is not a
        directory (NOT_DIR for a file) or does not exist."""
        mounts = await self.proc.mounts()
        below = mount_children(path, mounts)
        if not inside_mount(path, mounts):
            if not below:
                raise SyscallError(abi.NOTFOUND)
            return below, []
        info = await self.proc.stat_dir(path)
        if info.get("type", "dir") != "dir":
            raise SyscallError(abi.NOT_DIR)
        dirs = {d["name"] for d in info.get("subdirs", [])} | set(below)
        return sorted(dirs), sorted((f["name"], f.get("size", 0)) for f in info.get("files", []))

    async def is_virtual_dir(self, path: str) -> bool:
        """A directory of the mount table only (`/`, `/dev`): no server to ask about it."""
        mounts = await self.proc.mounts()
        return not inside_mount(path, mounts) and bool(mount_children(path, mounts))

    # ------------------------------------------------------------------ main loop
    async def run(self) -> int:
        sys = self.proc.sys
        listen, self.controller = await sys.new_rendezvous()
        await self.proc.spawn_thread(self.interrupt_thread, listen)
        await self.say("Type help [Enter] to see the shell help page.")
        while self.running:
            self.editor.prompt = "$ "
            await self.write("$ ")
            try:
                line = await self.editor.read(self.read_key, self.write, self.complete)
            except Interrupted:
                continue
            if line is None:
                break
            try:
                await self.execute(line)
            except SyscallError as e:
                await self.say(f"shell: {error_text(e)}")
        # Closing the controller wakes our interrupt thread (CLOSED), so the last thread ends
        # and the process with it.
        self.running = False
        try:
            await sys.close(self.controller)
        except SyscallError:
            pass
        return 0

    async def execute(self, line: str) -> None:
        try:
            words = shlex.split(line)
        except ValueError as e:
            await self.say(f"shell: {e}")
            return
        if not words:
            return
        redirect = None
        for op in (">>", ">"):
            if op in words[:-1]:
                i = words.index(op)
                redirect = (op, words[i + 1])
                words = words[:i] + words[i + 2:]
                break
        cmd, args = words[0], words[1:]
        handler = getattr(self, f"cmd_{cmd}", None) if cmd in BUILTINS else None
        if cmd == "?":
            handler = self.cmd_help
        if handler is not None and not (redirect and cmd not in ("echo", "cat", "ls", "ps", "pwd")):
            if redirect:
                self.capture = []
                try:
                    await handler(args)
                finally:
                    out, self.capture = self.capture, None
                await self.write_file(redirect, "".join(out))
            else:
                await handler(args)
            return
        await self.run_program(cmd, args, redirect)

    async def write_file(self, redirect: tuple[str, str], text: str) -> None:
        op, target = redirect
        path = canonical(self.cwd, target)
        try:
            async with await self.proc.open(path, "a" if op == ">>" else "w") as f:
                await f.write(text)
        except SyscallError as e:
            await self.say(f"shell: {target}: {error_text(e)}")

    # ------------------------------------------------------------------ programs
    async def find_program(self, cmd: str) -> str | None:
        if "/" in cmd:
            return canonical(self.cwd, cmd)
        for d in self.proc.env.get("PATH", "/bin").split(":"):
            try:
                if cmd in await self.proc.listdir(d):
                    return f"{d.rstrip('/')}/{cmd}"
            except SyscallError:
                continue
        return None

    async def run_program(self, cmd: str, args: list[str], redirect: tuple[str, str] | None) -> None:
        proc = self.proc
        path = await self.find_program(cmd)
        if path is None:
            await self.say(f"{cmd}: command not found")
            return
        stdout = None
        if redirect is not None:
            op, target = redirect
            try:
                f = await proc.open(canonical(self.cwd, target), "a" if op == ">>" else "w")
            except SyscallError as e:
                await self.say(f"shell: {target}: {error_text(e)}")
                return
            stdout = f.handle  # a file session speaks WRITE/OK like a console: it moves to the child
        env = {"PWD": self.cwd, "PATH": proc.env.get("PATH", "/bin"), "USER": proc.user}
        if "HOME" in proc.env:
            env["HOME"] = proc.env["HOME"]
        self.interrupted = False
        try:
            controller = await proc.sys.copy_rendezvous(self.controller)
            child = await proc.exec(path, [cmd, *args], stdin="tty", stdout=stdout, env=env,
                                    controller=controller)
        except SyscallError as e:
            await self.say(f"{cmd}: {error_text(e)}")
            return
        self.fg = child
        if self.interrupted:
            await self.kill(child.pid, quiet=True, command="interrupt")
        try:
            status = await child.wait()
        finally:
            self.fg = None
        # Whatever it left the screen in: normal colours, the cursor shown (a full-screen
        # program killed by Ctrl+C had hidden it).
        await self.write(RESET_SCREEN)
        if child.ended == abi.ENDED_INTERRUPTED:
            await self.say("^C")
        elif child.ended == abi.ENDED_KILLED:
            await self.say("Killed")
        elif child.ended == abi.ENDED_EXITED and status not in (0, None):
            await self.say(f"[{cmd}: exit status {status}]")
        # Any other ending (a crash, a fault, the watchdog...) was told on this console by the
        # kernel, with the traceback of the program's own source.

    async def kill(self, pid: int, quiet: bool = False, command: str = "kill") -> bool:
        try:
            async with await self.proc.open(f"/proc/{pid}/ctl", "r+") as f:
                await f.write(command)
            return True
        except SyscallError as e:
            if not quiet:
                await self.say(f"kill: {pid}: {error_text(e)}")
            return False

    # ------------------------------------------------------------------ built-ins
    async def cmd_help(self, args: list[str]) -> None:
        await self.say(HELP)

    async def cmd_exit(self, args: list[str]) -> None:
        self.running = False

    async def cmd_pwd(self, args: list[str]) -> None:
        await self.say(self.cwd)

    async def cmd_cd(self, args: list[str]) -> None:
        if len(args) > 1:
            await self.say("Usage: cd <directory>")
            return
        target = canonical(self.cwd, args[0]) if args else self.proc.env.get("HOME", "/ramdisk")
        try:
            await self.entries(target)
        except SyscallError as e:
            await self.say(f"cd: {args[0] if args else target}: {error_text(e)}")
            return
        self.cwd = target

    async def cmd_ls(self, args: list[str]) -> None:
        long = "-l" in args
        paths = [a for a in args if a != "-l"] or ["."]
        for p in paths:
            target = canonical(self.cwd, p)
            try:
                dirs, files = await self.entries(target)
            except SyscallError as e:
                if e.code != abi.NOT_DIR:
                    await self.say(f"ls: {p}: {error_text(e)}")
                    continue
                size = (await self.proc.stat_dir(target)).get("size", 0)
                await self.say(f"{size:>8}  {p}" if long else p)
                continue
            listed = [(n, True, 0) for n in dirs] + [(n, False, size) for n, size in files]
            for name, is_dir, size in sorted(listed):
                shown = f"{BLUE}{name}/{RESET}" if is_dir else name
                await self.say(f"{'d' if is_dir else '-'} {size:>8}  {shown}" if long else shown)

    async def cmd_cat(self, args: list[str]) -> None:
        if not args:
            await self.say("Usage: cat <file>...")
        for p in args:
            path = canonical(self.cwd, p)
            try:
                data = await self.proc.read_file(path)
            except SyscallError as e:
                if e.code == abi.NOTFOUND and await self.is_virtual_dir(path):
                    e = SyscallError(abi.IS_DIR)
                await self.say(f"cat: {p}: {error_text(e)}")
                continue
            text = data.decode("utf-8", "replace")
            if text:
                await self.write(text if text.endswith("\n") else text + "\n")

    async def cmd_echo(self, args: list[str]) -> None:
        await self.say(" ".join(args))

    async def cmd_mkdir(self, args: list[str]) -> None:
        if len(args) != 1:
            await self.say("Usage: mkdir <directory>")
            return
        try:
            await self.proc.mkdir(canonical(self.cwd, args[0]))
        except SyscallError as e:
            await self.say(f"mkdir: cannot create {args[0]}: {error_text(e)}")

    async def cmd_rm(self, args: list[str]) -> None:
        if len(args) != 1:
            await self.say("Usage: rm <file>")
            return
        try:
            await self.proc.remove(canonical(self.cwd, args[0]))
        except SyscallError as e:
            await self.say(f"rm: cannot remove {args[0]}: {error_text(e)}")

    async def cmd_cp(self, args: list[str]) -> None:
        if len(args) != 2:
            await self.say("Usage: cp <source> <destination>")
            return
        src, dst = canonical(self.cwd, args[0]), canonical(self.cwd, args[1])
        try:
            if await self._is_dir(dst):
                dst = dst.rstrip("/") + "/" + src.rsplit("/", 1)[-1]
            await self.proc.write_file(dst, await self.proc.read_file(src))
        except SyscallError as e:
            await self.say(f"cp: {args[0]} -> {args[1]}: {error_text(e)}")

    async def cmd_mv(self, args: list[str]) -> None:
        if len(args) != 2:
            await self.say("Usage: mv <source> <destination>")
            return
        src, dst = canonical(self.cwd, args[0]), canonical(self.cwd, args[1])
        try:
            if await self._is_dir(dst):
                dst = dst.rstrip("/") + "/" + src.rsplit("/", 1)[-1]
            if src.rsplit("/", 1)[0] == dst.rsplit("/", 1)[0]:
                await self.proc.rename(src, dst)
            else:
                await self.proc.write_file(dst, await self.proc.read_file(src))
                await self.proc.remove(src)
        except SyscallError as e:
            await self.say(f"mv: {args[0]} -> {args[1]}: {error_text(e)}")

    async def _is_dir(self, path: str) -> bool:
        try:
            return (await self.proc.stat_dir(path)).get("type", "dir") == "dir"
        except SyscallError:
            return False

    async def cmd_mount(self, args: list[str]) -> None:
        """`mount`: the table; `mount DIR PATH`: DIR also at PATH (Linux's mount --bind)."""
        if not args:
            await self.mount_table()
            return
        if len(args) != 2:
            await self.say("Usage: mount               (the mount table)\n"
                           "       mount <dir> <path>  (show directory <dir> also at <path>)")
            return
        src, dst = canonical(self.cwd, args[0]), canonical(self.cwd, args[1])
        sys = self.proc.sys
        try:
            if await self.is_virtual_dir(src):
                raise SyscallError(abi.NOT_IMPLEMENTED, detail="no server holds it")
            if (await self.proc.stat_dir(src)).get("type", "dir") != "dir":
                raise SyscallError(abi.NOT_DIR)
            try:
                handle, _ = await open_handle(sys, src, abi.O_WRITE)  # writable where we may write
            except SyscallError as e:
                if e.code != abi.DENIED:
                    raise
                handle, _ = await open_handle(sys, src, abi.O_READ)
            try:
                await sys.mount(dst, handle)  # the handle moves into our VFS
            except SyscallError:
                await sys.close(handle)
                raise
        except SyscallError as e:
            await self.say(f"mount: {args[0]} on {args[1]}: {error_text(e)}")

    async def mount_table(self) -> None:
        """Each mount point and what its server shows there, as `df`/`mount` list them."""
        rows = []
        for m in await self.proc.mounts():
            try:
                info = await self.proc.stat_dir(m)
            except SyscallError:
                rows.append((m, "-", "a service (it does not list itself)"))
                continue
            if info.get("type", "dir") != "dir":
                rows.append((m, "file", f"{info.get('size', 0)} bytes"))
                continue
            dirs = [d["name"] for d in info.get("subdirs", [])]
            files = [f["name"] for f in info.get("files", [])]
            names = [n + "/" for n in dirs] + files
            summary = f"{len(dirs)} dirs, {len(files)} files"
            shown = " ".join(names)
            if len(shown) > 40:
                shown = shown[:37].rsplit(" ", 1)[0] + " ..."
            rows.append((m, "dir", f"{summary:<18} {shown}".rstrip()))
        width = max([len("MOUNT POINT")] + [len(r[0]) for r in rows])
        lines = [f"{'MOUNT POINT':<{width}}  TYPE  CONTENTS"]
        lines += [f"{m:<{width}}  {kind:<4}  {what}" for m, kind, what in rows]
        await self.say("\n".join(lines))

    cmd_mounts = cmd_mount

    async def cmd_umount(self, args: list[str]) -> None:
        if len(args) != 1:
            await self.say("Usage: umount <path>")
            return
        try:
            await self.proc.sys.umount(args[0])
        except SyscallError as e:
            await self.say(f"umount: {args[0]}: {error_text(e)}")

    async def cmd_ps(self, args: list[str]) -> None:
        try:
            table = json.loads(await self.proc.read_file("/proc/ps.json"))
        except SyscallError as e:
            await self.say(f"ps: {error_text(e)}")
            return
        lines = [f"{'PID':>5} {'USER':<6} {'THR':>3} {'FRAMES':>6} {'CPU(s)':>8}  NAME"]
        for p in table:
            lines.append(f"{p['pid']:>5} {p['user']:<6} {p['threads']:>3} {p['frames']:>6} {p['cpu']:>8.3f}  {p['name']}")
        await self.say("\n".join(lines))

    async def cmd_kill(self, args: list[str]) -> None:
        if len(args) != 1 or not args[0].isdigit():
            await self.say("Usage: kill <pid>")
            return
        await self.kill(int(args[0]))

    async def cmd_clear(self, args: list[str]) -> None:
        await self.write("\x1b[2J\x1b[H")


async def main(proc):
    return await Shell(proc).run()
