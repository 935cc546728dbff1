"""`x/FMT ADDR` and `xp/FMT ADDR`: memory dumps in QEMU's format (sans-IO).

FMT is QEMU's: an optional count, a format letter (x hex, d signed, u unsigned, o octal, c char)
and a size letter (b 1, h 2, w 4, g 8 bytes); what is left out comes from the previous dump, as
in QEMU (at first: count 1, format x, size w). The `i` format (disassembly) is refused: there is
no x86 code here to disassemble. Lines are QEMU's memory_dump: the address as %016x and a colon,
then 16 bytes' worth of values (8 for byte-sized ones), each as QEMU prints them -- hex as 0x
and zero-padded to the size, decimal right-aligned, octal with a leading 0, chars quoted -- and
an access that fails ends the dump with " Cannot access memory".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

SIZES = {"b": 1, "h": 2, "w": 4, "g": 8, "L": 8}
FORMATS = "xduoci"


class FormatError(ValueError):
    """A /FMT that cannot be dumped; the text is the line for the user."""


@dataclass
class DumpFormat:
    count: int = 1
    format: str = "x"
    size: int = 4


def parse_format(text: str, last: DumpFormat) -> DumpFormat:
    """`/4xg` (without the slash: `4xg`) -> a DumpFormat; defaults from `last`, which is updated
    as QEMU's default_fmt_format/size are."""
    i = 0
    while i < len(text) and text[i].isdigit():
        i += 1
    count = int(text[:i]) if i else 1
    fmt: str | None = None
    size: int | None = None
    for ch in text[i:]:
        if ch in FORMATS:
            fmt = ch
        elif ch in SIZES:
            size = SIZES[ch]
        else:
            raise FormatError(f"invalid char in format: '{ch}'")
    fmt = fmt or last.format
    if fmt == "i":
        raise FormatError("format 'i' (disassembly) is not supported: there is no x86 code to disassemble")
    size = size or last.size
    last.format, last.size = fmt, size
    return DumpFormat(count, fmt, size)


def _printc(v: int) -> str:
    """QEMU's monitor_printc."""
    special = {ord("'"): "\\'", ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r"}
    if v in special:
        body = special[v]
    elif 32 <= v <= 126:
        body = chr(v)
    else:
        body = f"\\x{v:02x}"
    return f"'{body}'"


def _value(v: int, fmt: str, size: int) -> str:
    bits = size * 8
    if fmt == "x":
        return f"0x{v:0{bits // 4}x}"
    if fmt == "o":
        digits = -(-bits // 3)
        return (f"0{v:o}" if v else "0").rjust(digits)
    if fmt in "ud":
        digits = -(-(bits * 10) // 33)
        if fmt == "d" and size == 8 and v & (1 << 63):
            v -= 1 << 64  # QEMU prints the 64-bit value as signed; smaller ones are zero-extended
        return f"{v:{digits}d}"
    return _printc(v)


def dump_lines(read: Callable[[int, int], bytes | None], addr: int, f: DumpFormat) -> list[str]:
    """The dump of `f.count` items at `addr`; `read(addr, n)` returns the bytes or None when that
    memory cannot be accessed (unmapped, outside RAM)."""
    size = f.size
    length = size * f.count
    line_size = 8 if size == 1 else 16
    if f.format == "c":
        size = 1  # as QEMU: the length was counted in the given size, each byte is one char
    out: list[str] = []
    while length > 0:
        n = min(length, line_size)
        head = f"{addr & 0xFFFF_FFFF_FFFF_FFFF:016x}:"
        data = read(addr, n)
        if data is None:
            out.append(head + " Cannot access memory")
            break
        values = [_value(int.from_bytes(data[i:i + size], "little"), f.format, size)
                  for i in range(0, n, size)]
        out.append(head + "".join(" " + v for v in values))
        addr += n
        length -= n
    return out
