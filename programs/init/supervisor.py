"""Erlang-style supervision for init: restart a crashed driver or server, re-mount it, log it.

A Service is a program init started from its image (source bytes from the initial RAM disk,
programs/init/services.py) on a fresh rendezvous and (usually) mounted at a path. When it exits,
the supervisor waits a back-off delay (doubling from 0.1 s up to 5 s), starts the same image
again on a *new* rendezvous and replaces the mount. Clients with requests in flight to the dead
server get CLOSED from the kernel (it knows the rendezvous' server died), so they see a clear
error and work again as soon as they open the path anew. A restart storm is capped: more than
MAX_RESTARTS restarts within WINDOW seconds and the service is given up (and logged).

Services with other plumbing than "a fresh rendezvous in, the system console out" (the keyboard
driver writes to init's own stdin; the console driver *is* the system console) pass `stdio`, a
hook that makes (our end, their stdin, their stdout) for each launch. `on_restart` runs after a
relaunch and before the "restarted" line is logged, so a service the log itself depends on (the
console driver) is back in place when that line is written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from euralios.std import SyscallError

Stdio = Callable[["Service"], Awaitable[tuple[int, int, int]]]

BACKOFF_START = 0.1
BACKOFF_MAX = 5.0
MAX_RESTARTS = 5
WINDOW = 30.0


class Service:
    def __init__(self, name: str, image: bytes, path: str | None, args: list[str], io: bool) -> None:
        self.name = name
        self.image = image  # what each launch execs: a restart runs the same program
        self.path = path
        self.args = args
        self.io = io
        self.child: Any = None
        self.handle = -1  # our end of its rendezvous
        self.restarts: list[float] = []
        self.given_up = False
        self.stopping = False
        self.on_restart: Callable[[Service], Awaitable[None]] | None = None
        self.on_give_up: Callable[[Service], Awaitable[None]] | None = None  # it will not be back
        self.stdio: Stdio | None = None  # (ours, their stdin, their stdout) for each launch
        self.env: dict[str, str] | None = None


class Supervisor:
    def __init__(self, proc: Any, log: Callable[[str], Awaitable[None]], stdout: Callable[[], Awaitable[int | None]]):
        self.proc = proc
        self.log = log
        self.stdout = stdout  # a fresh handle for a service's output (the system console)
        self.services: dict[str, Service] = {}

    async def start(self, name: str, image: bytes, path: str | None = None, args: list[str] | None = None,
                    io: bool = False, on_restart: Callable[[Service], Awaitable[None]] | None = None,
                    stdio: Stdio | None = None, env: dict[str, str] | None = None,
                    idle: bool = False) -> Service:
        """Launch a service and watch it. `idle`: its first launch starts once the system is
        idle (abi.EXEC_IDLE); it is mounted at once all the same, so requests made meanwhile wait
        in the rendezvous' queue. Restarts start at once (the back-off already delayed them)."""
        svc = Service(name, image, path, args or [name], io)
        svc.on_restart = on_restart
        svc.stdio = stdio
        svc.env = env
        self.services[name] = svc
        await self._launch(svc, first=True, idle=idle)
        await self.proc.spawn_thread(self._watch, svc)
        return svc

    async def _launch(self, svc: Service, first: bool, idle: bool = False) -> None:
        sys = self.proc.sys
        if svc.stdio is not None:
            mine, theirs, stdout = await svc.stdio(svc)
        else:
            mine, theirs = await sys.new_rendezvous()
            stdout = await self.stdout()
        svc.child = await self.proc.exec(svc.image, args=svc.args, stdin=theirs, stdout=stdout, io=svc.io,
                                         name=svc.name, env=svc.env, idle=idle)
        if svc.handle >= 0:
            try:
                await sys.close(svc.handle)
            except SyscallError:
                pass
        svc.handle = mine
        if svc.path is not None:
            if not first:
                try:
                    await sys.umount(svc.path)
                except SyscallError:
                    pass
            await sys.mount(svc.path, await sys.copy_rendezvous(mine))

    async def _give_up(self, svc: Service) -> None:
        svc.given_up = True
        if svc.on_give_up is not None:
            try:
                await svc.on_give_up(svc)
            except Exception as e:  # noqa: BLE001 - as for on_restart
                await self.log(f"{svc.name}: give-up hook failed: {type(e).__name__}: {e}")

    async def _watch(self, svc: Service) -> None:
        proc = self.proc
        while True:
            status = await svc.child.wait()
            if svc.stopping:
                return
            now = proc.now()
            svc.restarts = [t for t in svc.restarts if now - t < WINDOW] + [now]
            if len(svc.restarts) > MAX_RESTARTS:
                await self.log(f"{svc.name} crashed {len(svc.restarts)} times in {WINDOW:g} s: giving up")
                await self._give_up(svc)
                return
            # Back-off doubles with each restart in the window: a crash loop slows down.
            backoff = min(BACKOFF_MAX, BACKOFF_START * 2 ** (len(svc.restarts) - 1))
            await self.log(f"{svc.name} (pid {svc.child.pid}) exited with status {status}; "
                           f"restarting in {backoff:g} s")
            await proc.sleep(backoff)
            try:
                await self._launch(svc, first=False)
            except SyscallError as e:
                await self.log(f"cannot restart {svc.name}: {e}")
                await self._give_up(svc)
                return
            if svc.on_restart is not None:
                try:
                    await svc.on_restart(svc)
                except Exception as e:  # noqa: BLE001 - a failing hook must not take init down with it
                    await self.log(f"{svc.name}: restart hook failed: {type(e).__name__}: {e}")
            await self.log(f"{svc.name} restarted as pid {svc.child.pid}"
                           + (f", mounted at {svc.path}" if svc.path else ""))
