"""The kernel's side: attach to the zygote, ask it for confined workers, kill and reap them (trio).

    async with open_zygote(preload=["euralios.std", ...]) as zygote:
        if not zygote.probe.ok:
            ...refuse confined programs with zygote.probe.line()...
        worker = await zygote.spawn("package.module:function", Limits(memory_bytes=quota))
        await worker.channel.send(...)       # the channel is all the worker has
        worker.kill()                        # SIGKILL through a pidfd: no pid-reuse race
        status = await worker.wait()         # -9 when killed; Exit.* otherwise

Workers are the zygote's children, so the zygote reaps them and reports each exit on the control
socket; one reader task here turns those reports into Worker.wait() results and spawn replies.

The zygote process outlives the block: starting one (a fresh interpreter importing the preload)
costs most of a second, and a test suite boots hundreds of kernels, each in its own trio.run. So
this module keeps one zygote per (preload, import path) for the host process' lifetime, started
with subprocess (tied to no trio run) and held by a blocking master socket; each open_zygote
attaches a session of its own (wire.py has the protocol). When a block ends, the zygote kills that
session's workers and reports them (-9); other sessions go on. When the host process exits, the
master closes and the zygote and every worker die. A zygote that died is replaced at the next open.
The zygote's environment is the host's (filtered) at the first open with that key.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from merriwig.confine import wire
from merriwig.confine.mechanism import Limits, Mechanism
from merriwig.confine.probe import Probe
from merriwig.confine.worker import READY, REFUSED

VERDICT_MAX = 4096  # the first message on a channel: ready + details, or the refusal line
_ENVIRONMENT = ("PATH", "LD_LIBRARY_PATH", "PYTHONHOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ")  # kept for the zygote
START_TIMEOUT = 120.0  # s for a zygote to import its preload and probe; then it is killed


async def _send(sock: trio.socket.SocketType, obj: dict[str, Any], fds: Sequence[int] = ()) -> None:
    await sock.sendmsg([json.dumps(obj).encode()], wire.ancillary(fds))


async def _recv(sock: trio.socket.SocketType) -> tuple[dict[str, Any], list[int]]:
    data, ancdata, flags, _ = await sock.recvmsg(wire.MAX_MESSAGE, socket.CMSG_SPACE(wire.MAX_FDS * 4))
    fds = wire.fds_from(ancdata, flags)
    return wire.decode_owning(data, fds), fds


class ConfinementRefused(Exception):
    """The worker could not apply or verify a layer; str() is its one line, ``<mechanism>: <detail>``."""


class ZygoteError(Exception):
    """The zygote could not start (a preload module would not import: the message names it), could
    not start a worker (bad entry, fork failed), or is gone."""


class Worker:
    """One confined host process, seen from the kernel: its channel, a kill switch, its exit."""

    def __init__(self, pid: int, channel: trio.socket.SocketType, pidfd: int):
        self.pid = pid
        self.channel = channel
        self.confinement: dict[Mechanism, str] = {}  # what each layer reported at start
        self.returncode: int | None = None
        self._pidfd = pidfd
        self._exited = trio.Event()

    def kill(self) -> None:
        """SIGKILL it (cannot be caught; ends a long C call too). Harmless once it has exited."""
        if self.returncode is None:
            try:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass

    async def wait(self) -> int:
        """Its returncode once the zygote has reaped it (-signal if killed by one)."""
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    async def aclose(self) -> None:
        """Kill, reap and forget it."""
        self.kill()
        with trio.CancelScope(shield=True):
            await self.wait()
        self.channel.close()

    def _reaped(self, returncode: int) -> None:
        self.returncode = returncode
        os.close(self._pidfd)
        self._exited.set()


class Zygote:
    """A session with the running zygote (make one with open_zygote)."""

    def __init__(self, control: trio.socket.SocketType, pid: int, probe: Probe):
        self.pid = pid
        self.probe = probe  # what the zygote's own trial worker could apply
        self._control = control
        self._lock = trio.Lock()  # one spawn in flight: replies come in request order
        self._waiting: socket.socket | None = None  # our end of the channel being spawned
        self._replies_in, self._replies = trio.open_memory_channel[Worker | str](1)
        self._workers: dict[int, Worker] = {}
        self._gone = trio.Event()  # the zygote closed its side: every worker of ours is reaped

    async def spawn(self, entry: str, limits: Limits, without: Iterable[Mechanism] = ()) -> Worker:
        """A new confined worker running ``entry`` ("module:function" taking the channel socket),
        returned once it has reported every layer in place; ConfinementRefused otherwise.
        ``without`` leaves layers out, for tests that prove one layer on its own."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        request = {"entry": entry, "limits": vars(limits), "without": [Mechanism(m).value for m in without]}
        async with self._lock:
            # shielded: a spawn abandoned between request and reply would hand its reply to the next
            with trio.CancelScope(shield=True):
                self._waiting = ours
                try:
                    await _send(self._control, request, [theirs.fileno()])
                    reply = await self._replies.receive()
                except (OSError, trio.EndOfChannel, trio.ClosedResourceError):
                    ours.close()
                    raise ZygoteError("the zygote is gone") from None
                finally:
                    theirs.close()
        if isinstance(reply, str):
            ours.close()
            raise ZygoteError(reply)
        verdict = await reply.channel.recv(VERDICT_MAX)
        if not verdict.startswith(READY):
            await reply.aclose()
            raise ConfinementRefused(verdict.removeprefix(REFUSED).decode(errors="replace") or "died during set-up")
        reply.confinement = {Mechanism(k): v for k, v in json.loads(verdict.removeprefix(READY)).items()}
        return reply

    async def _read(self) -> None:
        """Dispatch the zygote's messages until it goes away."""
        try:
            while True:
                message, fds = await _recv(self._control)
                if "exited" in message:
                    self._workers.pop(message["exited"])._reaped(message["status"])  # it spawned: we know it
                elif "pid" in message:
                    assert self._waiting is not None and len(fds) == 1
                    worker = Worker(message["pid"], trio.socket.from_stdlib_socket(self._waiting), fds[0])
                    self._waiting = None
                    self._workers[worker.pid] = worker
                    await self._replies_in.send(worker)
                else:
                    await self._replies_in.send(str(message.get("error")))
        except (EOFError, OSError, trio.ClosedResourceError):
            pass
        finally:
            # after a hang-up all were reported; otherwise they died with the zygote (PR_SET_PDEATHSIG)
            for worker in self._workers.values():
                worker._reaped(-signal.SIGKILL)
            self._workers.clear()
            self._replies_in.close()
            self._gone.set()

    async def _hang_up(self) -> None:
        """End the session: the zygote kills our workers, reports them and closes its side (no
        timeout: the zygote is trusted and quick, and a dead one closes at once)."""
        try:
            self._control.shutdown(socket.SHUT_WR)
        except OSError:
            return
        await self._gone.wait()


