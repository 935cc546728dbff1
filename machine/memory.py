"""Physical RAM of the emulated PC: one flat anonymous memory mapping addressed by physical address.

Everything that real hardware keeps in RAM lives here as bytes: page tables (walked by
``machine.mmu``), the VGA text buffer at 0xB8000, DMA rings of the NIC, and every user page. Keeping
it as plain bytes (rather than Python objects per frame) is what makes the kernel program the
hardware "as a CPU would": a page table entry is eight little-endian bytes in a frame, nothing more.

Accesses outside RAM go to the memory-mapped I/O map (:attr:`PhysicalMemory.mmio`,
machine/mmio.py: device registers behind PCI memory BARs); anything else outside RAM raises
:class:`BusError` instead of silently growing or wrapping, because a stray physical address is
always a bug in the kernel or a device model and should fail loudly. The MMIO lookup sits on the
out-of-RAM branch of each bounds check, so RAM accesses cost exactly what they did before.
:meth:`PhysicalMemory.cpu_read`/:meth:`~PhysicalMemory.cpu_write` are the CPU's view (loads and
stores through the MMU), where an address nothing decodes is an open bus, as on a PC.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable

from .mmio import MmioBus

PAGE_SIZE = 4096
_MIB = 2**20
_U64 = struct.Struct("<Q")
_UINT_SIZES = (1, 2, 4, 8)


class BusError(Exception):
    """A physical access fell (partly) outside RAM.

    On a real PC this would be a machine check or a read of all-ones from an open bus; here it is an
    exception so that the faulty component shows up in a traceback."""


class _Watch:
    """One registered write watch; the object itself is the token handed back to the caller."""

    __slots__ = ("start", "end", "callback")

    def __init__(self, start: int, end: int, callback: Callable[[], object]) -> None:
        self.start = start
        self.end = end
        self.callback = callback

    def __repr__(self) -> str:
        return f"<write watch [{self.start:#x}, {self.end:#x}) -> {self.callback!r}>"


def _size_text(size: int) -> str:
    """Human form of a RAM size for error messages ("64 MiB", or KiB when not whole MiB)."""
    return f"{size // _MIB} MiB" if size % _MIB == 0 else f"{size // 1024} KiB"


def _as_bytes(data: object) -> bytes | bytearray | memoryview:
    """Normalise a bytes-like object to something whose ``len`` is its size in bytes.

    Slice assignment into a bytearray with an object of a different length *resizes* the
    bytearray, which would silently shift all of physical memory; so the length used for the
    bounds check must be the byte count, not e.g. the item count of an ``array('I')``."""
    if type(data) is bytes or type(data) is bytearray:
        return data
    mv = memoryview(data)  # type: ignore[arg-type]
    if mv.ndim == 1 and mv.itemsize == 1 and mv.c_contiguous:
        return mv if mv.format == "B" else mv.cast("B")
    return mv.tobytes()


class PhysicalMemory:
    """Byte-addressable RAM of ``size`` bytes (a whole number of 4 KiB frames, at least 2 MiB).

    ``buf`` is public on purpose: the MMU, device DMA and kernel fast paths may slice it directly
    when they have already checked bounds. Writes made that way bypass write watches."""

    def __init__(self, size: int = 64 * _MIB) -> None:
        if not isinstance(size, int) or size % PAGE_SIZE or size < 2 * _MIB:
            raise ValueError(f"RAM size must be a multiple of {PAGE_SIZE} and at least 2 MiB, got {size!r}")
        self.size: int = size
        self.frames: int = size // PAGE_SIZE
        # An anonymous mapping, not a bytearray: the host gives it zero pages lazily, so RAM the
        # guest never touches costs nothing (a 64 MiB bytearray is memset, i.e. 64 MiB resident
        # per booted machine), and slice assignment can never resize memory by accident.
        self.buf: mmap.mmap = mmap.mmap(-1, size)
        # Empty tuple when nothing is watched, so the write fast path is one truthiness test.
        self._watches: tuple[_Watch, ...] = ()
        self._last8 = size - 8  # highest address where a u64 still fits, precomputed for read_u64
        #: Device memory past RAM (the PCI host fills it from enabled memory BARs).
        self.mmio: MmioBus = MmioBus()

    def __repr__(self) -> str:
        return f"<PhysicalMemory {_size_text(self.size)}, {self.frames} frames>"

    # -- bounds ------------------------------------------------------------------------------

    def _bus_error(self, paddr: int, n: int) -> BusError:
        where = f"{paddr:#x}" if paddr >= 0 else f"-{-paddr:#x}"
        return BusError(f"bus error: physical {where}+{n} outside {_size_text(self.size)} RAM")

    # -- byte access ---------------------------------------------------------------------------

    def read(self, paddr: int, n: int) -> bytes:
        """Copy ``n`` bytes starting at ``paddr`` (a copy, so later writes do not show through)."""
        if paddr < 0 or n < 0 or paddr + n > self.size:
            data = self.mmio.read(paddr, n) if paddr >= self.size and n > 0 else None
            if data is None:
                raise self._bus_error(paddr, n)
            return data
        return bytes(self.buf[paddr : paddr + n])

    def write(self, paddr: int, data: bytes | bytearray | memoryview) -> None:
        """Store a bytes-like object at ``paddr``; fires write watches that overlap it."""
        data = _as_bytes(data)
        n = len(data)
        if paddr < 0 or paddr + n > self.size:
            if paddr >= self.size and n > 0 and self.mmio.write(paddr, data):
                return
            raise self._bus_error(paddr, n)
        self.buf[paddr : paddr + n] = data
        if self._watches:
            self._fire(paddr, n)

    def zero(self, paddr: int, n: int) -> None:
        """Fill ``n`` bytes with zeros (fresh frames, demand paging, freeing)."""
        if paddr < 0 or n < 0 or paddr + n > self.size:
            raise self._bus_error(paddr, n)
        self.buf[paddr : paddr + n] = bytes(n)
        if self._watches:
            self._fire(paddr, n)

    # -- little-endian integers ------------------------------------------------------------------

    def read_uint(self, paddr: int, size: int) -> int:
        """Read a little-endian unsigned integer of ``size`` bytes (1, 2, 4 or 8), like a CPU load."""
        if size not in _UINT_SIZES:
            raise ValueError(f"integer size must be 1, 2, 4 or 8 bytes, got {size!r}")
        if paddr < 0 or paddr + size > self.size:
            return int.from_bytes(self.read(paddr, size), "little")  # MMIO, or the BusError
        return int.from_bytes(self.buf[paddr : paddr + size], "little")

    def write_uint(self, paddr: int, size: int, value: int) -> None:
        """Store ``value`` as a little-endian unsigned integer of ``size`` bytes.

        Out-of-range values raise ValueError rather than being truncated: a value that does not fit
        its register or field is a bug in the caller, not something to wrap silently."""
        if size not in _UINT_SIZES:
            raise ValueError(f"integer size must be 1, 2, 4 or 8 bytes, got {size!r}")
        try:
            raw = value.to_bytes(size, "little")
        except OverflowError:
            raise ValueError(f"value {value!r} does not fit in {size} unsigned bytes") from None
        if paddr < 0 or paddr + size > self.size:
            self.write(paddr, raw)  # MMIO, or the BusError
            return
        self.buf[paddr : paddr + size] = raw
        if self._watches:
            self._fire(paddr, size)

    # -- the CPU's view: RAM, device memory, else an open bus ----------------------------------

    def cpu_read(self, paddr: int, n: int) -> bytes:
        """A load by the CPU (through the MMU): RAM, else MMIO; bytes nothing decodes read 0xFF."""
        if 0 <= paddr and paddr + n <= self.size:
            return bytes(self.buf[paddr : paddr + n])
        if paddr < self.size:
            raise self._bus_error(paddr, n)  # straddles the top of RAM: a kernel bug
        data = self.mmio.read(paddr, n, open_bus=True)
        assert data is not None
        return data

    def cpu_write(self, paddr: int, data: bytes | bytearray | memoryview) -> None:
        """A store by the CPU: RAM (with write watches), else MMIO; undecoded bytes vanish."""
        data = _as_bytes(data)
        if paddr >= self.size:
            self.mmio.write(paddr, data, open_bus=True)
        else:
            self.write(paddr, data)

    # -- u64: page tables and descriptors live in RAM, never in device memory ----------------------

    def read_u64(self, paddr: int) -> int:
        """Read one little-endian u64: the hot path of every page-table walk (RAM only: the page
        walker reads tables from RAM, so a table pointer past RAM is always a BusError)."""
        if paddr < 0 or paddr > self._last8:
            raise self._bus_error(paddr, 8)
        return _U64.unpack_from(self.buf, paddr)[0]

    def write_u64(self, paddr: int, value: int) -> None:
        """Store one little-endian u64 (page-table entries, DMA descriptors)."""
        if paddr < 0 or paddr > self._last8:
            raise self._bus_error(paddr, 8)
        try:
            _U64.pack_into(self.buf, paddr, value)
        except struct.error:
            raise ValueError(f"value {value!r} does not fit in 8 unsigned bytes") from None
        if self._watches:
            self._fire(paddr, 8)

    # -- write watches -----------------------------------------------------------------------------

    def add_write_watch(self, start: int, end: int, callback: Callable[[], object]) -> object:
        """Call ``callback()`` after every write through this object that overlaps ``[start, end)``.

        This lets a memory-mapped device such as the VGA text buffer tell the UI that it changed
        without the UI polling RAM. The callback runs synchronously inside the write, so it should
        only note the change (set a flag, wake an event), not do slow work. Returns a token for
        :meth:`remove_write_watch`."""
        if not (0 <= start < end <= self.size):
            raise ValueError(f"write watch range [{start:#x}, {end:#x}) is empty or outside RAM")
        if not callable(callback):
            raise TypeError("write watch callback must be callable")
        watch = _Watch(start, end, callback)
        self._watches = (*self._watches, watch)
        return watch

    def remove_write_watch(self, token: object) -> None:
        """Stop a watch made by :meth:`add_write_watch`; ValueError if it is not registered."""
        if token not in self._watches:
            raise ValueError(f"no such write watch: {token!r}")
        self._watches = tuple(w for w in self._watches if w is not token)

    def _fire(self, paddr: int, n: int) -> None:
        """Run callbacks of watches overlapping ``[paddr, paddr + n)``.

        Iterates over the tuple captured at entry, so a callback may add or remove watches."""
        if n <= 0:
            return  # an empty write changes nothing, so it must not wake anyone
        end = paddr + n
        for w in self._watches:
            if paddr < w.end and w.start < end:
                w.callback()
