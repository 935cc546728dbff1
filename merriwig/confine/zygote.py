"""The zygote: a fresh interpreter that imports what workers need once, then forks them on request.

Started by client.py as ``python -m merriwig.confine.zygote CONFIG MASTER_FD``, never by forking the
kernel: a worker forked from the kernel process would inherit a copy of everything the kernel holds
(other processes' memory, the password store). The zygote holds nothing but its sockets, its
pre-imported modules and the empty root directory fd, and workers close even those first.

Forking a warm interpreter instead of starting one is what makes spawning cheap: a worker starts
with every module already imported and shares those pages with the zygote until it writes to them.
gc.freeze() before each fork keeps the collector from touching (and so copying) the zygote's
objects in every worker. Starting the interpreter and importing is the expensive part (most of a
second), so one zygote serves every kernel its host process boots, in any number of trio runs:
each kernel attaches a session (wire.py has the protocol) and the zygote keeps, per session, its
workers and its unsent messages. A session that hangs up has its workers killed; the others go on.

The zygote also leaves the host's network namespace for one of its own, where its workers find
only a loopback that is down (steps.isolate_network says why there, not per worker).

The zygote reaps its workers (through pidfds in its poll loop) and reports each exit to its own
session; it leaves when the master socket closes (the host process is gone), and its workers die
with it (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import pkgutil
import selectors
import signal
import socket
import sys
from collections import deque
from collections.abc import Iterable
from typing import Any

from merriwig.confine import wire, worker
from merriwig.confine.mechanism import Limits, Mechanism
from merriwig.confine.probe import probe
from merriwig.confine.steps import Setup, empty_root, isolate_network

OUTBOX_MAX = 4096  # messages a session may leave unread before the zygote gives up on it
_SEND_FLAGS = socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL  # a slow or gone kernel never blocks the others


class PreloadError(Exception):
    """A preload module would not import; str() names it and the error."""


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as e:
        raise PreloadError(f"preload {name}: {type(e).__name__}: {e}") from None


def preload(names: Iterable[str]) -> None:
    """Import each name; ``package.*`` is the package and every module and package under it."""
    for name in names:
        if not name.endswith(".*"):
            _import(name)
            continue
        package = _import(name.removesuffix(".*"))
        if not hasattr(package, "__path__"):
            raise PreloadError(f"preload {name}: {package.__name__} is a module, not a package")
        # each name is imported here before the walk looks inside it, so a failure is named here
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            _import(info.name)


def resolve(entry: str) -> worker.Entry:
    """"module:function" -> the function (imported here, in the zygote, before any fork)."""
    module, _, name = entry.partition(":")
    fn = getattr(importlib.import_module(module), name)
    if not callable(fn):
        raise TypeError(f"{entry} is not callable")
    return fn


class Session:
    """One kernel's control socket: its workers, and what is still to be sent to it."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.workers: set[int] = set()
        self.outbox: deque[tuple[bytes, list[int]]] = deque()  # fds here are our own dups
        self.reading = True  # until the kernel shuts its side
        self.closed = False
        self.events = 0  # what the selector watches for on sock


