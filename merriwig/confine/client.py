"""The kernel's side: start the zygote, ask it for confined workers, kill and reap them (trio).

    async with open_zygote(preload=["euralios.std", ...]) as zygote:
        if not zygote.probe.ok:
            ...refuse confined programs with zygote.probe.line()...
        worker = await zygote.spawn("package.module:function", Limits(memory_bytes=quota))
        await worker.channel.send(...)       # the channel is all the worker has
        worker.kill()                        # SIGKILL through a pidfd: no pid-reuse race
        status = await worker.wait()         # -9 when killed; Exit.* otherwise

Workers are the zygote's children, so the zygote reaps them and reports each exit on the control
socket; one reader task here turns those reports into Worker.wait() results and spawn replies.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
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


async def _send(sock: trio.socket.SocketType, obj: dict[str, Any], fds: Sequence[int] = ()) -> None:
    await sock.sendmsg([json.dumps(obj).encode()], wire.ancillary(fds))


async def _recv(sock: trio.socket.SocketType) -> tuple[dict[str, Any], list[int]]:
    data, ancdata, flags, _ = await sock.recvmsg(wire.MAX_MESSAGE, socket.CMSG_SPACE(wire.MAX_FDS * 4))
    fds = wire.fds_from(ancdata, flags)
    return wire.decode(data), fds


class ConfinementRefused(Exception):
    """The worker could not apply or verify a layer; str() is its one line, ``<mechanism>: <detail>``."""


class ZygoteError(Exception):
    """The zygote could not start a worker (bad entry, fork failed) or is gone."""


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
    """A running zygote (make one with open_zygote)."""

    def __init__(self, control: trio.socket.SocketType, pid: int, probe: Probe):
        self.pid = pid
        self.probe = probe  # what the zygote's own trial worker could apply
        self._control = control
        self._lock = trio.Lock()  # one spawn in flight: replies come in request order
        self._waiting: socket.socket | None = None  # our end of the channel being spawned
        self._replies_in, self._replies = trio.open_memory_channel[Worker | str](1)
        self._workers: dict[int, Worker] = {}

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
        except (EOFError, OSError):
            for worker in self._workers.values():  # they died with it (PR_SET_PDEATHSIG)
                worker._reaped(-signal.SIGKILL)
            self._workers.clear()
            await self._replies_in.aclose()


@asynccontextmanager
async def open_zygote(preload: Sequence[str] = (), import_path: Sequence[str] | None = None) -> AsyncIterator[Zygote]:
    """Start a zygote that imports ``preload`` (module names) with ``import_path`` (default: this
    process' sys.path) and serves spawns until the block ends; then it and every worker die."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    path = [p or os.getcwd() for p in (sys.path if import_path is None else import_path)]
    # a clean environment: workers inherit the zygote's, and the kernel's may hold secrets
    env = {k: v for k, v in os.environ.items() if k in _ENVIRONMENT} | {"PYTHONPATH": os.pathsep.join(path)}
    argv = [sys.executable, "-m", "merriwig.confine.zygote", json.dumps({"preload": list(preload)}), str(theirs.fileno())]
    process = await trio.lowlevel.open_process(argv, pass_fds=[theirs.fileno()], env=env, start_new_session=True)
    theirs.close()
    control = trio.socket.from_stdlib_socket(ours)
    try:
        try:
            hello, _ = await _recv(control)
        except EOFError:
            raise ZygoteError(f"the zygote exited at start (status {await process.wait()})") from None
        zygote = Zygote(control, hello["pid"], Probe.from_json(hello["probe"]))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(zygote._read)
            try:
                yield zygote
            finally:
                nursery.cancel_scope.cancel()
    finally:
        control.close()
        with trio.CancelScope(shield=True):
            await process.wait()
