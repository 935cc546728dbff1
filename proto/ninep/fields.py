"""The 9P field kinds and their little-endian encodings, the qid and the readdir entry.

A message is a sequence of fields, each of one :class:`Kind`: integers of 1, 2, 4 or 8 bytes,
strings ``s[2]`` (a 2-byte length, then that many UTF-8 bytes, no NUL), qids ``qid[13]``, and
the three counted arrays 9P2000.L uses (``count[4] data[count]``, ``nwname[2] nwname*(wname[s])``,
``nwqid[2] nwqid*(qid[13])``) plus Rreaddir's ``count[4]`` of packed directory entries.

Strings are kept as ``str``. Bytes that are not UTF-8 (a host file name can be any bytes but NUL
and '/') decode with ``surrogateescape``, so every name round-trips exactly and the server can
hand the same bytes back to the host.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from proto.ninep.consts import QID_LEN, DirentType, QidType

__all__ = [
    "Kind", "Qid", "Dirent", "DecodeError", "EncodeError", "NinepError", "Reader",
    "put", "u8", "u16", "u32", "u64", "string", "qid", "data", "names", "qids", "dirents",
    "dirent_size", "encode_dirents", "decode_dirents", "str_bytes",
]


class NinepError(ValueError):
    """The codec's one exception family: a frame or message that cannot be what it claims."""


class DecodeError(NinepError):
    """Bytes that are not a valid 9P2000.L message (truncated, trailing bytes, bad string...)."""


class EncodeError(NinepError):
    """A message whose fields do not fit the wire (an integer out of range, a name too long)."""


class Kind(Enum):
    """How one message field is laid out on the wire."""

    U8 = "u8"
    U16 = "u16"
    U32 = "u32"
    U64 = "u64"
    STR = "s"
    QID = "qid"
    DATA = "data"  # count[4] data[count]
    NAMES = "names"  # nwname[2] nwname*(wname[s])
    QIDS = "qids"  # nwqid[2] nwqid*(qid[13])
    DIRENTS = "dirents"  # count[4] then packed dirents (Rreaddir)


_INT = {Kind.U8: struct.Struct("<B"), Kind.U16: struct.Struct("<H"), Kind.U32: struct.Struct("<I"),
        Kind.U64: struct.Struct("<Q")}
_QID = struct.Struct("<BIQ")
_DIRENT_FIXED = struct.Struct("<BIQQB")  # qid[13] offset[8] type[1]


@dataclass(frozen=True, slots=True)
class Qid:
    """The server's unique name for a file: type, version (changes when the file does), path."""

    type: QidType = QidType.FILE
    version: int = 0
    path: int = 0

    @property
    def is_dir(self) -> bool:
        return bool(self.type & QidType.DIR)


@dataclass(frozen=True, slots=True)
class Dirent:
    """One Rreaddir entry: ``qid[13] offset[8] type[1] name[s]``. `offset` is where the next
    Treaddir should resume to get the entries after this one."""

    qid: Qid
    offset: int
    type: DirentType
    name: str


# Field declarations for the message dataclasses: the Kind travels in the field's metadata.
def _f(kind: Kind) -> Any:
    return field(metadata={"kind": kind})


def u8() -> Any:
    return _f(Kind.U8)


def u16() -> Any:
    return _f(Kind.U16)


def u32() -> Any:
    return _f(Kind.U32)


def u64() -> Any:
    return _f(Kind.U64)


def string() -> Any:
    return _f(Kind.STR)


def qid() -> Any:
    return _f(Kind.QID)


def data() -> Any:
    return _f(Kind.DATA)


def names() -> Any:
    return _f(Kind.NAMES)


def qids() -> Any:
    return _f(Kind.QIDS)


def dirents() -> Any:
    return _f(Kind.DIRENTS)


