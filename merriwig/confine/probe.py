"""Which confinement layers this host offers, learnt the only reliable way: by applying them.

probe() forks a throw-away child that isolates its network as the zygote does and then runs every
step as a worker would, but goes on after a failure so that one run names everything missing. The kernel refuses confined programs with
Probe.line() when anything is (unless the user chose ``--isolation none``). The zygote probes
at start and sends the result with its hello, since it is the process whose children are
confined; probe() forks, so call it only from a single-threaded process like the zygote.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from typing import Any

from merriwig.confine.mechanism import Limits, Mechanism
from merriwig.confine.steps import CHANNEL_FD, Setup, empty_root, isolate_network, place_fds, run_steps

_PROBE_LIMITS = Limits(memory_bytes=64 << 20)


@dataclass(frozen=True)
class Probe:
    """Each mechanism's outcome: (applied and verified, detail)."""

    outcomes: dict[Mechanism, tuple[bool, str]]

    @property
    def missing(self) -> dict[Mechanism, str]:
        return {m: detail for m, (ok, detail) in self.outcomes.items() if not ok}

    @property
    def ok(self) -> bool:
        return not self.missing and set(self.outcomes) == set(Mechanism)

    def line(self) -> str:
        """One line for the kernel's refusal (or its banner when all is there)."""
        if self.ok:
            return f"confinement: all {len(Mechanism)} layers available"
        gaps = {m: self.missing.get(m, "not reached") for m in Mechanism if m not in self.outcomes or m in self.missing}
        return "confined programs refused, this host lacks: " + "; ".join(f"{m} ({d})" for m, d in gaps.items())

    def to_json(self) -> dict[str, Any]:
        return {m.value: [ok, detail] for m, (ok, detail) in self.outcomes.items()}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Probe:
        return cls({Mechanism(k): (bool(ok), str(detail)) for k, (ok, detail) in obj.items()})


def probe() -> Probe:
    """Fork a child, confine it with every layer, and collect what worked."""
    root_fd, root_id = empty_root()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        pid = os.fork()
        if pid == 0:
            try:
                host_netns = isolate_network()  # as the zygote does at start
                setup = Setup(theirs.fileno(), root_fd, root_id, os.getppid(), host_netns, _PROBE_LIMITS)
                place_fds(setup)
                done = run_steps(setup, keep_going=True)
                os.write(CHANNEL_FD, json.dumps(Probe(done).to_json()).encode())
            finally:
                os._exit(0)
        theirs.close()
        data = ours.recv(64 * 1024)
        os.waitpid(pid, 0)
    finally:
        ours.close()
        theirs.close()
        os.close(root_fd)
    if not data:
        return Probe({Mechanism.FDS: (False, "the probe child died during set-up")})
    return Probe.from_json(json.loads(data))
