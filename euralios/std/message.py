"""Messages as Python values: a tag and two data words, each a value, handle, chunk or error.

Encoding to and from the register form (control word + three words) lives here so programs
never deal with control bits unless they use proc.sys directly with Message objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from euralios.std import abi


@dataclass(frozen=True, slots=True)
class Handle:
    """A communication handle travelling in a message (moved to the receiver)."""

    number: int


@dataclass(frozen=True, slots=True)
class Memory:
    """A memory chunk travelling in a message, by its virtual address (moved, not copied)."""

    vaddr: int


@dataclass(frozen=True, slots=True)
class Error:
    """An error code the kernel put in a data word on delivery (e.g. NOMEMSLOTS)."""

    code: int


Word = int | Handle | Memory | Error

_KIND = {Handle: abi.KIND_HANDLE, Memory: abi.KIND_MEMORY, Error: abi.KIND_ERROR}


def _raw(w: Word) -> int:
    if isinstance(w, int):
        return w
    if isinstance(w, Handle):
        return w.number
    if isinstance(w, Memory):
        return w.vaddr
    return w.code


@dataclass(frozen=True, slots=True)
class Message:
    tag: int
    d2: Word = 0
    d3: Word = 0
    reply: bool = field(default=False, compare=False)  # received from send_receive: answer it

    @property
    def is_long(self) -> bool:
        return not (isinstance(self.d2, int) and isinstance(self.d3, int))

    def encode(self) -> tuple[int, int, int, int]:
        """(control bits, data1, data2, data3) for the send registers."""
        d2, d3 = self.d2, self.d3
        if isinstance(d2, int) and isinstance(d3, int):
            return 0, self.tag, d2, d3
        ctrl = abi.MSG_LONG | (_KIND.get(type(d2), 0) << abi.D2_SHIFT) | (_KIND.get(type(d3), 0) << abi.D3_SHIFT)
        return ctrl, self.tag, _raw(d2), _raw(d3)

    @staticmethod
    def decode(rax: int, rdi: int, rsi: int, rdx: int) -> Message:
        reply = bool(rax & abi.REPLY_EXPECTED)
        if not rax & abi.MSG_LONG:
            return Message(rdi, rsi, rdx, reply)
        return Message(rdi, _word((rax >> abi.D2_SHIFT) & 3, rsi), _word((rax >> abi.D3_SHIFT) & 3, rdx), reply)


def _word(kind: int, value: int) -> Word:
    if kind == abi.KIND_HANDLE:
        return Handle(value)
    if kind == abi.KIND_MEMORY:
        return Memory(value)
    if kind == abi.KIND_ERROR:
        return Error(value)
    return value
