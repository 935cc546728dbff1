"""The confinement steps a freshly forked worker takes before any untrusted code runs.

Each step applies one Mechanism and then checks its *effect* (not just a return code): a namespace
inode that changed, a root directory whose inode is the empty deleted one, an open that Landlock
must refuse, a call the filter must refuse. The order is forced by dependencies: the uid changes
before the user namespace is made (so the namespace's owner is that uid, not root), /proc is read
and written (uid_map, statm, fd list) before the root goes away, capabilities are dropped only
after the chroot that needs them, and the filter comes last because it forbids the calls the
other steps make (open, unshare, prctl, chroot).
"""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import signal
import socket
import struct
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from merriwig.confine import landlock, seccomp
from merriwig.confine.libc import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWUSER,
    PR_GET_NO_NEW_PRIVS,
    PR_SET_DUMPABLE,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    capabilities,
    chroot,
    drop_capabilities,
    prctl,
    unshare,
)
from merriwig.confine.mechanism import Limits, Mechanism, MechanismMissing

CHANNEL_FD = 3  # where the channel sits in a worker; the only fd it keeps
ROOT_FD = 4  # the empty root directory until the ROOT step closes it
UID_BASE = 0x7000_0000  # host root gives worker pid P the uid/gid UID_BASE + P: no one else's
FILTER = seccomp.Filter.assemble()  # once, in the zygote, before any fork
_SIOCGIFFLAGS, _SIOCSIFFLAGS = 0x8913, 0x8914
_IFF_UP = 0x1


@dataclass(frozen=True)
class Setup:
    """What a worker is given at fork: its channel, the empty root, its parent, its limits."""

    channel_fd: int
    root_fd: int
    root_id: tuple[int, int]  # (st_dev, st_ino) of the empty root, to recognise it after chroot
    parent_pid: int
    host_netns: str  # the network namespace the zygote left (see isolate_network)
    limits: Limits


def empty_root() -> tuple[int, tuple[int, int]]:
    """An fd on an empty directory that no longer exists, and its (st_dev, st_ino).

    A worker chroots into it: every path then resolves inside a deleted directory, where nothing
    can be found or created (ENOENT), so even calls Landlock does not cover (stat, readlink,
    access) learn nothing about the host. r-x for all so that a worker of any uid can enter it and
    so that only Landlock, not file modes, refuses opening it (the Landlock check relies on that).
    Nothing stays on disk, even if the zygote is killed."""
    path = tempfile.mkdtemp(prefix="euralios-root-")
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.chmod(path, 0o555)
    os.rmdir(path)
    st = os.fstat(fd)
    return fd, (st.st_dev, st.st_ino)


def place_fds(setup: Setup) -> None:
    """Move the channel to CHANNEL_FD and the root to ROOT_FD (via copies above both, so neither
    can overwrite the other wherever the zygote had them)."""
    chan = fcntl.fcntl(setup.channel_fd, fcntl.F_DUPFD_CLOEXEC, ROOT_FD + 1)
    root = fcntl.fcntl(setup.root_fd, fcntl.F_DUPFD_CLOEXEC, ROOT_FD + 1)
    os.dup2(chan, CHANNEL_FD, inheritable=False)
    os.dup2(root, ROOT_FD, inheritable=False)
    os.close(chan)
    os.close(root)


class NotInEffect(Exception):
    """A step's calls succeeded but its effect is not there; run_steps names the mechanism."""


def close_fds(setup: Setup) -> str:
    """Close everything inherited from the zygote but the channel and (until ROOT) the root fd;
    check each fd that was open is now EBADF (a single-threaded process gains none meanwhile)."""
    fds = [int(name) for name in os.listdir("/proc/self/fd")]
    top = max(fds) + 1
    os.closerange(0, CHANNEL_FD)
    os.closerange(ROOT_FD + 1, max(top, ROOT_FD + 1))
    sys.stdin = sys.stdout = sys.stderr = None  # type: ignore[assignment]  # fds 0-2 will be reused
    sys.__stdin__ = sys.__stdout__ = sys.__stderr__ = None  # type: ignore[misc]
    for fd in fds:
        if fd in (CHANNEL_FD, ROOT_FD):
            continue
        try:
            os.fstat(fd)
        except OSError as e:
            if e.errno == errno.EBADF:
                continue
        raise NotInEffect(f"fd {fd} still open")
    return f"all closed but the channel (fd {CHANNEL_FD})"


