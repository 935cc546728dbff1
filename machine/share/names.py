"""Which names a guest may use, and the errno each operation answers for a bad one.

A 9P name is one path component. Anything that would make the host resolve more than one
component -- a '/', a NUL (the host's C string would end there), the empty name -- is refused
before it reaches a system call, with the numbers QEMU's 9p server answers (hw/9pfs/9p.c's
name_is_illegal gives ENOENT; '.' and '..' get per-operation answers, as Linux's own VFS gives
for mkdir/unlink/rename of them). Length is the host's problem (ENAMETOOLONG from the call).
"""

from __future__ import annotations

from enum import Enum

from proto.ninep import Errno

__all__ = ["Op", "check_name"]


class Op(Enum):
    """What a name is about to be used for (the errno for '.'/'..' depends on it)."""

    WALK = "walk"
    CREATE = "create"  # lcreate, mkdir
    UNLINK = "unlink"
    RENAME = "rename"


_DOTS = {
    Op.CREATE: (Errno.EEXIST, Errno.EEXIST),
    Op.UNLINK: (Errno.EINVAL, Errno.ENOTEMPTY),
    Op.RENAME: (Errno.EISDIR, Errno.EISDIR),
}


def check_name(name: str, op: Op) -> Errno | None:
    """None if `name` is one plain component usable for `op`, else the errno to answer.

    For WALK, '.' and '..' are allowed (the caller handles them without asking the host)."""
    if not name or "/" in name or "\0" in name:
        return Errno.ENOENT
    if name in (".", ".."):
        if op is Op.WALK:
            return None
        dot, dotdot = _DOTS[op]
        return dot if name == "." else dotdot
    return None
