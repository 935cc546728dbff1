"""The zygote: a fresh interpreter that imports what workers need once, then forks them on request.

Started by client.open_zygote as ``python -m merriwig.confine.zygote CONFIG CONTROL_FD``, never by
forking the kernel: a worker forked from the kernel process would inherit a copy of everything
the kernel holds (other processes' memory, the password store). The zygote holds nothing but its
control socket, its pre-imported modules and the empty root directory fd, and workers close even
those first.

Forking a warm interpreter instead of starting one is what makes spawning cheap: a worker starts
with every module already imported and shares those pages with the zygote until it writes to them.
gc.freeze() before each fork keeps the collector from touching (and so copying) the zygote's
objects in every worker.

The zygote also leaves the host's network namespace for one of its own, where its workers find
only a loopback that is down (steps.isolate_network says why there, not per worker).

The zygote reaps its workers (through pidfds in its poll loop) and reports each exit; it leaves
when the kernel closes the control socket, and its workers die with it (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import selectors
import signal
import socket
import sys
from typing import Any

from merriwig.confine import wire, worker
from merriwig.confine.mechanism import Limits, Mechanism
from merriwig.confine.probe import probe
from merriwig.confine.steps import Setup, empty_root, isolate_network


def resolve(entry: str) -> worker.Entry:
    """"module:function" -> the function (imported here, in the zygote, before any fork)."""
    module, _, name = entry.partition(":")
    fn = getattr(importlib.import_module(module), name)
    if not callable(fn):
        raise TypeError(f"{entry} is not callable")
    return fn


class Zygote:
    def __init__(self, control: socket.socket, host_netns: str):
        self.control = control
        self.host_netns = host_netns
        self.root_fd, self.root_id = empty_root()
        self.pidfds: dict[int, int] = {}  # worker pid -> pidfd
        self.selector = selectors.DefaultSelector()
        self.selector.register(control, selectors.EVENT_READ)

    def serve(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.control:
                    try:
                        request, fds = wire.recv(self.control)
                    except EOFError:
                        return
                    self.spawn(request, fds)
                else:
                    self.reap(key.data)

    def spawn(self, request: dict[str, Any], fds: list[int]) -> None:
        try:
            if len(fds) != 1:
                raise ValueError(f"a spawn request carries one channel fd, not {len(fds)}")
            entry = resolve(request["entry"])
            limits = Limits(**request["limits"])
            without = frozenset(Mechanism(m) for m in request.get("without", ()))
        except Exception as e:
            for fd in fds:
                os.close(fd)
            wire.send(self.control, {"error": f"{type(e).__name__}: {e}"})
            return
        (channel_fd,) = fds
        gc.freeze()
        try:
            pid = os.fork()
        except OSError as e:
            os.close(channel_fd)
            wire.send(self.control, {"error": f"fork: {e}"})
            return
        if pid == 0:
            try:
                setup = Setup(channel_fd, self.root_fd, self.root_id, os.getppid(), self.host_netns, limits)
                worker.run(setup, entry, without)
            finally:
                os._exit(worker.Exit.RAISED)
        os.close(channel_fd)
        pidfd = os.pidfd_open(pid)
        self.pidfds[pid] = pidfd
        self.selector.register(pidfd, selectors.EVENT_READ, pid)
        wire.send(self.control, {"pid": pid}, [pidfd])

    def reap(self, pid: int) -> None:
        pidfd = self.pidfds.pop(pid)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        wire.send(self.control, {"exited": pid, "status": os.waitstatus_to_exitcode(status)})

    def kill_all(self) -> None:
        for pidfd in self.pidfds.values():
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass


def main() -> None:
    config = json.loads(sys.argv[1])
    control = socket.socket(fileno=int(sys.argv[2]))
    for name in config["preload"]:
        importlib.import_module(name)
    found = probe()
    zygote = Zygote(control, isolate_network())
    wire.send(control, {"pid": os.getpid(), "probe": found.to_json()})
    try:
        zygote.serve()
    finally:
        zygote.kill_all()


if __name__ == "__main__":
    main()
