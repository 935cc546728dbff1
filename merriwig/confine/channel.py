"""The confined-process ABI: what crosses the channel between a worker and its kernel relay.

A confined program's Python runs in a host worker process (merriwig/confine/runtime.py); the
kernel keeps its Process, address space and handle table, and one relay per thread
(merriwig/confine/relay.py) carries the thread's syscalls to the gate. This module is the one
definition of the frames both ends exchange, sans-IO: `encode_*` builds bytes, `decode` turns
bytes into typed events, and nothing here touches a socket.

Everything is integers and bytes, as on a CPU: registers are u64 (a program's negative int is
its two's complement, as in RAX), memory is (address, bytes). A frame is one SOCK_SEQPACKET
message of at most MAX_FRAME bytes; the worker splits bigger loads and stores itself.

Worker -> kernel
  SYSCALL  tid, rax rdi rsi rdx, then the stores it needs (the stack writes of a string argument)
  LOAD     tid, vaddr n, then pending stores: read n bytes (the reply is LOADED)
  STORE    tid, pending stores only (a write buffer that grew past STORE_FLUSH)
  EXITED   tid, status (i64): the thread's code returned (the main thread's value is the status)
  CRASHED  tid, cause, text: the thread's code raised; the process dies with that reason

Kernel -> worker
  START    tid, stack top, TSC origin, boot TSC, image length, JSON {info, entry, name}: the
           program's first thread; the image follows in IMAGE frames
  IMAGE    a piece of the program image
  REPLY    tid, rax rdi rsi rdx, extra (FORK_THREAD: the new thread's stack top)
  LOADED   the bytes a LOAD asked for

The kernel reads every field as hostile: lengths are checked against the frame, counts are
bounded, and anything malformed kills the confined process (a real CPU has no way to send the
kernel a malformed syscall; here the worker is the attacker's own code).
"""

from __future__ import annotations

import enum
import json
import struct
from dataclasses import dataclass
from typing import Any

MAX_FRAME = 96 * 1024  # one seqpacket message; well under the default socket buffer
MAX_PIECE = 64 * 1024  # the biggest load or image piece in one frame
STORE_FLUSH = 48 * 1024  # the worker sends its write buffer once it holds this much
MAX_STORES = 4096  # store records in one frame
MAX_TEXT = 4096  # a crash reason
U64 = (1 << 64) - 1

_HEAD = struct.Struct("<BI")  # op, tid
_REGS = struct.Struct("<QQQQ")
_REPLY = struct.Struct("<QQQQQ")
_SYSCALL_FRAME = struct.Struct("<BIQQQQ")  # head + registers: the one frame of every syscall
_REPLY_FRAME = struct.Struct("<BIQQQQQ")  # head + registers + extra
_LOAD = struct.Struct("<QI")
_STORE = struct.Struct("<QI")  # vaddr, length; the bytes follow
_EXITED = struct.Struct("<q")
_START = struct.Struct("<QQQQ")  # stack top, tsc origin (perf_counter_ns), boot tsc, image length


class Op(enum.IntEnum):
    SYSCALL = 1
    LOAD = 2
    STORE = 3
    EXITED = 4
    CRASHED = 5
    START = 16
    IMAGE = 17
    REPLY = 18
    LOADED = 19


class Cause(enum.IntEnum):
    """Why a worker thread's code ended by an exception (the kernel's KillCause, by number)."""

    CRASH = 0  # any exception
    BAD_IMAGE = 1  # the loader refused the image (not UTF-8, syntax error, no main)


class ProtocolError(Exception):
    """A frame that does not parse: the kernel kills the confined process that sent it."""


Store = tuple[int, bytes]


# ---------------------------------------------------------------------- events
@dataclass(slots=True)
class Syscall:
    tid: int
    regs: tuple[int, int, int, int]
    stores: list[Store]


@dataclass(slots=True)
class Load:
    tid: int
    vaddr: int
    n: int
    stores: list[Store]


@dataclass(slots=True)
class Stores:
    tid: int
    stores: list[Store]


@dataclass(slots=True)
class Exited:
    tid: int
    status: int


@dataclass(slots=True)
class Crashed:
    tid: int
    cause: Cause
    text: str


@dataclass(slots=True)
class Start:
    tid: int
    stack_top: int
    tsc_origin: int
    boot_tsc: int
    image_len: int
    meta: dict[str, Any]


@dataclass(slots=True)
class ImagePiece:
    data: bytes


@dataclass(slots=True)
class Reply:
    tid: int
    regs: tuple[int, int, int, int]
    extra: int


@dataclass(slots=True)
class Loaded:
    data: bytes


Event = Syscall | Load | Stores | Exited | Crashed | Start | ImagePiece | Reply | Loaded


# ---------------------------------------------------------------------- encoding
def _stores(stores: list[Store]) -> bytes:
    return b"".join(_STORE.pack(vaddr, len(data)) + data for vaddr, data in stores)


def encode_syscall(tid: int, rax: int, rdi: int, rsi: int, rdx: int, stores: list[Store]) -> bytes:
    frame = _SYSCALL_FRAME.pack(Op.SYSCALL, tid, rax & U64, rdi & U64, rsi & U64, rdx & U64)
    return frame + _stores(stores) if stores else frame


