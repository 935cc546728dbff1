"""A 9P tree as vfs/server.py nodes: the file protocol served from a remote folder, lazily.

Nothing is read ahead: a node is a *path* from the attach root (plus what the last look at it
said: file or directory, size), and each request asks the server then. An OPEN of a/b/c walks
a, b, c (DirNode.find, one Twalk and a Tclunk per component); a listing (QUERY) reads that one
directory (Treaddir) and asks each file's size (Tgetattr); a file session opens an I/O fid the
first time it reads (O_RDONLY) or writes (O_WRONLY) and clunks them when its last session
closes, so a file the host lets us only read or only write behaves as it would on the host.

Why paths and not long-lived fids: vfs/server.py makes a node for every component it looks up
and never says when it is done with one (only sessions are opened and closed), so a node that
held a walked fid would leak it. A path costs one walk per use and survives nothing being
cached; a rename or removal made on the host shows at the next request (NOTFOUND if the path
is gone, as a path-based server answers).

The file protocol's rules are kept here where 9P's differ: DELETE removes files and empty
directories alike (Tunlinkat with AT_REMOVEDIR for a directory); RENAME replaces a file only by
a file (any other clash is EXISTS, where POSIX would replace an empty directory); O_CREATE makes
the file with O_EXCL, so a name the host created meanwhile is EXISTS, not a silent open.
"""

from __future__ import annotations

from collections.abc import Iterable

from euralios.std import abi
from proto.ninep import AT_REMOVEDIR, OpenFlag, Qid, QidType
from vfs.ninep.client import Client
from vfs.ninep.errors import RemoteError
from vfs.protocol import FsError
from vfs.server import DirNode, FileNode, Node

Path = tuple[str, ...]


