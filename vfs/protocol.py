"""The file protocol: the messages a file server understands, and the replies it sends.

Clients speak it through euralios.std.fs (proc.open, File.read/write/query, proc.mkdir...);
servers speak it through vfs.server. This module is sans-IO: it turns a received Message into a
request object (or a ProtocolError saying which error to answer) and builds reply Messages. It
never touches memory or handles, so it cannot fault and is tested without booting anything.

Handles
-------
A file server is mounted at a path (say /ramdisk). The *mount handle* is shared by every client
and behaves as a directory session on the server's root. OPEN on a directory answers a handle to
a new, private *session*: a file session or a directory session. A session lives until the
client sends CLOSE or drops its handle (the closed rule then wakes the server's session thread).

Requests (words: V = plain value, M = memory chunk; n = number of meaningful bytes in the chunk)
------------------------------------------------------------------------------------------------
To a directory (the mount or a directory session):

  OPEN    Long(OPEN_TAG | flags, V(n), M(path))     -> Long(COMM_HANDLE, Handle(session), V(0))
          flags: O_WRITE 1, O_CREATE 2, O_TRUNCATE 4, O_APPEND 8 (tag 16..31).
          `path` is UTF-8, relative to this directory, may hold several components; a leading
          '/', doubled and trailing slashes are ignored, '.' is this directory, '..' is refused
          (PARAM: a session is a capability for a subtree and must not reach above it). An empty
          path opens this directory again. Opening a directory gives a directory session
          (writable with O_WRITE); O_TRUNCATE or O_APPEND on a directory is IS_DIR. O_CREATE on a
          missing last component creates an empty file. Errors: NOTFOUND (missing component),
          NOT_DIR (a file used as a directory), PARAM (bad name or path), UTF8 (path not UTF-8),
          MEMALLOC (the server has no room for another session thread).
  QUERY   Short(QUERY, 0, 0)                        -> Long(JSON, V(n), M(text))
          {"name": ..., "type": "dir", "subdirs": [{"name"}...], "files": [{"name", "size"}...]},
          both lists sorted by name.
  MKDIR   Long(MKDIR, V(n), M(name))                -> Short(OK, 0, 0)
  DELETE  Long(DELETE, V(n), M(name))               -> Short(OK, 0, 0)
          Removes a file or an *empty* directory; a non-empty directory is ERROR(NOT_EMPTY). A
          deleted file stays readable and writable through sessions already open on it.
  RENAME  Long(RENAME, V(n), M(b"old\\0new"))        -> Short(OK, 0, 0)
          Within this directory. A file renamed onto a file replaces it (as POSIX rename does, so
          a save can be atomic); any other clash with an existing name is EXISTS.
          Names: non-empty UTF-8 without '/' or NUL, not '.' or '..', at most MAX_NAME bytes.
          Errors: EXISTS, NOTFOUND, PARAM (bad name), UTF8.

To a file session:

  READ    Short(READ, offset, max)                  -> Long(DATA, V(n), M(bytes))
          n = min(max, size - offset, MAX_READ) bytes from `offset`; ERROR(NO_DATA) when
          offset >= size (so an empty file reads as b""). The session position moves to the end
          of what was returned (to the end of the file when there was nothing).
  WRITE   Long(WRITE, V(n), M(bytes))               -> Short(OK, n, 0)
          Writes at the session position (0 after OPEN, the end of the file before every write
          with O_APPEND), then advances it. Writing past the end fills the gap with zeros.
          MEMALLOC when the server is out of space (said before the data is read); PARAM when
          n is larger than the chunk carrying it.
  QUERY   Short(QUERY, 0, 0)                        -> Long(JSON, V(n), M(text))
          {"name": ..., "type": "file", "size": ...}

To any session:

  CLOSE   Short(CLOSE_TAG, 0, 0), sent without waiting: the session ends, no reply (answered OK
          if the sender waits anyway). CLOSE on the shared mount handle is ignored.

Errors and refusals
-------------------
  Short(ERROR, code, 0)           failure with an error code (euralios.std.abi.ERROR_TEXT)
  Short(ERROR_DENIED, 0, 0)       a mutation (MKDIR, DELETE, RENAME, an OPEN with any flag,
                                  WRITE) through a read-only session or mount (std: error 17)
  Short(ERROR, PARAM, 0)          a known request with the wrong shape (a value where a chunk
                                  belongs, a length longer than the chunk that carries it...)
  Short(ERROR, IS_DIR, 0)         a file request (READ, WRITE) sent to a directory
  Short(ERROR, NOT_DIR, 0)        a directory request sent to a file session
  Short(ERROR_UNKNOWN_MESSAGE, 0, 0)  a tag this protocol does not have

Only requests sent with send_receive (Message.reply) are answered. Chunks and handles a request
carries are the server's once received: it frees/closes whatever it does not keep.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from euralios.std.abi import (
    CLOSE_TAG,
    COMM_HANDLE,
    DATA,
    DELETE,
    DENIED,
    ERROR,
    ERROR_DENIED,
    ERROR_UNKNOWN_MESSAGE,
    EXISTS,
    JSON,
    MEMALLOC,
    MKDIR,
    NO_DATA,
    NOT_DIR,
    NOT_IMPLEMENTED,
    NOTFOUND,
    O_APPEND,
    O_CREATE,
    O_READ,
    O_TRUNCATE,
    O_WRITE,
    OK,
    OPEN_TAG,
    PARAM,
    QUERY,
    READ,
    RENAME,
    UTF8,
    WRITE,
)
from euralios.std.message import Handle, Memory, Message

__all__ = [
    # re-exported constants
    "CLOSE_TAG", "COMM_HANDLE", "DATA", "DELETE", "DENIED", "ERROR", "ERROR_DENIED",
    "ERROR_UNKNOWN_MESSAGE", "EXISTS", "JSON", "MEMALLOC", "MKDIR", "NO_DATA", "NOT_DIR",
    "NOT_IMPLEMENTED", "NOTFOUND", "O_APPEND", "O_CREATE", "O_READ", "O_TRUNCATE", "O_WRITE", "OK",
    "OPEN_TAG", "PARAM", "QUERY", "READ", "RENAME", "UTF8", "WRITE",
    # limits and helpers
    "MAX_NAME", "MAX_PATH", "MAX_READ", "OPEN_FLAGS", "WRITE_FLAGS",
    "ProtocolError", "FsError", "Request", "Open", "Read", "Write", "Query", "Close", "Mkdir",
    "Delete", "Rename", "Unknown", "parse", "decode_text", "check_name", "split_path",
    "split_rename", "ok", "error", "denied", "unknown", "comm_handle", "data", "json_reply",
    "error_reply", "dir_info", "file_info",
]

OPEN_FLAGS = O_WRITE | O_CREATE | O_TRUNCATE | O_APPEND  # the low four bits of an OPEN tag
WRITE_FLAGS = OPEN_FLAGS  # every flag asks to change something: refused on read-only directories
MAX_NAME = 255  # bytes in one name
MAX_PATH = 4096  # bytes in an OPEN path (and in a RENAME's "old\0new")
MAX_READ = 16 << 20  # bytes in one DATA reply: a client asking for "everything" gets it in parts


# ---------------------------------------------------------------------- errors
class FsError(Exception):
    """A request failed with an error code (answered Short(ERROR, code, 0)).

    Raised by server code and by node implementations; `denied` answers ERROR_DENIED instead,
    the protocol's distinct refusal for mutations through a read-only handle."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(detail or f"error {code}")
        self.code = code

    @property
    def reply(self) -> Message:
        return error_reply(self.code)