Key = tuple[tuple[str, ...], tuple[str, ...]]  # (preload, import path)


class _Process:
    """One zygote interpreter and the master socket that keeps it alive."""

    def __init__(self, popen: subprocess.Popen[bytes], master: socket.socket):
        self.popen = popen
        self.master = master

    def retire(self) -> None:
        """Close the master (the zygote kills its workers and leaves) and reap it. A zygote still
        importing its preload would only notice after its imports (half a second at exit, every
        run of a short command): it holds nothing to save, so after a moment it is killed, and its
        workers die with it (PR_SET_PDEATHSIG)."""
        self.master.close()
        try:
            self.popen.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


_lock = threading.Lock()  # guards _zygotes; opens run in trio's worker threads
_zygotes: dict[Key, _Process] = {}
_starting: set[subprocess.Popen[bytes]] = set()  # zygotes still importing (killed if we exit first)


def _start(key: Key) -> _Process:
    """A new zygote for ``key``, once it has imported its preload and probed (blocking)."""
    preload, path = key
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    # a clean environment: workers inherit the zygote's, and the kernel's may hold secrets
    env = {k: v for k, v in os.environ.items() if k in _ENVIRONMENT} | {"PYTHONPATH": os.pathsep.join(path)}
    argv = [sys.executable, "-m", "merriwig.confine.zygote", json.dumps({"preload": list(preload)}), str(theirs.fileno())]
    try:
        # No terminal for it: it says what goes wrong over the control socket (a traceback on the
        # terminal the UI draws on would garble the screen), and workers close every fd anyway.
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 pass_fds=[theirs.fileno()], env=env, start_new_session=True)
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    try:
        # not bound to the CPU of the thread that started it (the kernel binds its own thread)
        os.sched_setaffinity(popen.pid, range(os.cpu_count() or 1))
    except OSError:
        pass
    process = _Process(popen, ours)
    ours.settimeout(START_TIMEOUT)
    _starting.add(popen)
    try:
        hello, _ = wire.recv(ours)
    except TimeoutError:
        process.retire()
        raise ZygoteError(f"the zygote did not start within {START_TIMEOUT:.0f} s") from None
    except (EOFError, OSError, ValueError):
        process.retire()
        raise ZygoteError(f"the zygote exited at start (status {popen.returncode})") from None
    finally:
        _starting.discard(popen)
    ours.settimeout(None)
    if "error" in hello:
        process.retire()
        raise ZygoteError(str(hello["error"]))
    return process


