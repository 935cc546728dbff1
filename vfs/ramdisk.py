"""ramdisk: an in-memory file system, served over the file protocol on handle 0 (stdin).

init starts it with stdin = the rendezvous it then mounts at /ramdisk. Nested directories,
files that can be read, written at any position, appended to, truncated, deleted and renamed,
read-only sessions (vfs/server.py does the protocol; this file is the storage).

Usage: ramdisk [--capacity BYTES[K|M|G]] [--read-only]

Where the bytes live (the frame model)
--------------------------------------
File data lives in this process' own memory, in *arenas*: large chunks from proc.malloc
(ARENA_BYTES of address space each, frames arriving on first touch, so an arena costs only what
has been written into it). A process has 511 chunk slots, so a chunk per file would cap the disk
at a few hundred files; instead each file is a list of *extents* (address, length) carved out of
the arenas by a first-fit allocator over a sorted free list, in GRAIN-byte units:

* allocating takes the lowest hole that fits (low addresses first keeps the touched frames
  compact); with no hole, a new arena is malloc'd;
* freeing inserts the range back and merges it with its neighbours. A freed extent keeps its
  frames (a process cannot unmap part of a chunk) for the next allocation to reuse; an arena
  that becomes entirely free is given back, frames and all, unless it is the only one;
* a growing file gets an extent at least as large as what it already has (capped at one
  arena), so a file written in many small appends still has only O(log size) extents, at the
  cost of at most half its capacity unused; truncating or deleting frees its extents.

Bytes past a file's size inside its extents are never shown: a write past the end zero-fills the
gap first, since a freed extent still holds the old owner's bytes.

The disk refuses to hold more than `capacity` bytes of extents (ERROR(MEMALLOC) on writes,
decided before the request's data is even read): a demand-paged store that finds no free frame
kills the process, and this process is everyone's file system. The default is 32 MiB, half the
default machine; run it without a frame quota (a quota'd ramdisk dies at the quota instead).

A deleted file keeps its data while sessions are open on it (they keep reading and writing it);
the extents are freed when the last one closes. A directory must be empty to be deleted.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from euralios.std import STDIN, Chunk, abi
from euralios.std.errors import SyscallError
from vfs.protocol import FsError
from vfs.server import DirNode, FileNode, Node, serve

GRAIN = 64  # allocation unit (bytes)
ARENA_BYTES = 16 << 20  # address space per arena chunk (frames come on demand)
DEFAULT_CAPACITY = 32 << 20


def _round(n: int) -> int:
    return -(-n // GRAIN) * GRAIN


class Arenas:
    """First-fit extent allocator over a few large on-demand chunks."""

    def __init__(self, proc: Any, capacity: int = DEFAULT_CAPACITY, arena_bytes: int = ARENA_BYTES) -> None:
        if not 0 < arena_bytes < 1 << 30:
            raise ValueError("an arena must fit in one chunk slot with room to spare")  # holes never merge across arenas
        self.proc = proc
        self.sys = proc.sys
        self.capacity = capacity
        self.arena_bytes = arena_bytes
        self.arenas: list[int] = []  # base addresses, sorted
        self.chunks: dict[int, Chunk] = {}  # base address -> its chunk (every byte moves through one)
        self.starts: list[int] = []  # free holes, sorted by address ...
        self.lengths: list[int] = []  # ... and their lengths
        self.used = 0  # bytes handed out

    async def alloc(self, n: int) -> tuple[int, int]:
        """An extent of at least n bytes (n <= arena size): (address, length)."""
        n = _round(max(n, 1))
        if n > self.arena_bytes:
            raise ValueError(f"extent of {n} bytes is larger than an arena")
        while True:
            if self.used + n > self.capacity:
                raise FsError(abi.MEMALLOC, "ramdisk full")
            for i, length in enumerate(self.lengths):
                if length >= n:
                    addr = self.starts[i]
                    if length == n:
                        del self.starts[i], self.lengths[i]
                    else:
                        self.starts[i] += n
                        self.lengths[i] -= n
                    self.used += n
                    return addr, n
            try:
                chunk = await self.proc.malloc(self.arena_bytes)
            except SyscallError:
                raise FsError(abi.MEMALLOC, "no memory for another arena") from None
            bisect.insort(self.arenas, chunk.vaddr)
            self.chunks[chunk.vaddr] = chunk
            self._insert(chunk.vaddr, self.arena_bytes)

    def free(self, addr: int, n: int) -> None:
        """Give an extent back (merging with neighbouring holes)."""
        self.used -= n
        self._insert(addr, n)

    def _insert(self, addr: int, n: int) -> None:
        i = bisect.bisect_left(self.starts, addr)
        if i > 0 and self.starts[i - 1] + self.lengths[i - 1] == addr:
            i -= 1
            self.lengths[i] += n
        else:
            self.starts.insert(i, addr)
            self.lengths.insert(i, n)
        if i + 1 < len(self.starts) and self.starts[i] + self.lengths[i] == self.starts[i + 1]:
            self.lengths[i] += self.lengths[i + 1]
            del self.starts[i + 1], self.lengths[i + 1]

    async def trim(self) -> None:
        """Return arenas that are wholly free to the kernel, keeping at least one."""
        i = 0
        while i < len(self.starts) and len(self.arenas) > 1:
            base = self.starts[i]
            if self.lengths[i] == self.arena_bytes and base in self.arenas:
                del self.starts[i], self.lengths[i]  # out of reach before we wait
                self.arenas.remove(base)
                del self.chunks[base]
                await self.sys.free(base)
            else:
                i += 1

    def locate(self, addr: int) -> tuple[Chunk, int]:
        """(the arena's Chunk, offset in it) of an address inside an extent."""
        base = self.arenas[bisect.bisect_right(self.arenas, addr) - 1]
        return self.chunks[base], addr - base

    @property
    def holes(self) -> int:
        return len(self.starts)


class RamFile(FileNode):
    def __init__(self, disk: Ramdisk, name: str) -> None:
        self.disk = disk
        self.name = name
        self.extents: list[tuple[int, int]] = []
        self.capacity = 0
        self.length = 0
        self.opens = 0
        self.linked = True

    def size(self) -> int:
        return self.length

    # -------------------------------------------------------------- byte movement
    def _spans(self, offset: int, n: int) -> Iterable[tuple[int, int, int]]:
        """(address, count, position in the request) for bytes [offset, offset+n)."""
        pos = 0
        done = 0
        for addr, length in self.extents:
            if done >= n:
                return
            if pos + length > offset + done:
                skip = offset + done - pos
                count = min(length - skip, n - done)
                yield addr + skip, count, done
                done += count
            pos += length

    def _store(self, offset: int, data: bytes | memoryview) -> None:
        locate = self.disk.arenas.locate
        view = memoryview(data)
        for addr, count, at in self._spans(offset, len(view)):
            chunk, where = locate(addr)
            chunk.write(where, view[at : at + count])

    async def read(self, offset: int, n: int) -> bytes:
        n = max(0, min(n, self.length - offset))
        locate = self.disk.arenas.locate
        parts = []
        for addr, count, _ in self._spans(offset, n):
            chunk, where = locate(addr)
            parts.append(chunk.read(where, count))
        return b"".join(parts)

    async def _reserve(self, end: int) -> None:
        """Grow the extents to hold `end` bytes. Returns without waiting after its last check, so
        the caller's following synchronous code sees the capacity it asked for."""
        arenas = self.disk.arenas
        while self.capacity < end:
            need = end - self.capacity
            want = min(max(need, self.capacity), arenas.arena_bytes)
            addr, got = await arenas.alloc(want)
            self.extents.append((addr, got))
            self.capacity += got

    def _put(self, offset: int, data: bytes) -> None:
        if offset > self.length:
            self._store(self.length, bytes(offset - self.length))  # no stale bytes in the gap
        self._store(offset, data)
        self.length = max(self.length, offset + len(data))

    def check_write(self, offset: int, n: int) -> None:
        grow = offset + n - self.capacity
        arenas = self.disk.arenas
        if grow > 0 and arenas.used + _round(grow) > arenas.capacity:
            raise FsError(abi.MEMALLOC, "ramdisk full")

    async def write(self, offset: int, data: bytes) -> int:
        await self._reserve(offset + len(data))
        self._put(offset, data)
        return len(data)

    async def append(self, data: bytes) -> int:
        while True:
            await self._reserve(self.length + len(data))
            # Someone may have appended while we waited for an arena: check again, no waiting.
            if self.capacity >= self.length + len(data):
                offset = self.length
                self._put(offset, data)
                return offset

    async def truncate(self, size: int) -> None:
        if size > self.length:
            await self.write(self.length, bytes(size - self.length))
            return
        self.length = size
        pos = 0
        keep: list[tuple[int, int]] = []
        arenas = self.disk.arenas
        for addr, length in self.extents:
            if pos < size:
                keep.append((addr, length))
            else:
                arenas.free(addr, length)
            pos += length
        self.extents = keep
        self.capacity = sum(length for _, length in keep)
        await arenas.trim()

    # -------------------------------------------------------------- lifetime
    def opened(self) -> None:
        self.opens += 1

    async def closed(self) -> None:
        self.opens -= 1
        if not self.linked and self.opens == 0:
            await self.truncate(0)

    async def unlink(self) -> None:
        """Out of its directory: the data goes now, or when the last session closes."""
        self.linked = False
        if self.opens == 0:
            await self.truncate(0)


class RamDir(DirNode):
    def __init__(self, disk: Ramdisk, name: str) -> None:
        self.disk = disk
        self.name = name
        self.children: dict[str, RamDir | RamFile] = {}
        self.removed = False

    def lookup(self, name: str) -> Node | None:
        return self.children.get(name)

    def entries(self) -> Iterable[tuple[str, Node]]:
        return self.children.items()

    def _free_name(self, name: str) -> None:
        if self.removed:
            raise FsError(abi.NOTFOUND, "directory was deleted")
        if name in self.children:
            raise FsError(abi.EXISTS)

    async def make_dir(self, name: str) -> RamDir:
        self._free_name(name)
        d = self.children[name] = RamDir(self.disk, name)
        return d

    async def make_file(self, name: str) -> RamFile:
        self._free_name(name)
        f = self.children[name] = RamFile(self.disk, name)
        return f

    async def remove(self, name: str) -> None:
        node = self.children.get(name)
        if node is None:
            raise FsError(abi.NOTFOUND)
        if isinstance(node, RamDir):
            if node.children:
                raise FsError(abi.NOT_EMPTY, "directory not empty")
            node.removed = True
            del self.children[name]
            return
        del self.children[name]
        await node.unlink()

    async def rename(self, old: str, new: str) -> None:
        node = self.children.get(old)
        if node is None:
            raise FsError(abi.NOTFOUND)
        if old == new:
            return
        target = self.children.get(new)
        if target is not None and not (isinstance(node, RamFile) and isinstance(target, RamFile)):
            raise FsError(abi.EXISTS)
        del self.children[old]
        node.name = new
        self.children[new] = node  # replaces a file of that name
        if isinstance(target, RamFile):
            await target.unlink()


class Ramdisk:
    """The whole disk: its root directory and its allocator."""

    def __init__(self, proc: Any, capacity: int = DEFAULT_CAPACITY, arena_bytes: int = ARENA_BYTES) -> None:
        self.arenas = Arenas(proc, capacity, arena_bytes)
        self.root = RamDir(self, "/")


def parse_size(text: str) -> int:
    """'1048576', '512K', '32M', '1G' -> bytes."""
    text = text.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(text[:-1] if mult > 1 else text) * mult


async def main(proc) -> int:
    capacity = DEFAULT_CAPACITY
    writable = True
    quiet = False
    args = list(proc.args[1:])
    while args:
        a = args.pop(0)
        if a == "--read-only":
            writable = False
        elif a == "--quiet":
            quiet = True
        elif a == "--capacity" and args:
            try:
                capacity = parse_size(args.pop(0))
            except ValueError:
                await proc.print("[ramdisk] bad --capacity; usage: ramdisk [--capacity BYTES[K|M|G]] [--read-only] [--quiet]")
                return 2
        else:
            await proc.print(f"[ramdisk] unknown argument {a!r}; usage: ramdisk [--capacity BYTES[K|M|G]] [--read-only] [--quiet]")
            return 2
    disk = Ramdisk(proc, capacity)
    if not quiet:
        await proc.print("[ramdisk] Starting ramdisk")
    await serve(proc, STDIN, disk.root, writable=writable)
    return 0
