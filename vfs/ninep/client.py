"""A 9P2000.L client: fids, tags and the requests, over any Transport.

One Client is one 9P session: Tversion and Tattach (`connect`), then requests on fids. It knows
nothing of the file protocol's nodes (vfs/ninep/nodes.py builds those on it); what it does is
the 9P bookkeeping a server relies on:

* tags: every request in flight has its own tag (NOTAG only for Tversion), so a transport may
  multiplex by tag; a tag is reused only once its reply is in;
* fids: small integers handed out and taken back; a fid is given back after its Tclunk whatever
  the answer (9P: a clunked fid is gone even if the clunk "failed"), and `walk_to` is a context
  manager so a fid cannot leak on an error path;
* sizes: msize is negotiated at most the transport's `max_message`; reads and writes are cut
  into pieces of the fid's iounit (msize - IOHDRSZ unless the server said less);
* errors: Rlerror becomes RemoteError (an FsError with the file protocol's code, vfs/ninep/
  errors.py), a reply of the wrong type or tag and any transport failure become LinkDown, and
  after a transport failure every request fails at once with the same LinkDown.

Threads of one process run one at a time between syscalls, and the client's state changes only
between its awaits, so it needs no lock of its own: concurrency is the transport's business.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

from euralios.std import abi
from proto.ninep import (
    IOHDRSZ,
    MAXWELEM,
    MIN_MSIZE,
    NOTAG,
    VERSION,
    DecodeError,
    Dirent,
    EncodeError,
    Errno,
    GetattrMask,
    Message,
    Qid,
    QidType,
    Rattach,
    Rclunk,
    Rgetattr,
    Rlcreate,
    Rlerror,
    Rlopen,
    Rmkdir,
    Rread,
    Rreaddir,
    Rremove,
    Rrename,
    Rrenameat,
    Rsetattr,
    Rstatfs,
    Runlinkat,
    Rversion,
    Rwalk,
    Rwrite,
    SetattrMask,
    Tclunk,
    Tgetattr,
    Tlcreate,
    Tlopen,
    Tmkdir,
    Tread,
    Treaddir,
    Tremove,
    Trename,
    Trenameat,
    Tsetattr,
    Tstatfs,
    Tunlinkat,
    Tversion,
    Twalk,
    Twrite,
    attach,
    decode,
    encode,
)
from vfs.ninep.errors import LinkDown, RemoteError
from vfs.ninep.transport import Transport, TransportError

R = TypeVar("R", bound=Message)

MAX_TAG = 0xFFFE  # NOTAG (0xFFFF) is Tversion's
ROOT_FID = 0
DIR_MODE = 0o755
FILE_MODE = 0o644


class Client:
    """One 9P session over `transport`. Call `connect` first."""

    def __init__(self, transport: Transport, on_down: Callable[[LinkDown], Awaitable[None]] | None = None) -> None:
        self.transport = transport
        self.on_down = on_down  # told once, when the transport fails
        self.msize = 0
        self.root_qid: Qid | None = None
        self.down: LinkDown | None = None
        self._tags: set[int] = set()
        self._next_tag = 0
        self._free_fids: list[int] = []
        self._next_fid = ROOT_FID + 1
        self.fids_in_use = 0  # besides the root (tests check nothing leaks)
        self._no_unlinkat = False  # ... Tunlinkat: use Tremove
        self._no_renameat = False  # the server answered Trenameat EOPNOTSUPP: use Trename

    # -------------------------------------------------------------- the wire
    def _tag(self) -> int:
        for _ in range(MAX_TAG + 1):
            tag = self._next_tag
            self._next_tag = (self._next_tag + 1) % (MAX_TAG + 1)
            if tag not in self._tags:
                self._tags.add(tag)
                return tag
        raise LinkDown(abi.MEMALLOC, "every 9P tag is in flight")

    async def _fail(self, detail: str, code: int = abi.RESET) -> LinkDown:
        """The session is over: remember why (every later request fails with it), say so once."""
        if self.down is None:
            self.down = LinkDown(code, f"9P: {detail}")
            if self.on_down is not None:
                await self.on_down(self.down)
        return self.down

    async def call(self, msg: Message, expect: type[R], what: str = "") -> R:
        """Send one request, answer its reply: `expect`, or RemoteError (Rlerror), or LinkDown."""
        if self.down is not None:
            raise self.down
        tag = NOTAG if isinstance(msg, Tversion) else self._tag()
        try:
            try:
                frame = encode(msg, tag)
            except EncodeError as e:
                raise RemoteError(Errno.EINVAL, f"{what or type(msg).__name__}: {e}") from None
            if len(frame) > (self.msize or self.transport.max_message):
                raise RemoteError(Errno.EMSGSIZE, what or type(msg).__name__)  # a bug of ours, said so
            try:
                raw = await self.transport.rpc(frame)
            except TransportError as e:
                raise await self._fail(str(e), e.code) from None
            try:
                rtag, reply = decode(raw)
            except DecodeError as e:
                raise await self._fail(f"bad reply to {type(msg).__name__}: {e}") from None
        finally:
            self._tags.discard(tag)
        if rtag != tag:
            raise await self._fail(f"reply tag {rtag} to request tag {tag}")
        if isinstance(reply, Rlerror):
            raise RemoteError(reply.ecode, what or type(msg).__name__)
        if not isinstance(reply, expect):
            raise await self._fail(f"{type(reply).__name__} in reply to {type(msg).__name__}")
        return reply

    # -------------------------------------------------------------- session
    async def connect(self, msize: int, aname: str = "", uname: str = "root", n_uname: int = 0) -> Qid:
        """Tversion (msize at most the transport's) and Tattach of ROOT_FID; the root's qid."""
        want = min(msize, self.transport.max_message)
        rv = await self.call(Tversion(want, VERSION), Rversion, "version")
        if rv.version != VERSION:
            raise await self._fail(f"the server does not speak {VERSION} (it answered {rv.version!r})", abi.NOT_IMPLEMENTED)
        if not MIN_MSIZE <= rv.msize <= want:
            raise await self._fail(f"the server's msize {rv.msize} is outside {MIN_MSIZE}..{want}", abi.PARAM)
        self.msize = rv.msize
        ra = await self.call(attach(ROOT_FID, uname, aname, n_uname), Rattach, f"attach {aname!r}")
        self.root_qid = ra.qid
        return ra.qid

    @property
    def iounit(self) -> int:
        """The most data one Tread/Twrite carries."""
        return self.msize - IOHDRSZ

    # -------------------------------------------------------------- fids
    def _new_fid(self) -> int:
        self.fids_in_use += 1
        if self._free_fids:
            return self._free_fids.pop()
        fid = self._next_fid
        self._next_fid += 1
        return fid

    async def clunk(self, fid: int) -> None:
        """Forget `fid` on the server and here (here even if the server or the link fails)."""
        try:
            if self.down is None:
                await self.call(Tclunk(fid), Rclunk, "clunk")
        except (RemoteError, LinkDown):
            pass
        finally:
            self._give_back(fid)

    def _give_back(self, fid: int) -> None:
        self.fids_in_use -= 1
        self._free_fids.append(fid)

    async def walk(self, path: Sequence[str], start: int = ROOT_FID) -> tuple[int, Qid]:
        """A new fid on start/path (start: the root unless told), and the qid of what it names. RemoteError(ENOENT) when a
        component is missing (9P answers a partial Rwalk; the new fid is then not made).
        Paths longer than MAXWELEM names walk on in place, MAXWELEM names at a time."""
        what = "walk /" + "/".join(path)
        fid = self._new_fid()
        made = False  # the server knows the fid (a later step failing must clunk it)
        names = list(path)
        qid = self.root_qid if start == ROOT_FID else None
        try:
            while True:
                part, names = names[:MAXWELEM], names[MAXWELEM:]
                rw = await self.call(Twalk(start, fid, tuple(part)), Rwalk, what)
                if len(rw.wqids) != len(part):
                    # Stopped early: at a missing name, or at a file that names cannot go below.
                    stuck = rw.wqids[-1] if rw.wqids else None
                    not_dir = stuck is not None and not stuck.type & QidType.DIR
                    raise RemoteError(Errno.ENOTDIR if not_dir else Errno.ENOENT, what)
                made = True
                if rw.wqids:
                    qid = rw.wqids[-1]
                elif qid is None:  # a clone of a fid other than the root: ask what it is
                    qid = (await self.getattr(fid, GetattrMask.MODE)).qid
                start = fid
                if not names:
                    break
        except BaseException:
            if made:
                await self.clunk(fid)
            else:
                self._give_back(fid)
            raise
        assert qid is not None
        return fid, qid

    @asynccontextmanager
    async def walk_to(self, path: Sequence[str], start: int = ROOT_FID) -> AsyncIterator[tuple[int, Qid]]:
        """`walk`, clunking the fid at the end of the block whatever happens in it."""
        fid, qid = await self.walk(path, start)
        try:
            yield fid, qid
        finally:
            await self.clunk(fid)

    # -------------------------------------------------------------- requests on fids
    async def getattr(self, fid: int, mask: int = GetattrMask.BASIC) -> Rgetattr:
        return await self.call(Tgetattr(fid, mask), Rgetattr, "getattr")

    async def lopen(self, fid: int, flags: int) -> int:
        """Open `fid` for I/O; the iounit to use on it."""
        r = await self.call(Tlopen(fid, flags), Rlopen, "open")
        return self._iounit(r.iounit)

    async def lcreate(self, fid: int, name: str, flags: int, mode: int = FILE_MODE) -> tuple[Qid, int]:
        """Create file `name` in directory `fid`, which then names the new file, opened."""
        r = await self.call(Tlcreate(fid, name, flags, mode, 0), Rlcreate, f"create {name}")
        return r.qid, self._iounit(r.iounit)

    def _iounit(self, offered: int) -> int:
        return min(offered, self.iounit) if offered else self.iounit

    async def read(self, fid: int, offset: int, n: int, iounit: int = 0) -> bytes:
        """Up to n bytes from offset, in Treads of at most iounit; fewer only at the end."""
        unit = iounit or self.iounit
        parts: list[bytes] = []
        got = 0
        while got < n:
            want = min(unit, n - got)
            r = await self.call(Tread(fid, offset + got, want), Rread, "read")
            data = r.data if len(r.data) <= want else r.data[:want]
            parts.append(data)
            got += len(data)
            if len(data) < want:
                break
        # One Tread is the common case (a READ no larger than the iounit): its bytes as they
        # came, not copied twice more; several are joined once.
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def write(self, fid: int, offset: int, data: bytes, iounit: int = 0) -> int:
        """Write all of data at offset in Twrites of at most iounit; the bytes written."""
        unit = iounit or self.iounit
        view = memoryview(data)
        done = 0
        while done < len(view):
            r = await self.call(Twrite(fid, offset + done, bytes(view[done:done + unit])), Rwrite, "write")
            if r.count == 0:
                raise RemoteError(Errno.ENOSPC, "write")  # the server took nothing
            done += min(r.count, len(view) - done)
        return done

    async def readdir(self, fid: int) -> list[Dirent]:
        """Every entry of the directory opened on `fid` (without '.' and '..'), by offsets."""
        out: list[Dirent] = []
        offset = 0
        while True:
            r = await self.call(Treaddir(fid, offset, self.iounit), Rreaddir, "readdir")
            if not r.entries:
                return out
            out += [d for d in r.entries if d.name not in (".", "..")]
            offset = r.entries[-1].offset

    async def mkdir(self, dfid: int, name: str, mode: int = DIR_MODE) -> Qid:
        return (await self.call(Tmkdir(dfid, name, mode, 0), Rmkdir, f"mkdir {name}")).qid

    async def unlinkat(self, dfid: int, name: str, flags: int = 0) -> None:
        """Remove entry `name` of directory `dfid` (flags AT_REMOVEDIR for a directory):
        Tunlinkat, or 9P2000's Tremove of a fid on it on a server without it (diod 1.0)."""
        if not self._no_unlinkat:
            try:
                await self.call(Tunlinkat(dfid, name, flags), Runlinkat, f"remove {name}")
                return
            except RemoteError as e:
                if e.errno not in (Errno.EOPNOTSUPP, Errno.ENOSYS):
                    raise
                self._no_unlinkat = True
        fid, _ = await self.walk((name,), dfid)
        try:
            await self.call(Tremove(fid), Rremove, f"remove {name}")
        finally:
            self._give_back(fid)  # Tremove clunks the fid whatever its answer

    async def rename(self, dfid: int, old: str, new: str) -> None:
        """Rename entry `old` of directory `dfid` to `new`: Trenameat, or the older Trename
        (by a fid on the entry) on a server without it, such as diod 1.0."""
        if not self._no_renameat:
            try:
                await self.call(Trenameat(dfid, old, dfid, new), Rrenameat, f"rename {old} {new}")
                return
            except RemoteError as e:
                if e.errno not in (Errno.EOPNOTSUPP, Errno.ENOSYS):
                    raise
                self._no_renameat = True
        async with self.walk_to((old,), dfid) as (fid, _):
            await self.call(Trename(fid, dfid, new), Rrename, f"rename {old} {new}")

    async def truncate(self, fid: int, size: int) -> None:
        await self.call(Tsetattr(fid, SetattrMask.SIZE, 0, 0, 0, size, 0, 0, 0, 0), Rsetattr, "truncate")

    async def statfs(self, fid: int = ROOT_FID) -> Rstatfs:
        return await self.call(Tstatfs(fid), Rstatfs, "statfs")
