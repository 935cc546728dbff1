"""exec's parameter string (spec §6.2), parsed into an ExecParams.

The seed's exec takes a byte string of one-letter clauses saying what the child's VFS is; EuraliOS-py
adds clauses for its arguments, environment, exit notification, owner and name:

    S / C / N        the child's VFS is the caller's own (shared), a copy of it, or a new empty one
    -PATH:           remove the newest mount at PATH (from a copy: the seed modified the caller's
                     own table [quirk])
    m<h><d>PATH:     mount the caller's handle h at PATH (d: any one byte after the digits, `|`)
    A<a>0x03<b>NUL   the argument list
    E<k=v>0x03..NUL  the environment
    X<h><d>          send Short(MSG_EXIT, pid, status) on handle h when the child ends
    U<user>NUL       the child's owner (only root may name another user)
    n<name>NUL       the process name
    Q<frames><d>     the child's frame quota: at most the caller's own (only root may raise it)

The parser is pure: it reads the bytes and returns what they say, touching no mount table and no
handle. The kernel (Kernel.exec_syscall) then checks the handles, builds the child's VFS by
replaying `vfs` in order, and takes what the child gets only once everything checked out; so a
malformed clause anywhere leaves the caller exactly as it was.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from merriwig import abi
from merriwig.errors import SyscallFail


class VfsBase(enum.Enum):
    """Which table a child's VFS starts from (the seed's S, C and N clauses)."""

    SHARED = "S"
    COPY = "C"
    NEW = "N"


@dataclass(frozen=True, slots=True)
class Umount:
    """`-PATH:`: remove the newest mount at path."""

    path: str


@dataclass(frozen=True, slots=True)
class Mount:
    """`m<h>|PATH:`: mount the caller's handle at path (committed after every check passed)."""

    handle: int
    path: str


VfsStep = VfsBase | Umount | Mount


@dataclass(frozen=True, slots=True)
class ExecParams:
    """Everything an exec parameter string says, in the order its VFS clauses came."""

    vfs: tuple[VfsStep, ...] = ()
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    notify: tuple[int, ...] = ()
    user: str = ""  # "": the caller's
    name: str = ""  # "": from args[0] or the image
    quota: int | None = None  # None: the caller's

    @property
    def mounts(self) -> list[Mount]:
        return [s for s in self.vfs if isinstance(s, Mount)]


_BASES = {ord(b.value): b for b in VfsBase}


def parse_exec_params(params: bytes) -> ExecParams:
    """Parse an exec parameter string; SyscallFail(PARAM or UTF8) if it is malformed."""
    vfs: list[VfsStep] = []
    args: list[str] = []
    env: dict[str, str] = {}
    notify: list[int] = []
    user = ""
    name = ""
    quota: int | None = None
    i = 0
    n = len(params)

    def until(stop: int) -> bytes:
        nonlocal i
        j = params.find(bytes([stop]), i)
        if j < 0:
            raise SyscallFail(abi.PARAM, "unterminated exec parameter")
        out = params[i:j]
        i = j + 1
        return out

    def text(b: bytes) -> str:
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            raise SyscallFail(abi.UTF8) from None

    def number() -> int:
        nonlocal i
        j = i
        while j < n and 0x30 <= params[j] <= 0x39:
            j += 1
        if j == i or j >= n:
            raise SyscallFail(abi.PARAM, "bad handle number in exec parameters")
        value = int(params[i:j])
        i = j + 1  # the delimiter after the digits
        return value

    while i < n:
        c = params[i]
        i += 1
        if c in _BASES:
            vfs.append(_BASES[c])
        elif c == ord("-"):
            vfs.append(Umount(text(until(ord(":")))))
        elif c == ord("m"):
            h = number()
            vfs.append(Mount(h, text(until(ord(":")))))
        elif c == ord("A"):
            args = [a.decode("utf-8", "replace") for a in until(0).split(b"\x03")]
        elif c == ord("E"):
            for rec in until(0).split(b"\x03"):
                if b"=" in rec:
                    k, v = rec.split(b"=", 1)
                    env[k.decode("utf-8", "replace")] = v.decode("utf-8", "replace")
        elif c == ord("X"):
            notify.append(number())
        elif c == ord("U"):
            user = text(until(0))
        elif c == ord("n"):
            name = text(until(0))
        elif c == ord("Q"):
            quota = number()
        else:
            raise SyscallFail(abi.PARAM, f"bad exec parameter byte {c:#x}")
    return ExecParams(tuple(vfs), args, env, tuple(notify), user, name, quota)