class ProtocolError(FsError):
    """The message itself is wrong (shape, length, encoding): the request never reaches a node."""


def error_reply(code: int) -> Message:
    """The reply for error `code`: DENIED becomes the protocol's ERROR_DENIED message."""
    if code == DENIED:
        return denied()
    if code == ERROR_UNKNOWN_MESSAGE:
        return unknown()
    return error(code)


# ---------------------------------------------------------------------- requests
@dataclass(frozen=True, slots=True)
class Request:
    """A parsed request. `msg` is the message it came from (its chunk and handles included)."""

    msg: Message


@dataclass(frozen=True, slots=True)
class Open(Request):
    flags: int
    length: int
    mem: Memory

    @property
    def wants_write(self) -> bool:
        """Writing to the file (O_APPEND implies O_WRITE)."""
        return bool(self.flags & (O_WRITE | O_APPEND))


@dataclass(frozen=True, slots=True)
class Read(Request):
    offset: int
    max: int


@dataclass(frozen=True, slots=True)
class Write(Request):
    length: int
    mem: Memory


@dataclass(frozen=True, slots=True)
class Query(Request):
    pass


@dataclass(frozen=True, slots=True)
class Close(Request):
    pass


@dataclass(frozen=True, slots=True)
class Mkdir(Request):
    length: int
    mem: Memory


@dataclass(frozen=True, slots=True)
class Delete(Request):
    length: int
    mem: Memory


@dataclass(frozen=True, slots=True)
class Rename(Request):
    length: int
    mem: Memory


@dataclass(frozen=True, slots=True)
class Unknown(Request):
    """A tag this protocol does not have (answered ERROR_UNKNOWN_MESSAGE)."""


