"""The few raw Linux calls confinement needs that Python's os module does not offer (3.11).

Everything goes through libc's ``syscall()``/``prctl()`` via ctypes so that a failure comes back as
an OSError carrying errno, exactly like the os module's calls; the confinement steps turn those
into one-line refusals. Numbers are x86_64's (the only architecture the seccomp filter knows).
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

# x86_64 system call numbers used directly (the filter's own table is in policy.py)
NR_CAPGET = 125
NR_CAPSET = 126
NR_CHROOT = 161
NR_UNSHARE = 272
NR_SECCOMP = 317
NR_LANDLOCK_CREATE_RULESET = 444
NR_LANDLOCK_RESTRICT_SELF = 446

# clone(2)/unshare(2) flags
CLONE_NEWIPC = 0x0800_0000
CLONE_NEWUSER = 0x1000_0000
CLONE_NEWNET = 0x4000_0000

# prctl(2) options
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39

def _check(result: int) -> int:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def syscall(nr: int, *args: object) -> int:
    """``syscall(nr, args...)``: the result, or OSError(errno). Integers pass as C longs, anything
    else (pointers, byref, arrays) as ctypes passes it."""
    cargs = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    return _check(_libc.syscall(ctypes.c_long(nr), *cargs))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """``prctl(option, ...)``: the result, or OSError(errno)."""
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5))


def unshare(flags: int) -> None:
    """Move this process into new namespaces of the kinds in ``flags`` (os.unshare is 3.12+)."""
    syscall(NR_UNSHARE, flags)


def chroot(path: bytes) -> None:
    """chroot(2) through the raw call, so it needs no os.chroot availability check."""
    syscall(NR_CHROOT, ctypes.c_char_p(path))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_LINUX_CAPABILITY_VERSION_3 = 0x2008_0522


def drop_capabilities() -> None:
    """Empty this process' effective, permitted and inheritable capability sets (all 64 bits)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    syscall(NR_CAPSET, ctypes.byref(header), data)


def capabilities() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) as 64-bit masks, read back with capget(2)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    syscall(NR_CAPGET, ctypes.byref(header), data)
    return (
        data[0].effective | data[1].effective << 32,
        data[0].permitted | data[1].permitted << 32,
        data[0].inheritable | data[1].inheritable << 32,
    )
