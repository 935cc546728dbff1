"""A minimal 9P client over machine.share.ShareServer for tests: every call goes through the
wire (encode -> handle_frame -> decode), so the server is tested as the device will drive it."""

from __future__ import annotations

from machine.share import ShareServer
from proto.ninep import (
    NOTAG,
    VERSION,
    Message,
    OpenFlag,
    Rlerror,
    Rread,
    Rreaddir,
    Tclunk,
    Tlopen,
    Tread,
    Treaddir,
    Tversion,
    Twalk,
    attach,
    decode,
    encode,
)


class Client:
    def __init__(self, server: ShareServer, msize: int = 131072) -> None:
        self.server = server
        self.tag = 0
        self.next_fid = 1
        r = self.call(Tversion(msize, VERSION), tag=NOTAG)
        assert r.version == VERSION, r
        self.root = self.fresh()
        r = self.call(attach(self.root))
        assert not isinstance(r, Rlerror), r

    def fresh(self) -> int:
        self.next_fid += 1
        return self.next_fid

    def call(self, msg: Message, tag: int | None = None) -> Message:
        if tag is None:
            self.tag = (self.tag + 1) % 0xFFFF
            tag = self.tag
        out = self.server.handle_frame(encode(msg, tag))
        assert out is not None
        rtag, reply = decode(out)
        assert rtag == tag
        return reply

    def walk(self, *names: str, fid: int | None = None) -> tuple[int, Message]:
        newfid = self.fresh()
        return newfid, self.call(Twalk(self.root if fid is None else fid, newfid, names))

    def open(self, *names: str, flags: int = OpenFlag.RDONLY) -> int | Rlerror:
        fid, r = self.walk(*names)
        if isinstance(r, Rlerror):
            return r
        if len(getattr(r, "wqids", ())) != len(names):
            return Rlerror(0)
        r = self.call(Tlopen(fid, flags))
        if isinstance(r, Rlerror):
            self.call(Tclunk(fid))
            return r
        return fid

    def read_all(self, fid: int, chunk: int = 8192) -> bytes:
        out = b""
        while True:
            r = self.call(Tread(fid, len(out), chunk))
            assert isinstance(r, Rread), r
            if not r.data:
                return out
            out += r.data

    def listdir(self, *names: str, count: int = 8192) -> list[str]:
        """Every name of a directory (without '.' and '..'), read in Treaddir parts."""
        fid = self.open(*names)
        assert isinstance(fid, int), fid
        got: list[str] = []
        offset = 0
        while True:
            r = self.call(Treaddir(fid, offset, count))
            assert isinstance(r, Rreaddir), r
            if not r.entries:
                break
            got += [d.name for d in r.entries]
            offset = r.entries[-1].offset
        self.call(Tclunk(fid))
        return [n for n in got if n not in (".", "..")]

    def clunk(self, fid: int) -> Message:
        return self.call(Tclunk(fid))


def err(reply: Message) -> int | None:
    """The errno of an Rlerror reply, None for anything else."""
    return reply.ecode if isinstance(reply, Rlerror) else None



class ShareTransport:
    """A vfs.ninep Transport whose rpc is a call into a ShareServer (the share in-process).
    `vanish()` makes it fail as a dead link would: every later rpc raises TransportError."""

    def __init__(self, server: ShareServer, max_message: int = 65536) -> None:
        self.server = server
        self.max_message = max_message
        self.calls = 0
        self.dead = False

    async def rpc(self, request: bytes) -> bytes:
        from vfs.ninep import TransportError

        if self.dead:
            raise TransportError("the share went away")
        self.calls += 1
        out = self.server.handle_frame(request)
        if out is None:
            raise TransportError("no reply")
        return out

    def vanish(self) -> None:
        self.dead = True


__all__ = ["Client", "ShareTransport", "err"]