def _value(w: Any) -> int | None:
    return w if isinstance(w, int) and not isinstance(w, bool) else None


def _named(msg: Message, cls: type, max_len: int) -> Request:
    """Long(tag, V(n), M(bytes)) with 0 < n <= max_len (names and paths)."""
    n = _value(msg.d2)
    if n is None or not isinstance(msg.d3, Memory):
        raise ProtocolError(PARAM, f"tag {msg.tag}: expected (length, chunk)")
    if not 0 <= n <= max_len:
        raise ProtocolError(PARAM, f"tag {msg.tag}: length {n} out of range")
    return cls(msg, n, msg.d3)


def parse(msg: Message) -> Request:
    """The request a message carries; ProtocolError if it is a known request of the wrong shape.

    The length a message claims is only range-checked here; the server still checks it against
    the size of the chunk that carries it (Chunk.received asks the kernel: chunk_info) before reading."""
    tag = msg.tag
    if OPEN_TAG <= tag < OPEN_TAG + 16:
        n = _value(msg.d2)
        if n is None or not isinstance(msg.d3, Memory):
            raise ProtocolError(PARAM, "open: expected (length, path chunk)")
        if not 0 <= n <= MAX_PATH:
            raise ProtocolError(PARAM, f"open: path length {n} out of range")
        return Open(msg, tag & OPEN_FLAGS, n, msg.d3)
    if tag == READ:
        off, mx = _value(msg.d2), _value(msg.d3)
        if off is None or mx is None or off < 0 or mx < 0:
            raise ProtocolError(PARAM, "read: expected (offset, max)")
        return Read(msg, off, mx)
    if tag == WRITE:
        n = _value(msg.d2)
        if n is None or not isinstance(msg.d3, Memory) or n < 0:
            raise ProtocolError(PARAM, "write: expected (length, data chunk)")
        return Write(msg, n, msg.d3)
    if tag == QUERY:
        return Query(msg)
    if tag == CLOSE_TAG:
        return Close(msg)
    if tag == MKDIR:
        return _named(msg, Mkdir, MAX_NAME)
    if tag == DELETE:
        return _named(msg, Delete, MAX_NAME)
    if tag == RENAME:
        return _named(msg, Rename, MAX_PATH)
    return Unknown(msg)



# ---------------------------------------------------------------------- names and paths
def decode_text(raw: bytes) -> str:
    """UTF-8 text of a name or path; ProtocolError(UTF8) otherwise."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(UTF8, "not UTF-8") from None


def check_name(name: str) -> str:
    """A single directory entry name, or ProtocolError(PARAM)."""
    if (not name or name in (".", "..") or "/" in name or "\0" in name
            or len(name.encode()) > MAX_NAME):
        raise ProtocolError(PARAM, f"bad name {name!r}")
    return name


def split_path(path: str) -> list[str]:
    """The components of an OPEN path: empty components and '.' vanish, '..' is refused."""
    parts = [p for p in path.split("/") if p and p != "."]
    for p in parts:
        check_name(p)
    return parts


def split_rename(text: str) -> tuple[str, str]:
    """(old, new) from a RENAME's "old\\0new"."""
    old, sep, new = text.partition("\0")
    if not sep:
        raise ProtocolError(PARAM, "rename: expected old\\0new")
    return check_name(old), check_name(new)


# ---------------------------------------------------------------------- replies
def ok(n: int = 0) -> Message:
    return Message(OK, n, 0)


def error(code: int) -> Message:
    return Message(ERROR, code, 0)


def denied() -> Message:
    return Message(ERROR_DENIED, 0, 0)


def unknown() -> Message:
    return Message(ERROR_UNKNOWN_MESSAGE, 0, 0)


def comm_handle(handle: int) -> Message:
    return Message(COMM_HANDLE, Handle(handle), 0)


def data(n: int, vaddr: int) -> Message:
    return Message(DATA, n, Memory(vaddr))


def json_reply(n: int, vaddr: int) -> Message:
    return Message(JSON, n, Memory(vaddr))


def dir_info(name: str, subdirs: list[str], files: list[tuple[str, int]]) -> bytes:
    """The QUERY text of a directory: entries sorted by name (not reversed: the seed's [quirk])."""
    return json.dumps({
        "name": name,
        "type": "dir",
        "subdirs": [{"name": d} for d in sorted(subdirs)],
        "files": [{"name": f, "size": s} for f, s in sorted(files)],
    }).encode()


def file_info(name: str, size: int) -> bytes:
    return json.dumps({"name": name, "type": "file", "size": size}).encode()

