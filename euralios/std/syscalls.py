"""Raw system calls by their seed names (`proc.sys`), on top of the register-level gate.

The gate is the CPU as a program sees it: `syscall(rax, rdi, rsi, rdx)`, `load`/`store` of its
own virtual memory (used only through euralios.std.chunk), `stack()` and `rdtsc()`. Strings
passed to the kernel are written on the calling thread's stack first and passed by pointer and
length, as a C program would.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from euralios.std import abi
from euralios.std.chunk import Chunk
from euralios.std.errors import SyscallError
from euralios.std.message import Memory, Message

RCALL_RETRIES = 100
_VIO = struct.Struct("<HBBI")  # a PORT_VIO entry: port, size, op (0 in, 1 out), value


Regs = tuple[int, int, int, int]


class Gate(Protocol):
    """What the kernel hands a program's first code: the CPU, as the program sees it."""

    async def syscall(self, rax: int, rdi: Any = 0, rsi: Any = 0, rdx: Any = 0) -> Regs: ...

    def load(self, vaddr: int, n: int) -> bytes: ...

    def store(self, vaddr: int, data: bytes | bytearray | memoryview) -> None: ...

    def stack(self) -> tuple[int, int]: ...

    def rdtsc(self) -> int: ...


class Sys:
    __slots__ = ("gate", "_call")

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self._call = gate.syscall

    # ------------------------------------------------------------------ helpers
    def _stack(self) -> Chunk:
        """The current thread's stack, as memory we may write below its top."""
        lo, top = self.gate.stack()
        return Chunk(self, lo, top - lo)

    def _push(self, data: bytes) -> int:
        """Place bytes at the top of the current thread's stack; returns their address."""
        stack = self._stack()
        if len(data) > stack.size - 256:
            raise SyscallError(abi.PARAM, detail="string too long for the stack")
        offset = stack.size - len(data)
        stack.write(offset, data)
        return stack.vaddr + offset

    @staticmethod
    def _check(rax: int) -> None:
        if rax & 0xFF:
            raise SyscallError(rax & abi.ERROR_MASK)

    # ------------------------------------------------------------------ messaging
    async def send(self, handle: int, msg: Message) -> None:
        ctrl, d1, d2, d3 = msg.encode()
        rax, rdi, rsi, rdx = await self._call(abi.SEND | ctrl | (handle << 32), d1, d2, d3)
        if rax & 0xFF:
            returned = Message.decode(rax, rdi, rsi, rdx) if rax & abi.ERROR_CONTAINS_MESSAGE else msg
            raise SyscallError(rax & abi.ERROR_MASK, returned)

    async def receive(self, handle: int) -> Message:
        rax, rdi, rsi, rdx = await self._call(abi.RECEIVE, handle)
        if rax & 0xFF:
            raise SyscallError(rax & abi.ERROR_MASK)
        return Message.decode(rax, rdi, rsi, rdx)

    async def send_receive(self, handle: int, msg: Message) -> Message:
        ctrl, d1, d2, d3 = msg.encode()
        rax, rdi, rsi, rdx = await self._call(abi.SEND_RECEIVE | ctrl | (handle << 32), d1, d2, d3)
        if rax & 0xFF:
            code = rax & abi.ERROR_MASK
            if rax & abi.ERROR_CONTAINS_MESSAGE:
                returned: Message | None = Message.decode(rax, rdi, rsi, rdx)  # back, maybe at a new address
            elif code == abi.CLOSED:
                # A server took the request and died (or dropped it) before answering: its
                # chunk and handles went with it. None says so, so nobody frees an address that
                # is no longer theirs (and may already hold another chunk).
                returned = None
            else:
                returned = msg  # refused before it was taken (bad handle, bad chunk): still ours
            raise SyscallError(code, returned)
        return Message.decode(rax, rdi, rsi, rdx)

    async def rcall(self, handle: int, tag: int, d2: Any = 0, d3: Any = 0, expect: int | None = None) -> Message:
        """Remote call: send_receive, retrying while the rendezvous is busy; an ERROR reply
        becomes a SyscallError with its code (spec §10.2)."""
        msg = Message(tag, d2, d3)
        for _ in range(RCALL_RETRIES):
            try:
                reply = await self.send_receive(handle, msg)
            except SyscallError as e:
                if e.code in (abi.SEND_BLOCKING, abi.RECV_BLOCKING) and isinstance(e.message, Message):
                    msg = e.message
                    await self.yield_()
                    continue
                raise
            if reply.tag == abi.ERROR:
                raise SyscallError(reply.d2 if isinstance(reply.d2, int) else 0, reply)
            if reply.tag == abi.ERROR_DENIED:
                raise SyscallError(abi.DENIED, reply)
            if expect is not None and reply.tag != expect:
                raise SyscallError(0, reply, detail=f"unexpected reply {reply.tag}")
            return reply
        raise SyscallError(abi.SEND_BLOCKING)

    # ------------------------------------------------------------------ handles and VFS
    async def new_rendezvous(self) -> tuple[int, int]:
        rax, h1, h2, _ = await self._call(abi.NEW_RENDEZVOUS)
        self._check(rax)
        return h1, h2

    async def copy_rendezvous(self, handle: int) -> int:
        rax, h, _, _ = await self._call(abi.COPY_RENDEZVOUS, handle)
        self._check(rax)
        return h

    async def close(self, handle: int) -> None:
        rax, *_ = await self._call(abi.CLOSE, handle)
        if rax & 0xFF:
            raise SyscallError(rax & abi.ERROR_MASK)

    async def open(self, path: str) -> tuple[int, int]:
        """Kernel open: (handle to the mount's rendezvous, bytes of the path it matched)."""
        data = path.encode()
        if not data:
            raise SyscallError(abi.PARAM)
        rax, h, matched, _ = await self._call(abi.OPEN, self._push(data), len(data))
        self._check(rax)
        return h, matched

    async def mount(self, path: str, handle: int) -> None:
        data = path.encode()
        rax, *_ = await self._call(abi.MOUNT | (handle << 32), self._push(data), len(data))
        self._check(rax)

    async def umount(self, path: str) -> None:
        data = path.encode()
        rax, *_ = await self._call(abi.UMOUNT, self._push(data), len(data))
        self._check(rax)

    async def list_mounts(self) -> list[str]:
        rax, vaddr, length, _ = await self._call(abi.LIST_MOUNTS)
        self._check(rax)
        try:
            mounts: list[str] = json.loads((await Chunk.received(self, Memory(vaddr))).read(0, length))
            return mounts
        finally:
            await self.free(vaddr)

    # ------------------------------------------------------------------ memory
    async def malloc(self, pages: int, max_physaddr: int = 0) -> tuple[int, int]:
        rax, vaddr, phys, _ = await self._call(abi.MALLOC, pages, max_physaddr)
        self._check(rax)
        return vaddr, phys

    async def map_phys(self, phys: int, pages: int) -> int:
        """Map device memory (I/O privilege only; never RAM): the chunk's virtual address."""
        rax, vaddr, _, _ = await self._call(abi.MAP_PHYS, phys, pages)
        self._check(rax)
        return vaddr

    async def chunk_info(self, vaddr: int) -> tuple[int, int, int]:
        """(base, size in bytes, physical start) of a chunk we hold: check a length a message
        claims before reading it (past the end is a fatal page fault)."""
        rax, base, size, phys = await self._call(abi.CHUNK_INFO, vaddr)
        self._check(rax)
        return base, size, phys

    async def free(self, vaddr: int) -> None:
        rax, *_ = await self._call(abi.FREE, vaddr)
        self._check(rax)

    # ------------------------------------------------------------------ threads and processes
    async def fork_thread(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...] = ()) -> int:
        rax, tid, _, _ = await self._call(abi.FORK_THREAD, fn, args)
        self._check(rax)
        return tid

    async def exit_thread(self) -> None:
        await self._call(abi.EXIT_THREAD)

    async def yield_(self) -> None:
        await self._call(abi.YIELD)

    async def exec(self, image: bytes | Callable[..., Any], stdin: int, stdout: int, params: bytes = b"",
                   flags: int = 0) -> int:
        """Start a program; stdin/stdout handles move to it. Returns the new pid."""
        if len(params) > 0xFFFF:
            raise SyscallError(abi.PARAM, detail="exec parameters too long")
        if callable(image):
            pptr = self._push(params) if params else 0
            rax, pid, _, _ = await self._call(
                abi.EXEC | ((flags | abi.EXEC_FUNCTION_IMAGE) << 8) | (len(params) << 16),
                image, (stdin << 32) | stdout, pptr)
            self._check(rax)
            return pid
        if not image:
            raise SyscallError(abi.PARAM)
        chunk = await Chunk.allocate(self, len(image))
        vaddr = chunk.vaddr
        try:
            chunk.write(0, image)
            pptr = self._push(params) if params else 0
            rax, pid, _, _ = await self._call(
                abi.EXEC | (flags << 8) | (len(params) << 16) | (len(image) << 32),
                vaddr, (stdin << 32) | stdout, pptr)
        finally:
            await self.free(vaddr)
        self._check(rax)
        return pid

    # ------------------------------------------------------------------ devices and debug
    async def await_interrupt(self, line: int, timeout_us: int = 0) -> bool:
        rax, fired, _, _ = await self._call(abi.AWAIT_INTERRUPT, line, timeout_us)
        self._check(rax)
        return bool(fired)

    async def reboot(self, command: int) -> None:
        """reboot(2): abi.REBOOT_QUERY (may I?), REBOOT_RESTART or REBOOT_POWER_OFF; root only
        (SyscallError NOT_PERMITTED otherwise). The last two do not return."""
        rax, *_ = await self._call(abi.REBOOT, command)
        self._check(rax)

    async def port_in(self, port: int, size: int = 1) -> int:
        rax, value, _, _ = await self._call(abi.PORT_IN, port, size)
        self._check(rax)
        return value

    async def port_out(self, port: int, value: int, size: int = 1) -> None:
        rax, *_ = await self._call(abi.PORT_OUT, port, size, value)
        self._check(rax)

    async def port_vio(self, ops: list[tuple[int, int, int | None]]) -> list[int]:
        """Vectored port I/O: each op is (port, size, None) for an ``in`` or (port, size, value)
        for an ``out``, done in order in one call (at most PORT_VIO_MAX). Returns the values
        the ``in``s read, in order."""
        n = len(ops)
        if not 0 < n <= abi.PORT_VIO_MAX:
            raise SyscallError(abi.PARAM, detail=f"{n} port operations (1 to {abi.PORT_VIO_MAX})")
        raw = bytearray(8 * n)
        pack = _VIO.pack_into
        reads = []
        for i, (port, size, value) in enumerate(ops):
            if value is None:
                reads.append(i)
                pack(raw, 8 * i, port, size, 0, 0)
            else:
                pack(raw, 8 * i, port, size, 1, value)
        addr = self._push(bytes(raw))
        rax, _, _, _ = await self._call(abi.PORT_VIO, addr, n)
        self._check(rax)
        if not reads:
            return []
        stack = self._stack()
        back = stack.read(addr - stack.vaddr, 8 * n)
        unpack = _VIO.unpack_from
        return [unpack(back, 8 * i)[3] for i in reads]

    async def debug_write(self, text: str) -> None:
        data = text.encode()
        if data:
            await self._call(abi.DEBUG_WRITE, self._push(data[:16384]), min(len(data), 16384))
