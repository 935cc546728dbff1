"""The names of the confinement layers, a worker's limits, and how a missing layer is reported.

Every layer is a Mechanism; a worker applies them in steps.STEPS order and verifies each one's
effect, and a layer that cannot be applied or verified is reported as ``<mechanism>: <detail>``,
one line, the same line the kernel prints when it refuses to start a confined program.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Mechanism(StrEnum):
    """One confinement layer, in the order the worker applies them."""

    FDS = "fds"  # every fd but the channel closed
    UID = "uid"  # (host root only) a uid/gid of its own, no supplementary groups
    LIFETIME = "lifetime"  # its own process group; SIGKILLed when the zygote dies
    USERNS = "userns"  # a new user namespace mapping only its own uid/gid
    NETNS = "netns"  # no network (the zygote's namespace: a down loopback) and its own SysV IPC
    RLIMITS = "rlimits"  # address space, open files, CPU, no processes, no core dumps
    ROOT = "root"  # chroot into an empty directory that has been deleted
    CAPS = "caps"  # no capabilities left, even inside its namespace
    NO_NEW_PRIVS = "no_new_privs"  # PR_SET_NO_NEW_PRIVS
    LANDLOCK = "landlock"  # a Landlock domain that allows nothing
    SECCOMP = "seccomp"  # the syscall filter of policy.py


@dataclass(frozen=True)
class Limits:
    """What one worker may consume of the host.

    ``memory_bytes`` is the address space the program may add on top of what the worker maps when
    it starts (the forked interpreter's own mappings are shared with the zygote and not the
    program's to spend), so the kernel passes the process' quota here. ``cpu_seconds`` is a backstop
    behind the kernel's watchdog: SIGXCPU at the soft limit, SIGKILL a second later.
    """

    memory_bytes: int
    open_files: int = 16
    cpu_seconds: int = 300


class MechanismMissing(Exception):
    """A layer could not be applied or its effect not verified; the worker refuses to run."""

    def __init__(self, mechanism: Mechanism, detail: str):
        super().__init__(f"{mechanism}: {detail}")
        self.mechanism = mechanism
        self.detail = detail