def str_bytes(text: str) -> bytes:
    """A 9P string's bytes (surrogate-escaped bytes come back as themselves)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as e:
        raise EncodeError(f"string not encodable: {text!r}") from e


def _put_str(out: bytearray, text: str) -> None:
    raw = str_bytes(text)
    if len(raw) > 0xFFFF:
        raise EncodeError(f"string of {len(raw)} bytes is longer than s[2] allows")
    out += _INT[Kind.U16].pack(len(raw))
    out += raw


def _put_qid(out: bytearray, q: Qid) -> None:
    try:
        out += _QID.pack(int(q.type), q.version, q.path)
    except (struct.error, TypeError) as e:
        raise EncodeError(f"qid out of range: {q}") from e


def dirent_size(name: str) -> int:
    """Bytes one entry named `name` takes in Rreaddir data (for packing up to `count`)."""
    return _DIRENT_FIXED.size + 2 + len(str_bytes(name))


def encode_dirents(entries: tuple[Dirent, ...] | list[Dirent]) -> bytes:
    out = bytearray()
    for d in entries:
        try:
            out += _DIRENT_FIXED.pack(int(d.qid.type), d.qid.version, d.qid.path, d.offset, int(d.type))
        except (struct.error, TypeError) as e:
            raise EncodeError(f"dirent out of range: {d}") from e
        _put_str(out, d.name)
    return bytes(out)


def decode_dirents(raw: bytes) -> tuple[Dirent, ...]:
    """Rreaddir data -> entries. DecodeError on a truncated entry or an unknown entry type."""
    r = Reader(raw)
    entries = []
    while not r.at_end:
        qtype, version, path, offset, dtype = r.fixed(_DIRENT_FIXED)
        name = r.string()
        try:
            kind = DirentType(dtype)
        except ValueError as e:
            raise DecodeError(f"unknown dirent type {dtype}") from e
        entries.append(Dirent(Qid(QidType(qtype), version, path), offset, kind, name))
    return tuple(entries)


def put(out: bytearray, kind: Kind, value: Any) -> None:
    """Append `value` encoded as `kind`. EncodeError when it does not fit."""
    if kind in _INT:
        try:
            out += _INT[kind].pack(int(value))
        except (struct.error, TypeError) as e:
            raise EncodeError(f"{value!r} does not fit {kind.value}") from e
    elif kind is Kind.STR:
        if not isinstance(value, str):
            raise EncodeError(f"not a string: {value!r}")
        _put_str(out, value)
    elif kind is Kind.QID:
        _put_qid(out, value)
    elif kind is Kind.DATA:
        raw = bytes(value)
        if len(raw) > 0xFFFFFFFF:
            raise EncodeError("data too long")
        out += _INT[Kind.U32].pack(len(raw))
        out += raw
    elif kind is Kind.NAMES:
        if len(value) > 0xFFFF:
            raise EncodeError("too many names")
        out += _INT[Kind.U16].pack(len(value))
        for n in value:
            put(out, Kind.STR, n)
    elif kind is Kind.QIDS:
        if len(value) > 0xFFFF:
            raise EncodeError("too many qids")
        out += _INT[Kind.U16].pack(len(value))
        for q in value:
            _put_qid(out, q)
    else:  # Kind.DIRENTS
        raw = encode_dirents(value)
        out += _INT[Kind.U32].pack(len(raw))
        out += raw


class Reader:
    """A cursor over one message body; every short read is a DecodeError."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes | memoryview) -> None:
        self.buf = memoryview(buf)
        self.pos = 0

    @property
    def at_end(self) -> bool:
        return self.pos >= len(self.buf)

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise DecodeError(f"truncated: wanted {n} bytes at {self.pos}, have {len(self.buf) - self.pos}")
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out

    def fixed(self, st: struct.Struct) -> tuple[Any, ...]:
        return st.unpack(self.take(st.size))

    def int(self, kind: Kind) -> int:
        value: int = self.fixed(_INT[kind])[0]
        return value

    def string(self) -> str:
        raw = self.take(self.int(Kind.U16))
        try:
            return raw.decode("utf-8", "surrogateescape")
        except UnicodeDecodeError as e:  # pragma: no cover - surrogateescape accepts any bytes
            raise DecodeError("bad string") from e

    def qid(self) -> Qid:
        qtype, version, path = self.fixed(_QID)
        return Qid(QidType(qtype), version, path)

    def get(self, kind: Kind) -> Any:
        if kind in _INT:
            return self.int(kind)
        if kind is Kind.STR:
            return self.string()
        if kind is Kind.QID:
            return self.qid()
        if kind is Kind.DATA:
            return self.take(self.int(Kind.U32))
        if kind is Kind.NAMES:
            return tuple(self.string() for _ in range(self.int(Kind.U16)))
        if kind is Kind.QIDS:
            return tuple(self.qid() for _ in range(self.int(Kind.U16)))
        return decode_dirents(self.take(self.int(Kind.U32)))


assert _QID.size == QID_LEN