def set_uid(setup: Setup) -> str:
    """As host root: become a uid/gid no other process has, so plain file modes and kill()'s
    permission check already keep it from everything the host's users own."""
    if os.geteuid() != 0:
        return f"not root: keeps uid {os.geteuid()}"
    uid = UID_BASE + os.getpid()
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid,) * 3 or os.getresgid() != (uid,) * 3 or os.getgroups():
        raise NotInEffect("credentials did not change")
    prctl(PR_SET_DUMPABLE, 1)  # a uid change made us undumpable: /proc/self/uid_map must stay ours
    return f"uid/gid {uid}"


def tie_lifetime(setup: Setup) -> str:
    # A process group of its own, not a session: the zygote's session already has no terminal,
    # and setsid() would also make a scheduler autogroup per worker (milliseconds each), while
    # one autogroup for all workers is what keeps them, together, from starving the kernel's UI.
    os.setpgid(0, 0)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid change, which clears it
    if os.getppid() != setup.parent_pid:
        raise NotInEffect("parent already gone")
    return "own process group, dies with its parent"


def _write_proc(name: str, text: str) -> None:
    with open(f"/proc/self/{name}", "w") as f:
        f.write(text)


def _map_ids(uid: int, gid: int) -> None:
    """In a new user namespace, map our uid and gid (in the parent namespace) to themselves."""
    _write_proc("uid_map", f"{uid} {uid} 1")
    _write_proc("setgroups", "deny")
    _write_proc("gid_map", f"{gid} {gid} 1")


def new_userns(setup: Setup) -> str:
    """A user namespace of its own: the capabilities the next steps need (chroot, IPC namespace)
    exist only inside it, over nothing of the host's."""
    uid, gid = os.geteuid(), os.getegid()
    before = os.readlink("/proc/self/ns/user")
    unshare(CLONE_NEWUSER)
    _map_ids(uid, gid)
    if os.readlink("/proc/self/ns/user") == before or os.getuid() != uid or os.getgid() != gid:
        raise NotInEffect("not in a new user namespace with its own uid")
    return f"uid {uid} mapped to itself"


def isolate_network() -> str:
    """Move the calling process (the zygote, once) into a network namespace of its own; return the
    namespace it was in (the host's), which its workers check they are not in. If that fails, the
    host's is returned all the same: every worker's NETNS check then refuses, naming it.

    Per zygote, not per worker: a fresh network namespace costs about a millisecond to make and
    several to tear down (on every worker exit), as much as everything else a worker does. Shared,
    it holds only a loopback that is down and that no worker can bring up or add to (the namespace
    belongs to the zygote's user namespace, where workers have no capability); what workers could
    share through it, abstract unix sockets, needs socket(), which the filter denies, and Landlock's
    abstract-socket scope (ABI 6) stops it too. As host root the zygote needs no user namespace for
    it; otherwise it makes one mapping its own uid/gid, and each worker's is nested inside."""
    host = os.readlink("/proc/self/ns/net")
    uid, gid = os.geteuid(), os.getegid()
    try:
        unshare(CLONE_NEWNET if uid == 0 else CLONE_NEWUSER | CLONE_NEWNET)
        if uid != 0:
            _map_ids(uid, gid)
    except OSError:
        pass
    return host


def _lo_flags(s: socket.socket) -> int:
    return struct.unpack_from("16sH", fcntl.ioctl(s, _SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0)))[1]


def check_netns(setup: Setup) -> str:
    """Its own SysV IPC namespace, and proof that the zygote's network namespace is the only one
    it has: not the host's, nothing but a down loopback, which even its own namespace's
    capabilities cannot bring up."""
    before = os.readlink("/proc/self/ns/ipc")
    unshare(CLONE_NEWIPC)
    if os.readlink("/proc/self/ns/ipc") == before:
        raise NotInEffect("SysV IPC namespace unchanged")
    if os.readlink("/proc/self/ns/net") == setup.host_netns:
        raise NotInEffect("still in the host's network namespace")
    names = [name for _, name in socket.if_nameindex()]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = _lo_flags(s)
        if names != ["lo"] or flags & _IFF_UP:
            raise NotInEffect(f"interfaces {names}, lo flags {flags:#x}")
        try:
            fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))
        except PermissionError:
            return "only a down loopback it cannot bring up; own SysV IPC"
    raise NotInEffect("could bring the loopback up")


