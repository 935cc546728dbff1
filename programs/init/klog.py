"""Kernel-log lines onto the system console (F1).

After the boot messages, the host posts kernel-log lines on init's handle 1 as Long(WRITE, n,
chunk), the way a kernel would feed /dev/kmsg; init forwards each chunk to the F1 writer, so a
process killed for a fault is reported there. While the console driver is down the chunk comes
back, and its text is kept to be shown once the console is back. The host may also post
Long(COMM_HANDLE, Handle(serial console)): a serial line to run a login on (`euralios --serial`).
"""

from __future__ import annotations

from euralios.std import STDOUT, Chunk, Handle, Memory, Message, SyscallError, abi, discard
from programs.init.consoles import Consoles, answer, tail


async def chunk_text(sys, mem: Memory, n: int) -> str:
    """Up to n bytes of text from a chunk we hold, never reading past its end (a page fault in
    init would take the whole system down)."""
    try:
        chunk = await Chunk.received(sys, mem)
    except SyscallError:
        return ""
    n = max(0, min(n, chunk.size, 1 << 16))
    return chunk.read(0, n).decode("utf-8", "replace") if n else ""


async def kernel_log(consoles: Consoles) -> None:
    """Kernel-log lines the host posts on handle 1 -> the system console (chunk forwarded)."""
    sys = consoles.sys
    while True:
        try:
            msg = await sys.receive(STDOUT)
        except SyscallError:
            return
        con = consoles.consoles[0]
        if msg.tag == abi.COMM_HANDLE and isinstance(msg.d2, Handle):
            # The host's serial line (`euralios --serial`): a login runs there too.
            try:
                await consoles.proc.spawn_thread(consoles.serial_getty, msg.d2.number)
            except SyscallError:
                await sys.close(msg.d2.number)
        elif msg.tag == abi.WRITE and isinstance(msg.d3, Memory) and isinstance(msg.d2, int) and con is not None:
            try:
                await sys.rcall(con.writer, abi.WRITE, msg.d2, msg.d3)
            except SyscallError as e:
                # The console driver is down: the chunk came back; keep its text for later.
                back = e.message
                if isinstance(back, Message) and isinstance(back.d3, Memory):
                    consoles.missed.append(tail(await chunk_text(sys, back.d3, msg.d2)))
                    await discard(sys, back)
        else:
            await discard(sys, msg)
        if msg.reply:
            await answer(sys, STDOUT, Message(abi.OK, 0, 0))
