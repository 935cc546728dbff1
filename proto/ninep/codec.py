"""Framing: ``size[4] type[1] tag[2] body``, little-endian; the encoder and the sans-IO decoder.

``encode(msg, tag)`` gives one frame. ``decode(frame)`` parses exactly one (DecodeError on
anything wrong). :class:`Decoder` is the incremental form for a byte stream (TCP, a pipe):
``feed(data)``, then ``next_event()`` until it answers :data:`NEED_DATA`. It never raises; what
goes wrong becomes an event, in two kinds, because they call for different answers:

* :class:`BadMessage` -- the frame's size was sound, so the stream is still in step, but its body
  is not a 9P2000.L message (unknown type, truncated field, trailing bytes). A server answers
  ``Rlerror`` to ``tag`` and carries on.
* :class:`StreamError` -- the size field itself is impossible (smaller than a header or larger
  than the negotiated msize). Nothing after it can be trusted: the decoder stays broken and the
  connection should be closed.

Version negotiation (:func:`negotiate`) is here too because both ends must agree on it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum
from typing import Final

from proto.ninep.consts import DEFAULT_MSIZE, HEADER_LEN, MIN_MSIZE, VERSION, VERSION_UNKNOWN, MsgType
from proto.ninep.fields import DecodeError, EncodeError, Reader, put
from proto.ninep.messages import MESSAGE_TYPES, Message, Rversion, Tversion, layout

__all__ = [
    "encode", "decode", "decode_body", "Decoder", "Frame", "BadMessage", "StreamError",
    "StreamErrorKind", "NeedData", "NEED_DATA", "Event", "negotiate",
]

_HDR = struct.Struct("<IBH")


def encode(msg: Message, tag: int) -> bytes:
    """One whole frame for `msg` with `tag`. EncodeError if a field does not fit its kind."""
    if not 0 <= tag <= 0xFFFF:
        raise EncodeError(f"tag {tag} is not 16 bits")
    body = bytearray()
    for name, kind in layout(type(msg)):
        put(body, kind, getattr(msg, name))
    size = HEADER_LEN + len(body)
    if size > 0xFFFFFFFF:
        raise EncodeError("message larger than size[4] allows")
    return _HDR.pack(size, int(msg.TYPE), tag) + bytes(body)


def decode_body(mtype: int, body: bytes | memoryview) -> Message:
    """The message of type `mtype` whose fields are exactly `body`. DecodeError otherwise."""
    try:
        cls = MESSAGE_TYPES[MsgType(mtype)]
    except (ValueError, KeyError) as e:
        raise DecodeError(f"unknown message type {mtype}") from e
    r = Reader(body)
    values = [r.get(kind) for _, kind in layout(cls)]
    if not r.at_end:
        raise DecodeError(f"{len(r.buf) - r.pos} trailing bytes after {cls.__name__}")
    return cls(*values)


def decode(frame: bytes | memoryview) -> tuple[int, Message]:
    """One complete frame -> (tag, message). DecodeError if it is not exactly one message."""
    if len(frame) < HEADER_LEN:
        raise DecodeError(f"frame of {len(frame)} bytes is shorter than a header")
    size, mtype, tag = _HDR.unpack_from(frame)
    if size != len(frame):
        raise DecodeError(f"size field {size} but the frame has {len(frame)} bytes")
    return tag, decode_body(mtype, memoryview(frame)[HEADER_LEN:])


# ------------------------------------------------------------------ incremental decoder
@dataclass(frozen=True, slots=True)
class Frame:
    """A message arrived."""

    tag: int
    message: Message


@dataclass(frozen=True, slots=True)
class BadMessage:
    """A frame in step with the stream that is not a valid message: answer Rlerror to `tag`."""

    tag: int
    type: int
    reason: str


class StreamErrorKind(Enum):
    TOO_SMALL = "size field smaller than the 7-byte header"
    TOO_LARGE = "size field larger than the negotiated msize"


@dataclass(frozen=True, slots=True)
class StreamError:
    """The stream is out of step (an impossible size field); nothing more will be decoded."""

    kind: StreamErrorKind
    size: int


class NeedData:
    """Feed more bytes before asking again."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()
Event = Frame | BadMessage | StreamError | NeedData


class Decoder:
    """Frames out of a byte stream, as h11 does for HTTP: feed bytes, pull events.

    `msize` bounds the size field (set it again after version negotiation). Bytes are kept only
    until a whole frame is there; a frame larger than msize is refused from its first 4 bytes,
    before its body arrives, so a peer cannot make the decoder buffer without bound.
    """

    def __init__(self, msize: int = DEFAULT_MSIZE) -> None:
        self.msize = msize
        self._buf = bytearray()
        self._error: StreamError | None = None

    @property
    def broken(self) -> StreamError | None:
        return self._error

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is None:
            self._buf += data

    def next_event(self) -> Event:
        if self._error is not None:
            return self._error
        if len(self._buf) < 4:
            return NEED_DATA
        size = int.from_bytes(self._buf[:4], "little")
        if size < HEADER_LEN:
            self._error = StreamError(StreamErrorKind.TOO_SMALL, size)
        elif size > self.msize:
            self._error = StreamError(StreamErrorKind.TOO_LARGE, size)
        if self._error is not None:
            self._buf.clear()
            return self._error
        if len(self._buf) < size:
            return NEED_DATA
        frame = bytes(self._buf[:size])
        del self._buf[:size]
        _, mtype, tag = _HDR.unpack_from(frame)
        try:
            return Frame(tag, decode_body(mtype, memoryview(frame)[HEADER_LEN:]))
        except DecodeError as e:
            return BadMessage(tag, mtype, str(e))

    def events(self) -> list[Event]:
        """Every event available now; the list ends with the one that stopped it (NEED_DATA or
        a StreamError)."""
        out: list[Event] = []
        while True:
            ev = self.next_event()
            out.append(ev)
            if isinstance(ev, NeedData | StreamError):
                return out


def negotiate(request: Tversion, server_msize: int = DEFAULT_MSIZE) -> Rversion:
    """The server's answer to Tversion: the smaller msize, and the version if it is 9P2000.L.

    A client asking less than MIN_MSIZE gets it anyway in the reply's msize field; the caller
    decides whether to refuse (our server answers EMSGSIZE, as QEMU does). Anything but exactly
    "9P2000.L" gets "unknown" (version(5): the server may answer only versions it speaks).
    """
    msize = min(request.msize, server_msize)
    if request.version != VERSION:
        return Rversion(msize, VERSION_UNKNOWN)
    return Rversion(msize, VERSION)


assert MIN_MSIZE >= HEADER_LEN
