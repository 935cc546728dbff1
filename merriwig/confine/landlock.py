"""Landlock: a ruleset that handles every access right the kernel knows and grants none.

With no rules added, a handled right is denied everywhere: no file or directory can be read,
written, executed, created, removed, renamed, truncated or ioctl'd through a new open (ABI 1-5's
filesystem rights); no TCP bind/connect (ABI 4); no signal to, and no abstract unix socket of, a
process outside the domain (ABI 6 scopes). Rights newer than the ABI 7 set this file knows cannot be
named, so on a newer kernel the known set is handled and the version is reported as it is.

Called through raw syscalls (444-446 on x86_64) because nothing in the standard library wraps them;
the ABI version comes from ``landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)``.
"""

from __future__ import annotations

import ctypes
import os

from merriwig.confine.libc import NR_LANDLOCK_CREATE_RULESET, NR_LANDLOCK_RESTRICT_SELF, syscall

CREATE_RULESET_VERSION = 1 << 0

# handled_access_fs bits by the ABI version that introduced them
_FS_ABI1 = (1 << 13) - 1  # EXECUTE .. MAKE_SYM: the 13 rights of Linux 5.13
ACCESS_FS_REFER = 1 << 13  # ABI 2: link/rename across directories
ACCESS_FS_TRUNCATE = 1 << 14  # ABI 3
ACCESS_FS_IOCTL_DEV = 1 << 15  # ABI 5
ACCESS_NET_BIND_TCP = 1 << 0  # ABI 4
ACCESS_NET_CONNECT_TCP = 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6
KNOWN_ABI = 7  # ABI 7 added audit-log flags, no new rights


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


def abi_version() -> int:
    """The Landlock ABI version of the running kernel; OSError (ENOSYS, EOPNOTSUPP) if none."""
    return syscall(NR_LANDLOCK_CREATE_RULESET, None, 0, CREATE_RULESET_VERSION)


def handled_fs(abi: int) -> int:
    """Every filesystem right of ``abi``."""
    rights = _FS_ABI1
    if abi >= 2:
        rights |= ACCESS_FS_REFER
    if abi >= 3:
        rights |= ACCESS_FS_TRUNCATE
    if abi >= 5:
        rights |= ACCESS_FS_IOCTL_DEV
    return rights


def describe(abi: int) -> str:
    """What a ruleset for ``abi`` covers, for the probe's and the refusal's one line."""
    parts = ["fs"]
    if abi >= 4:
        parts.append("tcp")
    if abi >= 6:
        parts.append("signal+abstract-unix scope")
    newer = f" (rights newer than ABI {KNOWN_ABI} not handled)" if abi > KNOWN_ABI else ""
    return f"ABI {abi}: " + ", ".join(parts) + " denied" + newer


def restrict_self(abi: int) -> None:
    """Put this process (it must have no_new_privs) in a domain where nothing is allowed."""
    attr = _RulesetAttr(handled_fs(abi), 0, 0)
    size = ctypes.sizeof(ctypes.c_uint64)
    if abi >= 4:
        attr.handled_access_net = ACCESS_NET_BIND_TCP | ACCESS_NET_CONNECT_TCP
        size += ctypes.sizeof(ctypes.c_uint64)
    if abi >= 6:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        size += ctypes.sizeof(ctypes.c_uint64)
    ruleset = syscall(NR_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0)
    try:
        syscall(NR_LANDLOCK_RESTRICT_SELF, ruleset, 0)
    finally:
        os.close(ruleset)