def encode_load(tid: int, vaddr: int, n: int, stores: list[Store]) -> bytes:
    return _HEAD.pack(Op.LOAD, tid) + _LOAD.pack(vaddr & U64, n) + _stores(stores)


def encode_stores(tid: int, stores: list[Store]) -> bytes:
    return _HEAD.pack(Op.STORE, tid) + _stores(stores)


def encode_exited(tid: int, status: int) -> bytes:
    status = max(-(1 << 63), min(status, (1 << 63) - 1))
    return _HEAD.pack(Op.EXITED, tid) + _EXITED.pack(status)


def encode_crashed(tid: int, cause: Cause, text: str) -> bytes:
    return _HEAD.pack(Op.CRASHED, tid) + bytes([cause]) + text.encode("utf-8", "replace")[:MAX_TEXT]


def encode_start(tid: int, stack_top: int, tsc_origin: int, boot_tsc: int, image_len: int,
                 meta: dict[str, Any]) -> bytes:
    return (_HEAD.pack(Op.START, tid) + _START.pack(stack_top, tsc_origin, boot_tsc, image_len)
            + json.dumps(meta).encode())


def encode_image(piece: bytes) -> bytes:
    return _HEAD.pack(Op.IMAGE, 0) + piece


def encode_reply(tid: int, regs: tuple[int, int, int, int], extra: int = 0) -> bytes:
    rax, rdi, rsi, rdx = regs
    return _REPLY_FRAME.pack(Op.REPLY, tid, rax & U64, rdi & U64, rsi & U64, rdx & U64, extra & U64)


def reply_of(frame: bytes) -> tuple[int, tuple[int, int, int, int], int] | None:
    """(tid, registers, extra) when `frame` is a REPLY, else None: the worker's fast path (a
    syscall's answer is most of what it receives)."""
    if len(frame) != _REPLY_FRAME.size or frame[0] != Op.REPLY:
        return None
    _, tid, rax, rdi, rsi, rdx, extra = _REPLY_FRAME.unpack(frame)
    return tid, (rax, rdi, rsi, rdx), extra


def encode_loaded(data: bytes) -> bytes:
    return _HEAD.pack(Op.LOADED, 0) + data


# ---------------------------------------------------------------------- decoding
def _decode_stores(frame: bytes, off: int) -> list[Store]:
    stores: list[Store] = []
    end = len(frame)
    size = _STORE.size
    while off < end:
        if len(stores) >= MAX_STORES or off + size > end:
            raise ProtocolError("bad store list")
        vaddr, n = _STORE.unpack_from(frame, off)
        off += size
        if off + n > end:
            raise ProtocolError("store longer than its frame")
        stores.append((vaddr, frame[off:off + n]))
        off += n
    return stores


def decode(frame: bytes) -> Event:
    """One frame -> its event. ProtocolError for anything that does not parse."""
    if len(frame) < _HEAD.size or len(frame) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(frame)} bytes")
    op, tid = _HEAD.unpack_from(frame)
    off = _HEAD.size
    try:
        if op == Op.SYSCALL:
            if len(frame) == _SYSCALL_FRAME.size:  # no stores: the common case
                _, tid, rax, rdi, rsi, rdx = _SYSCALL_FRAME.unpack(frame)
                return Syscall(tid, (rax, rdi, rsi, rdx), [])
            regs = _REGS.unpack_from(frame, off)
            return Syscall(tid, regs, _decode_stores(frame, off + _REGS.size))
        if op == Op.LOAD:
            vaddr, n = _LOAD.unpack_from(frame, off)
            if n > MAX_PIECE:
                raise ProtocolError(f"load of {n} bytes")
            return Load(tid, vaddr, n, _decode_stores(frame, off + _LOAD.size))
        if op == Op.STORE:
            return Stores(tid, _decode_stores(frame, off))
        if op == Op.EXITED:
            (status,) = _EXITED.unpack_from(frame, off)
            return Exited(tid, status)
        if op == Op.CRASHED:
            try:
                cause = Cause(frame[off])
            except (ValueError, IndexError):
                cause = Cause.CRASH
            return Crashed(tid, cause, frame[off + 1:off + 1 + MAX_TEXT].decode("utf-8", "replace"))
        if op == Op.START:
            stack_top, origin, boot, image_len = _START.unpack_from(frame, off)
            meta = json.loads(frame[off + _START.size:])
            return Start(tid, stack_top, origin, boot, image_len, meta)
        if op == Op.IMAGE:
            return ImagePiece(frame[off:])
        if op == Op.REPLY:
            rax, rdi, rsi, rdx, extra = _REPLY.unpack_from(frame, off)
            return Reply(tid, (rax, rdi, rsi, rdx), extra)
        if op == Op.LOADED:
            return Loaded(frame[off:])
    except (struct.error, ValueError, IndexError) as e:
        raise ProtocolError(f"bad frame (op {op}): {e}") from None
    raise ProtocolError(f"unknown op {op}")