def set_rlimits(setup: Setup) -> str:
    """Bound what it can take of the host (see Limits); no processes (the second layer under the
    filter's fork ban), no core dumps, no files to grow."""
    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    lim = setup.limits
    wanted = {
        resource.RLIMIT_AS: (mapped + lim.memory_bytes,) * 2,
        resource.RLIMIT_NOFILE: (lim.open_files,) * 2,
        resource.RLIMIT_CPU: (lim.cpu_seconds, lim.cpu_seconds + 1),
        resource.RLIMIT_NPROC: (0, 0),
        resource.RLIMIT_CORE: (0, 0),
        resource.RLIMIT_FSIZE: (0, 0),
        resource.RLIMIT_MEMLOCK: (0, 0),
        resource.RLIMIT_MSGQUEUE: (0, 0),
    }
    for which, value in wanted.items():
        resource.setrlimit(which, value)
    prctl(PR_SET_DUMPABLE, 0)  # no core dump, no /proc/PID access by same-uid processes
    for which, value in wanted.items():
        if resource.getrlimit(which) != value:
            raise NotInEffect(f"limit {which} is {resource.getrlimit(which)}")
    return f"AS {mapped >> 20}+{lim.memory_bytes >> 20} MiB, {lim.open_files} files, {lim.cpu_seconds} s CPU, 0 procs"


def enter_root(setup: Setup) -> str:
    """chroot into the empty deleted directory (empty_root) and close the last fd but the channel."""
    os.fchdir(ROOT_FD)
    os.close(ROOT_FD)
    chroot(b".")
    os.chdir("/")
    st = os.stat("/")
    if (st.st_dev, st.st_ino) != setup.root_id or st.st_nlink != 0:
        raise NotInEffect("/ is not the empty deleted directory")
    return "/ is an empty deleted directory"


def no_capabilities(setup: Setup) -> str:
    """Give up even the capabilities the user namespace gave (only an exec could regain any)."""
    drop_capabilities()
    if capabilities() != (0, 0, 0):
        raise NotInEffect(f"capabilities left: {capabilities()}")
    return "none left"


def no_new_privs(setup: Setup) -> str:
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    if prctl(PR_GET_NO_NEW_PRIVS) != 1:
        raise NotInEffect("flag not set")
    return "set"


def landlock_nothing(setup: Setup) -> str:
    """Landlock with nothing allowed; proven by failing to open "/", which file modes allow."""
    abi = landlock.abi_version()
    landlock.restrict_self(abi)
    try:
        os.close(os.open("/", os.O_RDONLY | os.O_DIRECTORY))
    except PermissionError:
        return landlock.describe(abi)
    raise NotInEffect("could still open /")


def seccomp_filter(setup: Setup) -> str:
    """The filter, last: it forbids the calls every step before makes."""
    seccomp.install(FILTER.for_pid(os.getpid()))
    try:
        unshare(0)  # a no-op that succeeds unless the filter refuses it
    except PermissionError:
        return f"{len(FILTER)} instructions"
    raise NotInEffect("unshare(0) was allowed")


STEPS: tuple[tuple[Mechanism, Callable[[Setup], str]], ...] = (
    (Mechanism.FDS, close_fds),
    (Mechanism.UID, set_uid),
    (Mechanism.LIFETIME, tie_lifetime),
    (Mechanism.USERNS, new_userns),
    (Mechanism.NETNS, check_netns),
    (Mechanism.RLIMITS, set_rlimits),
    (Mechanism.ROOT, enter_root),
    (Mechanism.CAPS, no_capabilities),
    (Mechanism.NO_NEW_PRIVS, no_new_privs),
    (Mechanism.LANDLOCK, landlock_nothing),
    (Mechanism.SECCOMP, seccomp_filter),
)


def run_steps(
    setup: Setup, without: frozenset[Mechanism] = frozenset(), keep_going: bool = False
) -> dict[Mechanism, tuple[bool, str]]:
    """Apply every step not in ``without``; {mechanism: (applied, detail)} in order.

    A worker stops at the first failure (MechanismMissing names it); the probe passes
    ``keep_going`` to learn everything a host lacks in one run. ``without`` exists so a test can
    prove one layer holds on its own; the kernel never passes it."""
    done: dict[Mechanism, tuple[bool, str]] = {}
    for mechanism, step in STEPS:
        if mechanism in without:
            continue
        try:
            done[mechanism] = (True, step(setup))
        except Exception as e:  # OSError from a call, NotInEffect from a check, ValueError from bad limits
            detail = f"{errno.errorcode.get(e.errno, '?')} {e.strerror}" if isinstance(e, OSError) and e.errno else str(e)
            if not keep_going:
                raise MechanismMissing(mechanism, detail) from None
            done[mechanism] = (False, detail)
    return done
