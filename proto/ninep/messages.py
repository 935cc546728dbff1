"""The 9P2000.L messages, one frozen dataclass each, fields in wire order (diod's protocol.md).

Each class carries its type number (``TYPE``); its dataclass fields, declared with the kind
helpers of :mod:`proto.ninep.fields`, are the body after ``size[4] type[1] tag[2]``. The tag is
not part of a message: it travels beside it (``encode(msg, tag)``, decoder events ``(tag, msg)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields as dc_fields
from typing import Any, ClassVar

from proto.ninep.consts import NOFID, NONUNAME, MsgType
from proto.ninep.fields import (
    Dirent,
    Kind,
    Qid,
    data,
    dirents,
    names,
    qid,
    qids,
    string,
    u16,
    u32,
    u64,
)

__all__ = [
    "Message", "Tversion", "Rversion", "Tauth", "Rauth", "Tattach", "Rattach", "Rlerror",
    "Tflush", "Rflush", "Twalk", "Rwalk", "Tgetattr", "Rgetattr", "Tsetattr", "Rsetattr",
    "Tlopen", "Rlopen", "Tlcreate", "Rlcreate", "Tread", "Rread", "Twrite", "Rwrite",
    "Treaddir", "Rreaddir", "Tmkdir", "Rmkdir", "Tunlinkat", "Runlinkat", "Trenameat",
    "Rrenameat", "Trename", "Rrename",
    "Tremove", "Rremove", "Tclunk", "Rclunk", "Tstatfs", "Rstatfs", "MESSAGE_TYPES", "layout", "attach",
]


class Message:
    """Base of every message class (for typing and isinstance)."""

    __slots__ = ()
    TYPE: ClassVar[MsgType]


MESSAGE_TYPES: dict[MsgType, type[Message]] = {}
_LAYOUT: dict[type[Message], tuple[tuple[str, Kind], ...]] = {}


def _register(cls: Any) -> Any:
    MESSAGE_TYPES[cls.TYPE] = cls
    _LAYOUT[cls] = tuple((f.name, f.metadata["kind"]) for f in dc_fields(cls))
    return cls


def layout(cls: type[Message]) -> tuple[tuple[str, Kind], ...]:
    """The (field name, kind) pairs of a message class, in wire order."""
    return _LAYOUT[cls]


# ------------------------------------------------------------------ session
@_register
@dataclass(frozen=True, slots=True)
class Tversion(Message):
    """Negotiates msize (largest message, size field included) and the version; resets the
    session (every fid is clunked). Sent with tag NOTAG."""

    TYPE: ClassVar[MsgType] = MsgType.TVERSION
    msize: int = u32()
    version: str = string()


@_register
@dataclass(frozen=True, slots=True)
class Rversion(Message):
    TYPE: ClassVar[MsgType] = MsgType.RVERSION
    msize: int = u32()
    version: str = string()


@_register
@dataclass(frozen=True, slots=True)
class Tauth(Message):
    TYPE: ClassVar[MsgType] = MsgType.TAUTH
    afid: int = u32()
    uname: str = string()
    aname: str = string()
    n_uname: int = u32()


@_register
@dataclass(frozen=True, slots=True)
class Rauth(Message):
    TYPE: ClassVar[MsgType] = MsgType.RAUTH
    aqid: Qid = qid()


@_register
@dataclass(frozen=True, slots=True)
class Tattach(Message):
    """Makes `fid` the root of the tree `aname`; afid NOFID without authentication."""

    TYPE: ClassVar[MsgType] = MsgType.TATTACH
    fid: int = u32()
    afid: int = u32()
    uname: str = string()
    aname: str = string()
    n_uname: int = u32()


@_register
@dataclass(frozen=True, slots=True)
class Rattach(Message):
    TYPE: ClassVar[MsgType] = MsgType.RATTACH
    qid: Qid = qid()


@_register
@dataclass(frozen=True, slots=True)
class Rlerror(Message):
    """The reply to any failed request: a Linux errno."""

    TYPE: ClassVar[MsgType] = MsgType.RLERROR
    ecode: int = u32()


@_register
@dataclass(frozen=True, slots=True)
class Tflush(Message):
    TYPE: ClassVar[MsgType] = MsgType.TFLUSH
    oldtag: int = u16()


@_register
@dataclass(frozen=True, slots=True)
class Rflush(Message):
    TYPE: ClassVar[MsgType] = MsgType.RFLUSH


# ------------------------------------------------------------------ names
@_register
@dataclass(frozen=True, slots=True)
class Twalk(Message):
    """Walks `wnames` (at most MAXWELEM) from `fid`; on full success `newfid` names the result
    (newfid == fid walks in place; no names clones)."""

    TYPE: ClassVar[MsgType] = MsgType.TWALK
    fid: int = u32()
    newfid: int = u32()
    wnames: tuple[str, ...] = names()


@_register
@dataclass(frozen=True, slots=True)
class Rwalk(Message):
    """One qid per name walked; fewer than asked means the walk stopped there (newfid unset)."""

    TYPE: ClassVar[MsgType] = MsgType.RWALK
    wqids: tuple[Qid, ...] = qids()


@_register
@dataclass(frozen=True, slots=True)
class Tgetattr(Message):
    TYPE: ClassVar[MsgType] = MsgType.TGETATTR
    fid: int = u32()
    request_mask: int = u64()


@_register
@dataclass(frozen=True, slots=True)
class Rgetattr(Message):
    TYPE: ClassVar[MsgType] = MsgType.RGETATTR
    valid: int = u64()
    qid: Qid = qid()
    mode: int = u32()
    uid: int = u32()
    gid: int = u32()
    nlink: int = u64()
    rdev: int = u64()
    size: int = u64()
    blksize: int = u64()
    blocks: int = u64()
    atime_sec: int = u64()
    atime_nsec: int = u64()
    mtime_sec: int = u64()
    mtime_nsec: int = u64()
    ctime_sec: int = u64()
    ctime_nsec: int = u64()
    btime_sec: int = u64()
    btime_nsec: int = u64()
    gen: int = u64()
    data_version: int = u64()


@_register
@dataclass(frozen=True, slots=True)
class Tsetattr(Message):
    """Sets what `valid` (SetattrMask) selects: mode, uid, gid, size (truncate), times."""

    TYPE: ClassVar[MsgType] = MsgType.TSETATTR
    fid: int = u32()
    valid: int = u32()
    mode: int = u32()
    uid: int = u32()
    gid: int = u32()
    size: int = u64()
    atime_sec: int = u64()
    atime_nsec: int = u64()
    mtime_sec: int = u64()
    mtime_nsec: int = u64()


@_register
@dataclass(frozen=True, slots=True)
class Rsetattr(Message):
    TYPE: ClassVar[MsgType] = MsgType.RSETATTR


# ------------------------------------------------------------------ open and I/O
@_register
@dataclass(frozen=True, slots=True)
class Tlopen(Message):
    """Opens `fid` for I/O with Linux open flags (OpenFlag)."""

    TYPE: ClassVar[MsgType] = MsgType.TLOPEN
    fid: int = u32()
    flags: int = u32()


@_register
@dataclass(frozen=True, slots=True)
class Rlopen(Message):
    """iounit: the most bytes one Tread/Twrite on this fid should move (0: msize - IOHDRSZ)."""

    TYPE: ClassVar[MsgType] = MsgType.RLOPEN
    qid: Qid = qid()
    iounit: int = u32()


@_register
@dataclass(frozen=True, slots=True)
class Tlcreate(Message):
    """Creates regular file `name` in directory `fid` and opens it; `fid` then names the file."""

    TYPE: ClassVar[MsgType] = MsgType.TLCREATE
    fid: int = u32()
    name: str = string()
    flags: int = u32()
    mode: int = u32()
    gid: int = u32()


@_register
@dataclass(frozen=True, slots=True)
class Rlcreate(Message):
    TYPE: ClassVar[MsgType] = MsgType.RLCREATE
    qid: Qid = qid()
    iounit: int = u32()


@_register
@dataclass(frozen=True, slots=True)
class Tread(Message):
    TYPE: ClassVar[MsgType] = MsgType.TREAD
    fid: int = u32()
    offset: int = u64()
    count: int = u32()


@_register
@dataclass(frozen=True, slots=True)
class Rread(Message):
    TYPE: ClassVar[MsgType] = MsgType.RREAD
    data: bytes = data()


@_register
@dataclass(frozen=True, slots=True)
class Twrite(Message):
    TYPE: ClassVar[MsgType] = MsgType.TWRITE
    fid: int = u32()
    offset: int = u64()
    data: bytes = data()


@_register
@dataclass(frozen=True, slots=True)
class Rwrite(Message):
    TYPE: ClassVar[MsgType] = MsgType.RWRITE
    count: int = u32()


@_register
@dataclass(frozen=True, slots=True)
class Treaddir(Message):
    """Entries of the directory opened on `fid`, from `offset` (0, or a Dirent.offset already
    returned), at most `count` bytes of them."""

    TYPE: ClassVar[MsgType] = MsgType.TREADDIR
    fid: int = u32()
    offset: int = u64()
    count: int = u32()


@_register
@dataclass(frozen=True, slots=True)
class Rreaddir(Message):
    """No entries: the end of the directory."""

    TYPE: ClassVar[MsgType] = MsgType.RREADDIR
    entries: tuple[Dirent, ...] = dirents()


# ------------------------------------------------------------------ directories
@_register
@dataclass(frozen=True, slots=True)
class Tmkdir(Message):
    TYPE: ClassVar[MsgType] = MsgType.TMKDIR
    dfid: int = u32()
    name: str = string()
    mode: int = u32()
    gid: int = u32()


@_register
@dataclass(frozen=True, slots=True)
class Rmkdir(Message):
    TYPE: ClassVar[MsgType] = MsgType.RMKDIR
    qid: Qid = qid()


@_register
@dataclass(frozen=True, slots=True)
class Tunlinkat(Message):
    """Removes `name` from directory `dirfid`; flags AT_REMOVEDIR for a directory."""

    TYPE: ClassVar[MsgType] = MsgType.TUNLINKAT
    dirfid: int = u32()
    name: str = string()
    flags: int = u32()


@_register
@dataclass(frozen=True, slots=True)
class Runlinkat(Message):
    TYPE: ClassVar[MsgType] = MsgType.RUNLINKAT


@_register
@dataclass(frozen=True, slots=True)
class Trenameat(Message):
    TYPE: ClassVar[MsgType] = MsgType.TRENAMEAT
    olddirfid: int = u32()
    oldname: str = string()
    newdirfid: int = u32()
    newname: str = string()


@_register
@dataclass(frozen=True, slots=True)
class Rrenameat(Message):
    TYPE: ClassVar[MsgType] = MsgType.RRENAMEAT


@_register
@dataclass(frozen=True, slots=True)
class Trename(Message):
    """Renames what `fid` names to `name` in directory `dfid`: the older 9P2000.L rename, the
    only one some servers have (diod 1.0 answers Trenameat EOPNOTSUPP)."""

    TYPE: ClassVar[MsgType] = MsgType.TRENAME
    fid: int = u32()
    dfid: int = u32()
    name: str = string()


@_register
@dataclass(frozen=True, slots=True)
class Rrename(Message):
    TYPE: ClassVar[MsgType] = MsgType.RRENAME


@_register
@dataclass(frozen=True, slots=True)
class Tremove(Message):
    """Removes what `fid` names and clunks the fid, even if the removal fails (9P2000's; the
    Linux client falls back to it where Tunlinkat is EOPNOTSUPP, as on diod 1.0)."""

    TYPE: ClassVar[MsgType] = MsgType.TREMOVE
    fid: int = u32()


@_register
@dataclass(frozen=True, slots=True)
class Rremove(Message):
    TYPE: ClassVar[MsgType] = MsgType.RREMOVE


@_register
@dataclass(frozen=True, slots=True)
class Tclunk(Message):
    TYPE: ClassVar[MsgType] = MsgType.TCLUNK
    fid: int = u32()


@_register
@dataclass(frozen=True, slots=True)
class Rclunk(Message):
    TYPE: ClassVar[MsgType] = MsgType.RCLUNK


@_register
@dataclass(frozen=True, slots=True)
class Tstatfs(Message):
    TYPE: ClassVar[MsgType] = MsgType.TSTATFS
    fid: int = u32()


@_register
@dataclass(frozen=True, slots=True)
class Rstatfs(Message):
    """statfs(2)'s fields for the file system holding the fid."""

    TYPE: ClassVar[MsgType] = MsgType.RSTATFS
    type: int = u32()
    bsize: int = u32()
    blocks: int = u64()
    bfree: int = u64()
    bavail: int = u64()
    files: int = u64()
    ffree: int = u64()
    fsid: int = u64()
    namelen: int = u32()


# Defaults a caller would otherwise repeat: Tattach/Tauth without authentication or a numeric uid.
def attach(fid: int, uname: str = "", aname: str = "", n_uname: int = NONUNAME) -> Tattach:
    """A Tattach without authentication (afid NOFID)."""
    return Tattach(fid, NOFID, uname, aname, n_uname)
