"""9P's errors as the file protocol's: an Rlerror's Linux errno, and a transport that failed.

A 9P2000.L server answers a failed request with Rlerror(errno). The file protocol
(vfs/protocol.py) has its own, smaller set of codes (euralios.std.abi); a client of the mount
sees those, so each errno maps to the code that says the same thing to a user: ENOENT is "Not
found", EACCES/EPERM/EROFS are the protocol's refusal (ERROR_DENIED), ENOTEMPTY "Directory not
empty", and so on. An errno with no counterpart is PARAM; the errno stays in the error's detail
(and in `RemoteError.errno`) for whoever logs it.
"""

from __future__ import annotations

from euralios.std import abi
from proto.ninep import Errno
from vfs.protocol import FsError

ERRNO_CODES: dict[int, int] = {
    Errno.ENOENT: abi.NOTFOUND,
    Errno.ESTALE: abi.NOTFOUND,  # the host folder (or a directory in it) was removed or replaced
    Errno.ENXIO: abi.NOTFOUND,
    Errno.ENODEV: abi.NOTFOUND,
    Errno.EACCES: abi.DENIED,
    Errno.EPERM: abi.DENIED,
    Errno.EROFS: abi.DENIED,
    Errno.ETXTBSY: abi.DENIED,
    Errno.ENOTEMPTY: abi.NOT_EMPTY,
    Errno.EISDIR: abi.IS_DIR,
    Errno.ENOTDIR: abi.NOT_DIR,
    Errno.EEXIST: abi.EXISTS,
    Errno.ENOSPC: abi.MEMALLOC,
    Errno.EDQUOT: abi.MEMALLOC,
    Errno.ENOMEM: abi.MEMALLOC,
    Errno.EFBIG: abi.MEMALLOC,
    Errno.ENOSYS: abi.NOT_IMPLEMENTED,
    Errno.EOPNOTSUPP: abi.NOT_IMPLEMENTED,
    Errno.ECONNREFUSED: abi.REFUSED,
}


def fs_code(errno: int) -> int:
    """The file protocol's error code for a Linux errno."""
    return ERRNO_CODES.get(errno, abi.PARAM)


def errno_name(errno: int) -> str:
    try:
        return Errno(errno).name
    except ValueError:
        return f"errno {errno}"


class RemoteError(FsError):
    """The 9P server refused a request (Rlerror)."""

    def __init__(self, errno: int, what: str) -> None:
        super().__init__(fs_code(errno), f"{what}: {errno_name(errno)}")
        self.errno = errno


class LinkDown(FsError):
    """The transport failed: no request can be carried any more."""
