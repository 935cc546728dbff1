"""The 9P2000.L server over one host folder: a request message in, its reply message out.

This is the virtio-9p device's backend (what QEMU's ``-virtfs local,security_model=none`` is),
and nothing else: it holds the session's fids and answers each T-message with its R-message,
Rlerror(errno) when it fails. It is sans-IO towards the guest (no queues, no clock, no threads:
the device or a TCP loop moves the frames), and does blocking file I/O on the host, one request
at a time, which is how a device backend may work.

    server = ShareServer("/home/me/src", readonly=False)
    reply = server.handle(tag, Tread(fid=1, offset=0, count=4096))   # -> Rread | Rlerror
    out = server.handle_frame(frame_bytes)                          # bytes in, bytes out

Every path stays inside the folder (see hostfs.py for how): names are single components,
symlinks are never followed, '..' stops at the root. `readonly` answers EROFS to every request
that would change the host (lcreate, mkdir, unlinkat, renameat, setattr, write and any lopen that
asks for write access or truncation). Errors are Linux errno numbers (this server runs on Linux:
it needs O_PATH). A request naming an unknown fid is EBADF; a folder that vanished or was
replaced answers ENOENT (or ESTALE) and never crashes the server.

Session semantics worth knowing for a client:

* Tversion resets the session (every fid is clunked) and fixes msize (at most `max_msize`);
  iounit is msize - IOHDRSZ, so one Tread/Twrite of iounit bytes always fits.
* Tattach: afid must be NOFID (no authentication; Tauth is EOPNOTSUPP) and aname empty.
* Twalk from a file with names is ENOTDIR; a walk failing at the first name is Rlerror, at a
  later one Rwalk with the qids so far (newfid untouched). '.' stays, '..' climbs (not above the
  root). A symlink can be walked *to* (its qid type is SYMLINK) but not through or opened (ELOOP).
* Treaddir needs the directory lopen'ed; offset 0 takes a snapshot of the listing (sorted, with
  '.' and '..'), each entry's offset resumes after it, so a listing read in parts is coherent.
* Tlcreate without O_EXCL opens an existing file, as QEMU does (the Linux client adds O_EXCL when
  its caller asked for it).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from machine.share import hostfs
from machine.share.hostfs import Node
from machine.share.names import Op, check_name
from proto.ninep import (
    AT_REMOVEDIR,
    DEFAULT_MSIZE,
    HEADER_LEN,
    IOHDRSZ,
    MAXWELEM,
    MESSAGE_TYPES,
    MIN_MSIZE,
    NOFID,
    V9FS_MAGIC,
    DecodeError,
    Dirent,
    Errno,
    GetattrMask,
    Message,
    MsgType,
    OpenFlag,
    Qid,
    Rattach,
    Rclunk,
    Rflush,
    Rgetattr,
    Rlcreate,
    Rlerror,
    Rlopen,
    Rmkdir,
    Rread,
    Rreaddir,
    Rrenameat,
    Rsetattr,
    Rstatfs,
    Runlinkat,
    Rwalk,
    Rwrite,
    SetattrMask,
    Tattach,
    Tauth,
    Tclunk,
    Tflush,
    Tgetattr,
    Tlcreate,
    Tlopen,
    Tmkdir,
    Tread,
    Treaddir,
    Trenameat,
    Tsetattr,
    Tstatfs,
    Tunlinkat,
    Tversion,
    Twalk,
    Twrite,
    dirent_size,
    encode,
    negotiate,
)
from proto.ninep.codec import decode_body

__all__ = ["ShareServer", "Fail"]

log = logging.getLogger(__name__)

_RREAD_HDR = HEADER_LEN + 4  # size type tag count
_ACCESS = {OpenFlag.RDONLY: os.O_RDONLY, OpenFlag.WRONLY: os.O_WRONLY, OpenFlag.RDWR: os.O_RDWR}
# Open flags passed on to the host; the rest (CREAT in lopen, NOCTTY, NONBLOCK, CLOEXEC, DIRECT,
# NOATIME, FASYNC, LARGEFILE, NOFOLLOW) are the server's business, as in QEMU.
_PASSED = {OpenFlag.TRUNC: os.O_TRUNC, OpenFlag.APPEND: os.O_APPEND, OpenFlag.DSYNC: os.O_DSYNC,
           OpenFlag.SYNC: os.O_SYNC, OpenFlag.DIRECTORY: os.O_DIRECTORY, OpenFlag.EXCL: os.O_EXCL}


class Fail(Exception):
    """Answer Rlerror(code): raised inside a handler, caught by :meth:`ShareServer.handle`."""

    def __init__(self, code: Errno) -> None:
        super().__init__(code.name)
        self.code = code


@dataclass(slots=True)
class _Fid:
    node: Node
    file: int | None = None  # the fd for I/O once lopen'ed/lcreate'd
    access: OpenFlag = OpenFlag.RDONLY
    listing: list[Dirent] | None = field(default=None)

    def close(self) -> None:
        if self.file is not None:
            hostfs.close_quietly(self.file)
            self.file = None
        self.node.close()


def _unimplemented(mtype: int) -> bool:
    """A 9P request this server does not serve (symlink, link, xattrs, locks, 9P2000's own...)."""
    try:
        t = MsgType(mtype)
    except ValueError:
        return False
    return t.is_request and t not in MESSAGE_TYPES


def _errno(e: OSError) -> Errno:
    try:
        return Errno(e.errno or 0)
    except ValueError:
        return Errno.EIO


class ShareServer:
    """One 9P session over the host directory `path` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False,
                 max_msize: int = DEFAULT_MSIZE, max_fids: int = 1024, strict: bool = False) -> None:
        self.path = os.fspath(path)
        self.readonly = readonly
        self.max_msize = max_msize
        self.msize = max_msize
        self.max_fids = max_fids  # each fid holds up to three host fds: the guest may not exhaust ours
        self.strict = strict  # tests: let a bug in a handler raise instead of answering EIO
        self._fids: dict[int, _Fid] = {}
        self._root: Node | None = None
        self._handlers: dict[type[Message], Callable[[Message], Message]] = {
            Tversion: self._version, Tauth: self._auth, Tattach: self._attach, Tflush: self._flush,
            Twalk: self._walk, Tgetattr: self._getattr, Tsetattr: self._setattr, Tlopen: self._lopen,
            Tlcreate: self._lcreate, Tread: self._read, Twrite: self._write, Treaddir: self._readdir,
            Tmkdir: self._mkdir, Tunlinkat: self._unlinkat, Trenameat: self._renameat,
            Tclunk: self._clunk, Tstatfs: self._statfs,
        }

    # ---------------------------------------------------------------- entry points
    @property
    def iounit(self) -> int:
        return self.msize - IOHDRSZ

    @property
    def fids(self) -> int:
        """How many fids the session holds (for tests and the monitor)."""
        return len(self._fids)

    def handle(self, tag: int, msg: Message) -> Message:
        """The reply to request `msg`. Never raises (unless `strict` and a handler has a bug)."""
        handler = self._handlers.get(type(msg))
        if handler is None:
            return Rlerror(Errno.EINVAL if not msg.TYPE.is_request else Errno.EOPNOTSUPP)
        try:
            return handler(msg)
        except Fail as e:
            return Rlerror(e.code)
        except OSError as e:
            return Rlerror(_errno(e))
        except (OverflowError, ValueError) as e:  # an offset or mode the host cannot take
            if self.strict and not isinstance(e, OverflowError):
                raise
            return Rlerror(Errno.EINVAL)
        except Exception:
            if self.strict:
                raise
            log.exception("9P server: %s failed", type(msg).__name__)
            return Rlerror(Errno.EIO)

    def handle_frame(self, frame: bytes) -> bytes | None:
        """One request frame in, its reply frame out; None when the frame is too short to have a
        tag to answer. A malformed message is answered Rlerror(EINVAL), an oversized one
        Rlerror(EMSGSIZE)."""
        if len(frame) < HEADER_LEN:
            return None
        size, mtype, tag = struct.unpack_from("<IBH", frame)
        if len(frame) > self.msize:
            return encode(Rlerror(Errno.EMSGSIZE), tag)
        try:
            if size != len(frame):
                raise DecodeError("size field disagrees with the frame")
            msg = decode_body(mtype, memoryview(frame)[HEADER_LEN:])
        except DecodeError:
            code = Errno.EOPNOTSUPP if _unimplemented(mtype) else Errno.EINVAL
            return encode(Rlerror(code), tag)
        return encode(self.handle(tag, msg), tag)

    def close(self) -> None:
        """Clunk everything and let go of the folder."""
        for f in self._fids.values():
            f.close()
        self._fids.clear()
        if self._root is not None:
            self._root.close()
            self._root = None

    def __enter__(self) -> ShareServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- helpers
    def _fid(self, n: int) -> _Fid:
        f = self._fids.get(n)
        if f is None:
            raise Fail(Errno.EBADF)
        return f

    def _new_fid(self, n: int) -> None:
        if n == NOFID or n in self._fids:
            raise Fail(Errno.EINVAL)
        if len(self._fids) >= self.max_fids:
            raise Fail(Errno.EMFILE)

    def _root_node(self) -> Node:
        if self._root is None:
            raise Fail(Errno.ENOENT)
        return self._root

    def _inside(self, node: Node) -> None:
        """The directory holding `node` (itself if a directory) must still lie beneath the root:
        the host may have moved it out while the guest held a fid on it."""
        root = self._root_node()
        fd = node.fd if node.is_dir else node.parent
        if fd is None or not hostfs.is_beneath(fd, root.ident):
            raise Fail(Errno.ENOENT)

    def _dir(self, n: int) -> Node:
        node = self._fid(n).node
        if not node.is_dir:
            raise Fail(Errno.ENOTDIR)
        self._inside(node)
        return node

    def _writable(self) -> None:
        if self.readonly:
            raise Fail(Errno.EROFS)

    @staticmethod
    def _name(name: str, op: Op) -> None:
        err = check_name(name, op)
        if err is not None:
            raise Fail(err)

    def _host_flags(self, flags: int) -> tuple[OpenFlag, int]:
        access = OpenFlag(flags & OpenFlag.ACCMODE)
        if access is OpenFlag.NOACCESS:
            raise Fail(Errno.EINVAL)
        host = _ACCESS[access]
        for bit, value in _PASSED.items():
            if flags & bit:
                host |= value
        if self.readonly and (access is not OpenFlag.RDONLY or flags & (OpenFlag.TRUNC | OpenFlag.APPEND)):
            raise Fail(Errno.EROFS)
        return access, host

    # ---------------------------------------------------------------- session
    def _version(self, m: Message) -> Message:
        assert isinstance(m, Tversion)
        for f in self._fids.values():
            f.close()
        self._fids.clear()
        reply = negotiate(m, self.max_msize)
        if reply.msize < MIN_MSIZE:
            raise Fail(Errno.EMSGSIZE)
        self.msize = reply.msize
        return reply

    def _auth(self, m: Message) -> Message:
        raise Fail(Errno.EOPNOTSUPP)  # no authentication: attach with afid NOFID

    def _attach(self, m: Message) -> Message:
        assert isinstance(m, Tattach)
        self._new_fid(m.fid)
        if m.afid != NOFID:
            raise Fail(Errno.EINVAL)
        if m.aname not in ("", "/"):
            raise Fail(Errno.ENOENT)
        fresh = hostfs.open_root(self.path)  # the folder may have vanished or been replaced
        if self._root is not None and self._root.ident == fresh.ident:
            fresh.close()
        else:
            if self._root is not None:
                self._root.close()
            self._root = fresh
        node = self._root.clone()
        self._fids[m.fid] = _Fid(node)
        return Rattach(hostfs.qid_of(node.st))

    def _flush(self, m: Message) -> Message:
        return Rflush()  # every request is answered before the next is read: nothing in flight

    def _clunk(self, m: Message) -> Message:
        assert isinstance(m, Tclunk)
        self._fid(m.fid)
        self._fids.pop(m.fid).close()
        return Rclunk()

    # ---------------------------------------------------------------- walk
    def _walk(self, m: Message) -> Message:
        assert isinstance(m, Twalk)
        start = self._fid(m.fid)
        if len(m.wnames) > MAXWELEM:
            raise Fail(Errno.EINVAL)
        if m.newfid != m.fid:
            self._new_fid(m.newfid)
        if m.wnames:
            if not start.node.is_dir:
                raise Fail(Errno.ENOTDIR)
            self._inside(start.node)
        root = self._root_node()
        cur = start.node.clone()
        qids: list[Qid] = []
        try:
            for i, name in enumerate(m.wnames):
                try:
                    self._name(name, Op.WALK)
                    if not cur.is_dir:
                        raise Fail(Errno.ENOTDIR)
                    if name == ".":
                        nxt = cur.clone()
                    elif name == "..":
                        nxt = hostfs.walk_parent(cur, root)
                    else:
                        nxt = hostfs.walk_name(cur, name)
                except (Fail, OSError) as e:
                    if i == 0:
                        raise
                    log.debug("walk stopped at %r: %s", name, e)
                    cur.close()  # no fid is made: what the walk held so far is let go
                    return Rwalk(tuple(qids))
                cur.close()
                cur = nxt
                qids.append(hostfs.qid_of(cur.st))
        except BaseException:
            cur.close()
            raise
        if m.newfid == m.fid:
            self._fids.pop(m.fid).close()
        self._fids[m.newfid] = _Fid(cur)
        return Rwalk(tuple(qids))

    # ---------------------------------------------------------------- attributes
    def _getattr(self, m: Message) -> Message:
        assert isinstance(m, Tgetattr)
        st = self._fid(m.fid).node.restat()
        return Rgetattr(
            valid=int(GetattrMask.BASIC), qid=hostfs.qid_of(st), mode=st.st_mode, uid=st.st_uid,
            gid=st.st_gid, nlink=st.st_nlink, rdev=st.st_rdev, size=st.st_size,
            blksize=st.st_blksize, blocks=st.st_blocks,
            atime_sec=st.st_atime_ns // 10**9, atime_nsec=st.st_atime_ns % 10**9,
            mtime_sec=st.st_mtime_ns // 10**9, mtime_nsec=st.st_mtime_ns % 10**9,
            ctime_sec=st.st_ctime_ns // 10**9, ctime_nsec=st.st_ctime_ns % 10**9,
            btime_sec=0, btime_nsec=0, gen=0, data_version=0)

    def _setattr(self, m: Message) -> Message:
        assert isinstance(m, Tsetattr)
        node = self._fid(m.fid).node
        self._writable()
        self._inside(node)
        valid = SetattrMask(m.valid)
        st = node.restat()
        if (valid & SetattrMask.UID and m.uid != st.st_uid) or (valid & SetattrMask.GID and m.gid != st.st_gid):
            raise Fail(Errno.EPERM)  # no chown: the share is the host user's, as security_model=none
        path = hostfs.magic_path(node)
        if valid & SetattrMask.MODE:
            os.chmod(path, m.mode & 0o7777)
        if valid & SetattrMask.SIZE:
            if node.is_dir:
                raise Fail(Errno.EISDIR)
            os.truncate(path, m.size)
        if valid & (SetattrMask.ATIME | SetattrMask.MTIME):
            now = time.time_ns()
            atime = st.st_atime_ns
            mtime = st.st_mtime_ns
            if valid & SetattrMask.ATIME:
                atime = m.atime_sec * 10**9 + m.atime_nsec if valid & SetattrMask.ATIME_SET else now
            if valid & SetattrMask.MTIME:
                mtime = m.mtime_sec * 10**9 + m.mtime_nsec if valid & SetattrMask.MTIME_SET else now
            os.utime(path, ns=(atime, mtime))
        return Rsetattr()

    def _statfs(self, m: Message) -> Message:
        assert isinstance(m, Tstatfs)
        node = self._fid(m.fid).node
        s = os.fstatvfs(node.fd)
        return Rstatfs(V9FS_MAGIC, s.f_bsize, s.f_blocks, s.f_bfree, s.f_bavail, s.f_files,
                       s.f_ffree, s.f_fsid & 0xFFFFFFFFFFFFFFFF, s.f_namemax)

    # ---------------------------------------------------------------- open and I/O
    def _lopen(self, m: Message) -> Message:
        assert isinstance(m, Tlopen)
        f = self._fid(m.fid)
        if f.file is not None:
            raise Fail(Errno.EBADF)
        access, host = self._host_flags(m.flags)
        if f.node.is_dir and (access is not OpenFlag.RDONLY or m.flags & (OpenFlag.TRUNC | OpenFlag.APPEND)):
            raise Fail(Errno.EISDIR)
        self._inside(f.node)
        f.file = hostfs.reopen(f.node, host, self._root_node())
        f.access = access
        f.listing = None
        return Rlopen(hostfs.qid_of(f.node.restat()), self.iounit)

    def _lcreate(self, m: Message) -> Message:
        assert isinstance(m, Tlcreate)
        f = self._fid(m.fid)
        if f.file is not None:
            raise Fail(Errno.EBADF)
        self._writable()
        directory = self._dir(m.fid)
        self._name(m.name, Op.CREATE)
        access, host = self._host_flags(m.flags)
        host &= ~os.O_DIRECTORY
        fd = os.open(m.name, host | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK,
                     m.mode & 0o7777, dir_fd=directory.fd)
        try:
            st = os.stat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise Fail(Errno.EOPNOTSUPP)
            os.set_blocking(fd, True)
            node = hostfs.walk_name(directory, m.name)
            if node.ident != (st.st_dev, st.st_ino):
                node.close()
                raise Fail(Errno.ESTALE)
        except BaseException:
            os.close(fd)
            raise
        f.node.close()
        f.node, f.file, f.access = node, fd, access
        return Rlcreate(hostfs.qid_of(st), self.iounit)

    def _open_file(self, n: int) -> tuple[_Fid, int]:
        f = self._fid(n)
        if f.node.is_dir:
            raise Fail(Errno.EISDIR)
        if f.file is None:
            raise Fail(Errno.EBADF)
        return f, f.file

    def _read(self, m: Message) -> Message:
        assert isinstance(m, Tread)
        f, fd = self._open_file(m.fid)
        if f.access is OpenFlag.WRONLY:
            raise Fail(Errno.EBADF)
        count = min(m.count, self.msize - _RREAD_HDR)
        return Rread(os.pread(fd, count, m.offset))

    def _write(self, m: Message) -> Message:
        assert isinstance(m, Twrite)
        f, fd = self._open_file(m.fid)
        self._writable()
        if f.access is OpenFlag.RDONLY:
            raise Fail(Errno.EBADF)
        return Rwrite(os.pwrite(fd, m.data, m.offset))

    def _readdir(self, m: Message) -> Message:
        assert isinstance(m, Treaddir)
        f = self._fid(m.fid)
        if not f.node.is_dir:
            raise Fail(Errno.ENOTDIR)
        if f.file is None:
            raise Fail(Errno.EBADF)
        if m.offset == 0 or f.listing is None:
            f.listing = self._listing(f)
        budget = min(m.count, self.msize - _RREAD_HDR)
        out: list[Dirent] = []
        for d in f.listing[m.offset:]:
            size = dirent_size(d.name)
            if size > budget:
                break
            budget -= size
            out.append(d)
        if not out and m.offset < len(f.listing):
            raise Fail(Errno.EINVAL)  # count too small for the next entry: not the end
        return Rreaddir(tuple(out))

    def _listing(self, f: _Fid) -> list[Dirent]:
        assert f.file is not None
        root = self._root_node()
        self._inside(f.node)
        here = os.stat(f.file)
        if (here.st_dev, here.st_ino) == root.ident:
            up = here
        else:
            parent = hostfs.walk_parent(f.node, root)
            up = parent.st
            parent.close()
        entries = [(".", here), ("..", up)]
        for name in sorted(os.listdir(f.file)):
            try:
                entries.append((name, os.stat(name, dir_fd=f.file, follow_symlinks=False)))
            except OSError as e:  # gone since the listing: skip it
                if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                    raise
        return [Dirent(hostfs.qid_of(st), i + 1, hostfs.dirent_type(st), name)
                for i, (name, st) in enumerate(entries)]

    # ---------------------------------------------------------------- directories
    def _mkdir(self, m: Message) -> Message:
        assert isinstance(m, Tmkdir)
        self._fid(m.dfid)
        self._writable()
        directory = self._dir(m.dfid)
        self._name(m.name, Op.CREATE)
        os.mkdir(m.name, m.mode & 0o7777, dir_fd=directory.fd)
        return Rmkdir(hostfs.qid_of(os.stat(m.name, dir_fd=directory.fd, follow_symlinks=False)))

    def _unlinkat(self, m: Message) -> Message:
        assert isinstance(m, Tunlinkat)
        self._fid(m.dirfid)
        self._writable()
        directory = self._dir(m.dirfid)
        if m.flags & ~AT_REMOVEDIR:
            raise Fail(Errno.EINVAL)
        self._name(m.name, Op.UNLINK)
        if m.flags & AT_REMOVEDIR:
            os.rmdir(m.name, dir_fd=directory.fd)
        else:
            os.unlink(m.name, dir_fd=directory.fd)
        return Runlinkat()

    def _renameat(self, m: Message) -> Message:
        assert isinstance(m, Trenameat)
        self._fid(m.olddirfid)
        self._fid(m.newdirfid)
        self._writable()
        old, new = self._dir(m.olddirfid), self._dir(m.newdirfid)
        self._name(m.oldname, Op.RENAME)
        self._name(m.newname, Op.RENAME)
        os.rename(m.oldname, m.newname, src_dir_fd=old.fd, dst_dir_fd=new.fd)
        self._renamed(old, m.oldname, new, m.newname)
        return Rrenameat()

    def _renamed(self, old: Node, oldname: str, new: Node, newname: str) -> None:
        """Fids on a renamed file follow it (they reopen by parent and name)."""
        for f in self._fids.values():
            n = f.node
            if n.parent is None or n.is_dir or n.name != oldname:
                continue
            pst = os.stat(n.parent)
            if (pst.st_dev, pst.st_ino) != old.ident:
                continue
            fd = os.dup(new.fd)
            hostfs.close_quietly(n.parent)
            n.parent, n.name = fd, newname

