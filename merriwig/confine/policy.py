"""What the seccomp filter denies a worker, and why: the policy as data, the BPF in seccomp.py.

A denylist, not an allowlist: the worker runs a general-purpose CPython whose standard library
(and trio) use a wide and version-dependent set of harmless calls, while what a call can *reach* is
already cut by the other layers (an empty, deleted root; Landlock; namespaces; a uid of its own).
What this list removes is (a) every way around those layers (exec, open, sockets, namespaces,
mounts, other processes' memory and signals), (b) host memory that RLIMIT_AS does not count
(memfd, SysV/POSIX IPC), and (c) the kernel attack surface a Python program never needs (bpf,
io_uring, userfaultfd, perf, keyrings, modules, ...). Calls newer than the last one reviewed here
(``LAST_REVIEWED``) are denied with ENOSYS, so a future kernel's new calls start out denied and
glibc falls back to the older call it knows, which this list does check.

A denied call fails with EPERM instead of killing the worker: the program sees an ordinary
PermissionError it can report, the test suite can assert which layer answered, and nothing is gained
by an attacker either way (the call does not happen). Only a call that no honest CPython makes, a
foreign architecture (i386 ``int 0x80``) or the x32 ABI, kills the process at once.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

SELF = -1  # stands for the worker's own pid; seccomp.Filter.for_pid() writes the real one in
LAST_REVIEWED = 450  # set_mempolicy_home_node (Linux 5.17); anything above is ENOSYS
DENY_ERRNO = errno.EPERM

# x86_64 numbers of every call the policy names (from asm/unistd_64.h; the ABI never changes them)
NR: dict[str, int] = {
    "execve": 59, "execveat": 322, "fork": 57, "vfork": 58, "clone": 56, "clone3": 435, "open": 2,
    "openat": 257, "openat2": 437, "creat": 85, "open_by_handle_at": 304, "name_to_handle_at": 303,
    "socket": 41, "connect": 42, "bind": 49, "listen": 50, "accept": 43, "accept4": 288, "ptrace": 101,
    "process_vm_readv": 310, "process_vm_writev": 311, "process_madvise": 440, "kcmp": 312,
    "pidfd_open": 434, "pidfd_getfd": 438, "pidfd_send_signal": 424, "process_mrelease": 448, "mount": 165,
    "umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272, "setns": 308, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "move_mount": 429, "open_tree": 428,
    "mount_setattr": 442, "setuid": 105, "setgid": 106, "setreuid": 113, "setregid": 114, "setresuid": 117,
    "setresgid": 119, "setfsuid": 122, "setfsgid": 123, "setgroups": 116, "capset": 126, "prctl": 157,
    "seccomp": 317, "landlock_create_ruleset": 444, "landlock_add_rule": 445,
    "landlock_restrict_self": 446, "personality": 135, "memfd_create": 319, "memfd_secret": 447,
    "shmget": 29, "shmat": 30, "shmctl": 31, "shmdt": 67, "semget": 64, "semop": 65, "semctl": 66,
    "semtimedop": 220, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71, "mq_open": 240,
    "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243, "mq_notify": 244, "mq_getsetattr": 245,
    "userfaultfd": 323, "mbind": 237, "set_mempolicy": 238, "migrate_pages": 256, "move_pages": 279,
    "set_mempolicy_home_node": 450, "bpf": 321, "perf_event_open": 298, "keyctl": 250, "add_key": 248,
    "request_key": 249, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "io_setup": 206, "io_destroy": 207, "io_getevents": 208, "io_submit": 209, "io_cancel": 210,
    "fanotify_init": 300, "fanotify_mark": 301, "modify_ldt": 154, "ioperm": 173, "iopl": 172,
    "uselib": 134, "lookup_dcookie": 212, "syslog": 103, "vhangup": 153, "init_module": 175,
    "finit_module": 313, "delete_module": 176, "kexec_load": 246, "kexec_file_load": 320, "reboot": 169,
    "swapon": 167, "swapoff": 168, "acct": 163, "quotactl": 179, "quotactl_fd": 443, "settimeofday": 164,
    "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159, "sethostname": 170, "setdomainname": 171,
    "setpriority": 141, "sched_setaffinity": 203, "sched_setscheduler": 144, "sched_setparam": 142,
    "sched_setattr": 314, "ioprio_set": 251, "kill": 62, "tkill": 200, "tgkill": 234,
    "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297, "prlimit64": 302, "socketpair": 53, "fcntl": 72,
    "ioctl": 16, "setsid": 112, "setpgid": 109,
}


@dataclass(frozen=True)
class Deny:
    """These calls always fail with EPERM."""

    names: tuple[str, ...]
    why: str


@dataclass(frozen=True)
class AllowOnlyIf:
    """The call fails with EPERM unless argument ``arg`` (its low 32 bits, which is all the kernel
    reads of an int/pid_t argument) equals ``value`` (SELF: the worker's own pid)."""

    name: str
    arg: int
    value: int
    why: str


@dataclass(frozen=True)
class DenyIf:
    """The call fails with EPERM if argument ``arg`` (low 32 bits) is one of ``values``."""

    name: str
    arg: int
    values: tuple[int, ...]
    why: str


Rule = Deny | AllowOnlyIf | DenyIf

F_SETOWN, F_SETOWN_EX = 8, 15
FIOSETOWN, SIOCSPGRP, TIOCSTI = 0x8901, 0x8902, 0x5412

RULES: tuple[Rule, ...] = (
    Deny(("execve", "execveat"), "run another program (it would start unconfined by this filter's intent)"),
    Deny(
        ("fork", "vfork", "clone", "clone3"),
        "new processes or threads: a confined process' threads are tasks in its one host thread, "
        "and a fork bomb must get nowhere (RLIMIT_NPROC=0 is the second layer)",
    ),
    Deny(
        ("open", "openat", "openat2", "creat", "open_by_handle_at", "name_to_handle_at"),
        "open anything after set-up (the empty root and Landlock deny it too)",
    ),
    Deny(
        ("socket", "connect", "bind", "listen", "accept", "accept4"),
        "network and unix sockets (the namespace has only a down loopback too)",
    ),
    AllowOnlyIf(
        "socketpair", 0, socket.AF_UNIX,
        "only a connected unix pair inside the process (trio's wake-up fd); it reaches nothing",
    ),
    Deny(
        ("ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "kcmp",
         "pidfd_open", "pidfd_getfd", "pidfd_send_signal", "process_mrelease"),
        "another process' memory, fds or signals",
    ),
    AllowOnlyIf("kill", 0, SELF, "signals to itself only (kill(0)/kill(-1) reach the group/everyone)"),
    AllowOnlyIf("tkill", 0, SELF, "signals to itself only"),
    AllowOnlyIf("tgkill", 0, SELF, "signals to itself only (raise(), abort())"),
    AllowOnlyIf("rt_sigqueueinfo", 0, SELF, "signals to itself only"),
    AllowOnlyIf("rt_tgsigqueueinfo", 0, SELF, "signals to itself only"),
    DenyIf("fcntl", 1, (F_SETOWN, F_SETOWN_EX), "SIGIO owner: the kernel would signal another process"),
    DenyIf("ioctl", 1, (FIOSETOWN, SIOCSPGRP, TIOCSTI), "SIGIO owner, or typing into a terminal"),
    AllowOnlyIf("prlimit64", 0, 0, "its own limits only (glibc's getrlimit/setrlimit pass pid 0)"),
    Deny(
        ("mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "fsopen", "fsconfig",
         "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr"),
        "mounts and namespaces: a way out of the empty root or into another namespace",
    ),
    Deny(
        ("setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid",
         "setgroups", "capset", "prctl", "seccomp", "landlock_create_ruleset", "landlock_add_rule",
         "landlock_restrict_self", "personality"),
        "identity, privileges and the confinement itself (set-up is over)",
    ),
    Deny(
        ("memfd_create", "memfd_secret", "shmget", "shmat", "shmctl", "shmdt", "semget", "semop",
         "semctl", "semtimedop", "msgget", "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink",
         "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr", "userfaultfd", "mbind",
         "set_mempolicy", "migrate_pages", "move_pages", "set_mempolicy_home_node"),
        "memory RLIMIT_AS does not count, IPC objects that outlive the process, NUMA placement",
    ),
    Deny(
        ("bpf", "perf_event_open", "keyctl", "add_key", "request_key", "io_uring_setup",
         "io_uring_enter", "io_uring_register", "io_setup", "io_destroy", "io_getevents", "io_submit",
         "io_cancel", "fanotify_init", "fanotify_mark", "modify_ldt", "ioperm", "iopl", "uselib",
         "lookup_dcookie", "syslog", "vhangup"),
        "kernel attack surface no Python program needs (io_uring would also bypass this filter)",
    ),
    Deny(
        ("init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
         "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "settimeofday", "clock_settime",
         "clock_adjtime", "adjtimex", "sethostname", "setdomainname"),
        "the machine's state",
    ),
    Deny(
        ("setpriority", "sched_setaffinity", "sched_setscheduler", "sched_setparam", "sched_setattr",
         "ioprio_set", "setsid", "setpgid"),
        "scheduling of itself or others (the host decides); a session of its own would also be a "
        "scheduler autogroup of its own, a CPU share as big as the kernel's, where all workers "
        "share the zygote's one",
    ),
)