def _attach(key: Key, dying: _Process | None) -> tuple[socket.socket, _Process]:
    """A new session socket with the zygote for ``key``, starting one if there is none, it has
    died, or it is ``dying`` (it closed a session before saying hello). Blocking."""
    with _lock:
        process = _zygotes.get(key)
        if process is not None and (process is dying or process.popen.poll() is not None):
            del _zygotes[key]
            process.retire()
            process = None
        for _ in range(2):
            if process is None:
                process = _zygotes[key] = _start(key)
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                wire.send(process.master, {"attach": True}, [theirs.fileno()])
                return ours, process
            except OSError:  # it died since the poll
                ours.close()
                del _zygotes[key]
                process.retire()
                process = None
            finally:
                theirs.close()
        raise ZygoteError("the zygote died twice while attaching")


async def _open_session(key: Key) -> tuple[trio.socket.SocketType, dict[str, Any]]:
    dying = None
    for _ in range(2):
        # Abandoned if the kernel stops first (a short run ends before a new zygote has imported
        # its preload): the thread then finishes on its own and drops the session it made.
        abandoned: list[bool] = []

        def attach(dying: _Process | None = dying, abandoned: list[bool] = abandoned) -> tuple[socket.socket, _Process]:
            sock, process = _attach(key, dying)
            if abandoned:
                sock.close()
            return sock, process

        try:
            sock, dying = await trio.to_thread.run_sync(attach, abandon_on_cancel=True)
        except trio.Cancelled:
            abandoned.append(True)
            raise
        control = trio.socket.from_stdlib_socket(sock)
        try:
            hello, _ = await _recv(control)
            return control, hello
        except (EOFError, OSError):  # it died after taking the session: start another
            control.close()
        except BaseException:
            control.close()
            raise
    raise ZygoteError("the zygote died twice before saying hello")


@asynccontextmanager
async def open_zygote(preload: Sequence[str] = (), import_path: Sequence[str] | None = None) -> AsyncIterator[Zygote]:
    """A session with the host process' zygote that has imported ``preload`` (module names;
    ``package.*`` is the package and everything under it) with ``import_path`` (default: this
    process' sys.path), started at the first open with these two. It serves spawns until the block
    ends; then every worker of this session dies. ZygoteError names a preload that failed."""
    path = tuple(p or os.getcwd() for p in (sys.path if import_path is None else import_path))
    control, hello = await _open_session((tuple(preload), path))
    try:
        zygote = Zygote(control, hello["pid"], Probe.from_json(hello["probe"]))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(zygote._read)
            try:
                yield zygote
            finally:
                with trio.CancelScope(shield=True):
                    await zygote._hang_up()
                nursery.cancel_scope.cancel()
    finally:
        control.close()


@atexit.register
def _close_zygotes() -> None:
    """Let each zygote see its master close and leave, rather than only when the fd dies with us.
    One still importing its preload (a short run that ended first) is killed: waiting for it
    would add its start-up to every short command."""
    for popen in list(_starting):
        popen.kill()
    if not _lock.acquire(timeout=1):
        return  # a start is still being given up on; the zygotes' masters close with us anyway
    try:
        processes = list(_zygotes.values())
        _zygotes.clear()
    finally:
        _lock.release()
    for process in processes:
        process.retire()


def _forget_inherited() -> None:
    """In a forked child: the zygotes are the parent's; our copies of the masters would keep them alive."""
    global _lock
    _lock = threading.Lock()
    for process in _zygotes.values():
        process.master.close()
    _zygotes.clear()


os.register_at_fork(after_in_child=_forget_inherited)
