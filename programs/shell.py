"""The EuraliOS shell: built-in commands, running programs from /bin, history and completion.

The console is a tty (drivers/tty.py): a program run alone is started in front of it
(stdin="tty"), so the keys typed while it runs are its own, and what is typed ahead waits in the
console for whoever reads next -- the shell never relays a key to it. A pipeline's last stage
gets the keys typed for the job after its piped text (a pager): a shell thread reads them from
the job's foreground entry into the pipe. Ctrl+C reaches the shell's interrupt thread from the
console (the job's controller), and the shell interrupts every stage through /proc.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Awaitable, Callable

from euralios.std import SyscallError, abi, tty
from euralios.std.fs import open_handle
from euralios.std.lineedit import Interrupted, LineEditor
from euralios.std.pipe import Pipe
from euralios.std.proc import Child
from euralios.std.shellwords import Stage, is_name, parse

HELP = """EuraliOS shell help
  F1 system console (kernel log)    F2..F5 user consoles
* Built-in commands:
  ls [-l] [<path>]   list a directory       cat <file>...     print files
  cd <path>          change directory       echo <text>       print text
  pwd                working directory      mkdir <path>      make a directory
  rm <file>          delete a file          mv <a> <b>        rename or move
  cp <a> <b>         copy a file            ps                list processes
  mount              the mount table        umount <path>     un-mount
  mount <dir> <path> show <dir> also at <path> (in this shell's VFS)
  kill <pid>         stop a process         clear             clear the screen
  history            lines typed before     export NAME=value set a variable
  unset NAME         forget a variable      exit              leave the shell
* The line: `a | b | c` pipes output on, `cmd > file` / `cmd >> file` writes
  a file; $NAME and ${NAME} are variables (HOME USER PATH PWD; $? the last
  status); NAME=value sets one. Ctrl+C stops the programs in front.
  Up/Down history, Tab completes (Tab Tab lists), Ctrl+W/Ctrl+U erase.
  / holds the mount points; /proc files are text (NAME.json for programs).
* Programs in /bin (`more /bin/NAME`: what one does, in its own source):"""

RESET_SCREEN = "\x1b[0m\x1b[?25h"  # SGR reset, cursor shown
BUILTINS = ("cat", "cd", "clear", "cp", "echo", "exit", "export", "help", "history", "kill", "ls", "mkdir",
            "mount", "mounts", "mv", "ps", "pwd", "rm", "umount", "unset")
PRINTING = ("cat", "echo", "export", "help", "history", "ls", "mount", "mounts", "ps", "pwd")  # > FILE-able
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


class Job:
    """The pipeline in front: its processes and pipes (typed keys reach the one program alone
    from the console itself; in a pipeline, its last stage, through its pipe, after the text)."""

    def __init__(self) -> None:
        self.children: list[tuple[str, Child]] = []
        self.pipes: list[Pipe] = []
        self.last_started = False  # the last stage so far is a program that runs
        self.status = 0  # $? when the last stage is not a program (a built-in, not found...)


async def drop(sys, *handles: int | None) -> None:  # noqa: ANN001
    """Close handles we hold and nobody will be given."""
    for h in handles:
        if h is not None:
            try:
                await sys.close(h)
            except SyscallError:
                pass


async def empty_input(sys) -> int:  # noqa: ANN001
    """A stdin with nothing behind it: the first read is the end of input."""
    ours, theirs = await sys.new_rendezvous()
    await sys.close(ours)
    return theirs


async def feed(proc, handle: int, text: str) -> None:  # noqa: ANN001
    """A thread: a built-in's output into a pipe, then the pipe's end (the reader may have
    gone: then the text is dropped, as a writer's to a closed pipe is)."""
    try:
        await proc.write(text, handle)
    except SyscallError:
        pass
    await drop(proc.sys, handle)


class Shell:
    def __init__(self, proc) -> None:
        self.proc = proc
        self.cwd = proc.env.get("PWD", "/ramdisk")
        # The environment: this shell's and its children's ($VAR, `export`, `NAME=value`).
        self.env = {"HOME": "/ramdisk", "PATH": "/bin", **proc.env, "USER": proc.user, "PWD": self.cwd}
        self.env.pop(tty.TTY_ENV, None)  # what a child's stdin is, exec says (stdin="tty")
        self.typeahead: list[int] = []  # keys a pipeline's last stage left unread: the shell's
        self.status = 0  # the last command's ($?)
        self.editor = LineEditor()
        self.fg: Job | None = None  # the job in front
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
        if self.typeahead:
            return self.typeahead.pop(0)
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
                if self.fg is not None and self.fg.children:
                    await self.interrupt(self.fg)
                else:
                    self.interrupted = True  # typed while the job starts: interrupt it once it runs

    async def key_pump(self, handle: int, pipe: Pipe) -> None:
        """A pipeline's keys: read from its foreground entry on the console, into the last
        stage's pipe (after its text). Ends when the job's entry is taken down."""
        while (code := await tty.read_key(self.proc.sys, handle)) is not None:
            try:
                await pipe.put_key(code)
            except SyscallError:
                break
        try:
            await self.proc.sys.close(handle)
        except SyscallError:
            pass

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
            self.editor.prompt = "# " if self.proc.user == "root" else "$ "
            await self.write(self.editor.prompt)
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
            stages = parse(line, {**self.env, "?": str(self.status), "$": str(self.proc.pid)})
        except ValueError as e:
            await self.say(f"shell: {e}")
            self.status = 2
            return
        if not stages:
            return
        first = stages[0]
        if len(stages) == 1 and not first.words:
            self.env.update(first.assigns)  # `NAME=value`: for this shell and what it starts
            self.status = 0
            return
        cmd = first.words[0]
        handler = self.builtin(cmd)
        redirect = first.redirect
        if len(stages) == 1 and handler is not None and not (redirect and cmd not in PRINTING):
            self.status = 0
            if redirect:
                await self.write_file(redirect, await self.captured(handler, first.words[1:]))
            else:
                await handler(first.words[1:])
            return
        await self.run_job(stages)

    def builtin(self, cmd: str) -> Callable[[list[str]], Awaitable[None]] | None:
        if cmd == "?":
            return self.cmd_help
        return getattr(self, f"cmd_{cmd}", None) if cmd in BUILTINS else None

    async def captured(self, handler: Callable[[list[str]], Awaitable[None]], args: list[str]) -> str:
        """What a built-in prints, as text (for a file or a pipe)."""
        self.capture = []
        try:
            await handler(args)
        finally:
            out, self.capture = self.capture, None
        return "".join(out)

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
        for d in self.env.get("PATH", "/bin").split(":"):
            try:
                if cmd in await self.proc.listdir(d):
                    return f"{d.rstrip('/')}/{cmd}"
            except SyscallError:
                continue
        return None

    async def run_job(self, stages: list[Stage]) -> None:
        """Start every stage, stage k's stdout the stdin of stage k+1 through a pipe, the last
        one's to the console (or its file); then wait for all of them."""
        job = Job()
        sys = self.proc.sys
        entry: int | None = None  # a pipeline's foreground entry on the console
        self.interrupted = False
        try:
            pipes = [await Pipe.open(self.proc) for _ in stages[1:]]
            job.pipes = pipes
            for k, stage in enumerate(stages):
                stdin = pipes[k - 1].read_end if k else None
                stdout = pipes[k].write_end if k < len(pipes) else None
                await self.start_stage(job, stage, stdin, stdout, alone=len(stages) == 1)
            self.fg = job
            if len(stages) > 1 and job.last_started and self.proc.tty:
                # What is typed for the job goes to the last stage, after its text.
                controller = await sys.copy_rendezvous(self.controller)
                try:
                    handle, entry = await tty.foreground(sys, 0, controller)
                    await self.proc.spawn_thread(self.key_pump, handle, pipes[-1])
                except SyscallError:
                    pass  # no console (or no thread): the stages get no keys
            if self.interrupted:
                await self.interrupt(job)
            ended = [(name, child, await child.wait()) for name, child in job.children]
        finally:
            self.fg = None
            if entry is not None:
                await tty.background(sys, 0, entry)
            for _, child in job.children:
                if child.stdin is not None:
                    await drop(sys, child.stdin)
            for pipe in job.pipes:
                self.typeahead.extend(pipe.unread_keys)  # typed ahead, never read: the shell's
                await pipe.close()
        await self.report(job, ended)

    async def start_stage(self, job: Job, stage: Stage, stdin: int | None, stdout: int | None,
                          alone: bool) -> None:
        """Start one stage: a program, or a built-in whose output is fed to the pipe. Every
        handle given goes to the stage or is closed (a reader then sees the end of its input,
        a writer CLOSED)."""
        proc, sys = self.proc, self.proc.sys
        cmd, args = stage.words[0], stage.words[1:]
        job.last_started = False
        if stage.redirect is not None:
            op, target = stage.redirect
            try:
                f = await proc.open(canonical(self.cwd, target), "a" if op == ">>" else "w")
            except SyscallError as e:
                await self.say(f"shell: {target}: {error_text(e)}")
                job.status = 1
                await drop(sys, stdin, stdout)
                return
            await drop(sys, stdout)
            stdout = f.handle  # a file session speaks WRITE/OK like a console: it moves to the child
        handler = self.builtin(cmd)
        if handler is not None:
            await drop(sys, stdin)
            text = await self.captured(handler, args)
            if stdout is None:
                await self.write(text)
            else:
                await proc.spawn_thread(feed, proc, stdout, text)
            job.status = 0
            return
        path = await self.find_program(cmd)
        if path is None:
            await self.say(f"{cmd}: command not found")
            job.status = 127
            await drop(sys, stdin, stdout)
            return
        env = {**self.env, **stage.assigns, "PWD": self.cwd}
        child_in: int | str | None = stdin
        controller = None
        if stdin is None:  # the first stage: alone, it reads the console; in a pipeline, nothing
            if alone:
                child_in, controller = "tty", await sys.copy_rendezvous(self.controller)
            else:
                child_in = await empty_input(sys)
        try:
            child = await proc.exec(path, [cmd, *args], stdin=child_in, stdout=stdout, env=env,
                                    controller=controller)
        except SyscallError as e:
            await self.say(f"{cmd}: {error_text(e)}")
            job.status = 126
            return
        job.children.append((cmd, child))
        job.last_started = True

    async def report(self, job: Job, ended: list[tuple[str, Child, int]]) -> None:
        """After a job: the screen as the shell wants it, what went wrong with it, and `$?`."""
        # Whatever a program left the screen in: normal colours, the cursor shown (a
        # full-screen program killed by Ctrl+C had hidden it).
        if ended:
            await self.write(RESET_SCREEN)
        self.status = job.status
        if any(child.ended == abi.ENDED_INTERRUPTED for _, child, _ in ended):
            await self.say("^C")
            self.status = 130
            return
        if not job.last_started:
            return  # the last stage was a built-in, or did not start (it said why)
        name, last, code = ended[-1]
        self.status = code & 0xFF
        if last.ended == abi.ENDED_KILLED:
            await self.say("Killed")
            self.status = 137
        elif last.ended == abi.ENDED_EXITED and code != 0:
            await self.say(f"[{name}: exit status {code}]")
        elif last.ended != abi.ENDED_EXITED:
            self.status = 1  # a crash, a fault, the watchdog...: told on this console by the kernel

    async def interrupt(self, job: Job) -> None:
        """Ctrl+C: every process of the job in front is interrupted."""
        for _, child in job.children:
            await self.kill(child.pid, quiet=True, command="interrupt")

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
        try:
            programs = await self.proc.listdir("/bin")
        except SyscallError:
            programs = []
        await self.say(HELP + "\n" + textwrap.fill("  ".join(programs), 79, initial_indent="  ",
                                                    subsequent_indent="  ", break_on_hyphens=False))

    async def cmd_history(self, args: list[str]) -> None:
        """The lines typed (the line editor's list, the one Up and Down walk), numbered as bash."""
        first = self.editor.dropped + 1
        await self.write("".join(f"{first + i:>5}  {line}\n" for i, line in enumerate(self.editor.history)))

    async def cmd_export(self, args: list[str]) -> None:
        """`export NAME=value...` sets; `export` alone lists the environment."""
        if not args:
            await self.write("".join(f"{k}={v}\n" for k, v in sorted(self.env.items())))
        for a in args:
            name, eq, value = a.partition("=")
            if not is_name(name):
                await self.say(f"export: `{a}': not a valid name")
                self.status = 1
            elif eq:
                self.env[name] = value
            else:
                self.env.setdefault(name, "")

    async def cmd_unset(self, args: list[str]) -> None:
        for name in args:
            self.env.pop(name, None)

    async def cmd_exit(self, args: list[str]) -> None:
        self.running = False

    async def cmd_pwd(self, args: list[str]) -> None:
        await self.say(self.cwd)

    async def cmd_cd(self, args: list[str]) -> None:
        if len(args) > 1:
            await self.say("Usage: cd <directory>")
            return
        target = canonical(self.cwd, args[0]) if args else self.env.get("HOME", "/ramdisk")
        try:
            await self.entries(target)
        except SyscallError as e:
            await self.say(f"cd: {args[0] if args else target}: {error_text(e)}")
            return
        self.cwd = self.env["PWD"] = target

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