class Zygote:
    def __init__(self, master: socket.socket, host_netns: str, found: dict[str, Any]):
        self.master = master
        self.host_netns = host_netns
        self.hello = {"pid": os.getpid(), "probe": found}  # probed once, told to every session
        self.root_fd, self.root_id = empty_root()
        self.workers: dict[int, tuple[int, Session]] = {}  # worker pid -> (pidfd, its session)
        self.selector = selectors.DefaultSelector()
        self.selector.register(master, selectors.EVENT_READ, None)

    def serve(self) -> None:
        while True:
            for key, events in self.selector.select():
                if key.data is None:
                    if not self.attach():
                        return
                elif isinstance(key.data, Session):
                    session = key.data  # an earlier key of this batch may have closed it
                    if events & selectors.EVENT_WRITE and not session.closed:
                        self.flush(session)
                    if events & selectors.EVENT_READ and session.reading and not session.closed:
                        self.request(session)
                else:
                    self.reap(key.data)

    def attach(self) -> bool:
        """Take a new session from the master; False once the master has closed."""
        try:
            message, fds = wire.recv(self.master)
        except EOFError:
            return False
        except ValueError:
            return True  # a malformed attach: nobody waits on it (wire.recv closed its fds)
        except OSError:
            return False
        if message.get("attach") is not True or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            return True
        try:
            sock = socket.socket(fileno=fds[0])
        except OSError:  # not a socket
            os.close(fds[0])
            return True
        self.post(Session(sock), self.hello)
        return True

    def request(self, session: Session) -> None:
        try:
            request, fds = wire.recv(session.sock)
        except EOFError:
            self.hang_up(session)
            return
        except ValueError as e:
            self.post(session, {"error": f"bad request: {e}"})
            return
        except OSError:
            self.drop(session)
            return
        self.spawn(session, request, fds)

    def spawn(self, session: Session, request: dict[str, Any], fds: list[int]) -> None:
        try:
            if len(fds) != 1:
                raise ValueError(f"a spawn request carries one channel fd, not {len(fds)}")
            entry = resolve(request["entry"])
            limits = Limits(**request["limits"])
            without = frozenset(Mechanism(m) for m in request.get("without", ()))
        except Exception as e:
            for fd in fds:
                os.close(fd)
            self.post(session, {"error": f"{type(e).__name__}: {e}"})
            return
        (channel_fd,) = fds
        gc.freeze()
        try:
            pid = os.fork()
        except OSError as e:
            os.close(channel_fd)
            self.post(session, {"error": f"fork: {e}"})
            return
        if pid == 0:
            try:
                setup = Setup(channel_fd, self.root_fd, self.root_id, os.getppid(), self.host_netns, limits)
                worker.run(setup, entry, without)
            finally:
                os._exit(worker.Exit.RAISED)
        os.close(channel_fd)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as e:  # out of fds: the child is still ours to kill and reap by pid
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            self.post(session, {"error": f"pidfd_open: {e}"})
            return
        self.workers[pid] = (pidfd, session)
        session.workers.add(pid)
        self.selector.register(pidfd, selectors.EVENT_READ, pid)
        self.post(session, {"pid": pid}, [pidfd])  # the session closed meanwhile: drop() kills this one too

    def reap(self, pid: int) -> None:
        pidfd, session = self.workers.pop(pid)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        session.workers.discard(pid)
        self.post(session, {"exited": pid, "status": os.waitstatus_to_exitcode(status)})

    def post(self, session: Session, obj: dict[str, Any], fds: Iterable[int] = ()) -> None:
        """Queue a message for ``session`` and send what it will take now, never blocking."""
        if session.closed:
            return
        if len(session.outbox) >= OUTBOX_MAX:
            self.drop(session)
            return
        owned: list[int] = []
        try:
            for fd in fds:
                owned.append(os.dup(fd))
        except OSError:  # out of fds: the session cannot be told, so it is given up
            for fd in owned:
                os.close(fd)
            self.drop(session)
            return
        session.outbox.append((json.dumps(obj).encode(), owned))
        self.flush(session)

    def flush(self, session: Session) -> None:
        while session.outbox:
            data, fds = session.outbox[0]
            try:
                session.sock.sendmsg([data], wire.ancillary(fds), _SEND_FLAGS)
            except BlockingIOError:
                break
            except OSError:  # the kernel closed it outright (its trio run ended), maybe mid-spawn
                self.drop(session)
                return
            session.outbox.popleft()
            for fd in fds:
                os.close(fd)
        self.update(session)

    def update(self, session: Session) -> None:
        """Watch ``session`` for what it now needs; close it once hung up, drained and childless."""
        if session.closed:
            return
        if not session.reading and not session.workers and not session.outbox:
            self.close(session)
            return
        events = (selectors.EVENT_READ if session.reading else 0) | (selectors.EVENT_WRITE if session.outbox else 0)
        if events == session.events:
            return
        if not session.events:
            self.selector.register(session.sock, events, session)
        elif not events:
            self.selector.unregister(session.sock)
        else:
            self.selector.modify(session.sock, events, session)
        session.events = events

    def hang_up(self, session: Session) -> None:
        """The kernel shut its side: kill its workers, then report their exits and close ours."""
        session.reading = False
        self.kill(session.workers)
        self.update(session)

    def drop(self, session: Session) -> None:
        """The kernel is gone (or stopped reading): kill its workers, forget what it was owed."""
        self.kill(session.workers)
        self.close(session)

    def close(self, session: Session) -> None:
        if session.events:
            self.selector.unregister(session.sock)
            session.events = 0
        session.closed = True
        session.sock.close()
        for _, fds in session.outbox:
            for fd in fds:
                os.close(fd)
        session.outbox.clear()

    def kill(self, pids: Iterable[int]) -> None:
        for pid in pids:
            try:
                signal.pidfd_send_signal(self.workers[pid][0], signal.SIGKILL)
            except ProcessLookupError:
                pass


def main() -> None:
    config = json.loads(sys.argv[1])
    master = socket.socket(fileno=int(sys.argv[2]))
    try:
        preload(config["preload"])
    except PreloadError as e:
        wire.send(master, {"error": str(e)})
        sys.exit(1)
    found = probe()
    zygote = Zygote(master, isolate_network(), found.to_json())
    wire.send(master, {"pid": os.getpid()})
    try:
        zygote.serve()
    finally:
        zygote.kill(zygote.workers)


if __name__ == "__main__":
    main()
