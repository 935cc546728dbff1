"""Message layout and the movement of handles and memory chunks with messages (spec §4).

On the wire (registers) a message is a control word plus three data words. The control word says
whether the message is long and, for a long one, what data2 and data3 are: a value, a handle, a
memory chunk, or (only on delivery) an error code. In flight inside the kernel the handle words
hold rendezvous references and the memory words hold detached chunks, so the sender has already
lost them (they *move*) and the receiver gets them at its own lowest free numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from merriwig import abi, layout
from merriwig.errors import SpaceError, SyscallFail
from merriwig.memory.space import AddressSpace, Chunk, MemoryContext, free_chunk

if TYPE_CHECKING:
    from merriwig.process import Process


class KMessage:
    """A message in flight: ctrl bits and three words (handles/chunks already taken)."""

    __slots__ = ("ctrl", "d1", "d2", "d3")

    def __init__(self, ctrl: int, d1: int, d2: Any, d3: Any) -> None:
        self.ctrl = ctrl
        self.d1 = d1
        self.d2 = d2
        self.d3 = d3

    def __repr__(self) -> str:
        return f"KMessage(ctrl={self.ctrl:#x}, {self.d1}, {self.d2!r}, {self.d3!r})"


def kind(ctrl: int, shift: int) -> int:
    return (ctrl >> shift) & 3


WORD_MIN, WORD_MAX = -(1 << 63), (1 << 64) - 1


def word(value: Any) -> int:
    """A message word as a register holds it: an integer (bool counts), or PARAM.

    Anything else -- a str, a float, an int subclass, an object with its own __eq__ -- would be
    handed as it is to the receiver, whose comparisons would run the sender's code in the
    receiver's thread (a program's object once ran its __eq__ inside root's login)."""
    t = type(value)
    if t is int:
        if WORD_MIN <= value <= WORD_MAX:
            return value  # type: ignore[no-any-return]
    elif t is bool:
        return int(value)
    raise SyscallFail(abi.PARAM, "a message word must be an integer")


def take(proc: Process, ctrl: int, d1: int, d2: int, d3: int) -> KMessage:
    """Build a kernel message from the sender's registers, moving handles and chunks out.

    Everything is validated before anything is removed, so a bad message leaves the sender's
    tables untouched (spec §4.3). Every word must be an integer (`word`). Sending the same handle twice in one message is PARAM (the seed
    silently sent two references of it)."""
    ctrl &= abi.CTRL_MASK
    d1 = word(d1)
    if not ctrl & abi.MSG_LONG:
        return KMessage(0, d1, word(d2), word(d3))
    k2 = kind(ctrl, abi.D2_SHIFT)
    k3 = kind(ctrl, abi.D3_SHIFT)
    # A sender cannot forge error words: kind 3 is delivered as a plain value.
    if k2 == abi.KIND_ERROR:
        k2 = abi.KIND_VALUE
    if k3 == abi.KIND_ERROR:
        k3 = abi.KIND_VALUE
    d2, d3 = word(d2), word(d3)  # handle numbers and chunk addresses are integers too
    words = [(k2, d2), (k3, d3)]
    handles = proc.handles
    space = proc.space
    for k, w in words:
        if k == abi.KIND_HANDLE:
            handles.get(w)
        elif k == abi.KIND_MEMORY:
            try:
                space.chunk_info(w)
            except SpaceError:
                raise SyscallFail(abi.PARAM) from None
            except KeyError:
                raise SyscallFail(abi.DOUBLEFREE) from None
    if k2 == k3 and k2 != abi.KIND_VALUE:
        same = d2 == d3 if k2 == abi.KIND_HANDLE else space.chunk_info(d2)[0] == space.chunk_info(d3)[0]
        if same:
            raise SyscallFail(abi.PARAM, "the same handle or chunk twice in one message")
    out: list[Any] = []
    for k, w in words:
        if k == abi.KIND_HANDLE:
            out.append(handles.take(w))
        elif k == abi.KIND_MEMORY:
            out.append(space.detach(w))
        else:
            out.append(w)
    return KMessage(abi.MSG_LONG | (k2 << abi.D2_SHIFT) | (k3 << abi.D3_SHIFT), d1, out[0], out[1])


def _place(proc: Process, k: int, w: Any) -> tuple[int, int]:
    """Insert one word into the receiving process: returns (kind, register value)."""
    if k == abi.KIND_HANDLE:
        return k, proc.handles.add(w)
    if k == abi.KIND_MEMORY:
        try:
            return k, proc.space.attach(w)
        except SpaceError:
            # No free chunk slot: the word becomes error NOMEMSLOTS and the frames go back
            # to the allocator (the seed leaked them).
            proc.space.release_chunk(w)
            return abi.KIND_ERROR, abi.NOMEMSLOTS
    return k, w


def deliver(proc: Process, msg: KMessage, error: int = 0) -> tuple[int, int, int, int]:
    """Hand a message to `proc`: registers (rax, rdi, rsi, rdx) for the receiving thread.

    With `error`, the message is being returned to its sender with that error code (rax gets
    the 0x80 flag and the error number)."""
    ctrl = msg.ctrl
    if not ctrl & abi.MSG_LONG:
        rax = (abi.ERROR_CONTAINS_MESSAGE | error) if error else 0
        return rax, msg.d1, msg.d2, msg.d3
    k2, r2 = _place(proc, kind(ctrl, abi.D2_SHIFT), msg.d2)
    k3, r3 = _place(proc, kind(ctrl, abi.D3_SHIFT), msg.d3)
    if k2 == abi.KIND_VALUE and k3 == abi.KIND_VALUE:
        ctrl = 0  # a long message of plain values reads as a short one (spec §4.2)
    else:
        ctrl = abi.MSG_LONG | (k2 << abi.D2_SHIFT) | (k3 << abi.D3_SHIFT)
    if error:
        ctrl |= abi.ERROR_CONTAINS_MESSAGE | error
    return ctrl, msg.d1, r2, r3


def release(msg: KMessage, ctx: MemoryContext) -> None:
    """Drop a message that will never be delivered: handles lose a reference, chunks are freed."""
    ctrl = msg.ctrl
    if not ctrl & abi.MSG_LONG:
        return
    for k, w in ((kind(ctrl, abi.D2_SHIFT), msg.d2), (kind(ctrl, abi.D3_SHIFT), msg.d3)):
        if k == abi.KIND_HANDLE:
            w.decref()
        elif k == abi.KIND_MEMORY and isinstance(w, Chunk):
            free_chunk(ctx, w)


def bytes_message(ctx: MemoryContext, tag: int, data: bytes) -> KMessage:
    """Long(tag, len(data), chunk) holding `data`, built as the kernel builds a message of its own:
    the bytes go into fresh frames through a scratch address space, and the chunk is detached
    from it (its frames then belong to the message, and to whoever receives it).

    OutOfFrames (or SpaceError) when there is no memory for it."""
    space = AddressSpace(ctx)
    try:
        vaddr, _ = space.malloc(max(1, -(-len(data) // layout.PAGE)))
        space.write(vaddr, data)
        chunk = space.detach(vaddr)
    finally:
        space.destroy()
    return KMessage(abi.MSG_LONG | (abi.KIND_MEMORY << abi.D3_SHIFT), tag, len(data), chunk)
