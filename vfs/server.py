"""A framework for file servers (the seed's server.rs): describe a tree, get the file protocol.

A server describes its tree with DirNode/FileNode objects and calls `serve`; this module speaks
the protocol of vfs/protocol.py on its behalf:

    class Hello(FileNode):
        name = "hello"
        def size(self) -> int: return 6
        async def read(self, offset: int, n: int) -> bytes: return b"hello\\n"[offset:offset + n]

    class Root(DirNode):
        name = "/"
        def __init__(self): self.hello = Hello()
        def lookup(self, name): return self.hello if name == "hello" else None
        def entries(self): return [("hello", self.hello)]

    async def main(proc):
        await serve(proc, STDIN, Root(), writable=False)

How it runs: the calling thread serves the mount handle (a directory session on the root,
shared by every client). Each OPEN makes a rendezvous pair, starts a *session thread* receiving
on one end and answers the other end to the client, so a slow client never holds up the others
and replies are routed to the right caller by the kernel (a reply goes to whoever the replying
thread received from). A session ends when the client sends CLOSE or drops its handle (the closed
rule wakes the receive with CLOSED); the thread then exits, so the server's thread count follows
its open sessions. A process has 64 thread stacks, so a server holds at most 63 sessions at once;
the next OPEN is answered ERROR(MEMALLOC) until one closes.

Robustness rules, because clients are other people's programs:
* every request gets exactly one answer if its sender waits (Message.reply), including malformed
  and unknown ones; nothing is answered to a plain send;
* every chunk and handle a message brings is freed/closed after the request (servers copy what
  they keep), and a length is checked against the size of the chunk carrying it before a byte
  is read (a read past the end would be a page fault that kills the whole server);
* a node method that raises FsError answers that error; any other exception is a server bug: it
  is answered ERROR(PARAM), reported in the kernel log (one line), and serving goes on.

Remote stores: a tree whose nodes live elsewhere (vfs/ninep/: a 9P server's) overrides the two
async hooks, DirNode.find (an OPEN walks each path component with it) and Node.refresh (asked
before a QUERY and a READ use entries(), size() and info()), so lookup() and size() may stay
plain cached answers.

Permissions: a session is writable or not. The mount root is writable when `serve` is told so;
a directory session is writable when opened with O_WRITE through a writable directory; every
mutation through a read-only one is answered ERROR_DENIED.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from euralios.std import abi
from euralios.std.carried import discard
from euralios.std.chunk import Chunk
from euralios.std.errors import SyscallError
from euralios.std.message import Memory, Message
from euralios.std.serve import Last
from euralios.std.serve import serve as serve_requests
from vfs import protocol as P
from vfs.protocol import FsError

SPAWN_TRIES = 8  # attempts to start a session thread (yielding between them) before MEMALLOC


# ---------------------------------------------------------------------- nodes
class Node:
    """Something a path can name. `name` is its entry name (the server keeps it current)."""

    name: str = ""

    def opened(self) -> None:
        """A session on this node started (e.g. to keep a deleted file's data until closed)."""

    async def closed(self) -> None:
        """A session on this node ended."""

    async def refresh(self) -> None:
        """Bring what size(), entries() and info() report up to date; called before a QUERY and
        before a READ uses them (not before a READ of a file that reads_to_its_end). A node whose store lives elsewhere (a 9P share: the host may
        change it behind our back) asks that store here; a local node is always current."""

    def info(self) -> bytes:
        """The QUERY answer (JSON text)."""
        raise NotImplementedError


class FileNode(Node):
    """A file: bytes addressed by offset. Only size() and read() are required; a node without
    write/truncate is read-only (writes answer NOT_IMPLEMENTED)."""

    #: True when read() may be asked past the size last seen and finds the end itself (fewer
    #: bytes, none at or past it): a READ then skips refresh(), which for a remote store (a 9P
    #: share) is a round trip of its own before every read.
    reads_to_its_end = False

    def size(self) -> int:
        raise NotImplementedError

    async def read(self, offset: int, n: int) -> bytes:
        """Up to n bytes from offset (offset < size(); fewer only at the end of the file)."""
        raise NotImplementedError

    async def write(self, offset: int, data: bytes) -> int:
        """Write data at offset (past the end: zero-filled gap); returns bytes written."""
        raise FsError(abi.NOT_IMPLEMENTED)

    async def append(self, data: bytes) -> int:
        """Write data at the end of the file; returns the offset it went to. Override to make it
        atomic when write() can wait (two appenders must not land on the same offset)."""
        offset = self.size()
        await self.write(offset, data)
        return offset

    async def truncate(self, size: int) -> None:
        raise FsError(abi.NOT_IMPLEMENTED)

    def check_write(self, offset: int, n: int) -> None:
        """Refuse (raise FsError) a write of n bytes at offset *before* its bytes are read.

        Reading a request's chunk costs frames (untouched pages of a sparse chunk are filled
        on first touch), so a file that cannot take the data should say so first."""

    def info(self) -> bytes:
        return P.file_info(self.name, self.size())


class DirNode(Node):
    """A directory: names to nodes. Mutators are optional (NOT_IMPLEMENTED by default); the
    framework validates names (protocol.check_name) before calling them."""

    def lookup(self, name: str) -> Node | None:
        raise NotImplementedError

    def entries(self) -> Iterable[tuple[str, Node]]:
        raise NotImplementedError

    async def find(self, name: str) -> Node | None:
        """lookup() for a store that must be asked (a walk over the network). The framework
        resolves OPEN paths with it; a local store just looks in its table."""
        return self.lookup(name)

    async def make_dir(self, name: str) -> DirNode:
        raise FsError(abi.NOT_IMPLEMENTED)

    async def make_file(self, name: str) -> FileNode:
        """Create an empty file `name` (only called when the name is free)."""
        raise FsError(abi.NOT_IMPLEMENTED)

    async def remove(self, name: str) -> None:
        raise FsError(abi.NOT_IMPLEMENTED)

    async def rename(self, old: str, new: str) -> None:
        raise FsError(abi.NOT_IMPLEMENTED)

    def info(self) -> bytes:
        subdirs: list[str] = []
        files: list[tuple[str, int]] = []
        for name, node in self.entries():
            if isinstance(node, DirNode):
                subdirs.append(name)
            elif isinstance(node, FileNode):
                files.append((name, node.size()))
        return P.dir_info(self.name, subdirs, files)


# ---------------------------------------------------------------------- sessions
class Session:
    """What one handle is open on, and with which rights."""

    mount = False

    def __init__(self, server: Server, node: Node, writable: bool) -> None:
        self.server = server
        self.node = node
        self.writable = writable

    async def handle(self, req: P.Request) -> Message:
        raise NotImplementedError


class DirSession(Session):
    async def handle(self, req: P.Request) -> Message:
        node = self.node
        assert isinstance(node, DirNode)
        srv = self.server
        if isinstance(req, P.Query):
            await node.refresh()
            return await srv.blob_reply(abi.JSON, node.info())
        if isinstance(req, P.Open):
            return await self.open(node, req)
        if isinstance(req, (P.Mkdir, P.Delete, P.Rename)):
            if not self.writable:
                return P.denied()
            text = P.decode_text(await srv.take(req.mem, req.length))
            if isinstance(req, P.Mkdir):
                await node.make_dir(P.check_name(text))
            elif isinstance(req, P.Delete):
                await node.remove(P.check_name(text))
            else:
                old, new = P.split_rename(text)
                await node.rename(old, new)
            return P.ok()
        if isinstance(req, (P.Read, P.Write)):
            raise FsError(abi.IS_DIR, "file request to a directory")
        return P.unknown()

    async def open(self, node: DirNode, req: P.Open) -> Message:
        srv = self.server
        path = P.decode_text(await srv.take(req.mem, req.length))
        parts = P.split_path(path)
        flags = req.flags
        if flags & P.WRITE_FLAGS and not self.writable:
            return P.denied()
        target: Node = node
        for i, part in enumerate(parts):
            if not isinstance(target, DirNode):
                raise FsError(abi.NOT_DIR)
            child = await target.find(part)
            if child is None:
                if i == len(parts) - 1 and flags & abi.O_CREATE:
                    child = await target.make_file(part)
                else:
                    raise FsError(abi.NOTFOUND)
            target = child
        if isinstance(target, DirNode):
            if flags & (abi.O_TRUNCATE | abi.O_APPEND):
                raise FsError(abi.IS_DIR, "truncate/append on a directory")
            session: Session = DirSession(srv, target, bool(flags & abi.O_WRITE))
        elif isinstance(target, FileNode):
            if flags & abi.O_TRUNCATE:
                await target.truncate(0)
            session = FileSession(srv, target, req.wants_write, bool(flags & abi.O_APPEND))
        else:
            raise FsError(abi.NOTFOUND)
        return await srv.start_session(session)


class MountSession(DirSession):
    """The mount handle: a directory session on the root that CLOSE does not end."""

    mount = True


class FileSession(Session):
    def __init__(self, server: Server, node: Node, writable: bool, append: bool) -> None:
        super().__init__(server, node, writable)
        self.append = append
        self.position = 0  # where the next WRITE goes (reads move it too, as a file offset does)

    async def handle(self, req: P.Request) -> Message:
        node = self.node
        assert isinstance(node, FileNode)
        srv = self.server
        if isinstance(req, P.Read):
            if node.reads_to_its_end:
                data = await node.read(req.offset, min(req.max, srv.max_read)) if req.max > 0 else b""
                if not data and req.max > 0:
                    self.position = req.offset  # at (or past) the end as the store has it now
                    raise FsError(abi.NO_DATA)
                self.position = req.offset + len(data)
                return await srv.blob_reply(abi.DATA, data)
            await node.refresh()
            size = node.size()
            if req.offset >= size:
                self.position = size
                raise FsError(abi.NO_DATA)
            n = min(req.max, size - req.offset, srv.max_read)
            data = await node.read(req.offset, n) if n else b""
            self.position = req.offset + len(data)
            return await srv.blob_reply(abi.DATA, data)
        if isinstance(req, P.Write):
            if not self.writable:
                return P.denied()
            node.check_write(node.size() if self.append else self.position, req.length)
            data = await srv.take(req.mem, req.length)
            if not data:
                return P.ok(0)
            if self.append:
                start = await node.append(data)
                n = len(data)
            else:
                start = self.position
                n = await node.write(start, data)
            self.position = start + n
            return P.ok(n)
        if isinstance(req, P.Query):
            await node.refresh()
            return await srv.blob_reply(abi.JSON, node.info())
        if isinstance(req, (P.Open, P.Mkdir, P.Delete, P.Rename)):
            raise FsError(abi.NOT_DIR, "directory request to a file")
        return P.unknown()


# ---------------------------------------------------------------------- the server
class Server:
    """Serves one tree: the mount loop, session threads, and the memory/handle plumbing."""

    def __init__(self, proc: Any, root: DirNode, writable: bool = True, max_read: int = P.MAX_READ) -> None:
        self.proc = proc
        self.sys = proc.sys
        self.root = root
        self.writable = writable
        self.max_read = max_read
        self.sessions = 0  # open sessions (threads serving them)
        self.bugs = 0  # unexpected exceptions caught (each logged to the kernel log)

    # -------------------------------------------------------------- memory in messages
    async def take(self, mem: Memory, n: int) -> bytes:
        """The first n bytes of a chunk a request brought, after checking the chunk holds them.

        The chunk itself is freed by the dispatch loop once the request is done."""
        if n == 0:
            return b""
        try:
            chunk = await Chunk.received(self.sys, mem)
        except SyscallError:
            raise FsError(abi.PARAM, "no chunk at that address") from None
        if n > chunk.size:
            raise FsError(abi.PARAM, f"length {n} longer than its chunk")
        return chunk.read(0, n)

    async def blob_reply(self, tag: int, payload: bytes) -> Message:
        """Long(tag, V(len), M(chunk)) with payload copied into a fresh chunk."""
        try:
            chunk = await Chunk.allocate(self.sys, len(payload))
        except SyscallError:
            raise FsError(abi.MEMALLOC, "no memory for the reply") from None
        if payload:
            chunk.write(0, payload)
        return Message(tag, len(payload), chunk.memory)

    # -------------------------------------------------------------- sessions
    async def start_session(self, session: Session) -> Message:
        """A rendezvous pair, a thread serving one end; the other end is the reply."""
        mine, theirs = await self.sys.new_rendezvous()
        session.node.opened()
        self.sessions += 1
        for attempt in range(SPAWN_TRIES):
            try:
                await self.proc.spawn_thread(self._session_thread, mine, session)
                return P.comm_handle(theirs)
            except SyscallError:
                # Out of thread stacks. A session that was just closed gives its stack back
                # only when its thread has run to its end: let it, then try again (a client
                # that closes one file and opens another must not see a spurious error).
                if attempt < SPAWN_TRIES - 1:
                    await self.sys.yield_()
        self.sessions -= 1
        for h in (mine, theirs):
            await self.sys.close(h)
        await session.node.closed()
        raise FsError(abi.MEMALLOC, "no thread for another session")

    async def _session_thread(self, handle: int, session: Session) -> None:
        try:
            await self.dispatch(handle, session)
        finally:
            self.sessions -= 1
            try:
                await self.sys.close(handle)
            except SyscallError:
                pass
            await session.node.closed()

    # -------------------------------------------------------------- the loop
    async def dispatch(self, handle: int, session: Session) -> None:
        """Receive and answer requests on `handle` until the session ends: CLOSE (but not on
        the mount), CLOSED (every client is gone), or any other receive error (the handle is
        unusable). A request left unanswered (a bug) frees its caller with ERROR(0)."""

        async def request(msg: Message) -> Message | Last:
            return await self.request(session, msg)

        await serve_requests(self.sys, handle, request, owed=P.error(0))

    async def request(self, session: Session, msg: Message) -> Message | Last:
        """The answer to one request; everything it carried is given back once it is done, but
        a chunk the reply hands back to the caller (a lent buffer: /tcp's READ_INTO)."""
        reply: Message | None = None
        try:
            req = P.parse(msg)
            if isinstance(req, P.Close):
                return P.ok() if session.mount else Last(P.ok())
            reply = await session.handle(req)
            return reply if reply is not None else P.unknown()
        except FsError as e:
            return e.reply
        except SyscallError as e:
            return P.error(e.code)
        except Exception as e:  # noqa: BLE001 - a server bug must not kill every session
            self.bugs += 1
            try:
                await self.sys.debug_write(f"[vfs.server] pid {self.proc.pid}: {type(e).__name__}: {e}")
            except SyscallError:
                pass
            return P.error(abi.PARAM)
        finally:
            if reply is not None and isinstance(reply.d3, Memory) and reply.d3 == msg.d3:
                msg = Message(msg.tag, msg.d2)
            await discard(self.sys, msg)


async def serve(proc: Any, handle: int, root: DirNode, writable: bool = True,
                max_read: int = P.MAX_READ) -> Server:
    """Serve `root` on `handle` (normally the mount's rendezvous, STDIN) until every client and
    the mount are gone. Session threads may outlive this call; the process ends with the last."""
    server = Server(proc, root, writable, max_read)
    await server.dispatch(handle, MountSession(server, root, writable))
    return server
