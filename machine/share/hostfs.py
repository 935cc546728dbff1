"""Confined access to one host directory: every object reached through a directory fd.

The rule that makes confinement hold: no host path is ever built and opened. Each object the
guest holds is an ``O_PATH`` file descriptor; the next one is opened *relative to it*, one
validated name at a time, with ``O_NOFOLLOW``, so the kernel never resolves a symlink, a '/', or a
'..' on the guest's behalf. A symlink inside the share is an object of its own (its qid says
SYMLINK) that cannot be walked through or opened (ELOOP). '..' is handled here, not by the host:
from the share's root it stays at the root, and anywhere else the parent is checked to still lie
beneath the root (the host may have moved a directory out of the share while the guest held it).

Opening for I/O reopens the object by its name in its parent directory, again with O_NOFOLLOW and
O_NONBLOCK (a FIFO swapped in cannot hang the device), and checks that the file opened is the
very inode that was walked (ESTALE otherwise): what was checked is what is used.

This module does blocking host I/O; the virtio-9p device is allowed that (it is the backend).
Errors surface as OSError with the host's errno; the server maps them to Linux numbers.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from proto.ninep import DirentType, Qid, QidType

__all__ = [
    "Node", "open_root", "walk_name", "walk_parent", "is_beneath", "reopen", "qid_of",
    "dirent_type", "magic_path", "close_quietly",
]

_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_FLAGS = _PATH_FLAGS | os.O_DIRECTORY


@dataclass(slots=True)
class Node:
    """One walked object: its O_PATH fd, its stat at walk time, and where it was found (the
    parent directory's O_PATH fd and its name there; None and "" for the share's root). The
    Node owns both fds."""

    fd: int
    st: os.stat_result
    parent: int | None = None
    name: str = ""

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.st.st_mode)

    @property
    def ident(self) -> tuple[int, int]:
        return (self.st.st_dev, self.st.st_ino)

    def restat(self) -> os.stat_result:
        self.st = os.stat(self.fd)
        return self.st

    def clone(self) -> Node:
        """An independent copy (fds duplicated): fids are clunked one by one."""
        fd = os.dup(self.fd)
        try:
            parent = os.dup(self.parent) if self.parent is not None else None
        except OSError:
            os.close(fd)
            raise
        return Node(fd, self.st, parent, self.name)

    def close(self) -> None:
        close_quietly(self.fd)
        if self.parent is not None:
            close_quietly(self.parent)


def close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def open_root(path: str) -> Node:
    """The share's root. The configured path is the host user's own choice, so it may itself be
    reached through symlinks; everything below it is not."""
    fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return Node(fd, os.stat(fd))


def walk_name(base: Node, name: str) -> Node:
    """The entry `name` of directory `base`, not following it if it is a symlink. `name` must
    already be validated (one component, not '.' or '..')."""
    if not base.is_dir:
        raise OSError(errno.ENOTDIR, "not a directory")
    if base.is_symlink:  # pragma: no cover - a symlink is never a directory here
        raise OSError(errno.ELOOP, "symlink")
    fd = os.open(name, _PATH_FLAGS, dir_fd=base.fd)
    try:
        st = os.stat(fd)
        parent = os.dup(base.fd)
    except OSError:
        os.close(fd)
        raise
    return Node(fd, st, parent, name)


def is_beneath(fd: int, root: tuple[int, int], limit: int = 4096) -> bool:
    """Whether directory `fd` still lies beneath the share's root (dev, ino): climb '..' from it
    until the root (yes) or the host's own '/' (no)."""
    cur = os.dup(fd)
    try:
        for _ in range(limit):
            st = os.stat(cur)
            if (st.st_dev, st.st_ino) == root:
                return True
            up = os.open("..", _DIR_FLAGS, dir_fd=cur)
            ust = os.stat(up)
            os.close(cur)
            cur = up
            if (ust.st_dev, ust.st_ino) == (st.st_dev, st.st_ino):
                return False  # '/' is its own parent
        return False
    finally:
        close_quietly(cur)


def walk_parent(node: Node, root: Node) -> Node:
    """'..' of `node`: the root for the root itself, else the parent if it is still inside."""
    if node.ident == root.ident:
        return root.clone()
    if not node.is_dir:
        raise OSError(errno.ENOTDIR, "not a directory")
    fd = os.open("..", _DIR_FLAGS, dir_fd=node.fd)
    try:
        if not is_beneath(fd, root.ident):
            raise OSError(errno.ENOENT, "moved outside the share")
        st = os.stat(fd)
        if (st.st_dev, st.st_ino) == root.ident:
            return Node(fd, st)
        parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
    except OSError:
        os.close(fd)
        raise
    return Node(fd, st, parent, "")


def reopen(node: Node, flags: int, root: Node) -> int:
    """An fd for I/O on exactly the walked object. Directories reopen through their own O_PATH
    fd ('.'); other objects by name in their parent, O_NOFOLLOW, then the inode is compared."""
    if node.is_symlink:
        raise OSError(errno.ELOOP, "symlink")
    flags |= os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
    if node.is_dir:
        fd = os.open(".", flags | os.O_DIRECTORY, dir_fd=node.fd)
    elif not stat.S_ISREG(node.st.st_mode):
        raise OSError(errno.EOPNOTSUPP, "not a regular file or directory")
    elif node.parent is None:  # pragma: no cover - only the root has no parent, and it is a dir
        raise OSError(errno.ESTALE, "no parent")
    else:
        fd = os.open(node.name, flags, dir_fd=node.parent)
    try:
        st = os.stat(fd)
        if (st.st_dev, st.st_ino) != node.ident:
            raise OSError(errno.ESTALE, "replaced since it was walked")
        if not stat.S_ISDIR(st.st_mode):
            os.set_blocking(fd, True)
    except OSError:
        os.close(fd)
        raise
    return fd


def magic_path(node: Node) -> str:
    """/proc/self/fd/N for an O_PATH fd: names exactly that inode (no lookup by name), for the
    calls Linux has no fd form of on O_PATH fds (chmod, truncate, utimens). Never a symlink."""
    if node.is_symlink:
        raise OSError(errno.EOPNOTSUPP, "symlink")
    return f"/proc/self/fd/{node.fd}"


def qid_of(st: os.stat_result) -> Qid:
    """qid.path is the inode, qid.version folds the mtime (it changes when the file does)."""
    if stat.S_ISDIR(st.st_mode):
        qtype = QidType.DIR
    elif stat.S_ISLNK(st.st_mode):
        qtype = QidType.SYMLINK
    else:
        qtype = QidType.FILE
    version = (st.st_mtime_ns // 1_000_000_000) ^ (st.st_mtime_ns % 1_000_000_000) ^ (st.st_size << 8)
    return Qid(qtype, version & 0xFFFFFFFF, st.st_ino & 0xFFFFFFFFFFFFFFFF)


def dirent_type(st: os.stat_result) -> DirentType:
    try:
        return DirentType(stat.S_IFMT(st.st_mode) >> 12)
    except ValueError:
        return DirentType.UNKNOWN