class Tree:
    """One attached 9P tree: its client and its root node."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.root = NinepDir(self, (), "/")

    def node(self, path: Path, qid: Qid, size: int = 0) -> NinepDir | NinepFile:
        name = path[-1] if path else "/"
        if qid.type & QidType.DIR:
            return NinepDir(self, path, name)
        return NinepFile(self, path, name, size)


def _is_dir(qid: Qid) -> bool:
    return bool(qid.type & QidType.DIR)


class NinepDir(DirNode):
    def __init__(self, tree: Tree, path: Path, name: str) -> None:
        self.tree = tree
        self.path = path
        self.name = name
        self._listing: dict[str, NinepDir | NinepFile] = {}  # as the last refresh() saw it

    @property
    def client(self) -> Client:
        return self.tree.client

    # -------------------------------------------------------------- looking
    def lookup(self, name: str) -> Node | None:
        return self._listing.get(name)

    def entries(self) -> Iterable[tuple[str, Node]]:
        return self._listing.items()

    async def find(self, name: str) -> Node | None:
        try:
            async with self.client.walk_to((*self.path, name)) as (_, qid):
                return self.tree.node((*self.path, name), qid)
        except RemoteError as e:
            if e.code == abi.NOTFOUND:
                return None
            raise

    async def refresh(self) -> None:
        """Read this directory's entries, and each file's size."""
        c = self.client
        listing: dict[str, NinepDir | NinepFile] = {}
        async with c.walk_to(self.path) as (dfid, qid):
            if not _is_dir(qid):
                raise FsError(abi.NOT_DIR, "/".join(self.path))
            async with c.walk_to((), dfid) as (lfid, _):
                await c.lopen(lfid, OpenFlag.RDONLY | OpenFlag.DIRECTORY)
                dirents = await c.readdir(lfid)
            for d in dirents:
                path = (*self.path, d.name)
                if _is_dir(d.qid):
                    listing[d.name] = NinepDir(self.tree, path, d.name)
                    continue
                try:
                    async with c.walk_to((d.name,), dfid) as (ffid, _):
                        size = (await c.getattr(ffid)).size
                except RemoteError as e:
                    if e.code == abi.NOTFOUND:
                        continue  # gone between the listing and the look
                    raise
                listing[d.name] = NinepFile(self.tree, path, d.name, size)
        self._listing = listing

    async def _qid(self, dfid: int, name: str) -> Qid | None:
        """The qid of entry `name` of the directory on `dfid`, None if there is none."""
        try:
            async with self.client.walk_to((name,), dfid) as (_, qid):
                return qid
        except RemoteError as e:
            if e.code == abi.NOTFOUND:
                return None
            raise

    # -------------------------------------------------------------- changing
    async def make_dir(self, name: str) -> DirNode:
        async with self.client.walk_to(self.path) as (dfid, _):
            await self.client.mkdir(dfid, name)
        d = self._listing[name] = NinepDir(self.tree, (*self.path, name), name)
        return d

    async def make_file(self, name: str) -> FileNode:
        async with self.client.walk_to(self.path) as (fid, _):
            # The fid becomes the new file, opened; walk_to's clunk closes it again.
            await self.client.lcreate(fid, name, OpenFlag.WRONLY | OpenFlag.CREAT | OpenFlag.EXCL)
        f = self._listing[name] = NinepFile(self.tree, (*self.path, name), name, 0)
        return f

    async def remove(self, name: str) -> None:
        async with self.client.walk_to(self.path) as (dfid, _):
            qid = await self._qid(dfid, name)
            if qid is None:
                raise FsError(abi.NOTFOUND, name)
            await self.client.unlinkat(dfid, name, AT_REMOVEDIR if _is_dir(qid) else 0)
        self._listing.pop(name, None)

    async def rename(self, old: str, new: str) -> None:
        async with self.client.walk_to(self.path) as (dfid, _):
            source = await self._qid(dfid, old)
            if source is None:
                raise FsError(abi.NOTFOUND, old)
            if old == new:
                return
            target = await self._qid(dfid, new)
            if target is not None and (_is_dir(source) or _is_dir(target)):
                raise FsError(abi.EXISTS, new)
            await self.client.rename(dfid, old, new)
        node = self._listing.pop(old, None)
        if node is not None:
            node.path, node.name = (*self.path, new), new
            self._listing[new] = node


class NinepFile(FileNode):
    reads_to_its_end = True  # a Tread past the end answers no bytes: no getattr before each READ

    def __init__(self, tree: Tree, path: Path, name: str, size: int) -> None:
        self.tree = tree
        self.path = path
        self.name = name
        self._size = size  # as last seen: refresh() asks again before every QUERY, a read updates it
        self._fids: dict[bool, tuple[int, int]] = {}  # for writing? -> (open fid, iounit)
        self.opens = 0

    @property
    def client(self) -> Client:
        return self.tree.client

    def size(self) -> int:
        return self._size

    async def refresh(self) -> None:
        c = self.client
        for fid, _ in self._fids.values():
            self._size = (await c.getattr(fid)).size
            return
        async with c.walk_to(self.path) as (fid, _):
            self._size = (await c.getattr(fid)).size

    # -------------------------------------------------------------- sessions
    def opened(self) -> None:
        self.opens += 1

    async def closed(self) -> None:
        self.opens -= 1
        if self.opens <= 0:
            fids, self._fids = self._fids, {}
            for fid, _ in fids.values():
                await self.client.clunk(fid)

    async def _io(self, write: bool) -> tuple[int, int]:
        """The fid open for reading (or writing), opened on first use."""
        got = self._fids.get(write)
        if got is not None:
            return got
        c = self.client
        fid, _ = await c.walk(self.path)
        try:
            unit = await c.lopen(fid, OpenFlag.WRONLY if write else OpenFlag.RDONLY)
        except BaseException:
            await c.clunk(fid)
            raise
        theirs = self._fids.get(write)
        if theirs is not None:  # another session thread opened one while we waited
            await c.clunk(fid)
            return theirs
        self._fids[write] = (fid, unit)
        return fid, unit

    # -------------------------------------------------------------- bytes
    async def read(self, offset: int, n: int) -> bytes:
        fid, unit = await self._io(False)
        data = await self.client.read(fid, offset, n, unit)
        # What the read saw of the size (a short read ends the file), for QUERY and appends.
        end = offset + len(data)
        self._size = end if len(data) < n else max(self._size, end)
        return data

    async def write(self, offset: int, data: bytes) -> int:
        fid, unit = await self._io(True)
        n = await self.client.write(fid, offset, data, unit)
        self._size = max(self._size, offset + n)
        return n

    async def append(self, data: bytes) -> int:
        """At the end as the server sees it now (not atomic against writers on the host)."""
        await self.refresh()
        offset = self._size
        await self.write(offset, data)
        return offset

    async def truncate(self, size: int) -> None:
        async with self.client.walk_to(self.path) as (fid, _):
            await self.client.truncate(fid, size)
        self._size = size

